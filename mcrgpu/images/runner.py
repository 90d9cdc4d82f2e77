"""Run a SavedModel signature over many items under a tf.distribute strategy, resumably and item by item."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import DeviceConfigError, FileFormatError, InvalidInputError
from mcrgpu.images.decode import read_image, short_reason, to_model_input
from mcrgpu.images.inputs import refuse_input_as_output
from mcrgpu.images.manifest import Manifest, finished_items
from mcrgpu.images.provenance import check_and_record
from mcrgpu.images.writer import ITEM_ERRORS, ResultWriter
from mcrgpu.interrupts import StopRequest, request_stop_on_signals
from mcrgpu.interrupts import exit_code as signal_exit_code
from mcrgpu.progress import progress_bar

__all__ = ["SavedModelSignature", "Item", "RunSummary", "RunsSummary", "ReplicaPredictor", "load_signature", "describe_saved_model",
           "run_items", "exit_code", "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130
_PENDING_BATCHES = 4  # decoded items of other shapes kept waiting, in global batches, before a partial batch runs


def exit_code(*, interrupted: bool, failed: int, stop_signal: str | None = None) -> int:
    """The exit code of an image task: interrupted (128 + the signal: 130 Ctrl+C, 143 SIGTERM), some items
    failed (3), else 0."""
    if interrupted:
        return signal_exit_code(stop_signal) if stop_signal else EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failed else EXIT_OK


@dataclass(frozen=True)
class SavedModelSignature:
    """One signature of a loaded SavedModel, with its input and output specs (batch dimension first)."""

    path: Path
    name: str
    inputs: dict[str, tf.TensorSpec]
    outputs: dict[str, tf.TensorSpec]
    function: Callable[..., dict[str, tf.Tensor]]
    module: Any  # the loaded object: keeps the function's variables alive


@dataclass(frozen=True)
class Item:
    """One unit of work: a value for every model input and the file its result goes to.

    ``inputs`` maps each input name to an image file (str or Path, read by
    :func:`~mcrgpu.images.decode.read_image`), an array, or a number (e.g. a seed); ``output`` is
    relative to the output folder and names the item's result in the manifest.
    """

    name: str
    inputs: Mapping[str, Any]
    output: str
    also_writes: tuple[str, ...] = ()  # other files the item's writer makes, relative to the output folder

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.output, *self.also_writes)


@dataclass(frozen=True)
class RunSummary:
    """What a run did; ``exit_code`` is 0 (all done), 3 (some items failed), 130 or 143 (stopped by Ctrl+C or
    SIGTERM, named by ``stop_signal``)."""

    done: int
    skipped: int
    failed: int
    interrupted: bool
    seconds: float
    manifest: Path
    stop_signal: str | None = None

    @property
    def exit_code(self) -> int:
        return exit_code(interrupted=self.interrupted, failed=self.failed, stop_signal=self.stop_signal)

    def __str__(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        text = (f"{self.done} done, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s "
                f"({rate:.2f} items/s); manifest {self.manifest}")
        return text + (" (interrupted: rerun to finish)" if self.interrupted else "")


class RunsSummary:
    """What a task of several runs (``runs``, by model) did, for a summary dataclass with ``runs`` and its own
    count of ``failed`` items: interrupted if a run was, by that run's signal; the runs' seconds; the exit code."""

    @property
    def interrupted(self) -> bool:
        return any(run.interrupted for run in self.runs.values())

    @property
    def stop_signal(self) -> str | None:
        return next((run.stop_signal for run in self.runs.values() if run.interrupted), None)

    @property
    def seconds(self) -> float:
        return sum(run.seconds for run in self.runs.values())

    @property
    def exit_code(self) -> int:
        return exit_code(interrupted=self.interrupted, failed=self.failed, stop_signal=self.stop_signal)


def load_signature(path: str | Path, *, strategy: tf.distribute.Strategy | None = None,
                   signature: str = "serving_default") -> SavedModelSignature:
    """Load a SavedModel under ``strategy.scope()`` and pick one signature.

    Raises
    ------
    FileFormatError
        ``path`` is not a SavedModel directory.
    InvalidInputError
        The signature does not exist, or an input has no None batch dimension.
    """
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise FileFormatError(f"model {str(path)!r} is not a SavedModel directory (no saved_model.pb); "
                              "export one with `mcrgpu models export NAME DIR` or tf.saved_model.save")
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        module = _load_saved_model(path)
    if signature not in module.signatures:
        raise InvalidInputError(f"signature {signature!r} not in {path}; it has {sorted(module.signatures)}")
    function = module.signatures[signature]
    inputs, outputs = _specs(function)
    for name, spec in inputs.items():
        if spec.shape.rank is None or spec.shape.rank == 0 or spec.shape[0] is not None:
            raise InvalidInputError(
                f"input {name!r} of {path} has shape {spec.shape}: its first (batch) dimension must be None; "
                "re-export the model with tf.TensorSpec((None, ...)) so batches of any size fit")
    return SavedModelSignature(path, signature, inputs, outputs, function, module)


def describe_saved_model(path: str | Path) -> dict[str, dict[str, dict[str, tf.TensorSpec]]]:
    """Every signature of a SavedModel with its inputs and outputs, as ``saved_model_cli show`` lists them."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise FileFormatError(f"{str(path)!r} is not a SavedModel directory (no saved_model.pb)")
    module = _load_saved_model(path)
    described = {}
    for name in sorted(module.signatures):
        inputs, outputs = _specs(module.signatures[name])
        described[name] = {"inputs": inputs, "outputs": outputs}
    return described


def _load_saved_model(path: Path) -> Any:
    """``tf.saved_model.load``, a damaged model reported as such (TensorFlow raises a bare OSError or a parse error)."""
    try:
        return tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise FileFormatError(f"model {str(path)!r} is not a readable SavedModel ({short_reason(error)[:200]}); "
                              "export or copy it again") from None


def _specs(function) -> tuple[dict[str, tf.TensorSpec], dict[str, tf.TensorSpec]]:
    inputs = {name: tf.TensorSpec(spec.shape, spec.dtype, name)
              for name, spec in sorted(function.structured_input_signature[1].items())}
    outputs = {name: tf.TensorSpec(tensor.shape, tensor.dtype, name)
               for name, tensor in sorted(function.structured_outputs.items())}
    return inputs, outputs


def run_items(model: SavedModelSignature, items: Sequence[Item],
              write: Callable[[Item, dict[str, np.ndarray], dict[str, tuple[int, ...]]], None], *,
              output_folder: str | Path, manifest_name: str, strategy: tf.distribute.Strategy | None = None,
              batch_size: int = 1, size: tuple[int, int] | None = None, mode: str | None = None,
              options: Mapping[str, Any] | None = None, overwrite: bool = False, progress: bool = True,
              prepare: Callable[[Item], tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]] | None = None,
              ) -> RunSummary:
    """Run ``model`` on every item not finished yet, recording each item in a JSONL manifest.

    Items are decoded in a ``tf.data`` pipeline (every element carries its int64 position), grouped
    by input shape into global batches of ``batch_size`` rows per replica, the last partial batch
    padded with copies of its last row (so no replica is ever empty) and the copies dropped, the
    outputs put back in input order by the carried position, and ``write(item, outputs, shapes)``
    called for each item by one writer thread while the next batch computes. An item that cannot
    be read, does not fit the model, or whose batch fails alone, is recorded as failed; the others
    go on.

    Parameters
    ----------
    model : SavedModelSignature
        From :func:`load_signature` under the same strategy.
    items : sequence of Item
        Unique names; every item gives every model input.
    write : callable
        ``write(item, outputs, shapes)`` writes ``output_folder / item.output`` atomically from the
        item's output rows; ``shapes`` are the image inputs' (H, W, C) as read, before resize or pad.
    output_folder : str or Path
    manifest_name : str
        File name of the manifest in ``output_folder``.
    strategy : tf.distribute.Strategy, optional
        Default: the current (default) strategy.
    batch_size : int
        Rows per replica in one step.
    size : (int, int), optional
        Target (H, W) for ``mode`` when the model leaves it open.
    mode : {None, "resize", "pad"}
        Fit images to the model's spatial size (or ``size``); None batches images by shape.
    options : mapping, optional
        The task's other options that change a result (e.g. ``seed``), recorded with the model's
        fingerprint, ``signature``, ``size``, ``mode`` and every item's inputs
        (:func:`~mcrgpu.images.provenance.check_and_record`): a rerun skips finished items only
        when all of them match.
    overwrite : bool
        Redo every item from scratch, replacing existing outputs (default: skip finished items, and
        refuse to resume over outputs made otherwise or files an earlier run did not write).
    progress : bool
        Show a progress bar with items/s and time left.
    prepare : callable, optional
        ``prepare(item) -> (inputs, shapes)``: the task makes an item's model inputs itself (e.g.
        OCR's resizing and line crops) instead of reading and fitting them; ``inputs`` maps every
        model input to one row, ``shapes`` is handed to ``write``. What it raises fails the item.

    Returns
    -------
    RunSummary
        Counts; ``interrupted`` when Ctrl+C or SIGTERM stopped the run after the batch in flight.

    Raises
    ------
    InvalidInputError
        Bad arguments; an output would replace an input; finished outputs were made from other
        inputs, model or options; a file in the way was not written by this task (without ``overwrite``).
    """
    strategy = strategy or tf.distribute.get_strategy()
    _require_one_worker(strategy)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an integer >= 1; received {batch_size!r}")
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise InvalidInputError(f"item {duplicate!r} occurs more than once; give every item a distinct name")
    for item in items:
        missing = sorted(set(model.inputs) - set(item.inputs))
        if missing:
            raise InvalidInputError(f"item {item.name!r} gives no value for the model inputs {missing}")
    folder = Path(output_folder)
    refuse_input_as_output([folder / output for item in items for output in item.outputs],
                           {str(value) for item in items for value in item.inputs.values() if isinstance(value, (str, Path))})
    manifest_path = folder / manifest_name
    done_before = set() if overwrite else finished_items(manifest_path, folder)
    todo = [item for item in items if item.name not in done_before]
    in_the_way = {item.name: folder / output for item in todo for output in item.outputs[::-1]
                  if (folder / output).exists()}
    check_and_record(manifest_path, model=model.path, options={"signature": model.name, "size": size, "mode": mode,
                                                               **(options or {})},
                     items={item.name: item.inputs for item in items}, finished=done_before, fresh=overwrite,
                     what=str(folder), unrecorded=in_the_way)
    start = time.perf_counter()
    stop = StopRequest()
    with Manifest(manifest_path, fresh=overwrite) as manifest, request_stop_on_signals(stop), \
            progress_bar(len(todo), unit="item", desc="items", enabled=progress) as bar, \
            ResultWriter(write, manifest, bar) as writer:
        batches = _Batches(model, strategy, writer, batch_size)
        for entry in _decoded(model, todo, size=size, mode=mode, prepare=prepare):
            if stop.is_set():
                break
            batches.add(entry)
        batches.flush(stop)
    return RunSummary(writer.done, len(items) - len(todo), writer.failed, stop.is_set(),
                      time.perf_counter() - start, manifest_path, stop.signal_name)


def _require_one_worker(strategy: tf.distribute.Strategy) -> None:
    """Image tasks write from one process; several workers would each run (and write) every item."""
    resolver = strategy.cluster_resolver
    if resolver is None:
        return
    spec = resolver.cluster_spec()
    workers = sum(spec.num_tasks(job) for job in spec.jobs)
    if workers > 1:
        raise DeviceConfigError(
            f"image tasks run within one worker, but the strategy spans {workers} workers (TF_CONFIG or SLURM); "
            "run one process per node on its own share of the files (multi_worker=False), each with its own "
            "output folder")


@dataclass
class _Entry:
    item: Item
    arrays: dict[str, np.ndarray] | None
    shapes: dict[str, tuple[int, ...]]
    seconds: float
    error: str


def _decoded(model: SavedModelSignature, todo: Sequence[Item], *, size, mode, prepare) -> Iterator[_Entry]:
    """The items decoded by a tf.data pipeline (order kept), each with its arrays or the reason it failed."""
    names = list(model.inputs)
    read = functools.lru_cache(maxsize=8)(read_image)  # an image is usually reused by neighbouring items

    def load(position: tf.Tensor) -> list:
        begin = time.perf_counter()
        item = todo[int(position)]
        arrays, shapes = [], []
        try:
            if prepare is not None:
                values, made = prepare(item)
                arrays = [np.asarray(values[name], model.inputs[name].dtype.as_numpy_dtype) for name in names]
                shapes = [np.asarray(made.get(name, ()), np.int64) for name in names]
            else:
                for name in names:
                    value, shape = _prepare(item.inputs[name], model.inputs[name], read, size=size, mode=mode)
                    arrays.append(value)
                    shapes.append(np.asarray(shape, np.int64))
            error = ""
        except ITEM_ERRORS as caught:
            error = short_reason(caught)
            arrays = [np.zeros((0,) * (spec.shape.rank - 1), spec.dtype.as_numpy_dtype) for spec in model.inputs.values()]
            shapes = [np.zeros(0, np.int64)] * len(names)
        return [position, error, time.perf_counter() - begin, *arrays, *shapes]

    types = [tf.int64, tf.string, tf.float64, *(spec.dtype for spec in model.inputs.values()), *[tf.int64] * len(names)]
    dataset = tf.data.Dataset.range(len(todo)).map(
        lambda position: tuple(tf.py_function(load, [position], types)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)
    for position, error, seconds, *rest in dataset.as_numpy_iterator():
        item = todo[int(position)]
        if error:
            yield _Entry(item, None, {}, float(seconds), error.decode("utf-8", "replace"))
        else:
            arrays = dict(zip(names, rest[: len(names)]))
            shapes = {name: tuple(int(n) for n in shape) for name, shape in zip(names, rest[len(names):]) if shape.size}
            yield _Entry(item, arrays, shapes, float(seconds), "")


def _prepare(source: Any, spec: tf.TensorSpec, read: Callable, *, size, mode) -> tuple[np.ndarray, tuple[int, ...]]:
    """One item's value for one input, and the shape it had as read (empty for non-images)."""
    if isinstance(source, (str, Path)):
        image = read(str(source))
        return to_model_input(image, spec, size=size, mode=mode), image.shape
    value = np.asarray(source)
    if spec.shape.rank == 4 and value.ndim in (2, 3):
        image = value if value.ndim == 3 else value[..., np.newaxis]
        return to_model_input(image, spec, size=size, mode=mode), image.shape
    if value.ndim != spec.shape.rank - 1:
        raise InvalidInputError(f"input {spec.name!r} takes rows of rank {spec.shape.rank - 1}; got shape {value.shape}")
    return value.astype(spec.dtype.as_numpy_dtype), ()


class _Batches:
    """Groups decoded items by shape, runs full global batches through the strategy, hands results to the writer."""

    def __init__(self, model: SavedModelSignature, strategy: tf.distribute.Strategy, writer: ResultWriter,
                 batch_size: int) -> None:
        self.writer = writer
        self.predict = ReplicaPredictor(model, strategy, batch_size=batch_size)
        self.global_batch = self.predict.global_batch
        self.pending: dict[tuple, list[_Entry]] = {}

    def add(self, entry: _Entry) -> None:
        if entry.arrays is None:
            self.writer.failed_items([entry], entry.error)
            return
        key = tuple((name, array.shape) for name, array in entry.arrays.items())
        bucket = self.pending.setdefault(key, [])
        bucket.append(entry)
        if len(bucket) == self.global_batch:
            self._run(self.pending.pop(key))
        elif sum(map(len, self.pending.values())) > _PENDING_BATCHES * self.global_batch:
            self._run(self.pending.pop(max(self.pending, key=lambda k: len(self.pending[k]))))

    def flush(self, stop: StopRequest) -> None:
        while self.pending and not stop.is_set():
            self._run(self.pending.pop(next(iter(self.pending))))

    def _run(self, entries: list[_Entry]) -> None:
        begin = time.perf_counter()
        try:
            rows = self.predict([entry.arrays for entry in entries])
        except ITEM_ERRORS as error:
            if len(entries) > 1:  # find the culprit: each item alone
                for entry in entries:
                    self._run([entry])
                return
            self.writer.failed_items(entries, f"model failed: {short_reason(error)}")
            return
        self.writer.results(entries, rows, (time.perf_counter() - begin) / len(entries))


class ReplicaPredictor:
    """Runs a signature on up to one global batch of rows, split over the strategy's replicas.

    The rows are padded to the full global batch with copies of the last row (so no replica is
    ever empty and the step is not retraced for a short batch); every row carries its position,
    so the outputs come back in input order whatever replica computed them, the padding dropped.
    """

    def __init__(self, model: SavedModelSignature, strategy: tf.distribute.Strategy, *, batch_size: int) -> None:
        self.model, self.strategy = model, strategy
        self.per_replica = batch_size
        self.global_batch = batch_size * strategy.num_replicas_in_sync
        self._step = tf.function(self._replica_step, reduce_retracing=True)

    def __call__(self, rows: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Outputs of the model for ``rows`` (at most one global batch of input dicts), in their order."""
        count, per_replica = len(rows), self.per_replica
        rows = list(rows) + [rows[-1]] * (self.global_batch - count)
        stacked = {name: np.stack([row[name] for row in rows]) for name in self.model.inputs}
        positions = np.full(self.global_batch, -1, np.int64)  # -1 marks padding rows
        positions[:count] = np.arange(count)

        def replica_values(context: tf.distribute.InputContext):
            part = slice(context.replica_id_in_sync_group * per_replica,
                         (context.replica_id_in_sync_group + 1) * per_replica)
            return {name: tf.constant(array[part]) for name, array in stacked.items()}, tf.constant(positions[part])

        values = self.strategy.experimental_distribute_values_from_function(replica_values)
        results = self.strategy.experimental_local_results(self._step(values))
        carried = np.concatenate([np.asarray(result[1]) for result in results])
        outputs = {name: np.concatenate([np.asarray(result[0][name]) for result in results])
                   for name in self.model.outputs}
        for name, array in outputs.items():
            if array.shape[:1] != carried.shape:
                raise InvalidInputError(f"model output {name!r} has {array.shape[0]} rows for a batch of "
                                        f"{carried.shape[0]}; every output must keep the batch dimension first")
        ordered: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
        for row, position in enumerate(carried):
            if position >= 0:
                ordered[position] = {name: array[row] for name, array in outputs.items()}
        return ordered

    def _replica_step(self, values):
        def replica(inputs, positions):
            return self.model.function(**inputs), tf.identity(positions)
        return self.strategy.run(replica, args=values)
