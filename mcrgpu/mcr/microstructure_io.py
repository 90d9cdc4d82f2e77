"""Microstructure files: phase-label arrays from .npy, TIFF stacks and images, written atomically."""

from __future__ import annotations

import os
from numbers import Real
from pathlib import Path

import numpy as np

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.io import as_path, atomic_write, read_grey_image, read_npy, read_tif
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.vtk_image import write_vti

__all__ = ["SUPPORTED_SUFFIXES", "SAVE_SUFFIXES", "MAX_IMAGE_PHASES", "MAX_PHASES", "load_microstructure", "save_microstructure"]

SUPPORTED_SUFFIXES = (".npy", ".tif", ".tiff", ".png", ".bmp")
SAVE_SUFFIXES = SUPPORTED_SUFFIXES + (".vti",)
"""What :func:`save_microstructure` writes: the readable suffixes, and VTK images for ParaView."""
MAX_IMAGE_PHASES = 16
"""More distinct grey values than this in an image file means it is not segmented."""
MAX_PHASES = 64
"""Most phases (distinct labels) a label file may hold: memory and time of the descriptors grow with
the phase count (a 64x64 .npy with 983 labels took 12 GB), and so many labels are rarely phases."""

_IMAGE_FORMATS = {".png": "PNG", ".bmp": "BMP"}
_FULL_SCALE = {np.dtype(np.bool_): 1, np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def _suffix(path: Path, supported: tuple[str, ...] = SUPPORTED_SUFFIXES) -> str:
    suffix = path.suffix.lower()
    if suffix not in supported:
        raise FileFormatError(
            f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(supported)}."
        )
    return suffix


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
        holds a pickled array, has fewer than two or more than ``MAX_PHASES`` phases, or (image
        files, no ``threshold``) has more than ``MAX_IMAGE_PHASES`` distinct values, i.e. is not
        segmented.
    InvalidInputError
        If ``threshold`` is not a finite number or puts everything in one phase.

    Examples
    --------
    >>> ms = load_microstructure("micrograph.png", threshold=0.5)  # doctest: +SKIP
    """
    path = as_path(path)
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
        array = read_npy(path)
    elif suffix in (".tif", ".tiff"):
        array = read_tif(path)
    else:
        array = read_grey_image(path)

    if array.ndim not in (2, 3) or array.size == 0:
        raise FileFormatError(f"{path}: expected a 2D or 3D array, got shape {array.shape}.")
    if threshold is not None:
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise FileFormatError(f"{path}: cannot threshold values of dtype {array.dtype}.")
        array = _apply_threshold(array, float(threshold), path, scale=suffix in _IMAGE_FORMATS)
    else:
        _check_segmented(array, path, image=suffix != ".npy")
    try:
        ms = Microstructure(array)
    except InvalidInputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc
    if ms.n_phases > MAX_PHASES:
        raise FileFormatError(
            f"{path}: has {ms.n_phases} distinct labels; mcrgpu reads at most {MAX_PHASES} phases (memory "
            "grows with the phase count). If it is a grey image, pass threshold= (CLI: --threshold); "
            "otherwise merge phases."
        )
    return ms


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
        image or 3D stack, uint8 or uint16. ``.vti``: a VTK image for ParaView, the labels as cell
        data (:func:`~mcrgpu.mcr.vtk_image.write_vti`; written only, not read). ``.png``/``.bmp``: 2D only, 8-bit grey with the K
        phases spread evenly over 0..255 (phase i -> round(255 * i / (K - 1))), so the image is
        visible whatever the labels; ``original_labels`` does not apply.
        Parent directories are created.
    ms : Microstructure
    original_labels : bool, optional
        For npy/tif/vti: write :attr:`Microstructure.phase_values` (default) instead of 0..K-1.

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
    path = as_path(path)
    suffix = _suffix(path, SAVE_SUFFIXES)
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
    if suffix == ".vti":
        with atomic_write(path) as handle:
            write_vti(handle, values)
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
