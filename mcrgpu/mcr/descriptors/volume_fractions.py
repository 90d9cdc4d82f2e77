"""Volume fractions: the mean of each indicator channel."""

from __future__ import annotations

import tensorflow as tf

from mcrgpu.mcr.descriptors.base import Descriptor

__all__ = ["VolumeFractions"]


class VolumeFractions(Descriptor):
    """Volume fraction of each phase: the mean of each channel over the slice.

    The value for a batch ``x`` of shape (B, H, W, C) has shape (B, C).

    References
    ----------
    .. [1] Torquato, S., "Random Heterogeneous Materials: Microstructure and Macroscopic
       Properties", Springer (2002), ch. 2 (one-point probability function).
    .. [2] Seibert, P., Ambati, M., Raßloff, A., Kästner, M., "Reconstructing random
       heterogeneous media through differentiable optimization", Computational Materials
       Science 196 (2021) 110455.

    Examples
    --------
    >>> import tensorflow as tf
    >>> VolumeFractions()(tf.ones((2, 16, 16, 1))).shape
    TensorShape([2, 1])
    """

    name = "VolumeFractions"
    supports_multigrid = False
    scale_free = True

    def _level_shape(self) -> tuple[int, ...]:
        return ()

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(x, axis=[1, 2])
