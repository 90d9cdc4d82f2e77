"""What the OCR models see and what their outputs mean: images resized as RapidOCR does, line crops, CTC decoding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from scipy import ndimage

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.decode import to_model_input

__all__ = ["MIN_SIDE", "REC_HEIGHT", "DetectorLayout", "detector_layout", "as_rgb255", "detector_input",
           "crop_line", "recognizer_input", "ctc_decode"]

MIN_SIDE = 8
"""Images with a side shorter than this (pixels) are refused: no text line fits in them."""
REC_HEIGHT = 48
"""Height of the recognizer's input; crops keep their aspect ratio."""
_REC_MIN_WIDTH = 320  # RapidOCR's rec_img_shape width: narrower crops are padded to it
_REC_WIDTH_STEP = 32  # wider crops are padded to a multiple of this (few shapes, results independent of batching)
_PAD_VALUE = 127.5  # RapidOCR pads with zeros after (x / 255 - 0.5) / 0.5, i.e. mid grey
_RGB = tf.TensorSpec((None, None, None, 3), tf.float32, "image")
_MAX_SIDE, _SMALL_SIDE, _MIN_HEIGHT, _MAX_RATIO, _LIMIT_SIDE = 2000, 30, 30, 8, 736  # RapidOCR's config.yaml


@dataclass(frozen=True)
class DetectorLayout:
    """How an (height, width) image becomes the detector's input: ``pad`` rows repeated above and
    below (the edge rows; RapidOCR letterboxes very wide or low images), then a resize to ``size``."""

    height: int
    width: int
    pad: int
    size: tuple[int, int]


def _round32(value: float) -> int:
    return int(round(value / 32) * 32)


def _scaled(height: int, width: int, ratio: float) -> tuple[int, int]:
    return max(_round32(int(height * ratio)), 32), max(_round32(int(width * ratio)), 32)


def detector_layout(height: int, width: int) -> DetectorLayout:
    """The detector input of an image, sized as RapidOCR 1.4.4 sizes it, in one resize.

    RapidOCR shrinks an image whose long side exceeds 2000 pixels, enlarges one whose short side
    is under 30, letterboxes one at most 30 pixels high or more than 8 times wider than high, then
    scales the short side to 736, rounding every size to a multiple of 32. The same sizes are
    computed here; the letterbox rows (counted in the image's own pixels) repeat the edge rows
    instead of RapidOCR's black bands, which a dark-on-light page would read as ink.

    Raises
    ------
    InvalidInputError
        A side is shorter than :data:`MIN_SIDE`.
    """
    if min(height, width) < MIN_SIDE:
        raise InvalidInputError(f"image is {height}x{width} pixels; OCR needs at least {MIN_SIDE} pixels on each side "
                                "(no text line fits in less)")
    h, w = height, width
    if max(h, w) > _MAX_SIDE:
        h, w = _scaled(h, w, _MAX_SIDE / max(h, w))
    elif min(h, w) < _SMALL_SIDE:
        h, w = _scaled(h, w, _SMALL_SIDE / min(h, w))
    pad = 0
    if h <= _MIN_HEIGHT or w / h > _MAX_RATIO:
        pad = int(abs(max(int(w / _MAX_RATIO), _MIN_HEIGHT) * 2 - h) / 2)
    own_pad = round(pad * height / h)  # the same rows in the image's own pixels
    h += 2 * pad
    if min(h, w) < _LIMIT_SIDE:
        h, w = _scaled(h, w, _LIMIT_SIDE / min(h, w))
    return DetectorLayout(height, width, own_pad, (h, w))


def as_rgb255(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) image as float32 RGB in 0..255: grey repeated to RGB, alpha dropped, uint16 and
    float ([0, 1]) images scaled (RapidOCR would feed 16-bit values unscaled)."""
    return to_model_input(image, _RGB) * np.float32(255)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize without antialiasing, rounded to integers: what OpenCV's ``resize`` does to a uint8 image."""
    if image.shape[:2] == tuple(size):
        return image
    resized = tf.image.resize(image, size, method="bilinear", antialias=False).numpy()
    return np.clip(np.rint(resized), 0, 255)


def detector_input(rgb: np.ndarray, layout: DetectorLayout) -> np.ndarray:
    """The detector's (H, W, 3) input row for an RGB 0..255 image."""
    padded = np.pad(rgb, ((layout.pad, layout.pad), (0, 0), (0, 0)), mode="edge") if layout.pad else rgb
    return _resize(padded, layout.size).astype(np.float32)


def _homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 projective map sending the four ``source`` points onto the four ``target`` points."""
    rows, values = [], []
    for (x, y), (u, v) in zip(source, target):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values += [u, v]
    return np.append(np.linalg.solve(np.array(rows, float), np.array(values, float)), 1.0).reshape(3, 3)


def crop_line(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The text line inside ``box`` (4 corners, clockwise from the top left) of an (H, W, C) image as
    read, warped upright, RGB 0..255 (only the box's surroundings are converted, see :func:`as_rgb255`).

    As RapidOCR's ``get_rotate_crop_image``: the crop is as wide as the box's longer horizontal
    edge and as high as its longer vertical edge, sampled by a perspective warp with cubic
    interpolation (here a cubic spline) and edge replication, and turned a quarter turn counter
    clockwise when at least 1.5 times higher than wide (a vertical line).

    Raises
    ------
    InvalidInputError
        The box is less than one pixel wide or high.
    """
    box = np.asarray(box, dtype=np.float64)
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    if width < 1 or height < 1:
        raise InvalidInputError(f"text box {box.tolist()} is {width}x{height} pixels; nothing to read")
    warp = _homography(np.array([[0, 0], [width, 0], [width, height], [0, height]], float), box)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    mapped = warp @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = mapped[0] / mapped[2], mapped[1] / mapped[2]
    x0, y0 = max(int(np.floor(sx.min())) - 3, 0), max(int(np.floor(sy.min())) - 3, 0)
    x1, y1 = min(int(np.ceil(sx.max())) + 4, image.shape[1]), min(int(np.ceil(sy.max())) + 4, image.shape[0])
    window = as_rgb255(image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]).astype(np.float64)
    coordinates = [sy - y0, sx - x0]
    crop = np.stack([ndimage.map_coordinates(window[..., c], coordinates, order=3, mode="nearest")
                     for c in range(3)], axis=-1).reshape(height, width, 3)
    crop = np.clip(np.rint(crop), 0, 255)
    return np.rot90(crop) if height / width >= 1.5 else crop


def recognizer_input(crop: np.ndarray) -> np.ndarray:
    """A crop resized to height 48 (width by its aspect ratio) and padded on the right with mid grey to
    at least 320 pixels, wider crops to a multiple of 32: a (48, W, 3) recognizer row."""
    height, width = crop.shape[:2]
    resized_width = max(1, math.ceil(REC_HEIGHT * width / height))
    resized = _resize(crop, (REC_HEIGHT, resized_width))
    padded_width = max(_REC_MIN_WIDTH, -(-resized_width // _REC_WIDTH_STEP) * _REC_WIDTH_STEP)
    row = np.full((REC_HEIGHT, padded_width, 3), _PAD_VALUE, np.float32)
    row[:, :resized_width] = resized
    return row


def ctc_decode(probabilities: np.ndarray, characters: np.ndarray) -> tuple[str, float]:
    """Greedy CTC decoding of one (T, classes) row: best class per step, repeats collapsed, blanks
    (class 0) dropped; the score is the mean probability of the kept steps (0 for no text).

    References
    ----------
    Graves, A., Fernandez, S., Gomez, F., Schmidhuber, J. (2006). Connectionist temporal
    classification. ICML, 369-376.
    """
    best = probabilities.argmax(axis=-1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(characters[best[keep]])
    return text, float(probabilities.max(axis=-1)[keep].mean())
