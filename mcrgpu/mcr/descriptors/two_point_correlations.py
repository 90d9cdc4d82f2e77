"""Differentiable two-point correlations S2 on half-plane shifts (Gram diagonal only)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.descriptors.correlations import _HalfPlaneDescriptor, _soft_and_affine, half_plane_shifts

__all__ = ["TwoPointCorrelations"]


class TwoPointCorrelations(_HalfPlaneDescriptor):
    """Two-point correlations S2 with the soft AND of :class:`Correlations`.

    The diagonal of the :class:`~mcrgpu.mcr.descriptors.Correlations` Gram matrix,
    ``S2(r_i) = (1/N) sum_p m_i(p)**2`` with ``m_i(p) = soft_and(x(p), x(p + r_i))``, for the
    ``K`` half-plane shifts of :func:`~mcrgpu.mcr.descriptors.half_plane_shifts`, computed
    without forming the Gram matrix. For binary fields it approximates the two-point
    probability function (exact where both pixels agree; a (1, 0) pair contributes
    ``soft_and(1, 0)**2``, 0.0067 for k = 10). Same multigrid and periodicity rules as
    Correlations. The value for a batch of shape (B, H, W, C) has shape (B, C, levels, K).

    References
    ----------
    .. [1] Torquato, S., "Random Heterogeneous Materials: Microstructure and Macroscopic
       Properties", Springer (2002), ch. 2 (two-point probability function).
    .. [2] Seibert, P., Ambati, M., Raßloff, A., Kästner, M., "Reconstructing random
       heterogeneous media through differentiable optimization", Computational Materials
       Science 196 (2021) 110455.

    Examples
    --------
    >>> import tensorflow as tf
    >>> from mcrgpu.mcr.descriptors import DescriptorSettings
    >>> TwoPointCorrelations(DescriptorSettings(limit_to=2))(tf.ones((1, 8, 8, 1))).shape
    TensorShape([1, 1, 2, 5])
    """

    name = "TwoPointCorrelations"

    def _level_shape(self) -> tuple[int, ...]:
        return (len(half_plane_shifts(self.settings.limit_to)),)

    def _squared_map_means(self, level: np.ndarray) -> np.ndarray:
        return level

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        a, c = _soft_and_affine(self.settings.threshold_steepness)
        maps = self._tanh_maps(x) * tf.constant(a, x.dtype) + tf.constant(c, x.dtype)
        # averaging the soft-AND values themselves keeps binary structures exact (sums of 0 and 1)
        return tf.reduce_mean(tf.square(maps), axis=2)
