"""Reading image files into model inputs: decoding, value range, channels, and optional resize or pad."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.io import read_npy

__all__ = ["IMAGE_SUFFIXES", "read_image", "to_model_input", "short_reason"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
"""File kinds the image workloads read: PNG/JPEG/BMP decoded by TensorFlow, TIFF by tifffile, NumPy."""

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L" mode


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as an (H, W, C) array in its stored dtype.

    Raises
    ------
    FileFormatError
        The file is missing, of another kind, corrupt, or not a 2D image (with or without channels).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise FileFormatError(f"{path}: unknown image kind {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    if suffix == ".npy":
        array = read_npy(path)
    elif suffix in (".tif", ".tiff"):
        array = _read_tiff(path)
    else:
        try:
            data = tf.io.read_file(str(path))
            array = tf.io.decode_image(data, channels=0, expand_animations=False).numpy()
        except (tf.errors.OpError, ValueError) as error:
            raise FileFormatError(f"{path}: not a readable image ({short_reason(error)})") from None
    if array.ndim == 2:
        array = array[..., np.newaxis]
    if array.ndim != 3 or array.shape[-1] > 4 or min(array.shape) == 0:
        raise FileFormatError(f"{path}: shape {array.shape} is not an image (H, W) or (H, W, C) with C <= 4")
    return array


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path)
    except Exception as error:  # tifffile raises many kinds for corrupt files
        raise FileFormatError(f"{path}: not a readable TIFF file ({short_reason(error)})") from None


def short_reason(error: BaseException) -> str:
    """One line saying why ``error`` happened, without TensorFlow's node names, tracebacks and counts."""
    if not isinstance(error, tf.errors.OpError):
        return (str(error).strip().splitlines() or [type(error).__name__])[0]
    lines = []
    for line in error.message.splitlines():
        line = re.sub(r"^\(\d+\) [A-Z_]+:\s*", "", line.strip()).split(" [Op:")[0]
        if line and not _NOISE.match(line):
            lines.append(line)
    return lines[-1] if lines else type(error).__name__  # TensorFlow puts the cause last


_NOISE = re.compile(r"^(File |\[\[|Graph execution|Detected at node|<stack|\d+ (root error|successful|derived))")


def to_model_input(array: np.ndarray, spec: tf.TensorSpec, *, size: tuple[int, int] | None = None,
                   mode: str | None = None) -> np.ndarray:
    """Convert an (H, W, C) image to one row of ``spec`` (a batched (None, H, W, C) input).

    Integers are scaled to [0, 1] for floating inputs (uint8 by 255, uint16 by 65535); channels
    are converted when the model fixes their number (grey -> RGB by repetition, RGB -> grey by
    BT.601 luma, alpha dropped); alpha is dropped as well when the model leaves C open.

    Parameters
    ----------
    array : numpy.ndarray
        The image, (H, W, C).
    spec : tf.TensorSpec
        The model's input, rank 4 with a None batch dimension.
    size : (int, int), optional
        Target (H, W) for ``mode``; default the model's own spatial size.
    mode : {None, "resize", "pad"}
        None leaves the size alone (a fixed model size must then match); "resize" resamples
        bilinearly with antialiasing; "pad" adds zeros below and right of the image.

    Raises
    ------
    InvalidInputError
        The image cannot be made to fit the input (dtype, channels or size), or a float image
        holds NaN or infinite values.
    """
    dtype = spec.dtype.as_numpy_dtype
    if spec.dtype.is_floating:
        values = _as_unit_float(array)
    elif array.dtype.kind in "biu":
        values = array
    else:
        raise InvalidInputError(f"the model input {spec.name!r} is {spec.dtype.name}; a {array.dtype} image does not fit")
    values = _convert_channels(values, spec.shape[-1], spec.name)
    fixed = tuple(spec.shape[1:3])
    target = size or (fixed if None not in fixed else None)
    if mode is not None and target is None:
        raise InvalidInputError(f"--{mode} needs a size: the model input {spec.name!r} has shape {spec.shape}; give --size H W")
    if mode == "resize" and values.shape[:2] != tuple(target):
        values = tf.image.resize(values, target, antialias=True).numpy()
    elif mode == "pad" and values.shape[:2] != tuple(target):
        if values.shape[0] > target[0] or values.shape[1] > target[1]:
            raise InvalidInputError(f"image is {values.shape[0]}x{values.shape[1]}, larger than the pad size "
                                    f"{target[0]}x{target[1]}; use --resize or a larger --size")
        values = np.pad(values, ((0, target[0] - values.shape[0]), (0, target[1] - values.shape[1]), (0, 0)))
    for axis, (have, want) in enumerate(zip(values.shape[:2], fixed)):
        if want is not None and have != want:
            raise InvalidInputError(f"image is {values.shape[0]}x{values.shape[1]}, the model input {spec.name!r} "
                                    f"takes {fixed[0]}x{fixed[1]}; use --resize or --pad")
    return values.astype(dtype, copy=False)


def _as_unit_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind == "u":
        return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InvalidInputError(f"the image holds {int(np.count_nonzero(~np.isfinite(array)))} NaN or infinite "
                                    "values, which a model would smear over its receptive field; fill them first "
                                    "(e.g. numpy.nan_to_num)")
        return array.astype(np.float32, copy=False)
    raise InvalidInputError(f"a {array.dtype} image has no known value range; store it as uint8, uint16 or float in [0, 1]")


def _convert_channels(values: np.ndarray, channels: int | None, name: str) -> np.ndarray:
    have = values.shape[-1]
    if have in (2, 4):  # grey + alpha, RGB + alpha
        values, have = values[..., : have - 1], have - 1
    if channels is None or channels == have:
        return values
    if channels == 3 and have == 1:
        return np.repeat(values, 3, axis=-1)
    if channels == 1 and have == 3:
        grey = values.astype(np.float32) @ _LUMA
        return grey.astype(values.dtype)[..., np.newaxis]
    raise InvalidInputError(f"the model input {name!r} takes {channels} channels; the image has {have}")
