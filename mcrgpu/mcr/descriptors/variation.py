"""Total variation: the mean absolute difference between neighbouring pixels."""

from __future__ import annotations

import tensorflow as tf

from mcrgpu.mcr.descriptors.base import Descriptor

__all__ = ["Variation"]


class Variation(Descriptor):
    """Mean total variation of each channel.

    ``V = (1/HW) sum_p (|x(p + e_x) - x(p)| + |x(p + e_y) - x(p)|)``. With
    ``periodic=True`` the neighbours wrap around; otherwise only differences between two
    pixels inside the slice are summed (still divided by ``HW``). The value for a batch of
    shape (B, H, W, C) has shape (B, C). At ties (equal neighbours) the gradient of ``|.|``
    is taken as 0.

    References
    ----------
    .. [1] Rudin, L. I., Osher, S., Fatemi, E., "Nonlinear total variation based noise
       removal algorithms", Physica D 60 (1992) 259-268.
    .. [2] Seibert, P., Raßloff, A., Ambati, M., Kästner, M., "Descriptor-based reconstruction
       of three-dimensional microstructures through gradient-based optimization",
       Acta Materialia 227 (2022) 117667.

    Examples
    --------
    >>> import tensorflow as tf
    >>> Variation()(tf.zeros((1, 8, 8, 2))).shape
    TensorShape([1, 2])
    """

    name = "Variation"
    supports_multigrid = False

    def _level_shape(self) -> tuple[int, ...]:
        return ()

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        _, height, width, _ = x.shape
        total = 0
        for axis in (1, 2):
            if self.settings.periodic:
                diff = tf.roll(x, shift=-1, axis=axis) - x
            elif axis == 1:
                diff = x[:, 1:] - x[:, :-1]
            else:
                diff = x[:, :, 1:] - x[:, :, :-1]
            total += tf.reduce_sum(tf.abs(diff), axis=[1, 2])
        return total / tf.cast(height * width, x.dtype)
