"""Per-image scalars for binning: sharpness, edge density, entropy, colourfulness and mean intensity, in TF ops."""

from __future__ import annotations

import tensorflow as tf

from mcrgpu.errors import InvalidInputError

__all__ = ["build_image_statistics", "STATISTICS_OUTPUTS"]

STATISTICS_OUTPUTS = ("sharpness", "edge_density", "entropy", "colourfulness", "mean_intensity")

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as mcrgpu.images.decode and Pillow's "L" mode
_LAPLACIAN = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]


def grey_levels(image: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) in [0, 1] -> (B, H, W, 1) grey in [0, 255]: BT.601 luma of RGB, grey as is, alpha dropped."""
    def luma():
        return tf.tensordot(image[..., :3], tf.constant(_LUMA), axes=[[3], [0]])[..., None]
    grey = tf.cond(tf.shape(image)[-1] >= 3, luma, lambda: image[..., :1])
    return 255.0 * tf.ensure_shape(grey, [None, None, None, 1])


class _ImageStatistics(tf.Module):
    """``serve(image)`` -> the five statistics, each (B,) float32."""

    def __init__(self, *, edge_threshold: float) -> None:
        super().__init__(name="image_statistics")
        self.edge_threshold = edge_threshold

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image")])
    def serve(self, image):
        grey = grey_levels(image)
        laplacian = tf.nn.conv2d(grey, tf.constant(_LAPLACIAN)[:, :, None, None], 1, "VALID")
        _, sharpness = tf.nn.moments(laplacian, axes=[1, 2, 3])
        sobel = tf.image.sobel_edges(grey / 255.0)  # (B, H, W, 1, 2), reflect-padded borders
        magnitude = tf.norm(sobel, axis=-1)[..., 0] / 4.0  # a unit step reads 1
        edges = tf.reduce_mean(tf.cast(magnitude > self.edge_threshold, tf.float32), axis=[1, 2])
        levels = tf.cast(tf.clip_by_value(tf.round(grey), 0.0, 255.0), tf.int32)
        counts = tf.math.bincount(tf.reshape(levels, [tf.shape(levels)[0], -1]), minlength=256, maxlength=256,
                                  axis=-1, dtype=tf.float32)
        p = counts / tf.reduce_sum(counts, axis=1, keepdims=True)
        entropy = -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-30)), 0.0), axis=1) / tf.math.log(2.0)
        return {"sharpness": sharpness, "edge_density": edges, "entropy": entropy,
                "colourfulness": _colourfulness(image), "mean_intensity": tf.reduce_mean(grey, axis=[1, 2, 3]) / 255.0}


def _colourfulness(image: tf.Tensor) -> tf.Tensor:
    """Hasler and Süsstrunk's M on [0, 255] RGB; 0 for grey images (fewer than 3 channels)."""
    def colour():
        rgb = 255.0 * tf.ensure_shape(image[..., :3], [None, None, None, 3])
        red, green, blue = tf.unstack(rgb, axis=-1)
        rg, yb = red - green, 0.5 * (red + green) - blue
        mean_rg, var_rg = tf.nn.moments(rg, axes=[1, 2])
        mean_yb, var_yb = tf.nn.moments(yb, axes=[1, 2])
        return tf.sqrt(var_rg + var_yb) + 0.3 * tf.sqrt(mean_rg ** 2 + mean_yb ** 2)
    return tf.cond(tf.shape(image)[-1] >= 3, colour, lambda: tf.zeros(tf.shape(image)[:1]))


def build_image_statistics(*, compute_dtype: str = "float32", edge_threshold: float = 0.1) -> tf.Module:
    """Build the image-statistics model: five scalars per image that binning rules can test.

    - ``sharpness``: variance of the 3x3 Laplacian of the grey image in [0, 255] (valid pixels
      only), the usual blur measure (Pech-Pacheco et al.); values under ~100 mean blurry photos;
    - ``edge_density``: fraction of pixels whose Sobel gradient magnitude (a unit step reads 1)
      exceeds ``edge_threshold``;
    - ``entropy``: Shannon entropy in bits of the 256-level grey histogram (0 to 8), as
      ``skimage.measure.shannon_entropy`` of the uint8 grey image;
    - ``colourfulness``: Hasler and Süsstrunk's M (0 for grey images, ~15 "slightly", ~60 "quite",
      ~110 "extremely colourful");
    - ``mean_intensity``: mean grey level in [0, 1].

    Grey is BT.601 luma of RGB; images with one channel are grey already; alpha is ignored.

    Parameters
    ----------
    compute_dtype : {"float32"}
        Statistics are computed in float32 only (histograms and variances lose their meaning in
        16-bit floats).
    edge_threshold : float
        Gradient magnitude above which a pixel counts as an edge.

    Returns
    -------
    tf.Module
        With ``serve(image)``: images (B, H, W, C) float32 in [0, 1], C 1 to 4, H and W >= 3;
        returns the five statistics, each (B,) float32.

    Raises
    ------
    InvalidInputError
        ``compute_dtype`` is not float32.

    References
    ----------
    J. L. Pech-Pacheco, G. Cristóbal, J. Chamorro-Martínez, J. Fernández-Valdivia, "Diatom autofocusing
    in brightfield microscopy: a comparative study", ICPR 2000, vol. 3, 314-317.
    D. Hasler, S. Süsstrunk, "Measuring colourfulness in natural images", Proc. SPIE 5007, 87-95 (2003).
    """
    if compute_dtype != "float32":
        raise InvalidInputError(f"image_statistics computes in float32 only; received precision {compute_dtype!r}: "
                                "export it with --precision float32")
    return _ImageStatistics(edge_threshold=float(edge_threshold))
