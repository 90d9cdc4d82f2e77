"""Text boxes from a text detector's probability map: DB post-processing in NumPy and SciPy, as PaddleOCR does it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

__all__ = ["DBSettings", "text_boxes", "min_area_rect", "box_score", "polygon_mask", "sorted_boxes", "text_area"]


@dataclass(frozen=True)
class DBSettings:
    """DB post-processing settings, PaddleOCR's and RapidOCR's defaults.

    ``thresh`` binarises the probability map; a region is kept when the mean probability inside
    its minimum-area rectangle reaches ``box_thresh``; the rectangle is then grown by
    ``area * unclip_ratio / perimeter`` on every side; regions whose rectangle is thinner than
    ``min_size`` pixels (``min_size + 2`` after growing) are dropped; at most ``max_candidates``
    regions are considered.
    """

    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    min_size: float = 3.0


def text_boxes(probability: np.ndarray, shape: tuple[int, int], *,
               settings: DBSettings = DBSettings()) -> tuple[np.ndarray, np.ndarray]:
    """The text boxes of a (H, W) DB probability map, in the pixels of an image of ``shape``.

    The map is binarised at ``settings.thresh`` and dilated by a 2x2 square (towards the bottom
    right, as OpenCV's ``dilate`` does); every 8-connected region gets its minimum-area rectangle
    (convex hull of its pixel centres, rotating calipers), scored by the mean probability of the
    map pixels inside it, grown by the unclip distance (exact for a rectangle: the rounded offset
    polygon has the grown rectangle as its minimum-area rectangle) and scaled to ``shape``.

    Parameters
    ----------
    probability : numpy.ndarray
        (H, W) map in [0, 1] of the image resized to (H, W).
    shape : (int, int)
        (height, width) of the image the boxes are for.
    settings : DBSettings

    Returns
    -------
    boxes : numpy.ndarray
        (N, 4, 2) float64 corner points (x, y), clockwise from the top left, integer-valued and
        clipped to the image, in reading order (:func:`sorted_boxes`).
    scores : numpy.ndarray
        (N,) mean probability inside each box before growing.

    References
    ----------
    Liao, M., Wan, Z., Yao, C., Chen, K., Bai, X. (2020). Real-time scene text detection with
    differentiable binarization. AAAI 34, 11474-11481.
    """
    probability = np.asarray(probability, dtype=np.float32)
    height, width = probability.shape
    mask = probability > settings.thresh
    mask[1:] |= mask[:-1].copy()  # 2x2 dilation anchored at the kernel's bottom-right cell
    mask[:, 1:] |= mask[:, :-1].copy()
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes, scores = [], []
    for index, window in enumerate(ndimage.find_objects(labels)[: settings.max_candidates], start=1):
        rect = _region_rect(labels[window] == index, window)
        if rect is None or rect[1] < settings.min_size:
            continue
        corners, short_side = rect
        score = box_score(probability, corners)
        if score < settings.box_thresh:
            continue
        grown = _unclip(corners, settings.unclip_ratio)
        if min(np.linalg.norm(grown[1] - grown[0]), np.linalg.norm(grown[3] - grown[0])) < settings.min_size + 2:
            continue
        scaled = np.empty_like(grown)
        scaled[:, 0] = np.clip(np.round(grown[:, 0] / width * shape[1]), 0, shape[1])
        scaled[:, 1] = np.clip(np.round(grown[:, 1] / height * shape[0]), 0, shape[0])
        box = _clockwise(scaled)
        box[:, 0] = np.clip(box[:, 0], 0, shape[1] - 1)
        box[:, 1] = np.clip(box[:, 1], 0, shape[0] - 1)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        boxes.append(box)
        scores.append(score)
    if not boxes:
        return np.zeros((0, 4, 2)), np.zeros(0)
    order = sorted_boxes(np.array(boxes))
    return np.array(boxes)[order], np.array(scores)[order]


def _region_rect(region: np.ndarray, window: tuple[slice, slice]) -> tuple[np.ndarray, float] | None:
    """The minimum-area rectangle of one region's pixel centres (only each row's end pixels can be on the hull)."""
    rows = np.flatnonzero(region.any(axis=1))
    first = region[rows].argmax(axis=1)
    last = region.shape[1] - 1 - region[rows, ::-1].argmax(axis=1)
    ys = np.concatenate([rows, rows]) + window[0].start
    xs = np.concatenate([first, last]) + window[1].start
    return min_area_rect(np.stack([xs, ys], axis=1).astype(np.float64))


def min_area_rect(points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The rectangle of least area holding ``points`` (N, 2), by rotating calipers over the convex hull.

    Returns
    -------
    (corners, short_side) or None
        ``corners`` (4, 2) ordered as PaddleOCR's ``get_mini_boxes`` orders them (top left, top
        right, bottom right, bottom left for a near-horizontal box); None when the points are
        collinear (a rectangle of zero width).
    """
    try:
        hull = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return None
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    keep = lengths > 0
    directions = edges[keep] / lengths[keep, None]
    normals = np.stack([-directions[:, 1], directions[:, 0]], axis=1)
    along = hull @ directions.T  # (vertices, edges)
    across = hull @ normals.T
    areas = np.ptp(along, axis=0) * np.ptp(across, axis=0)
    best = int(np.argmin(areas))
    u, v = directions[best], normals[best]
    a0, a1 = along[:, best].min(), along[:, best].max()
    b0, b1 = across[:, best].min(), across[:, best].max()
    corners = np.array([a0 * u + b0 * v, a1 * u + b0 * v, a1 * u + b1 * v, a0 * u + b1 * v])
    return _mini_box_order(corners), float(min(a1 - a0, b1 - b0))


def _mini_box_order(corners: np.ndarray) -> np.ndarray:
    """PaddleOCR's order: sort by x; of the two left points the upper first, of the two right ones the upper second."""
    points = corners[np.argsort(corners[:, 0], kind="stable")]
    first, fourth = (0, 1) if points[1, 1] > points[0, 1] else (1, 0)
    second, third = (2, 3) if points[3, 1] > points[2, 1] else (3, 2)
    return points[[first, second, third, fourth]]


def _unclip(corners: np.ndarray, ratio: float) -> np.ndarray:
    """Grow a rectangle by ``area * ratio / perimeter`` on every side (same centre and angle)."""
    width = np.linalg.norm(corners[1] - corners[0])
    height = np.linalg.norm(corners[3] - corners[0])
    if width == 0 or height == 0:
        return corners.copy()
    distance = width * height * ratio / (2 * (width + height))
    u = (corners[1] - corners[0]) / width
    v = (corners[3] - corners[0]) / height
    grown = corners + distance * np.array([-u - v, u - v, u + v, -u + v])
    return _mini_box_order(grown)


def _clockwise(points: np.ndarray) -> np.ndarray:
    """Top left, top right, bottom right, bottom left: the two leftmost points by y, then the two rightmost."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]])


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The pixels whose centres lie inside or on a convex polygon (N, 2), within its bounding window.

    Returns the boolean mask of the window and the window (row slice, column slice) in an image
    of ``shape``; the window is clipped to the image (it may be empty).
    """
    polygon = np.asarray(polygon, dtype=np.float64)
    x0 = int(np.clip(np.floor(polygon[:, 0].min()), 0, shape[1] - 1))
    x1 = int(np.clip(np.ceil(polygon[:, 0].max()), 0, shape[1] - 1))
    y0 = int(np.clip(np.floor(polygon[:, 1].min()), 0, shape[0] - 1))
    y1 = int(np.clip(np.ceil(polygon[:, 1].max()), 0, shape[0] - 1))
    ys, xs = np.arange(y0, y1 + 1, dtype=np.float64)[:, None], np.arange(x0, x1 + 1, dtype=np.float64)[None, :]
    eps = 1e-9 * max(1.0, float(np.abs(polygon).max()))
    left = right = np.ones((y1 - y0 + 1, x1 - x0 + 1), bool)  # on one side of every edge: inside (either orientation)
    for start, end in zip(polygon, np.roll(polygon, -1, axis=0)):
        cross = (end[0] - start[0]) * (ys - start[1]) - (end[1] - start[1]) * (xs - start[0])
        left, right = left & (cross >= -eps), right & (cross <= eps)
    return left | right, (slice(y0, y1 + 1), slice(x0, x1 + 1))


def box_score(probability: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability of the map pixels inside a box whose corners are truncated to integers
    (PaddleOCR's "fast" score: OpenCV's ``fillPoly`` of the box on its bounding window)."""
    inside, window = polygon_mask(np.trunc(corners), probability.shape)
    values = probability[window][inside]
    return float(values.mean()) if values.size else 0.0


def sorted_boxes(boxes: np.ndarray) -> list[int]:
    """Reading order of boxes (N, 4, 2): by the top-left corner's y then x, then neighbours less
    than 10 pixels apart in y swapped into left-to-right order (PaddleOCR's ``sorted_boxes``)."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0][1], boxes[i][0][0]))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = boxes[order[j]][0], boxes[order[j + 1]][0]
            if abs(b[1] - a[1]) < 10 and b[0] < a[0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order


def text_area(boxes: np.ndarray, shape: tuple[int, int]) -> float:
    """The fraction of an image of ``shape`` whose pixel centres lie in at least one box (overlaps counted once)."""
    if shape[0] * shape[1] == 0:
        return 0.0
    covered = np.zeros(shape, bool)
    for box in boxes:
        inside, window = polygon_mask(box, shape)
        covered[window] |= inside
    return float(covered.mean())
