"""Micrograph descriptors for binning: phase fraction, interface density and correlation length from mcrgpu.mcr's S2."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.models.image_statistics import grey_levels
from mcrgpu.mcr.descriptors import DescriptorSettings, FFTCorrelations

__all__ = ["build_microstructure_descriptors", "DESCRIPTOR_OUTPUTS"]

DESCRIPTOR_OUTPUTS = ("phase_fraction", "interface_density", "correlation_length", "threshold")


def otsu_threshold(grey: tf.Tensor) -> tf.Tensor:
    """Otsu's threshold of each (B, H, W, 1) grey image in [0, 255]: the level that best splits its histogram in two."""
    levels = tf.cast(tf.clip_by_value(tf.round(grey), 0.0, 255.0), tf.int32)
    counts = tf.math.bincount(tf.reshape(levels, [tf.shape(levels)[0], -1]), minlength=256, maxlength=256, axis=-1,
                              dtype=tf.float32)
    p = counts / tf.reduce_sum(counts, axis=1, keepdims=True)
    omega = tf.cumsum(p, axis=1)
    mu = tf.cumsum(p * tf.range(256, dtype=tf.float32), axis=1)
    between = tf.math.divide_no_nan((mu[:, -1:] * omega - mu) ** 2, omega * (1.0 - omega))
    return tf.cast(tf.argmax(between, axis=1), tf.float32)  # pixels above this level are phase 1


class _MicrostructureDescriptors(tf.Module):
    """``serve(image)`` -> the four descriptors, each (B,) float32."""

    def __init__(self, *, window: int, limit_to: int) -> None:
        super().__init__(name="microstructure_descriptors")
        self.window = window
        self.settings = DescriptorSettings(limit_to=limit_to, use_multigrid=False, periodic=False)
        shifts = np.arange(1 - limit_to, limit_to)
        radius = np.rint(np.hypot(*np.meshgrid(shifts, shifts, indexing="ij"))).astype(int)
        rings = np.stack([(radius == r) / max((radius == r).sum(), 1) for r in range(limit_to)])
        self.rings = tf.constant(rings.reshape(limit_to, -1).T, tf.float32)  # S2 window -> radial mean per r
        centre, side = limit_to - 1, 2 * limit_to - 1
        self.neighbours = [(centre + dy) * side + centre + dx for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]

    def _windows(self, field: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Windows (B * n, window, window, 1) covering each image, the last ones flush with its edges, and n."""
        size = self.window
        tf.debugging.Assert(tf.reduce_all(tf.shape(field)[1:3] >= size), [
            "the image (height, width)", tf.shape(field)[1:3],
            f"is smaller than the {size}x{size} window of microstructure_descriptors"])

        def starts(extent):
            return tf.unique(tf.minimum(tf.range(0, extent, size), extent - size))[0]

        rows = starts(tf.shape(field)[1])[:, None] + tf.range(size)[None]
        cols = starts(tf.shape(field)[2])[:, None] + tf.range(size)[None]
        tiles = tf.gather(tf.gather(field, rows, axis=1), cols, axis=3)  # (B, ny, size, nx, size, 1)
        tiles = tf.transpose(tiles, [0, 1, 3, 2, 4, 5])
        return tf.reshape(tiles, [-1, size, size, 1]), tf.shape(rows)[0] * tf.shape(cols)[0]

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image")])
    def serve(self, image):
        grey = grey_levels(image)
        threshold = otsu_threshold(grey)
        field = tf.cast(grey > threshold[:, None, None, None], tf.float32)
        batch = tf.shape(field)[0]
        windows, count = self._windows(field)
        s2 = FFTCorrelations(self.settings)(windows)  # (B * n, 1, 2L - 1, 2L - 1), S2 of phase 1
        s2 = tf.reduce_mean(tf.reshape(s2, [batch, count, -1]), axis=1)
        radial = s2 @ self.rings  # (B, L): S2 at radius 0, 1, ..., L - 1; S2(0) is the windows' phase fraction
        covariance = tf.math.divide_no_nan(radial - radial[:, :1] ** 2, radial[:, :1] - radial[:, :1] ** 2)
        axis_neighbours = tf.reduce_mean(tf.gather(s2, self.neighbours, axis=1), axis=1)  # S2 at (0, +-1), (+-1, 0)
        return {"phase_fraction": tf.reduce_mean(field, axis=[1, 2, 3]),
                "interface_density": np.pi * (radial[:, 0] - axis_neighbours),
                "correlation_length": _first_crossing(covariance, 1.0 / np.e), "threshold": threshold / 255.0}


def _first_crossing(curve: tf.Tensor, level: float) -> tf.Tensor:
    """Radius where each (B, L) curve first falls below ``level``, linearly interpolated; L - 1 if it never does."""
    below = curve < level
    limit = curve.shape[1]
    first = tf.where(tf.reduce_any(below, axis=1), tf.argmax(tf.cast(below, tf.int32), axis=1, output_type=tf.int32),
                     limit - 1)
    first = tf.maximum(first, 1)
    upper = tf.gather(curve, first, batch_dims=1)
    lower = tf.gather(curve, first - 1, batch_dims=1)
    step = tf.clip_by_value(tf.math.divide_no_nan(lower - level, lower - upper), 0.0, 1.0)
    crossed = tf.reduce_any(below, axis=1)
    return tf.where(crossed, tf.cast(first - 1, tf.float32) + step, float(limit - 1))


def build_microstructure_descriptors(*, compute_dtype: str = "float32", window: int = 64,
                                     limit_to: int = 16) -> tf.Module:
    """Build the microstructure-descriptor model: two-phase statistics of a micrograph per image.

    The grey image (BT.601 luma of RGB) is split into two phases at its Otsu threshold (phase 1:
    brighter); it is cut into ``window`` x ``window`` windows that cover it (the last row and
    column of windows flush with the edges, so they overlap their neighbours), and on each window
    mcrgpu.mcr's non-periodic :class:`~mcrgpu.mcr.descriptors.FFTCorrelations` (``limit_to``
    shifts) gives the two-point function S2 of phase 1, averaged over the windows. Outputs:

    - ``phase_fraction``: the share of phase 1 in the whole image (the volume fraction);
    - ``interface_density``: pi (S2(0) - S2(1)), the interface length per pixel area of an
      isotropic 2D medium (S2(r) = f - s r / pi near r = 0; Torquato 2002), S2(1) the mean over
      the four axis neighbours;
    - ``correlation_length``: the radius in pixels where the normalised autocovariance
      (S2(r) - f^2) / (f - f^2) first drops below 1/e (interpolated; ``limit_to - 1`` if it never
      does; 0 for a single phase);
    - ``threshold``: the Otsu threshold in [0, 1].

    Parameters
    ----------
    compute_dtype : {"float32"}
        Descriptors stay float32, as in reconstructions.
    window : int
        Window side in pixels; images must be at least this large.
    limit_to : int
        Largest shift (exclusive) of S2; at most ``window``.

    Returns
    -------
    tf.Module
        With ``serve(image)``: images (B, H, W, C) float32 in [0, 1]; returns the four outputs,
        each (B,) float32.

    Raises
    ------
    InvalidInputError
        ``compute_dtype`` is not float32, or ``limit_to`` exceeds ``window``.

    References
    ----------
    S. Torquato, "Random Heterogeneous Materials", Springer (2002), ch. 2.
    N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9(1), 62-66 (1979).
    """
    if compute_dtype != "float32":
        raise InvalidInputError(f"microstructure_descriptors computes in float32 only; received precision "
                                f"{compute_dtype!r}: export it with --precision float32")
    if not 2 <= limit_to <= window:
        raise InvalidInputError(f"limit_to must be in 2..window ({window}); received {limit_to!r}")
    return _MicrostructureDescriptors(window=int(window), limit_to=int(limit_to))
