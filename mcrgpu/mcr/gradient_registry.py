"""Freeing what a traced ``tf.custom_gradient`` pins: TensorFlow's global gradient registry.

In a graph (a ``tf.function``), every ``tf.custom_gradient`` call registers its gradient function
in TensorFlow's process-wide gradient registry under a new name, for good, and that function's
closure holds tensors of the graph: the graph stays alive, and with it every variable the graph
captures (TensorFlow issue 27492). A 256^3 reconstruction's optimiser state (2m + 5 fields,
1.6 GB) stayed in memory after the run, and each further run in the process added its own.
The registry is only read while gradients are built, which for a traced function ends when its
first call returns; :func:`released_custom_gradients` drops the entries made within it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from tensorflow.python.framework import ops as _tf_ops

__all__ = ["released_custom_gradients"]

_PREFIX = "CustomGradient-"  # the names tf.custom_gradient registers in graphs


@contextlib.contextmanager
def released_custom_gradients() -> Iterator[None]:
    """Drop the custom gradients registered while the block runs (the functions it traced and
    called have built their gradients by then). Without the registry TensorFlow once had
    (a private part of it), nothing is dropped."""
    registry = getattr(getattr(_tf_ops, "_gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in [name for name in registry if name.startswith(_PREFIX) and name not in before]:
                del registry[name]
