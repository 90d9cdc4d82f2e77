"""Two-point autocorrelation S2 by FFT, in a window of shifts around zero."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.descriptors.base import Descriptor, channels_first

__all__ = ["FFTCorrelations", "autocorrelation_window", "pooled_autocorrelation"]

_POOL_WEIGHTS = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
"""How often each offset ``d`` in {-1, 0, 1}^2 occurs between the pixels of two 2 x 2 blocks."""


def pooled_autocorrelation(value: np.ndarray) -> np.ndarray:
    """The autocorrelation window of the 2 x 2 average-pooled image, ``(..., 2l - 1, 2l - 1)`` with
    ``l = L // 2``, from the image's window ``(..., 2L - 1, 2L - 1)``: ``C'(R) = sum_d w(d) C(2R + d)``
    (``w`` = :data:`_POOL_WEIGHTS`). Exact for the mean over the four alignments of the pooling
    blocks (periodic images), so for a statistically homogeneous structure whichever alignment."""
    limit = (value.shape[-1] + 1) // 2
    coarse = limit // 2
    centre = limit - 1
    pooled = np.zeros(value.shape[:-2] + (2 * coarse - 1,) * 2)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            rows = centre + dy + 2 * np.arange(1 - coarse, coarse)
            columns = centre + dx + 2 * np.arange(1 - coarse, coarse)
            pooled += _POOL_WEIGHTS[dy + 1, dx + 1] * value[..., rows[:, None], columns[None, :]]
    return pooled


def _dft_table(size: int, shifts: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of ``2 pi k s / size`` for the shifts ``s`` (rows) and frequencies ``k < count``
    (columns), the phase reduced modulo ``size`` in integers first."""
    phase = 2 * np.pi * (np.outer(shifts, np.arange(count)) % size) / size
    return np.cos(phase), np.sin(phase)


def autocorrelation_window(x: tf.Tensor, limit: int) -> tf.Tensor:
    """``c(r) = sum_p x(p) x(p + r)`` over the last two axes of ``x`` (..., H, W), circular, for the
    shifts ``|r_y|, |r_x| < limit``: (..., 2 limit - 1, 2 limit - 1), entry ``[r_y + limit - 1,
    r_x + limit - 1]`` (shifts taken modulo H and W).

    One FFT forward: the power spectrum's inverse transform is evaluated at the window's shifts only,
    as two small matrix products (cos and sin tables), instead of a whole inverse FFT and a gather.
    The gradient is written out, ``dL/dx = irfft2(X * 2 Re(DFT(dL/dc)))`` (``X`` the forward
    spectrum, the DFT of the window's upstream gradient again by the tables): one inverse FFT,
    where TensorFlow's own gradients of ``rfft2d`` and ``irfft2d`` build DFT matrices of the whole
    size. Measured at 64 slices of 64 x 64, forward + backward: 6.4 ms with TensorFlow's gradients,
    2.8 ms this way.
    """
    height, width = x.shape[-2:]
    half = width // 2 + 1
    shifts = np.arange(1 - limit, limit)
    n = shifts.size
    cos_h, sin_h = _dft_table(height, shifts, height)
    cos_w, sin_w = _dft_table(width, shifts, half)
    # the half spectrum stands for the whole one: columns other than 0 and W/2 count twice; 1/(HW) of the inverse
    fold = np.where((np.arange(half) == 0) | (2 * np.arange(half) == width), 1.0, 2.0) / (height * width)
    rows = tf.constant(np.concatenate([cos_h, -sin_h], 1), x.dtype)  # (n, 2H)
    columns = tf.constant(np.concatenate([cos_w * fold, sin_w * fold], 0).T, x.dtype)  # (W/2 + 1, 2n)
    rows_back = tf.constant(np.concatenate([cos_h.T, -sin_h.T], 1), x.dtype)  # (H, 2n)
    columns_back = tf.constant(np.concatenate([cos_w, sin_w], 1), x.dtype)  # (n, 2 (W/2 + 1))

    @tf.custom_gradient
    def window(x):
        spectrum = tf.signal.rfft2d(x)
        power = tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2
        # Re sum_k P(k) e^{i k.r} = cos_h P cos_w^T - sin_h P sin_w^T, as [cos_h, -sin_h] @ [P cos_w^T; P sin_w^T]
        partial = tf.reshape(tf.reshape(power, [-1, half]) @ columns, [-1, height, 2, n])
        partial = tf.reshape(tf.transpose(partial, [0, 2, 1, 3]), [-1, 2 * height, n])
        value = tf.reshape(rows @ partial, tf.concat([tf.shape(x)[:-2], [n, n]], 0))

        def gradient(upstream):
            partial = tf.reshape(tf.reshape(upstream, [-1, n]) @ columns_back, [-1, n, 2, half])
            partial = tf.reshape(tf.transpose(partial, [0, 2, 1, 3]), [-1, 2 * n, half])
            real = tf.reshape(rows_back @ partial, tf.shape(spectrum))  # Re of the DFT of the upstream
            return tf.signal.irfft2d(spectrum * tf.cast(2.0 * real, spectrum.dtype), fft_length=[height, width])

        return value, gradient

    return window(x)


class FFTCorrelations(Descriptor):
    """Two-point autocorrelation ``S2(r) = (1/HW) sum_p x(p) x(p + r)`` computed by FFT.

    The value is the ``(2L-1) x (2L-1)`` window of shifts ``r = (dy, dx)`` with
    ``|dy|, |dx| < L`` (``L = limit_to``), centred on ``r = 0``: entry ``[dy + L - 1,
    dx + L - 1]``. With ``periodic=True`` the correlation is circular. With
    ``periodic=False`` the slice is zero-padded to ``(H + L - 1, W + L - 1)`` and each
    shift is divided by its number of overlap positions ``(H - |dy|) (W - |dx|)``, so every
    entry is the average over positions where both ``p`` and ``p + r`` lie inside.
    No multigrid. The value for a batch of shape (B, H, W, C) has shape
    (B, C, 2L - 1, 2L - 1); float32 is transformed in complex64, float64 in complex128.

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
    >>> FFTCorrelations(DescriptorSettings(limit_to=4))(tf.ones((1, 16, 16, 1))).shape
    TensorShape([1, 1, 7, 7])
    """

    name = "FFTCorrelations"
    supports_multigrid = False

    def _level_shape(self) -> tuple[int, ...]:
        side = 2 * self.settings.limit_to - 1
        return side, side

    def _min_size(self) -> tuple[int, int]:
        return self.settings.limit_to, self.settings.limit_to

    def two_point_probability(self, value: np.ndarray, volume_fraction: float) -> np.ndarray | None:
        """The value itself if periodic (it is S2); None otherwise."""
        return np.asarray(value, np.float64) if self.settings.periodic else None

    def at_stage(self, value: np.ndarray, stage: int) -> tuple[Descriptor, np.ndarray] | None:
        """At stage ``s`` the window of the slices pooled by ``2**s``, ``limit_to // 2**s`` (at least 2),
        from the full-resolution one by :func:`pooled_autocorrelation` (periodic only): a coarse
        start for FFTCorrelations, which has no multigrid levels of its own."""
        if stage == 0:
            return self, value
        limit = self.settings.limit_to >> stage
        if not self.settings.periodic or limit < 2:
            return None
        for _ in range(stage):
            value = pooled_autocorrelation(value)
        return FFTCorrelations(dataclasses.replace(self.settings, limit_to=limit)), value

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        limit = self.settings.limit_to
        _, height, width, _ = x.shape
        xt = channels_first(x)
        if not self.settings.periodic:
            xt = tf.pad(xt, [[0, 0], [0, 0], [0, limit - 1], [0, limit - 1]])
        window = autocorrelation_window(xt, limit)
        shifts = np.arange(1 - limit, limit)
        if self.settings.periodic:
            counts = np.full((shifts.size, shifts.size), float(height * width))
        else:
            counts = np.outer(height - np.abs(shifts), width - np.abs(shifts)).astype(float)
        return window / tf.constant(counts, dtype=x.dtype)
