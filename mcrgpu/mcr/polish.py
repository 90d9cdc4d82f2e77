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
majority phase, so that a swap's change of it has the exact closed form :func:`_flip_costs`
computes, and changing it would change the polished labels. What the polish reports as S2 error
(before, after, each round) is the one users see everywhere, :func:`~mcrgpu.mcr.two_point.s2_error`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from mcrgpu.mcr.characterization import Characterization
from mcrgpu.mcr.descriptors import get_descriptor
from mcrgpu.mcr.two_point import s2_error, two_point_maps
from mcrgpu.errors import InvalidInputError

__all__ = ["Polish", "polish_labels", "two_point_targets"]

_CHUNK = 8192
"""Candidate pixels whose neighbourhoods are gathered at once (bounds the memory of a round)."""


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
                  on_round: Callable[[float], None] | None = None) -> Polish:
    """Swap pairs of boundary pixels of different phases while the S2 error falls.

    Each round predicts, for every boundary pixel, the exact change of the error if it alone
    changed phase, pairs the best a -> b with the best b -> a changes, applies the ``k`` best pairs
    and keeps them if the recomputed error fell (then ``k`` doubles; else ``k`` halves and the
    round is retried). It stops when a single pair does not help, or after ``max_rounds`` rounds;
    on Ctrl+C (KeyboardInterrupt) it returns the labels of the last accepted round, each of which
    lowered the error.

    Parameters
    ----------
    labels : np.ndarray
        Phase indices 0..K-1, (H, W) or (D, H, W), periodic.
    targets : np.ndarray
        ``(n_axes, K, 2L - 1, 2L - 1)`` from :func:`two_point_targets`: one orientation for 2D,
        the slices perpendicular to axes 0, 1, 2 (oriented as :func:`~mcrgpu.mcr.two_point.two_point_map`
        sees them) for 3D.
    max_rounds : int
        Most rounds (each recomputes the predicted changes of all boundary pixels).
    on_round : callable, optional
        Called after each round with the current S2 error (:func:`~mcrgpu.mcr.two_point.s2_error`;
        for a progress display).

    Returns
    -------
    Polish
    """
    labels = np.asarray(labels)
    volume = labels.astype(np.int32).reshape((1,) * (3 - labels.ndim) + labels.shape)
    n_axes, n_phases = targets.shape[:2]
    limit = (targets.shape[-1] + 1) // 2
    if n_axes != (1 if labels.ndim == 2 else 3):
        raise InvalidInputError(f"targets for {n_axes} slice orientation(s) do not fit labels of shape "
                                f"{labels.shape}; 2D labels take 1, 3D labels 3")
    targets = (targets + targets[..., ::-1, ::-1]) / 2.0  # S2 is point-symmetric; _flip_costs relies on it
    offsets = _plane_offsets(limit, n_axes)
    norms = np.maximum(np.sum(targets**2, axis=(2, 3)), 1e-24)

    def s2_maps(v):
        return two_point_maps(v[0] if n_axes == 1 else v, n_phases, limit=limit)

    def error(maps):
        return float(np.sum(np.sum((maps - targets) ** 2, axis=(2, 3)) / norms))

    initial = maps = s2_maps(volume)
    current = error(maps)
    k, rounds, costs, stopped_by = 1, 0, None, None
    try:
        while rounds < max_rounds:
            rounds += 1
            if costs is None:
                pixels, costs = _flip_costs(volume, maps - targets, norms, offsets)
            pairs = _best_pairs(volume.reshape(-1)[pixels], costs, k)
            if not pairs.size:
                break
            first, second = pixels[pairs[:, 0]], pixels[pairs[:, 1]]
            trial = volume.reshape(-1).copy()
            trial[first], trial[second] = trial[second], trial[first]
            trial = trial.reshape(volume.shape)
            trial_maps = s2_maps(trial)
            trial_error = error(trial_maps)
            if trial_error < current:  # volume is stored first: a stop signal leaves accepted labels
                volume, maps, current, costs, k = trial, trial_maps, trial_error, None, 2 * k
            elif k == 1:
                break
            else:
                k //= 2
            if on_round is not None:
                on_round(s2_error(maps, targets))
    except KeyboardInterrupt as interrupt:
        stopped_by = getattr(interrupt, "signal_name", "SIGINT")
    polished = volume.reshape(labels.shape)
    return Polish(polished, int(np.sum(polished != labels)), s2_error(initial, targets),
                  s2_error(s2_maps(volume), targets), stopped_by)


def _plane_offsets(limit: int, n_axes: int) -> np.ndarray:
    """(n_axes, (2L-1)**2, 3) volume offsets of the S2 window's shifts in each slice orientation
    (row-major over the window, as its entries)."""
    steps = np.arange(1 - limit, limit)
    dy, dx = (a.ravel() for a in np.meshgrid(steps, steps, indexing="ij"))
    zero = np.zeros_like(dy)
    # slice_view orients the slices perpendicular to axis 1 as (D, W), to axis 2 as (D, H)
    planes = [(zero, dy, dx), (dy, zero, dx), (dy, dx, zero)][:n_axes]
    return np.stack([np.stack(p, axis=1) for p in planes])


def _flip_costs(volume: np.ndarray, differences: np.ndarray, norms: np.ndarray,
                offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary pixels (flat indices) and the exact error change if each alone became phase q:
    ``(M, K)``, infinite for its own phase.

    Removing pixel x from phase a changes ``S2_a(r)`` by ``-h(r) / N`` with ``h(r) = I_a(x + r) +
    I_a(x - r)`` (``h(0) = 1``), adding it to phase b by ``+h(r) / N`` with b's indicator; the error
    changes by ``sum_r (h**2 / N**2 -+ 2 D h / N) / |target|**2`` per orientation and phase. As S2
    and its target are point-symmetric, both sums need each neighbour once: the window is gathered
    as shifts r_1..r_n, 0, -r_1..-r_n, so ``sum h D = 2 sum_r I(x + r) D(r) + (1 - 2 I(x)) D(0)``
    and ``sum h**2 = 2 (sum_{r != 0} I(x + r)) + 4 sum_i I(x + r_i) I(x - r_i) + 1``.
    """
    boundary = np.zeros(volume.shape, dtype=bool)
    for axis in range(3):
        if volume.shape[axis] > 1:
            boundary |= (np.roll(volume, 1, axis) != volume) | (np.roll(volume, -1, axis) != volume)
    pixels = np.flatnonzero(boundary)
    n_phases = differences.shape[1]
    width = offsets.shape[1]
    half = width // 2  # the centre (r = 0) in the mirrored order
    mirrored = np.r_[0:half + 1, width - 1:half:-1]
    # periodic neighbours as flat indices into a wrap-padded copy: one addition and one take per window;
    # the work arrays are allocated once (fresh large arrays cost more than the arithmetic on them)
    reach = np.abs(offsets).max(axis=(0, 1))
    padded = np.pad(volume.astype(np.int8), [(r, r) for r in reach], mode="wrap")
    strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1])
    window_steps = offsets[:, mirrored] @ strides  # (n_axes, (2L-1)**2)
    mirrored_differences = differences.reshape(*differences.shape[:2], -1)[..., mirrored]
    costs = np.empty((pixels.size, n_phases))
    size = min(_CHUNK, pixels.size)
    index = np.empty((size, width), dtype=np.intp)
    window = np.empty((size, width), dtype=np.int8)
    in_phase = np.empty((size, width), dtype=bool)
    indicator = np.empty((size, width))
    for start in range(0, pixels.size, _CHUNK):
        chunk = pixels[start:start + _CHUNK]
        m = chunk.size
        base = (np.stack(np.unravel_index(chunk, volume.shape), axis=1) + reach) @ strides
        own = volume.reshape(-1)[chunk]
        removal = np.zeros((m, n_phases))
        addition = np.zeros((m, n_phases))
        for axis, steps in enumerate(window_steps):
            np.add(base[:, None], steps[None], out=index[:m])
            np.take(padded, index[:m], out=window[:m])
            for p in range(n_phases):
                np.equal(window[:m], p, out=in_phase[:m])
                np.copyto(indicator[:m], in_phase[:m])
                centre = indicator[:m, half]
                d = mirrored_differences[axis, p]
                count = np.count_nonzero(in_phase[:m], axis=1)
                pairs = np.einsum("ij,ij->i", indicator[:m, :half], indicator[:m, half + 1:])
                square = (2.0 * (count - centre) + 4.0 * pairs + 1.0) / volume.size**2
                linear = 2.0 * (2.0 * (indicator[:m] @ d) + (1.0 - 2.0 * centre) * d[half]) / volume.size
                removal[:, p] += (square - linear) / norms[axis, p]
                addition[:, p] += (square + linear) / norms[axis, p]
        chunk_costs = removal[np.arange(m), own][:, None] + addition
        chunk_costs[np.arange(m), own] = np.inf
        costs[start:start + m] = chunk_costs
    return pixels, costs


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
            best_a = in_a[np.argsort(costs[in_a, b], kind="stable")[:n]]
            best_b = in_b[np.argsort(costs[in_b, a], kind="stable")[:n]]
            gain = costs[best_a, b] + costs[best_b, a]
            found.append(np.stack([gain, best_a, best_b], axis=1)[gain < 0])
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    candidates = np.concatenate(found)
    candidates = candidates[np.argsort(candidates[:, 0], kind="stable")]
    used, pairs = set(), []
    for _, i, j in candidates:
        i, j = int(i), int(j)
        if i in used or j in used:
            continue
        used.update((i, j))
        pairs.append((i, j))
        if len(pairs) == k:
            break
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)
