"""Two-point polish: swap the final labels of boundary pixels until their S2 meets the target.

The optimised field is partly grey, and its descriptors are soft (differentiable) ones; labels with
the target's phase fractions (:func:`~mcrgpu.mcr.labelling.label_field`) then miss the target's
two-point probability S2 by a few per cent, mostly where the grey pixels went. The polish swaps
pairs of pixels of different phases on phase boundaries (phase counts stay exact), as the
Yeong-Torquato method does, but only while the summed relative squared S2 error over all phases
(and slice orientations, 3D) falls; it changes a few per cent of the pixels and stops where no swap
helps. The target S2 comes from the characterization
(:meth:`~mcrgpu.mcr.descriptors.Descriptor.two_point_probability`).

The objective is not the reported S2 error: it sums squared relative errors and includes the
majority phase, so that a swap's change of it has the exact closed form :class:`_SliceTerms`
computes, and changing it would change the polished labels. What the polish reports as S2 error
(before, after, each round) is the one users see everywhere, :func:`~mcrgpu.mcr.two_point.s2_error`.

The two expensive steps, S2 of a trial and the predicted change of every pixel, run as TensorFlow
ops on the strategy's devices: the slices of every orientation are dealt to the replicas as for
the loss (:mod:`mcrgpu.mcr.slices`) and their partial results summed across replicas. Every
reduction is exact, so the polished labels do not depend on the replica count: S2 is kept as
integer pair counts (FFT autocorrelations rounded to integers), a pixel's cost in one orientation
comes from the one replica that owns its slice (the others add zeros), and the correlation in the
cost is of integers (the S2 difference map rounded to 42 significant bits at ``limit`` 8, split
into parts whose FFT correlations round exactly), so it is exact whatever the batch or algorithm.
That rounding (relative 2**-42 of the largest difference) is the only departure from the former
NumPy polish's float64 sums; on small 2D and 3D inputs the labels were the same.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.characterization import Characterization
from mcrgpu.mcr.descriptors import get_descriptor
from mcrgpu.mcr.slices import first_device, slice_axes, slice_budget_bytes, slice_table, slice_view, replica_slice_sum
from mcrgpu.mcr.two_point import s2_error

__all__ = ["Polish", "polish_labels", "two_point_targets"]

_LINEAR_BITS = 50
"""Bound (bits) of the integer correlation in the cost: exact in float64 with room for 2x + 1."""
_ROUNDING_MARGIN = 2.0**-5
"""Largest FFT rounding error allowed before rounding to integers (exact while below 0.5)."""


class Polish(NamedTuple):
    """The polished labels, how many pixels changed, the S2 error
    (:func:`~mcrgpu.mcr.two_point.s2_error` against the targets) before and after, and the signal
    that stopped the polish early (None if it ran to its end)."""

    labels: np.ndarray
    pixels_changed: int
    s2_error_before: float
    s2_error_after: float
    stopped_by: str | None = None


def two_point_targets(desired: Characterization, descriptor_types: Sequence[str],
                      n_axes: int) -> np.ndarray | None:
    """Target S2 per slice orientation and phase, ``(n_axes, K, 2L - 1, 2L - 1)``.

    From the first of ``descriptor_types`` that determines S2; None if none does (e.g.
    LinealPath only, or a non-periodic characterization). A characterization of phase 1 of two
    gives phase 0's S2 as ``1 - 2 phi_1 + S2_1`` (periodic).
    """
    fractions = np.asarray(desired.volume_fractions, np.float64)
    phases = range(len(fractions)) if desired.multiphase else [1]  # the phase of each channel
    for name in descriptor_types:
        descriptor = get_descriptor(name, desired.settings)
        per_axis = []
        for values in desired.targets(n_axes, multiphase=desired.multiphase):
            maps = [descriptor.two_point_probability(values[name][c], fractions[p]) for c, p in enumerate(phases)]
            if any(m is None for m in maps):
                break
            if not desired.multiphase:
                maps.insert(0, 1.0 - 2.0 * fractions[1] + maps[0])
            per_axis.append(np.stack(maps))
        else:
            return np.stack(per_axis)
    return None


def polish_labels(labels: np.ndarray, targets: np.ndarray, *, max_rounds: int = 200,
                  on_round: Callable[[float], None] | None = None,
                  strategy: tf.distribute.Strategy | None = None) -> Polish:
    """Swap pairs of boundary pixels of different phases while the S2 error falls.

    Each round predicts, for every boundary pixel, the exact change of the error if it alone
    changed phase, pairs the best a -> b with the best b -> a changes, applies the ``k`` best pairs
    and keeps them if the recomputed error fell, else retries with fewer on the same predictions.
    The next ``k`` is where the error along the trial's S2 change is least (:func:`_best_step`),
    at most 4x (after a kept round) or half (after a refused one) the last; the first round tries
    one pair per 16 boundary pixels. It stops when a single pair does not help, or after
    ``max_rounds`` rounds;
    on Ctrl+C (KeyboardInterrupt) it returns the labels of the last accepted round, each of which
    lowered the error. The predictions and S2 run on the devices of ``strategy``; the result is the
    same on any number of replicas.

    Parameters
    ----------
    labels : np.ndarray
        Phase indices 0..K-1, (H, W) or (D, H, W), periodic.
    targets : np.ndarray
        ``(n_axes, K, 2L - 1, 2L - 1)`` from :func:`two_point_targets`: one orientation for 2D,
        the slices perpendicular to axes 0, 1, 2 (oriented as :func:`~mcrgpu.mcr.two_point.two_point_map`
        sees them) for 3D.
    max_rounds : int
        Most rounds (trials; after a kept one the predicted changes of all boundary pixels are
        computed again).
    on_round : callable, optional
        Called after each round with the current S2 error (:func:`~mcrgpu.mcr.two_point.s2_error`;
        for a progress display).
    strategy : tf.distribute.Strategy, optional
        Whose replicas share the slices; default TensorFlow's current strategy.

    Returns
    -------
    Polish
    """
    labels = np.asarray(labels)
    n_axes, n_phases = targets.shape[:2]
    volume = labels.astype(_label_dtype(n_phases)).reshape((1,) * (3 - labels.ndim) + labels.shape)
    limit = (targets.shape[-1] + 1) // 2
    if n_axes != (1 if labels.ndim == 2 else 3):
        raise InvalidInputError(f"targets for {n_axes} slice orientation(s) do not fit labels of shape "
                                f"{labels.shape}; 2D labels take 1, 3D labels 3")
    targets = (targets + targets[..., ::-1, ::-1]) / 2.0  # S2 is point-symmetric; the costs rely on it
    norms = np.maximum(np.sum(targets**2, axis=(2, 3)), 1e-24)
    terms = _slice_terms(strategy or tf.distribute.get_strategy(), volume.shape, n_phases, limit)

    def error(maps):
        return float(np.sum(np.sum((maps - targets) ** 2, axis=(2, 3)) / norms))

    initial = maps = terms.s2_maps(volume)
    current = error(maps)
    k, rounds, costs, stopped_by = None, 0, None, None
    try:
        while rounds < max_rounds:
            rounds += 1
            if costs is None:
                pixels, costs = terms.flip_costs(volume, maps - targets, norms)
                if k is None:  # many pairs first: a refused trial is cheap (no new costs) and sets k
                    k = max(1, pixels.size // 16)
            pairs = _best_pairs(volume.reshape(-1)[pixels], costs, k)
            if not pairs.size:
                break
            first, second = pixels[pairs[:, 0]], pixels[pairs[:, 1]]
            trial = volume.reshape(-1).copy()
            trial[first], trial[second] = trial[second], trial[first]
            trial = trial.reshape(volume.shape)
            trial_maps = terms.s2_maps(trial)
            trial_error = error(trial_maps)
            step = _best_step(maps - targets, trial_maps - maps, norms)
            n = len(pairs)
            if trial_error < current:  # volume is stored first: a stop signal leaves accepted labels
                volume, maps, current, costs = trial, trial_maps, trial_error, None
                k = min(max(1, round(n * step)), 4 * n)
            elif n == 1:
                break
            else:
                k = min(max(1, round(n * step)), n // 2)
            if on_round is not None:
                on_round(s2_error(maps, targets))
    except KeyboardInterrupt as interrupt:
        stopped_by = getattr(interrupt, "signal_name", "SIGINT")
    polished = volume.reshape(labels.shape).astype(labels.dtype, copy=False)
    return Polish(polished, int(np.sum(polished != labels)), s2_error(initial, targets),
                  s2_error(terms.s2_maps(volume), targets), stopped_by)


def _label_dtype(n_phases: int) -> np.dtype:
    """The smallest integer type of the polish's working labels: a 512^3 volume of int32 was 512 MiB
    per copy (the labels, a trial, their tensors and slice views)."""
    return np.dtype(np.uint8 if n_phases <= 256 else np.int32)


@functools.lru_cache(maxsize=4)
def _slice_terms(strategy: tf.distribute.Strategy, shape: tuple[int, int, int], n_phases: int,
                 limit: int) -> _SliceTerms:
    """The :class:`_SliceTerms` of a configuration, kept so that polishing again traces nothing."""
    return _SliceTerms(strategy, shape, n_phases, limit)


_MIN_CHUNK_SLICES = 16
"""Fewest slices per chunk: small chunks of large slices spend their time in per-chunk overhead
(when each chunk still added its costs into a field-sized accumulator, a copy of it, 2 slices per
chunk at 256^3 made the costs 50x slower than at 128^3 instead of 8x)."""


class _SliceTerms:
    """S2 and the flip costs of a (D, H, W) label volume, computed over its slices on a strategy.

    Removing pixel x from phase a changes ``S2_a(r)`` by ``-h(r) / N`` with ``h(r) = I_a(x + r) +
    I_a(x - r)`` (``h(0) = 1``), adding it to phase b by ``+h(r) / N`` with b's indicator; the error
    changes by ``sum_r (h**2 / N**2 -+ 2 D h / N) / |target|**2`` per orientation and phase, D the
    difference of S2 and its target. As both are point-symmetric, the sums need each neighbour once:
    ``sum h D = 2 sum_r I(x + r) D(r) + (1 - 2 I(x)) D(0)`` (a correlation of the indicator with D
    over the slice) and ``sum h**2 = 2 (sum_{r != 0} I(x + r)) + 4 sum_i I(x + r_i) I(x - r_i) + 1``
    (a box sum, and products of shifted indicators over half the window r_1..r_n).
    """

    def __init__(self, strategy: tf.distribute.Strategy, shape: tuple[int, int, int], n_phases: int,
                 limit: int) -> None:
        self.strategy, self.shape, self.n_phases, self.limit = strategy, shape, n_phases, limit
        self.axes = slice_axes(shape)
        self.window = 2 * limit - 1
        budget = slice_budget_bytes(first_device(strategy))
        self.tables, self.parts_bits = {}, {}
        for axis in self.axes:
            height, width = [size for i, size in enumerate(shape) if i != axis]
            per_slice = 12 * 8 * n_phases * height * width  # ~12 float64 maps of the slice per phase alive
            self.tables[axis] = slice_table(np.arange(shape[axis]), strategy.num_replicas_in_sync,
                                            max(_MIN_CHUNK_SLICES, budget // per_slice))
            # bits per part of the integer difference map whose FFT correlation still rounds exactly:
            # its error is about eps * log2(n) * sqrt(n) * sqrt(taps) * 2**bits (8x margin)
            pixels = height * width
            scale = 8 * np.finfo(np.float64).eps * math.log2(max(pixels, 2)) * math.sqrt(pixels) * self.window
            self.parts_bits[axis] = int(math.floor(math.log2(_ROUNDING_MARGIN / scale)))
        self._counts = tf.function(self._all_counts, autograph=False)
        self._costs = {axis: tf.function(functools.partial(self._axis_costs, axis=axis), autograph=False)
                       for axis in self.axes}

    # -- S2 -------------------------------------------------------------------------------------
    def s2_maps(self, volume: np.ndarray) -> np.ndarray:
        """``(n_axes, K, 2L - 1, 2L - 1)`` S2 of ``volume`` (float64; exact pair counts / N)."""
        counts = self._counts(self._labels(volume))
        return counts.numpy() / volume.size

    def _labels(self, volume: np.ndarray) -> tf.Tensor:
        """(D, H, W, 1) labels of the polish's integer type (:func:`_label_dtype`)."""
        return tf.constant(volume.astype(_label_dtype(self.n_phases), copy=False)[..., None])

    def _all_counts(self, volume):
        def replica(volume):
            initial = tf.zeros((len(self.axes), self.n_phases, self.window, self.window), tf.float64)

            def add(total, part, indices, axis):
                return tf.tensor_scatter_nd_add(total, [[self.axes.index(axis)]], part[None])

            views = {axis: slice_view(volume, axis) for axis in self.axes}  # transposed once, not per chunk
            return replica_slice_sum(self.tables, functools.partial(self._chunk_counts, views), initial, add=add)

        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(replica, args=(volume,)), axis=None)

    def _chunk_counts(self, views, indices, weights, axis):
        """Sum over the chunk's slices of ``sum_x I(x) I(x + r)`` in the window, exact integers. Of
        two phases only phase 1's are transformed: ``I_0 = 1 - I_1`` gives phase 0's counts as
        ``h w - 2 n_1 + C_1(r)`` (``n_1`` the slice's phase-1 pixels)."""
        indicator = self._indicator(tf.gather(views[axis], indices)[..., 0])
        height, width = indicator.shape[2:]
        spectrum = tf.signal.rfft2d(indicator)
        products = tf.signal.irfft2d(spectrum * tf.math.conj(spectrum), fft_length=[height, width])
        steps = np.arange(1 - self.limit, self.limit)
        window = tf.round(tf.gather(tf.gather(products, steps % height, axis=2), steps % width, axis=3))
        if self.n_phases == 2:
            ones = tf.reduce_sum(indicator, axis=(2, 3), keepdims=True)
            window = tf.concat([height * width - 2.0 * ones + window, window], axis=1)
        return tf.tensordot(tf.cast(weights, tf.float64), window, axes=1)

    def _indicator(self, slices):
        """(b, h, w) labels -> (b, P, h, w) float64 indicators of the phases :attr:`computed`."""
        return tf.stack([tf.cast(tf.equal(slices, phase), tf.float64) for phase in self.computed], axis=1)

    @property
    def computed(self) -> tuple[int, ...]:
        """The phases whose indicators are transformed: of two phases only phase 1 (the other's
        terms follow from ``I_0 = 1 - I_1``, halving the FFTs and window sums), else all."""
        return (1,) if self.n_phases == 2 else tuple(range(self.n_phases))

    # -- flip costs -----------------------------------------------------------------------------
    def flip_costs(self, volume: np.ndarray, differences: np.ndarray,
                   norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boundary pixels (flat indices) and the exact error change if each alone became phase q:
        ``(M, K)``, infinite for its own phase. ``differences`` is S2 minus its target, and
        ``norms`` the squared norms of the targets, as the error divides by them.

        Only the boundary pixels' costs are kept: each pixel's row of the result (-1 off the
        boundary) goes to the devices with the labels, and each chunk returns its boundary pixels'
        rows and costs, so that no field-sized float64 array of costs exists (at 512^3 one was
        2 GiB, and several were alive at once)."""
        pixels = np.flatnonzero(_boundary(volume))
        rows = np.full(volume.shape, -1, np.int32)
        rows.reshape(-1)[pixels] = np.arange(pixels.size, dtype=np.int32)
        labels, rows = self._labels(volume), tf.constant(rows[..., None])
        total = np.zeros((pixels.size, self.n_phases))
        size = volume.size
        for position, axis in enumerate(self.axes):  # orientations added in a fixed order
            square, linear = 1.0 / (size**2 * norms[position]), 2.0 / size / norms[position]
            if self.n_phases == 2:  # one map: the cost only needs linear_1 - linear_0 (see _chunk_costs)
                kernels, centre, scale = self._kernels((linear[1] * differences[position, 1]
                                                        + linear[0] * differences[position, 0])[None], axis)
                weights = np.stack([square, [scale[0], -2.0 * linear[0] * np.sum(differences[position, 0])]])
            else:
                kernels, centre, scale = self._kernels(differences[position], axis)
                weights = np.stack([square, scale * linear])
            total += self._costs[axis](labels, rows, kernels, centre, tf.constant(weights),
                                       tf.constant(pixels.size, tf.int32)).numpy()
        total[np.arange(pixels.size), volume.reshape(-1)[pixels]] = np.inf
        return pixels, total

    def _kernels(self, differences: np.ndarray, axis: int):
        """The spectra of the difference maps ``(P, 2L-1, 2L-1)`` as integers split in parts:
        ``(parts, P, h, w // 2 + 1)`` complex128, the integer maps' centres ``(P,)`` and the scale
        ``(P,)`` that turns the integers back into differences."""
        height, width = [size for i, size in enumerate(self.shape) if i != axis]
        top = np.max(np.abs(differences), axis=(1, 2))
        exponent = np.frexp(np.where(top > 0, top, 1.0) * self.window**2)[1]  # top * taps < 2**exponent
        scale = np.ldexp(1.0, exponent - _LINEAR_BITS)
        integers = np.round(differences / scale[:, None, None])
        bits = self.parts_bits[axis]
        parts, rest = [], integers
        for _ in range(-(-_LINEAR_BITS // bits) - 1):  # low parts in [0, 2**bits), the last one signed
            low = np.mod(rest, 2.0**bits)
            parts.append(low)
            rest = (rest - low) / 2.0**bits
        parts.append(rest)
        # the correlation sum_r I(x + r) D(r) is a convolution with D mirrored, wrapped onto the slice
        steps = np.arange(1 - self.limit, self.limit)
        rows, cols = np.meshgrid(-steps % height, -steps % width, indexing="ij")
        placed = np.zeros((len(parts), len(differences), height, width))
        for index, part in enumerate(parts):
            for channel, values in enumerate(part):
                np.add.at(placed[index, channel], (rows, cols), values)
        centre = integers[:, self.limit - 1, self.limit - 1]
        return tf.constant(np.fft.rfft2(placed)), tf.constant(centre), scale

    def _axis_costs(self, labels, rows, kernels, centre, weights, n_rows, *, axis):
        """(M, K) costs of the boundary pixels in orientation ``axis`` (``rows``: each pixel's row,
        -1 off the boundary), summed over replicas (exact: each pixel's value comes from the
        replica owning its slice, the others add zeros)."""
        def replica(labels_view, rows_view):
            def add(found, part, indices, axis):  # collected, put in place once: no copy per chunk
                return tuple(array.write(array.size(), value) for array, value in zip(found, part))

            chunk = functools.partial(self._chunk_costs, labels_view, rows_view, kernels, centre, weights)
            initial = (tf.TensorArray(tf.float64, 0, dynamic_size=True, infer_shape=False,
                                      element_shape=(None, self.n_phases)),
                       tf.TensorArray(tf.int32, 0, dynamic_size=True, infer_shape=False, element_shape=(None,)))
            costs, found = replica_slice_sum({axis: self.tables[axis]}, chunk, initial, add=add)
            return tf.scatter_nd(found.concat()[:, None], costs.concat(), tf.stack([n_rows, self.n_phases]))

        views = slice_view(labels, axis), slice_view(rows, axis)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(replica, args=views), axis=None)

    def _chunk_costs(self, view, rows_view, kernels, centre, weights, indices, slice_weights, axis):
        """The chunk's boundary pixels' costs ``removal(own phase) + addition(phase)``, ``(m, K)``,
        and their rows ``(m,)`` (padding slices, of weight 0, left out).

        Of two phases a pixel has one cost, to the other phase: with ``I_0 = 1 - I_1`` its square
        terms are ``Q = w_0 square_0 + w_1 square_1`` from phase 1's window sums, and its linear
        terms ``+-(linear_1 - linear_0) = +-(2 corr(I_1, E) - 2 u_0 sum D_0 + E(0))`` (``E = u_1 D_1
        + u_0 D_0``, one kernel): returned in both columns, the host marks the own phase."""
        slices = tf.gather(view, indices)[..., 0]
        indicator = self._indicator(slices)
        height, width = slices.shape[1:]
        spectrum = tf.signal.rfft2d(indicator)
        bits = self.parts_bits[axis]
        correlation = 0.0
        for index in range(kernels.shape[0]):  # exact integers, each part < 2**53
            part = tf.round(tf.signal.irfft2d(spectrum * kernels[index], fft_length=[height, width]))
            correlation += part * 2.0 ** (bits * index)
        steps = np.arange(-(self.limit - 1), height + self.limit - 1) % height, \
            np.arange(-(self.limit - 1), width + self.limit - 1) % width
        padded = tf.gather(tf.gather(slices, steps[0], axis=1), steps[1], axis=2)
        count, pairs = _window_terms(padded, self.limit, self.computed)
        square = 2.0 * (count - indicator) + 4.0 * pairs + 1.0
        if self.n_phases == 2:
            taps = float(self.window**2)
            pairs_0 = (taps - 1.0) / 2.0 - (count - indicator) + pairs  # sum_i (1 - a_i)(1 - b_i)
            square_0 = 2.0 * (taps - count - 1.0 + indicator) + 4.0 * pairs_0 + 1.0
            quadratic = square_0 * weights[0][0] + square * weights[0][1]
            linear = 2.0 * weights[1][0] * correlation + weights[1][1]
            cost = quadratic + (1.0 - 2.0 * indicator) * linear + weights[1][0] * centre[0]
            costs = tf.transpose(tf.concat([cost, cost], axis=1), (0, 2, 3, 1))
        else:
            linear = 2.0 * correlation + (1.0 - 2.0 * indicator) * centre[None, :, None, None]
            square = square * weights[0][None, :, None, None]
            linear = linear * weights[1][None, :, None, None]
            removal = tf.reduce_sum((square - linear) * indicator, axis=1, keepdims=True)
            costs = tf.transpose(removal + (square + linear), (0, 2, 3, 1))
        rows = tf.gather(rows_view, indices)[..., 0]
        kept = (rows >= 0) & (slice_weights > 0)[:, None, None]
        return tf.boolean_mask(costs, kept), tf.boolean_mask(rows, kept)


_XLA_MIN_VOXELS = 2**17
"""Chunks of fewer padded voxels run the window terms without XLA: XLA compiles once per shape
(~1.2 s here), which small volumes never earn back (0.01 s plain at 32^3, 0.14 s at 64^3, where XLA
takes 0.01 s; at 128^3 plain 1.3 s, XLA 0.1 s)."""


def _window_terms(padded: tf.Tensor, limit: int, phases: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
    """For each of ``phases``, the window's count ``sum_r I(x + r)`` and ``sum_i I(x + r_i) I(x - r_i)``
    over the half window, (b, P, h, w) float64 (exact small integers), of wrap-padded (b, h + 2L - 2,
    w + 2L - 2) label slices; XLA-compiled for large chunks (it fuses the window's shifts into one
    pass; a loop over the rows in XLA ran 30x slower)."""
    plain, compiled = _window_functions(limit, phases)
    voxels = padded.shape.num_elements()
    return (plain if voxels is not None and voxels < _XLA_MIN_VOXELS else compiled)(padded)


@functools.lru_cache(maxsize=8)
def _window_functions(limit: int, phases: tuple[int, ...]) -> tuple[Callable, Callable]:
    """The window terms of one window and set of phases, plain and XLA-compiled, traced once for all
    shapes and kept, so that later polishes reuse them."""
    reach = limit - 1
    dtype = tf.int16 if (2 * limit - 1) ** 2 < 2**15 else tf.int32
    steps = [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]

    def terms(padded):
        height, width = tf.shape(padded)[1] - 2 * reach, tf.shape(padded)[2] - 2 * reach
        indicator = tf.stack([tf.cast(tf.equal(padded, phase), dtype) for phase in phases], axis=1)

        def shifted(dy, dx):
            return indicator[:, :, reach + dy:reach + dy + height, reach + dx:reach + dx + width]

        count = tf.add_n([shifted(dy, dx) for dy, dx in steps])
        pairs = tf.add_n([shifted(dy, dx) * shifted(-dy, -dx) for dy, dx in steps[:len(steps) // 2]])
        return tf.cast(count, tf.float64), tf.cast(pairs, tf.float64)

    signature = [tf.TensorSpec([None, None, None], tf.as_dtype(_label_dtype(max(phases) + 1)))]
    return (tf.function(terms, autograph=False, input_signature=signature),
            tf.function(terms, jit_compile=True, autograph=False, input_signature=signature))


def _boundary(volume: np.ndarray) -> np.ndarray:
    """Pixels with a neighbour of another phase along any axis longer than 1 (periodic)."""
    boundary = np.zeros(volume.shape, dtype=bool)
    for axis in range(3):
        if volume.shape[axis] > 1:
            boundary |= (np.roll(volume, 1, axis) != volume) | (np.roll(volume, -1, axis) != volume)
    return boundary


def _best_step(differences: np.ndarray, change: np.ndarray, norms: np.ndarray) -> float:
    """The multiple ``t`` of an S2 ``change`` that minimises the error ``sum |D + t change|**2 / norm``
    (``D`` = ``differences``): a trial of ``n`` pairs suggests ``t n`` pairs next, as if the S2
    change of the best pairs grew in proportion to their number (0 if the change does not help)."""
    along = np.sum(np.sum(differences * change, axis=(2, 3)) / norms)
    size = np.sum(np.sum(change**2, axis=(2, 3)) / norms)
    return float(max(0.0, -along / size)) if size > 0 else 0.0


def _best_pairs(phases: np.ndarray, costs: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` disjoint pairs (i, j) of candidates, i in phase a going to b and j in b going
    to a, with the lowest predicted ``costs[i, b] + costs[j, a] < 0``: ``(n, 2)`` indices."""
    found = []
    n_phases = costs.shape[1]
    for a in range(n_phases):
        for b in range(a + 1, n_phases):
            in_a, in_b = np.flatnonzero(phases == a), np.flatnonzero(phases == b)
            n = min(k, in_a.size, in_b.size)
            if n == 0:
                continue
            best_a, best_b = _lowest(costs[in_a, b], in_a, n), _lowest(costs[in_b, a], in_b, n)
            gain = costs[best_a, b] + costs[best_b, a]
            found.append(np.stack([gain, best_a, best_b], axis=1)[gain < 0])
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    candidates = np.concatenate(found)
    candidates = candidates[np.argsort(candidates[:, 0], kind="stable")][:, 1:].astype(np.int64)
    if len(found) == 1:  # one pair of phases: its candidates are disjoint already
        return candidates[:k]
    used, pairs = set(), []
    for i, j in candidates.tolist():
        if i in used or j in used:
            continue
        used.update((i, j))
        pairs.append((i, j))
        if len(pairs) == k:
            break
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _lowest(values: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` of ``indices`` with the lowest ``values``, in order of value, ties by position
    (a partial sort: the boundary of a large volume has millions of candidates)."""
    if n < values.size:
        chosen = np.argpartition(values, n - 1)[:n]
        return indices[chosen[np.lexsort((chosen, values[chosen]))]]
    return indices[np.argsort(values, kind="stable")]
