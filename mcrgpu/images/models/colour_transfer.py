"""Colour transfer (Reinhard et al. 2001): an image takes a reference's Lab mean and spread, by a seeded strength."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["build_colour_transfer", "rgb_to_lab", "lab_to_rgb"]

_RGB_TO_XYZ = [[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]]  # sRGB primaries, D65 white
_WHITE = [0.95047, 1.0, 1.08883]
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """CIE L*a*b* (D65) of sRGB values in [0, 1], last axis the 3 channels; computed in ``rgb.dtype``."""
    dtype = rgb.dtype
    linear = tf.where(rgb <= 0.04045, rgb / 12.92, tf.pow((rgb + 0.055) / 1.055, tf.cast(2.4, dtype)))
    xyz = tf.linalg.matvec(tf.constant(_RGB_TO_XYZ, dtype), linear) / tf.constant(_WHITE, dtype)
    f = tf.where(xyz > _DELTA ** 3, tf.pow(tf.maximum(xyz, _DELTA ** 3), tf.cast(1.0 / 3.0, dtype)),
                 xyz / (3 * _DELTA ** 2) + 4.0 / 29.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """sRGB in [0, 1] (clipped) of CIE L*a*b* (D65) values, last axis the 3 channels."""
    dtype = lab.dtype
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = tf.where(f > _DELTA, f * f * f, 3 * _DELTA ** 2 * (f - 4.0 / 29.0)) * tf.constant(_WHITE, dtype)
    linear = tf.linalg.matvec(tf.cast(tf.linalg.inv(tf.constant(_RGB_TO_XYZ, tf.float64)), dtype), xyz)
    linear = tf.clip_by_value(linear, 0.0, 1.0)
    return tf.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * tf.pow(tf.maximum(linear, 0.0031308), tf.cast(1.0 / 2.4, dtype)) - 0.055)


class _ColourTransfer(tf.Module):
    """``serve(image, reference, seed)`` -> ``image`` (uint8 RGB) and the ``strength`` used per sample."""

    def __init__(self, *, compute_dtype: str, strength_range: tuple[float, float]) -> None:
        super().__init__(name="colour_transfer")
        self.compute_dtype = tf.as_dtype(compute_dtype)
        self.strength_range = strength_range

    @tf.function(input_signature=[
        tf.TensorSpec((None, None, None, None), tf.float32, name="image"),
        tf.TensorSpec((None, None, None, None), tf.float32, name="reference"),
        tf.TensorSpec((None,), tf.int64, name="seed"),
    ])
    def serve(self, image, reference, seed):
        low, high = self.strength_range
        strength = tf.map_fn(
            lambda s: tf.random.stateless_uniform([], seed=tf.stack([s, tf.constant(0, tf.int64)]),
                                                  minval=low, maxval=high),
            seed, fn_output_signature=tf.float32)
        lab = rgb_to_lab(tf.cast(_rgb(image), self.compute_dtype))
        reference_lab = rgb_to_lab(tf.cast(_rgb(reference), self.compute_dtype))
        mean, std = _moments(lab)  # statistics in float32, as Keras keeps reductions under mixed precision
        reference_mean, reference_std = _moments(reference_lab)
        scale = reference_std / tf.maximum(std, 1e-3)
        weight = strength[:, None, None, None]
        gain = tf.cast(1.0 + weight * (scale - 1.0), self.compute_dtype)
        shift = tf.cast(weight * (reference_mean - scale * mean), self.compute_dtype)
        rgb = tf.cast(lab_to_rgb(lab * gain + shift), tf.float32)
        return {"image": tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8),
                "strength": strength}


def _rgb(images: tf.Tensor) -> tf.Tensor:
    """Grey (C = 1) repeated to RGB; alpha (C = 2 or 4) dropped."""
    channels = tf.shape(images)[-1]
    colour = tf.cond(channels >= 3, lambda: images[..., :3], lambda: tf.tile(images[..., :1], [1, 1, 1, 3]))
    return tf.ensure_shape(colour, [None, None, None, 3])


def _moments(lab: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    mean, variance = tf.nn.moments(tf.cast(lab, tf.float32), axes=[1, 2], keepdims=True)
    return mean, tf.sqrt(variance)


def build_colour_transfer(*, compute_dtype: str = "float32",
                          strength_range: tuple[float, float] = (0.5, 1.0)) -> tf.Module:
    """Build the colour-transfer grid model.

    Each sample moves the image's Lab mean and standard deviation towards the reference's by a
    strength drawn from its seed (uniform in ``strength_range``; 1 is Reinhard's full transfer):
    ``lab' = lab + s * ((lab - mean) * std_ref / std + mean_ref - lab)``.

    Parameters
    ----------
    compute_dtype : {"float32", "float16", "bfloat16"}
        Dtype of the per-pixel colour conversions; means and deviations are taken in float32.
    strength_range : (float, float)
        Range of the per-sample strength.

    Returns
    -------
    tf.Module
        With ``serve(image, reference, seed)``: images (B, H, W, C) float32 in [0, 1] (C 1 to 4),
        seeds (B,) int64; returns ``image`` (B, H, W, 3) uint8 and ``strength`` (B,) float32.

    References
    ----------
    E. Reinhard, M. Ashikhmin, B. Gooch, P. Shirley, "Color transfer between images", IEEE Computer
    Graphics and Applications 21(5), 34-41 (2001).
    """
    return _ColourTransfer(compute_dtype=compute_dtype, strength_range=tuple(strength_range))
