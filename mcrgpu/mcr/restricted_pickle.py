"""Reading pickles without running code from them: NumPy arrays and plain containers only."""

from __future__ import annotations

import codecs
import pickle

import numpy as np

from mcrgpu.errors import FileFormatError

__all__ = ["RestrictedUnpickler"]

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


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only NumPy's array machinery and plain containers.

    Subclasses name themselves in :attr:`reader`, say what they read in :attr:`readable` and may
    resolve more classes in :meth:`other_class`; any other class raises FileFormatError, so
    loading never runs code from the file.
    """

    reader = "The pickle reader"
    readable = "NumPy arrays and plain containers"

    def other_class(self, module: str, name: str) -> object | None:
        """A class this reader resolves besides NumPy's and the containers, or None."""
        return None

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        found = self.other_class(module, name)
        if found is None:
            raise FileFormatError(
                f"{self.reader} refuses to load class '{module}.{name}': only {self.readable} are "
                "read from a pickle (anything else could run code)"
            )
        return found
