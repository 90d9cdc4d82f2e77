"""The memory a reconstruction needs, estimated before any work, and the refusal of shapes that cannot fit."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from mcrgpu.errors import InvalidInputError
from mcrgpu.gpu_manager import DeviceMemory, device_memory
from mcrgpu.mcr.slices import CPU_BUDGET_BYTES, auto_slice_batch_size, slice_bytes

__all__ = ["MemoryEstimate", "estimate_memory", "available_host_bytes", "check_memory"]

LOSS_FIELDS = 5
"""Field-sized tensors of one evaluation of the slice loss per replica, besides the field itself:
the trial point, the field transposed for one axis, its gradient accumulator, that accumulator
transposed back, and the gradient summed over the axes."""
LBFGS_FIELDS = (2, 9)
"""(a, b): the device L-BFGS holds ``a m + b`` fields at its peak with ``m`` pairs: its 2m + 5
variables (pairs, iterate, gradient, direction, the line search's gradient and the best point)
and a step's field-sized temporaries (measured at 256^3 FFTCorrelations + Variation, m = 10:
39.7 fields beyond the runtime in all, which this estimate puts at 38.5, a little under the
measurement so that it does not refuse what fits)."""
OTHER_FIELDS = {"LBFGSB_SCIPY": 8, "keras": 4}
"""Fields of the other optimisers besides the pairs: SciPy's L-BFGS-B keeps its m = 10 pairs and
its iterate and gradient in float64 on the host (2 fields per float64 array); a Keras optimizer
its slots (at most 2) and the update."""
SCIPY_PAIRS = 10
HOST_FIELDS = 3
"""Host copies of the field kept by the history: the best state, the last state and the chunk's
read of the best state."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a reconstruction needs at its peak, by part (see :func:`estimate_memory`)."""

    field: int
    optimizer: int
    loss: int
    slices: int
    host: int

    @property
    def device(self) -> int:
        """Bytes on the device (for a CPU, the host: everything)."""
        return self.field + self.optimizer + self.loss + self.slices

    @property
    def total(self) -> int:
        return self.device + self.host

    def describe(self) -> str:
        parts = (("field", self.field), ("optimiser", self.optimizer), ("loss", self.loss),
                 ("slices", self.slices), ("host copies", self.host))
        return ", ".join(f"{name} {_gb(value)}" for name, value in parts if value)


def estimate_memory(shape: Sequence[int], channels: int, descriptors, *, optimizer_type: str = "LBFGSB",
                    lbfgs_memory: int = 10, lbfgs_precision: str = "float32", slice_batch_size: int | None = None, replicas: int = 1,
                    budget_bytes: int = CPU_BUDGET_BYTES) -> MemoryEstimate:
    """Peak bytes of a reconstruction of ``shape`` (2 or 3 extents) with ``channels`` channels, beyond
    the TensorFlow runtime itself (about 0.6 GB of host memory, already in use when this is called).

    The parts: the field; the optimiser's state and its step's temporaries (:data:`LBFGS_FIELDS`,
    :data:`OTHER_FIELDS`); the slice loss's field-sized tensors (:data:`LOSS_FIELDS`) and one chunk
    of slices' descriptor intermediates (the chunk :func:`~mcrgpu.mcr.slices.auto_slice_batch_size`
    chooses, or ``slice_batch_size`` slices), both per replica; the history's host copies
    (:data:`HOST_FIELDS`). Float32 throughout. Measured against peak resident memory at 64^3-512^3
    (``benchmarks/results/memory_issue19.md``), it is a little below: it refuses only what
    cannot fit.
    """
    shape = tuple(int(size) for size in shape)
    field = 4 * channels * math.prod(shape)
    if optimizer_type == "LBFGSB":
        a, b = LBFGS_FIELDS
        pair_fields = a if lbfgs_precision == "float32" else a / 2  # float16 pairs: half the bytes
        optimizer = int((pair_fields * lbfgs_memory + b) * field)
    elif optimizer_type == "LBFGSB_SCIPY":
        optimizer = (4 * SCIPY_PAIRS + OTHER_FIELDS["LBFGSB_SCIPY"]) * field
    else:
        optimizer = OTHER_FIELDS["keras"] * field
    volume = shape if len(shape) == 3 else (1, *shape)
    axes = (0,) if volume[0] == 1 else (0, 1, 2)
    sides = [tuple(size for i, size in enumerate(volume) if i != axis) for axis in axes]
    height, width = max(sides, key=math.prod)
    batch = slice_batch_size or auto_slice_batch_size(descriptors, height, width, channels, budget_bytes=budget_bytes)
    batch = min(batch, max(volume[axis] for axis in axes))
    return MemoryEstimate(field=field, optimizer=optimizer, loss=replicas * LOSS_FIELDS * field,
                          slices=replicas * batch * slice_bytes(descriptors, height, width, channels), host=HOST_FIELDS * field)


def available_host_bytes() -> int | None:
    """Host memory available to this process now: ``MemAvailable`` of ``/proc/meminfo`` (Linux),
    else the free physical pages (``os.sysconf``); None where neither is known."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(estimate: MemoryEstimate, shape: Sequence[int], device: str, *, lbfgs_memory: int | None,
                 lbfgs_precision: str = "float32", query: Callable[[str], DeviceMemory] | None = None,
                 host: Callable[[], int | None] | None = None) -> None:
    """Raise InvalidInputError, one line with the estimate and what to change, if ``estimate`` does not
    fit: on a GPU its device part in the device's free memory (``query``, default
    :func:`~mcrgpu.gpu_manager.device_memory`), on a CPU all of it in the host's available memory
    (``host``, default :func:`available_host_bytes`). Either being unknown passes."""
    memory = (query or device_memory)(device)
    host = host or available_host_bytes
    if memory.total_bytes is not None:
        needed, available, where = estimate.device, max(0, memory.total_bytes - memory.used_bytes), device
    else:
        needed, available, where = estimate.total, host(), "this host"
    if available is None or needed <= available:
        return
    pairs = f"fewer L-BFGS pairs (--lbfgs_memory, {lbfgs_memory} now), " if lbfgs_memory else ""
    if lbfgs_memory and lbfgs_precision == "float32":
        pairs += "float16 pairs (--lbfgs_precision float16), "
    chunk = "a smaller --slice_batch_size, " if estimate.slices >= 0.1 * needed else ""
    raise InvalidInputError(
        f"A {'x'.join(map(str, shape))} reconstruction needs about {_gb(needed)} ({estimate.describe()}) but "
        f"{where} has {_gb(available)} available: use {pairs}{chunk}a smaller volume, or a device with more memory"
    )


def _gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB" if value < 1e10 else f"{value / 1e9:.1f} GB"

