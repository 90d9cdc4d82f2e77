"""File access shared by every workload: safe array readers, atomic writes, npz files with a JSON header."""

from __future__ import annotations

import errno
import json
import os
import secrets
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from mcrgpu.errors import FileFormatError, InvalidInputError

__all__ = [
    "as_path",
    "read_npy",
    "read_tif",
    "read_grey_image",
    "read_npz_with_header",
    "atomic_write",
    "atomic_save_npz",
    "atomic_write_text",
]

_SINGLE_CHANNEL_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_RESERVED_NPZ_NAMES = ("file", "allow_pickle")


def as_path(path: str | os.PathLike[str], name: str = "path") -> Path:
    """``path`` as a Path, or InvalidInputError naming ``name`` if it is not a file path."""
    if isinstance(path, (str, os.PathLike)) and str(path):
        return Path(path)
    raise InvalidInputError(f"{name} must be a file path (str or os.PathLike), got {path!r}.")


def read_npy(path: Path) -> np.ndarray:
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


def read_tif(path: Path) -> np.ndarray:
    """Read the first series of a TIFF file (2D image or 3D stack); colour samples are refused."""
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


def read_grey_image(path: Path) -> np.ndarray:
    """Read a PNG/BMP/... image with Pillow as one grey channel (colour images are converted)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in _SINGLE_CHANNEL_MODES:
                image = image.convert("L")
            return np.array(image)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a readable image ({exc}).") from exc


_NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
_TEMP_SUFFIX_LENGTH = len(".") + len(".0123456789ab.tmp")  # what atomic_write adds for its temporary file
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
        If ``mode`` is not one of the above, or the file name is too long to write atomically.

    Examples
    --------
    >>> with atomic_write("result.bin") as f:  # doctest: +SKIP
    ...     f.write(b"...")
    """
    path = as_path(path)
    if mode not in _TEXT_MODES + _BINARY_MODES:
        raise InvalidInputError(f"mode must be one of 'wb', 'w', 'wt', got {mode!r}.")
    longest = _NAME_MAX - _TEMP_SUFFIX_LENGTH
    if len(path.name.encode()) > longest:
        raise InvalidInputError(
            f"File name {path.name[:40]!r}... is {len(path.name.encode())} bytes long; at most {longest} "
            "can be written: choose a shorter name."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
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
    path = as_path(path)
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
    path = as_path(path)
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
    path = as_path(path)
    if not path.is_file():
        raise FileFormatError(f"{what.capitalize()} file {str(path)!r} does not exist.")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array (a .npy file, e.g. a microstructure), not an .npz archive")
        with data:
            header = json.loads(str(data["header"]))
            arrays = {key: data[key] for key in data.files if key != "header"}
    except (OSError, ValueError, KeyError, EOFError, AttributeError, TypeError, zipfile.BadZipFile,
            zlib.error, NotImplementedError) as error:
        reason = ("it is neither an .npz archive nor a .npy array (random or damaged bytes)"
                  if "file contains pickled" in str(error) else error)  # NumPy's last guess for unknown bytes is pickle
        raise FileFormatError(
            f"{str(path)!r} is not a readable mcrgpu {what} (.npz with a JSON header): {reason}"
        ) from None
    if not isinstance(header, dict):
        raise FileFormatError(f"{str(path)!r} is not a readable mcrgpu {what}: its header is not a JSON object")
    return header, arrays
