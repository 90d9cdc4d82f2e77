"""Differentiable lineal path function along the two axes of a slice."""

from __future__ import annotations

import tensorflow as tf

from mcrgpu.mcr.descriptors.base import Descriptor, channels_first

__all__ = ["LinealPath"]


class LinealPath(Descriptor):
    """Lineal path ``L_d(r) = mean_p prod_{k=0..r} x(p + k e_d)`` for ``r = 0..L-1``.

    ``d`` runs over x (width) and y (height). For binary fields this is exactly the
    probability that a segment of ``r + 1`` pixels along ``d`` lies entirely in the phase;
    for fractional values it is the product relaxation of that indicator (differentiable,
    equal to the exact value on 0/1 input). ``L(0)`` is the volume fraction. Computed by
    successive shifted multiplications. With ``periodic=True`` segments wrap around; with
    ``periodic=False`` ``L(r)`` averages over the ``(W - r) H`` (resp. ``H (W - r)``)
    segments that fit inside the slice. Multigrid as for
    :class:`~mcrgpu.mcr.descriptors.Correlations`. The value for a batch of shape (B, H, W, C)
    has shape (B, C, levels, 2, L), the axis of size 2 being (x, y).

    References
    ----------
    .. [1] Torquato, S., "Random Heterogeneous Materials: Microstructure and Macroscopic
       Properties", Springer (2002), ch. 2 (lineal-path function).
    .. [2] Lu, B., Torquato, S., "Lineal-path function for random heterogeneous materials",
       Physical Review A 45 (1992) 922-929.
    .. [3] Seibert, P., Raßloff, A., Ambati, M., Kästner, M., "Descriptor-based reconstruction
       of three-dimensional microstructures through gradient-based optimization",
       Acta Materialia 227 (2022) 117667.

    Examples
    --------
    >>> import tensorflow as tf
    >>> from mcrgpu.mcr.descriptors import DescriptorSettings
    >>> LinealPath(DescriptorSettings(limit_to=4))(tf.ones((1, 16, 16, 1))).shape
    TensorShape([1, 1, 2, 2, 4])
    """

    name = "LinealPath"
    supports_multigrid = True

    def _level_shape(self) -> tuple[int, ...]:
        return 2, self.settings.limit_to

    def _min_size(self) -> tuple[int, int]:
        return self.settings.limit_to, self.settings.limit_to

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        xt = channels_first(x)
        along_x = self._along_last_axis(xt)
        along_y = self._along_last_axis(tf.transpose(xt, [0, 1, 3, 2]))
        return tf.stack([along_x, along_y], axis=2)

    def _along_last_axis(self, xt: tf.Tensor) -> tf.Tensor:
        """(B, C, M, N) -> (B, C, L): lineal path of segments along the last axis."""
        size = xt.shape[-1]
        product = xt
        values = [tf.reduce_mean(product, axis=[2, 3])]
        for r in range(1, self.settings.limit_to):
            if self.settings.periodic:
                product = product * tf.roll(xt, shift=-r, axis=3)
            else:
                product = product[..., : size - r] * xt[..., r:]
            values.append(tf.reduce_mean(product, axis=[2, 3]))
        return tf.stack(values, axis=-1)
