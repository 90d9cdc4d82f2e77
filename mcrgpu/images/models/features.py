"""Weight-free local features in TensorFlow ops: Harris keypoints on a pyramid, oriented SIFT-like descriptors."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = ["to_grey", "blur", "sample_bilinear", "pyramid_features"]

ORIENTATION_BINS = 8
GRID = 4  # descriptor cells per side: 4 x 4 cells x 8 bins = 128 values, as SIFT
CELL_SPACING = 4.0  # pixels between cell centres on the pyramid level
DERIVATIVE_SIGMA = 1.0
INTEGRATION_SIGMA = 2.0
ORIENTATION_SIGMA = 6.0
HARRIS_K = 0.04
NMS_SIZE = 3
BORDER = 8  # keypoints closer to the level's border than this are dropped
MIN_RESPONSE = 1e-12  # Harris response of a corner; flat and edge pixels are <= 0
MAX_BFLOAT16_SIGMA = 2.0  # radius ceil(3 sigma) = 6: 13 taps
LUMA = (0.2125, 0.7154, 0.0721)  # ITU-R 709, as skimage.color.rgb2gray


def to_grey(images: tf.Tensor) -> tf.Tensor:
    """Luminance (B, H, W, 1) of images with 1 (grey) or 3 (RGB) channels."""
    channels = tf.shape(images)[-1]
    check = tf.debugging.assert_equal(
        tf.logical_or(channels == 1, channels == 3), True,
        message="image0/image1 must have 1 (grey) or 3 (RGB) channels in the last dimension")
    with tf.control_dependencies([check]):
        weights = tf.where(channels == 3, tf.constant(LUMA), tf.constant((1.0, 0.0, 0.0)))[:channels]
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True)


def _gaussian_taps(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def blur(x: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian smoothing of every channel of ``x`` (B, H, W, C), in ``x``'s dtype.

    In bfloat16 a wide Gaussian is applied as several narrower ones (variances add): oneDNN's
    bfloat16 depthwise convolution hangs on kernels longer than 13 taps (TensorFlow 2.21, x86)."""
    passes = 1
    if x.dtype == tf.bfloat16:
        passes = max(1, math.ceil((sigma / MAX_BFLOAT16_SIGMA) ** 2 - 1e-9))
    taps = tf.constant(_gaussian_taps(sigma / math.sqrt(passes)), dtype=x.dtype)
    channels = x.shape[-1]
    rows = tf.tile(tf.reshape(taps, (-1, 1, 1, 1)), (1, 1, channels, 1))
    cols = tf.tile(tf.reshape(taps, (1, -1, 1, 1)), (1, 1, channels, 1))
    for _ in range(passes):
        x = tf.nn.depthwise_conv2d(x, rows, (1, 1, 1, 1), "SAME")
        x = tf.nn.depthwise_conv2d(x, cols, (1, 1, 1, 1), "SAME")
    return x


def _gradients(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Central differences with replicated borders."""
    padded = tf.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="SYMMETRIC")
    gx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    gy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return gx, gy


def sample_bilinear(fmap: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """Bilinear samples of ``fmap`` (B, H, W, C) at ``points`` (B, N, 2) x-y; borders are clamped."""
    shape = tf.shape(fmap)
    height, width = shape[1], shape[2]
    flat = tf.reshape(fmap, (shape[0], height * width, fmap.shape[-1]))
    x = tf.clip_by_value(points[..., 0], 0.0, tf.cast(width - 1, tf.float32))
    y = tf.clip_by_value(points[..., 1], 0.0, tf.cast(height - 1, tf.float32))
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)

    def at(yy, xx):
        return tf.gather(flat, yy * width + xx, batch_dims=1)

    top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx
    return top * (1.0 - fy) + bottom * fy


def _orientation_channels(gx: tf.Tensor, gy: tf.Tensor) -> tf.Tensor:
    """Gradient magnitude split over 8 orientation bins by linear interpolation (B, H, W, 8)."""
    magnitude = tf.sqrt(gx * gx + gy * gy)
    position = tf.math.floormod(tf.atan2(gy, gx) / (2.0 * math.pi) * ORIENTATION_BINS, ORIENTATION_BINS)
    bins = tf.range(ORIENTATION_BINS, dtype=tf.float32)
    distance = tf.abs(position - bins)
    distance = tf.minimum(distance, ORIENTATION_BINS - distance)
    return magnitude * tf.nn.relu(1.0 - distance)


def _detect(response: tf.Tensor, count: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Local maxima of ``response`` (B, H, W, 1): the ``count`` strongest as (B, count, 2) x-y
    (sub-pixel, by a parabola through the neighbours) and their scores (0 for padding)."""
    shape = tf.shape(response)
    height, width = shape[1], shape[2]
    peaks = tf.equal(response, tf.nn.max_pool2d(response, NMS_SIZE, 1, "SAME"))
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = ((rows >= BORDER) & (rows < height - BORDER) & (cols >= BORDER) & (cols < width - BORDER))
    keep = peaks & (response > MIN_RESPONSE) & inside[None, :, :, None]
    scores = tf.reshape(tf.where(keep, response, 0.0), (shape[0], -1))
    scores = tf.pad(scores, ((0, 0), (0, count)))  # top_k needs at least `count` values
    scores, index = tf.math.top_k(scores, k=count, sorted=True)
    index = tf.where(scores > 0.0, index, 0)
    y, x = index // width, index % width
    padded = tf.pad(response, ((0, 0), (1, 1), (1, 1), (0, 0)))
    flat = tf.reshape(padded, (shape[0], -1))

    def at(dy, dx):
        return tf.gather(flat, (y + 1 + dy) * (width + 2) + (x + 1 + dx), batch_dims=1)

    centre = at(0, 0)
    offsets = []
    for (before, after) in ((at(0, -1), at(0, 1)), (at(-1, 0), at(1, 0))):
        curvature = before - 2.0 * centre + after
        step = tf.math.divide_no_nan(before - after, 2.0 * curvature)
        offsets.append(tf.clip_by_value(tf.where(curvature < 0.0, step, 0.0), -0.5, 0.5))
    points = tf.stack([tf.cast(x, tf.float32) + offsets[0], tf.cast(y, tf.float32) + offsets[1]], -1)
    return points, scores


def _describe(channels: tf.Tensor, points: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """SIFT-like descriptors (B, N, 128): orientation channels sampled on a 4 x 4 grid rotated by
    ``angle`` around each point, bins shifted by ``angle`` so the descriptor is rotation invariant."""
    steps = (np.arange(GRID, dtype=np.float32) - (GRID - 1) / 2.0) * CELL_SPACING
    grid_x, grid_y = (axis.ravel() for axis in np.meshgrid(steps, steps))
    weights = np.exp(-(grid_x ** 2 + grid_y ** 2) / (2.0 * (GRID * CELL_SPACING / 2.0) ** 2)).astype(np.float32)
    cos, sin = tf.cos(angle)[..., None], tf.sin(angle)[..., None]
    sample_x = points[..., 0:1] + cos * grid_x - sin * grid_y
    sample_y = points[..., 1:2] + sin * grid_x + cos * grid_y
    batch, count = tf.shape(points)[0], tf.shape(points)[1]
    where = tf.reshape(tf.stack([sample_x, sample_y], -1), (batch, count * GRID * GRID, 2))
    cells = tf.reshape(sample_bilinear(channels, where), (batch, count, GRID * GRID, ORIENTATION_BINS))
    cells = cells * weights[:, None]
    shift = tf.math.floormod(angle / (2.0 * math.pi) * ORIENTATION_BINS, ORIENTATION_BINS)
    whole = tf.cast(tf.floor(shift), tf.int32)
    frac = (shift - tf.floor(shift))[..., None, None]
    bins = tf.transpose(cells, (0, 1, 3, 2))  # (B, N, 8, 16)
    lower = tf.gather(bins, (tf.range(ORIENTATION_BINS) + whole[..., None]) % ORIENTATION_BINS, batch_dims=2)
    upper = tf.gather(bins, (tf.range(ORIENTATION_BINS) + whole[..., None] + 1) % ORIENTATION_BINS,
                      batch_dims=2)
    descriptor = tf.reshape((1.0 - frac) * lower + frac * upper, (batch, count, -1))
    descriptor = tf.math.l2_normalize(descriptor, axis=-1)
    descriptor = tf.math.l2_normalize(tf.minimum(descriptor, 0.2), axis=-1)
    return descriptor


def pyramid_features(grey: tf.Tensor, *, counts: list[int], scale_step: float,
                     compute_dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Keypoints (B, K, 2) x-y in input pixels, scores (B, K) and unit descriptors (B, K, 128)
    from ``len(counts)`` pyramid levels, level ``l`` downscaled by ``scale_step ** l`` and
    contributing ``counts[l]`` keypoints (K = sum(counts)); padding has score 0."""
    shape = tf.shape(grey)
    size = tf.cast(shape[1:3], tf.float32)
    all_points, all_scores, all_descriptors = [], [], []
    for level, count in enumerate(counts):
        level_size = tf.maximum(tf.cast(tf.round(size / scale_step ** level), tf.int32), 1)
        image = grey if level == 0 else tf.image.resize(grey, level_size, antialias=True)
        smooth = blur(tf.cast(image, compute_dtype), DERIVATIVE_SIGMA)
        gx, gy = _gradients(smooth)
        tensor = tf.cast(blur(tf.concat([gx * gx, gx * gy, gy * gy], -1), INTEGRATION_SIGMA), tf.float32)
        xx, xy, yy = tensor[..., 0:1], tensor[..., 1:2], tensor[..., 2:3]
        response = xx * yy - xy * xy - HARRIS_K * (xx + yy) ** 2
        points, scores = _detect(response, count)
        gx, gy = tf.cast(gx, tf.float32), tf.cast(gy, tf.float32)
        mean_gradient = tf.cast(blur(tf.cast(tf.concat([gx, gy], -1), compute_dtype), ORIENTATION_SIGMA), tf.float32)
        direction = sample_bilinear(mean_gradient, points)
        angle = tf.atan2(direction[..., 1], direction[..., 0])
        channels = tf.cast(blur(tf.cast(_orientation_channels(gx, gy), compute_dtype), CELL_SPACING / 2.0),
                           tf.float32)
        all_descriptors.append(_describe(channels, points, angle))
        factor = size / tf.cast(level_size, tf.float32)
        all_points.append((points + 0.5) * factor[::-1] - 0.5)
        all_scores.append(scores)
    return tf.concat(all_points, 1), tf.concat(all_scores, 1), tf.concat(all_descriptors, 1)
