"""Phase segmentation of grey micrographs: Gaussian denoising, then fixed grey-level thresholds into phase labels."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.images.tiles import declare_tiling

__all__ = ["build_segment_phases"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class _SegmentPhases(tf.Module):
    """``serve(image)`` -> ``labels`` (B, H, W) uint8: the phase of every pixel, 0 darkest."""

    def __init__(self, *, compute_dtype: str, sigma: float, thresholds: Sequence[float]) -> None:
        super().__init__(name="segment_phases")
        self.compute_dtype = tf.as_dtype(compute_dtype)
        radius = int(np.ceil(3 * sigma))
        offsets = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
        self.kernel = tf.constant(kernel / kernel.sum(), tf.float32)
        self.thresholds = tf.constant(sorted(thresholds), tf.float32)
        declare_tiling(self, receptive_radius=radius, output_scale=1)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image")])
    def serve(self, image):
        channels = tf.shape(image)[-1]
        grey = tf.cond(channels >= 3,
                       lambda: tf.reduce_sum(image[..., :3] * tf.constant(_LUMA), axis=-1, keepdims=True),
                       lambda: image[..., :1])
        grey = tf.ensure_shape(grey, [None, None, None, 1])
        kernel = tf.cast(self.kernel, self.compute_dtype)
        size = tf.shape(kernel)[0]
        smooth = tf.nn.conv2d(tf.cast(grey, self.compute_dtype), tf.reshape(kernel, [size, 1, 1, 1]), 1, "SAME")
        smooth = tf.nn.conv2d(smooth, tf.reshape(kernel, [1, size, 1, 1]), 1, "SAME")
        smooth = tf.cast(smooth[..., 0], tf.float32)
        labels = tf.reduce_sum(tf.cast(smooth[..., None] >= self.thresholds, tf.int32), axis=-1)
        return {"labels": tf.cast(labels, tf.uint8)}


def build_segment_phases(*, compute_dtype: str = "float32", sigma: float = 2.0,
                         thresholds: Sequence[float] = (0.5,)) -> tf.Module:
    """Build the phase segmentation model for `mcrgpu images tiles`.

    The grey level (BT.601 luma of RGB) is smoothed by a separable Gaussian of standard deviation
    ``sigma`` truncated at 3 sigma, with 'SAME' zero padding, and each pixel gets the number of
    ``thresholds`` its smoothed value reaches: phase 0 below the first threshold, 1 above it, and so
    on. The model declares its receptive radius (ceil(3 sigma) = 6 pixels by default) and output
    scale 1, so tiled inference with ``--stitch crop`` equals the whole-image result; the labels are
    the phase-label arrays ``characterize`` and ``match`` take.

    Parameters
    ----------
    compute_dtype : {"float32", "float16", "bfloat16"}
        Dtype of the smoothing convolutions; thresholds compare in float32.
    sigma : float
        Gaussian standard deviation in pixels.
    thresholds : sequence of float
        Grey levels in [0, 1] between phases (one per phase boundary).

    Returns
    -------
    tf.Module
        With ``serve(image)``: images (B, H, W, C) float32 in [0, 1]; returns ``labels`` (B, H, W) uint8.
    """
    return _SegmentPhases(compute_dtype=compute_dtype, sigma=float(sigma), thresholds=tuple(thresholds))
