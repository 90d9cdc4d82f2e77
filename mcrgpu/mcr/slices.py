"""The slice-distributed loss: slices of a field dealt to replicas, partial sums added across them.

A field is stored as a volume (D, H, W, C); a 2D field is a volume with D = 1 that has one slice
along axis 0 only. Each replica owns an even share of the slices of every axis (remainder
included, each slice exactly once), goes through its share in chunks of ``slice_batch_size``
slices, sums the losses of its slices and adds their gradient into the slices of the field they
came from (a scatter-add, never a dense field-sized gradient per chunk), and the
partial losses and gradients are summed across replicas, so the result does not depend on the
replica count. With one replica it is the same code.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import DeviceConfigError, InvalidInputError
from mcrgpu.gpu_manager import DeviceMemory, device_memory

__all__ = ["first_device", "slice_budget_bytes", "auto_slice_batch_size", "slice_bytes", "fit_slice_batch",
           "slice_table", "gather_slices", "slice_view", "field_from_view", "slice_axes",
           "replica_slice_sum", "SliceDistributedLoss"]

# Transposes that turn a gather along axis a of (D, H, W, C) into a batch of slices (b, h, w, C);
# slice b along axis a is np.take(field, b, axis=a).
_TO_BATCH = {0: None, 1: (1, 0, 2, 3), 2: (2, 0, 1, 3)}


def slice_axes(field_shape: Sequence[int]) -> tuple[int, ...]:
    """The axes whose slices make up the loss: (0,) for a 2D field (D == 1), else (0, 1, 2)."""
    return (0,) if field_shape[0] == 1 else (0, 1, 2)


def gather_slices(field: tf.Tensor, indices: tf.Tensor, axis: int) -> tf.Tensor:
    """Slices ``indices`` perpendicular to ``axis`` of a (D, H, W, C) field, as (b, h, w, C)."""
    batch = tf.gather(field, indices, axis=axis)
    return batch if _TO_BATCH[axis] is None else tf.transpose(batch, _TO_BATCH[axis])


def slice_view(field: tf.Tensor, axis: int) -> tf.Tensor:
    """The (D, H, W, C) field with its slices along ``axis`` first, each oriented as
    :func:`gather_slices` returns it: ``slice_view(field, axis)[indices] == gather_slices(field,
    indices, axis)``."""
    return field if _TO_BATCH[axis] is None else tf.transpose(field, _TO_BATCH[axis])


def field_from_view(view: tf.Tensor, axis: int) -> tf.Tensor:
    """The inverse of :func:`slice_view`: a tensor in the layout of ``slice_view(field, axis)`` back
    in the field's layout (e.g. a gradient accumulated slice by slice)."""
    return view if _TO_BATCH[axis] is None else tf.transpose(view, np.argsort(_TO_BATCH[axis]))


logger = logging.getLogger(__name__)

SliceTable = tuple[np.ndarray, np.ndarray]
"""(indices, weights), both (replicas, chunks, chunk_size): which slices each replica computes in
which chunk, and the weight of each (0 for padding, so that every chunk has the same shape)."""


CPU_BUDGET_BYTES = 32 * 2**20
"""Chunk budget on CPUs (and devices whose memory TensorFlow does not report): on a CPU the
descriptors are bandwidth-bound and larger chunks are not faster (measured at 64^3 Correlations +
Variation: 2 slices per chunk peak at 1.1 GB and 2.3 s per evaluation, 9 slices at 1.7 GB and
2.7 s, on a shared 2-core machine)."""
GPU_BUDGET_FRACTION = 0.25
"""Share of a GPU's free memory one chunk's descriptor intermediates may take; the rest is for the
field, the optimiser's state (about 2 x memory + 8 fields), gradients and TensorFlow's workspace."""


def first_device(strategy: tf.distribute.Strategy) -> str:
    """The (first) device the strategy computes on; TensorFlow's default placement for the default
    strategy (the first GPU, else the CPU)."""
    try:
        return strategy.extended.worker_devices[0]
    except RuntimeError:  # the default strategy has no device list
        gpus = tf.config.list_logical_devices("GPU")
        return gpus[0].name if gpus else "/device:CPU:0"


def slice_budget_bytes(device: str, *, query: Callable[[str], DeviceMemory] = device_memory) -> int:
    """Bytes one chunk of slices may use on ``device``: a share of its free memory on a GPU,
    :data:`CPU_BUDGET_BYTES` where the device reports no memory. ``query`` is the device query
    (:func:`mcrgpu.gpu_manager.device_memory`; replaceable, e.g. in tests)."""
    memory = query(device)
    if memory.total_bytes is None:
        return CPU_BUDGET_BYTES
    free = max(0, memory.total_bytes - memory.used_bytes)
    return max(CPU_BUDGET_BYTES // 8, int(GPU_BUDGET_FRACTION * free))


def auto_slice_batch_size(descriptors, height: int, width: int, channels: int, *,
                          budget_bytes: int = CPU_BUDGET_BYTES) -> int:
    """Slices per chunk so that one chunk's descriptor intermediates stay near ``budget_bytes``
    (per device; :func:`slice_budget_bytes` gives it from the device's memory).

    A slice costs :func:`slice_bytes`.
    """
    return max(1, budget_bytes // slice_bytes(descriptors, height, width, channels))


def slice_bytes(descriptors, height: int, width: int, channels: int) -> int:
    """Bytes of one slice's descriptor intermediates: ``maps_per_pixel * height * width * channels``
    float32 values, times 8 for the copies the forward and backward pass keep alive."""
    return 8 * 4 * height * width * channels * max(d.maps_per_pixel() for d in descriptors)


def fit_slice_batch(make_loss: Callable[[int], SliceDistributedLoss],
                    slice_batch_size: int) -> SliceDistributedLoss:
    """The loss ``make_loss(size)`` for the largest size of ``slice_batch_size``, its half, quarter, ...
    whose first chunk runs on every replica without running out of memory.

    An out-of-memory error (tf.errors.ResourceExhaustedError) halves the size and tries again,
    with one logged warning; DeviceConfigError with the ways out when one slice does not fit.
    """
    size = slice_batch_size
    while True:
        loss = make_loss(size)
        try:
            loss.try_first_chunks()
            return loss
        except tf.errors.ResourceExhaustedError:
            if size == 1:
                raise DeviceConfigError(
                    "Out of device memory for one slice of the field; use a GPU with more memory, raise or drop "
                    "--memory_limit, or reconstruct a smaller volume (or fewer descriptors or a smaller limit_to)"
                ) from None
            if size == slice_batch_size:
                logger.warning("Out of device memory with %d slices per chunk; halving the slice batch until "
                               "it fits (set --slice_batch_size to choose it)", size)
            size //= 2


def slice_table(slice_ids: Sequence[int] | np.ndarray, n_replicas: int,
                slice_batch_size: int | None = None) -> SliceTable:
    """Deal ``slice_ids`` to ``n_replicas`` evenly (remainder to the first replicas), in chunks.

    A slice id may appear several times (random batches drawn with replacement); each occurrence
    counts once.
    """
    slice_ids = np.asarray(slice_ids, dtype=np.int32)
    shares = np.array_split(slice_ids, n_replicas)
    longest = max(1, max(len(share) for share in shares))
    chunk = min(slice_batch_size or longest, longest)
    n_chunks = -(-longest // chunk)
    indices = np.zeros((n_replicas, n_chunks * chunk), np.int32)
    weights = np.zeros((n_replicas, n_chunks * chunk), np.float32)
    for replica, share in enumerate(shares):
        indices[replica, : len(share)] = share
        weights[replica, : len(share)] = 1.0
    shape = (n_replicas, n_chunks, chunk)
    return indices.reshape(shape), weights.reshape(shape)


def replica_slice_sum(tables: dict[int, SliceTable], chunk_fn, initial, *, add=None):
    """In a replica context: add up ``chunk_fn`` over this replica's chunks of every axis.

    ``chunk_fn(indices, weights, axis)`` gets the chunk's slice indices along ``axis`` and
    their (chunk,) weights and returns a nested structure of tensors shaped like ``initial``,
    or whatever ``add(total, part, indices, axis)`` adds into the running total (default: the
    element-wise sum). Chunks run one after the other (a ``tf.while_loop`` with one iteration in
    flight), which bounds memory by the chunk size: a chunk's descriptors do not depend on the
    running total, so with TensorFlow's default of 10 parallel iterations several chunks ran at
    once (64^3 Correlations + Variation: peak RSS 829-984 MB, varying from run to run).
    """
    if add is None:
        add = lambda total, part, indices, axis: tf.nest.map_structure(tf.add, total, part)  # noqa: E731
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    total = initial
    for axis, (indices, weights) in tables.items():
        indices = tf.gather(indices, replica)
        weights = tf.gather(weights, replica)

        def step(k, total, axis=axis, indices=indices, weights=weights):
            part = chunk_fn(indices[k], weights[k], axis)
            return k + 1, add(total, part, indices[k], axis)

        n_chunks = indices.shape[0]
        if n_chunks == 1:
            _, total = step(0, total)
        else:
            _, total = tf.while_loop(lambda k, _: k < n_chunks, step, (tf.constant(0), total),
                                     parallel_iterations=1)
    return total


SliceLossFn = Callable[[tf.Tensor], tf.Tensor]  # (b, h, w, C) slices -> (b,) losses


class SliceDistributedLoss:
    """Sum of per-slice losses over the slices of a field, and its gradient, on a strategy.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
        The strategy whose replicas share the slices.
    field : tf.Variable
        The (D, H, W, C) field, created under ``strategy.scope()``.
    slice_losses : mapping of int to callable
        For each axis in :func:`slice_axes`, the loss of a batch of its slices, (b, h, w, C) -> (b,).
    slice_batch_size : int, optional
        Largest number of slices a replica computes at once (bounds memory); default all of them.
    jit_compile : bool
        Compile each chunk's loss and gradient with XLA, which fuses the descriptors' gathers and
        element-wise steps (faster on CPUs; measured by the benchmarks).
    """

    def __init__(self, strategy: tf.distribute.Strategy, field: tf.Variable,
                 slice_losses: dict[int, SliceLossFn], *, slice_batch_size: int | None = None,
                 jit_compile: bool = False) -> None:
        if slice_batch_size is not None and slice_batch_size < 1:
            raise InvalidInputError(f"slice_batch_size must be >= 1; received {slice_batch_size!r}")
        self.strategy = strategy
        self.field = field
        self.axes = slice_axes(field.shape)
        missing = [axis for axis in self.axes if axis not in slice_losses]
        if missing:
            raise InvalidInputError(f"No slice loss given for axis {missing[0]}")
        self.slice_losses = slice_losses
        self.slice_batch_size = slice_batch_size
        self.n_replicas = strategy.num_replicas_in_sync
        self._chunk_functions = {
            axis: tf.function(functools.partial(self._chunk_loss_and_gradient, axis=axis), jit_compile=True)
            if jit_compile else functools.partial(self._chunk_loss_and_gradient, axis=axis)
            for axis in self.axes
        }

    def full_tables(self) -> dict[int, SliceTable]:
        """Tables covering every slice of every axis once."""
        return {axis: slice_table(np.arange(self.field.shape[axis]), self.n_replicas,
                                  self.slice_batch_size) for axis in self.axes}

    def try_first_chunks(self) -> None:
        """Compute the first chunk of every axis on every replica, without the sum across replicas
        (no collective a failing worker would leave waiting): raises tf.errors.ResourceExhaustedError
        where one chunk does not fit in memory."""
        tables = {axis: (indices[:, :1], weights[:, :1]) for axis, (indices, weights) in self.full_tables().items()}
        self.strategy.run(self.replica_loss_and_gradient, args=(tables,))

    def random_tables(self, batch_size: int, rng: np.random.Generator) -> dict[int, SliceTable]:
        """Tables of ``batch_size`` random slices per axis (with replacement), for greedy steps."""
        return {axis: slice_table(rng.integers(0, self.field.shape[axis], batch_size), self.n_replicas,
                                  self.slice_batch_size) for axis in self.axes}

    def _chunk_loss_and_gradient(self, view, indices, weights, *, axis):
        """The chunk's loss and its gradient with respect to the chunk's slices (b, h, w, C), read
        from ``view``, the field with the slices of ``axis`` along its first axis."""
        batch = tf.gather(view, indices)
        with tf.GradientTape() as tape:
            tape.watch(batch)
            loss = tf.reduce_sum(self.slice_losses[axis](batch) * weights)
        return loss, tape.gradient(loss, batch)

    def replica_loss_and_gradient(self, tables: dict[int, SliceTable],
                                  field: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """In a replica context: this replica's partial loss and gradient w.r.t. the whole field
        (the variable's value, or ``field`` when given).

        Each axis works on the field transposed once so that its slices lie along the first axis
        (:func:`slice_view`): a chunk is then a gather of whole rows and its gradient a scatter-add of
        whole rows into an accumulator of that layout, transposed back once per axis (measured: the
        scatter into slices along an inner axis took ~7.5 ms of ~40 ms per evaluation at 64^3).
        """
        field = tf.convert_to_tensor(self.field if field is None else field)
        loss, gradient = tf.zeros((), field.dtype), None

        def add(total, part, indices, axis):  # scatter-add: no dense field-sized gradient per chunk
            return total[0] + part[0], tf.tensor_scatter_nd_add(total[1], indices[:, None], part[1])

        for axis, table in tables.items():
            view = slice_view(field, axis)
            loss, partial = replica_slice_sum(
                {axis: table},
                lambda indices, weights, axis, view=view: self._chunk_functions[axis](view, indices, weights),
                (loss, tf.zeros_like(view)), add=add)
            partial = field_from_view(partial, axis)
            gradient = partial if gradient is None else gradient + partial
        return loss, gradient

    def loss_and_gradient(self, tables: dict[int, SliceTable],
                          field: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """In cross-replica context: total loss and gradient, summed over replicas, at the
        variable's value or at ``field`` (a tensor of its shape, e.g. an optimiser's trial point)."""
        loss, gradient = self.strategy.run(self.replica_loss_and_gradient, args=(tables, field))
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return total, self.strategy.reduce(tf.distribute.ReduceOp.SUM, gradient, axis=None)
