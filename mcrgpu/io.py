"""Microstructure files (npy, tif, png, bmp) and atomic writes for result files."""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import IO

import numpy as np

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.microstructure import Microstructure

__all__ = [
    "read_npz_with_header",
    "SUPPORTED_SUFFIXES",
    "MAX_IMAGE_PHASES",
    "load_microstructure",
    "save_microstructure",
    "atomic_write",
    "atomic_save_npz",
    "atomic_write_text",
]

SUPPORTED_SUFFIXES = (".npy", ".tif", ".tiff", ".png", ".bmp")
MAX_IMAGE_PHASES = 16
"""More distinct grey values than this in an image file means it is not segmented."""

_IMAGE_FORMATS = {".png": "PNG", ".bmp": "BMP"}
_SINGLE_CHANNEL_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_FULL_SCALE = {np.dtype(np.bool_): 1, np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_RESERVED_NPZ_NAMES = ("file", "allow_pickle")


def _as_path(path: str | os.PathLike[str], name: str = "path") -> Path:
    if isinstance(path, (str, os.PathLike)) and str(path):
        return Path(path)
    raise InvalidInputError(f"{name} must be a file path (str or os.PathLike), got {path!r}.")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileFormatError(
            f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}."
        )
    return suffix


def _read_npy(path: Path) -> np.ndarray:
    """Read a .npy file without ever unpickling."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(handle)
        if dtype.hasobject:
            raise FileFormatError(
                f"{path}: holds an object (pickled) array, which mcrgpu never loads; "
                "save the labels as a plain integer array."
            )
        return np.load(path, allow_pickle=False)
    except FileFormatError:
        raise
    except Exception as exc:
        raise FileFormatError(f"{path}: not a valid .npy file ({exc}).") from exc


def _read_tif(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            array = series.asarray()
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable TIFF file ({exc}).") from exc
    if "S" in axes:
        raise FileFormatError(
            f"{path}: has colour samples (axes {axes!r}, shape {array.shape}); "
            "save it as single-channel grey or labels."
        )
    return array


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in _SINGLE_CHANNEL_MODES:
                image = image.convert("L")
            return np.array(image)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable image ({exc}).") from exc


def _apply_threshold(array: np.ndarray, threshold: float, path: Path, *, scale: bool) -> np.ndarray:
    values = array.astype(np.float64)
    full_scale = _FULL_SCALE.get(array.dtype)
    if scale and threshold <= 1 and full_scale is not None:
        values = values / full_scale
    labels = values >= threshold
    if labels.all() or not labels.any():
        raise InvalidInputError(
            f"threshold={threshold} puts every voxel of {path} in one phase (values range "
            f"{values.min():g}..{values.max():g}); choose a threshold inside that range."
        )
    return labels


def _check_segmented(array: np.ndarray, path: Path, *, image: bool) -> None:
    """Raise FileFormatError if the values look like a grey image rather than phase labels."""
    hint = "pass threshold= (CLI: --threshold), e.g. 0.5"
    if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)):
        if not np.all(array == np.round(array)):
            raise FileFormatError(
                f"{path}: has non-integral values (dtype {array.dtype}), so it is not segmented; {hint}."
            )
    if image:
        distinct = np.unique(array).size
        if distinct > MAX_IMAGE_PHASES:
            raise FileFormatError(
                f"{path}: has {distinct} distinct grey values (more than {MAX_IMAGE_PHASES}), "
                f"so it is not segmented; {hint}."
            )


def load_microstructure(path: str | os.PathLike[str], *, threshold: float | None = None) -> Microstructure:
    """Load a 2D or 3D microstructure from a file.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy``: an integer (or integral float, or bool) label array, 2D or 3D; never unpickled.
        ``.tif``/``.tiff``: a 2D image or a 3D stack (tifffile). ``.png``/``.bmp``: a 2D image
        (Pillow), converted to grey unless single channel. K distinct values give K phases in
        sorted order; the values are kept as :attr:`Microstructure.phase_values`.
    threshold : float, optional
        Segment a grey image into two phases: phase 1 where ``value >= threshold``. For PNG/BMP a
        threshold <= 1 is a fraction of the full grey scale (255 for 8-bit, 65535 for 16-bit
        images), a larger one is compared with the raw grey values (0..255 for 8-bit). For
        ``.npy`` and TIFF files it is compared with the raw values.

    Returns
    -------
    Microstructure

    Raises
    ------
    FileFormatError
        If the file does not exist, has an unsupported suffix, cannot be read, is not 2D/3D,
        holds a pickled array, or (image files, no ``threshold``) has more than
        ``MAX_IMAGE_PHASES`` distinct values, i.e. is not segmented.
    InvalidInputError
        If ``threshold`` is not a finite number or puts everything in one phase.

    Examples
    --------
    >>> ms = load_microstructure("micrograph.png", threshold=0.5)  # doctest: +SKIP
    """
    path = _as_path(path)
    suffix = _suffix(path)
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, Real) or not np.isfinite(threshold)
    ):
        raise InvalidInputError(f"threshold must be a finite number (e.g. 0.5 or 128), got {threshold!r}.")
    if not path.exists():
        raise FileFormatError(f"{path} does not exist.")
    if not path.is_file():
        raise FileFormatError(f"{path} is not a regular file.")

    if suffix == ".npy":
        array = _read_npy(path)
    elif suffix in (".tif", ".tiff"):
        array = _read_tif(path)
    else:
        array = _read_image(path)

    if array.ndim not in (2, 3) or array.size == 0:
        raise FileFormatError(f"{path}: expected a 2D or 3D array, got shape {array.shape}.")
    if threshold is not None:
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise FileFormatError(f"{path}: cannot threshold values of dtype {array.dtype}.")
        array = _apply_threshold(array, float(threshold), path, scale=suffix in _IMAGE_FORMATS)
    else:
        _check_segmented(array, path, image=suffix != ".npy")
    try:
        return Microstructure(array)
    except InvalidInputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc


def _compact_dtype(values: np.ndarray) -> np.dtype:
    low, high = int(values.min()), int(values.max())
    for dtype in (np.uint8, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def save_microstructure(
    path: str | os.PathLike[str], ms: Microstructure, *, original_labels: bool = True
) -> Path:
    """Write a microstructure to a file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy``: the label array in the smallest fitting integer dtype. ``.tif``/``.tiff``: a 2D
        image or 3D stack, uint8 or uint16. ``.png``/``.bmp``: 2D only, 8-bit grey with the K
        phases spread evenly over 0..255 (phase i -> round(255 * i / (K - 1))), so the image is
        visible whatever the labels; ``original_labels`` does not apply.
        Parent directories are created.
    ms : Microstructure
    original_labels : bool, optional
        For npy/tif: write :attr:`Microstructure.phase_values` (default) instead of 0..K-1.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileFormatError
        If the suffix is not supported.
    InvalidInputError
        If ``ms`` is not a Microstructure, a volume is written to PNG/BMP, or the labels do not
        fit a TIFF's uint16.
    """
    path = _as_path(path)
    suffix = _suffix(path)
    if not isinstance(ms, Microstructure):
        raise InvalidInputError(f"ms must be a Microstructure, got {type(ms).__name__}.")

    if suffix in _IMAGE_FORMATS:
        from PIL import Image

        if ms.is_3d:
            raise InvalidInputError(
                f"{path}: {_IMAGE_FORMATS[suffix]} holds 2D images only, got a volume of shape "
                f"{ms.shape}; use .tif or .npy."
            )
        grey = np.round(ms.labels * (255.0 / (ms.n_phases - 1))).astype(np.uint8)
        with atomic_write(path) as handle:
            Image.fromarray(grey).save(handle, format=_IMAGE_FORMATS[suffix])
        return path

    values = ms.original_labels() if original_labels else ms.labels
    values = values.astype(_compact_dtype(values))
    if suffix == ".npy":
        with atomic_write(path) as handle:
            np.save(handle, values, allow_pickle=False)
        return path

    import tifffile

    if values.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(
            f"{path}: TIFF labels must fit uint16 (0..65535), got phase values "
            f"{ms.phase_values}; pass original_labels=False or use .npy."
        )
    with atomic_write(path) as handle:
        tifffile.imwrite(handle, values, photometric="minisblack")
    return path


_TEXT_MODES = ("w", "wt")
_BINARY_MODES = ("wb",)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Write a file atomically: all of it, or nothing.

    Yields a file object on a temporary file in the target's directory. When the body finishes,
    the file is flushed, fsynced and renamed onto ``path`` (``os.replace``); if the body raises,
    the temporary file is removed and ``path`` is left as it was. Parent directories are created.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    mode : {"wb", "w", "wt"}, optional
        Binary (default) or text; text is written as UTF-8.

    Yields
    ------
    file object

    Raises
    ------
    InvalidInputError
        If ``mode`` is not one of the above.

    Examples
    --------
    >>> with atomic_write("result.bin") as f:  # doctest: +SKIP
    ...     f.write(b"...")
    """
    path = _as_path(path)
    if mode not in _TEXT_MODES + _BINARY_MODES:
        raise InvalidInputError(f"mode must be one of 'wb', 'w', 'wt', got {mode!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    exclusive = "xb" if mode in _BINARY_MODES else "x"
    encoding = None if mode in _BINARY_MODES else "utf-8"
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            handle = open(temp, exclusive, encoding=encoding)  # closed by the with-block below
            break
        except FileExistsError:
            continue
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename on POSIX file systems; a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_save_npz(path: str | os.PathLike[str], /, **arrays: np.ndarray) -> Path:
    """Save arrays to a compressed ``.npz`` file atomically, at exactly ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; no suffix is appended.
    **arrays : array_like
        Arrays by name. Object arrays are refused, since loading never unpickles.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidInputError
        If a name is reserved by NumPy (``file``, ``allow_pickle``) or an array holds objects.
    """
    path = _as_path(path)
    reserved = [name for name in arrays if name in _RESERVED_NPZ_NAMES]
    if reserved:
        raise InvalidInputError(
            f"array names {reserved} are reserved by numpy.savez; use other names than "
            f"{', '.join(_RESERVED_NPZ_NAMES)}."
        )
    converted = {name: np.asanyarray(value) for name, value in arrays.items()}
    pickled = [name for name, value in converted.items() if value.dtype.hasobject]
    if pickled:
        raise InvalidInputError(
            f"arrays {pickled} hold Python objects, which would need pickling; pass numeric arrays."
        )
    with atomic_write(path) as handle:
        np.savez_compressed(handle, **converted)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
    text : str

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidInputError
        If ``text`` is not a str.
    """
    path = _as_path(path)
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, got {type(text).__name__}.")
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path


def read_npz_with_header(path: str | os.PathLike[str], *, what: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read an ``.npz`` of arrays with a JSON ``header`` (as mcrgpu writes its results), safely.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the file should be, for messages ("characterization", ...).

    Returns
    -------
    (dict, dict)
        The parsed header and the other arrays by name.

    Raises
    ------
    FileFormatError
        The file is missing, not an ``.npz`` (or truncated, corrupt), or has no JSON header.
    """
    path = _as_path(path)
    if not path.is_file():
        raise FileFormatError(f"{what.capitalize()} file {str(path)!r} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("it holds a single array, not an .npz archive")
            header = json.loads(str(data["header"]))
            arrays = {key: data[key] for key in data.files if key != "header"}
    except (OSError, ValueError, KeyError, EOFError, AttributeError, TypeError, zipfile.BadZipFile) as error:
        raise FileFormatError(
            f"{str(path)!r} is not a readable mcrgpu {what} (.npz with a JSON header): {error}"
        ) from None
    if not isinstance(header, dict):
        raise FileFormatError(f"{str(path)!r} is not a readable mcrgpu {what}: its header is not a JSON object")
    return header, arrays
