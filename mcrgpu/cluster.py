"""Clusters of worker processes: which description (TF_CONFIG, SLURM) applies, and this process's rank."""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from mcrgpu.errors import DeviceConfigError, InvalidInputError

__all__ = ["detect_cluster", "slurm_local_rank", "make_cluster_resolver", "worker_rank", "is_chief",
           "label_logs"]

_WORKER_TASK_TYPES = ("chief", "worker")


def _slurm_int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidInputError(f"{name}={value!r} is not a number; check the job's SLURM environment")
    return int(value)


def detect_cluster(environ: Mapping[str, str]) -> str | None:
    """Name the cluster description found in ``environ``: "tf_config", "slurm" or None.

    TF_CONFIG counts when it names more than one chief or worker task. SLURM counts only inside a
    job step that ``srun`` started with several tasks (SLURM_PROCID and SLURM_STEP_NUM_TASKS > 1):
    the batch script of ``sbatch --ntasks=4`` (SLURM_NTASKS set, no SLURM_PROCID) is one process
    and runs as one worker.
    """
    tf_config = environ.get("TF_CONFIG")
    if tf_config:
        try:
            parsed = json.loads(tf_config)
            cluster = parsed.get("cluster", {})
            n_tasks = sum(len(cluster.get(kind, ())) for kind in _WORKER_TASK_TYPES)
        except (ValueError, AttributeError, TypeError) as error:
            raise InvalidInputError(
                f"TF_CONFIG is not valid JSON of the form {{\"cluster\": {{\"worker\": [...]}}, "
                f"\"task\": {{...}}}}: {error}"
            ) from None
        if n_tasks > 1:
            return "tf_config"
    if "SLURM_PROCID" in environ:
        step_tasks = _slurm_int(environ, "SLURM_STEP_NUM_TASKS")
        _slurm_int(environ, "SLURM_PROCID")
        if step_tasks is not None and step_tasks > 1:
            return "slurm"
    return None


def slurm_local_rank(environ: Mapping[str, str]) -> int | None:
    """This task's index on its node (SLURM_LOCALID), or None outside a SLURM job step."""
    return _slurm_int(environ, "SLURM_LOCALID")


def make_cluster_resolver(kind: str, environ: Mapping[str, str], *, gpus_per_task: int):
    """The cluster resolver MultiWorkerMirroredStrategy needs for ``kind`` ("tf_config" or "slurm").

    For SLURM the hosts and ports come from SlurmClusterResolver, which is told not to call
    nvidia-smi and not to set CUDA_VISIBLE_DEVICES (mcrgpu selects GPUs itself, before TensorFlow
    starts); each worker then uses ``gpus_per_task`` GPUs (0 on CPU nodes).
    """
    import tensorflow as tf

    resolvers = tf.distribute.cluster_resolver
    if kind == "tf_config":
        return resolvers.TFConfigClusterResolver()
    n_tasks = _slurm_int(environ, "SLURM_STEP_NUM_TASKS") or 1
    try:
        # gpus_per_node/gpus_per_task only size SLURM's GPU bookkeeping here (auto_set_gpu=False):
        # one slot per task keeps it from calling nvidia-smi and from dropping tasks on CPU nodes.
        slurm = resolvers.SlurmClusterResolver(gpus_per_node=n_tasks, gpus_per_task=1, auto_set_gpu=False)
        spec = slurm.cluster_spec()
    except (RuntimeError, ValueError, KeyError) as error:
        raise DeviceConfigError(
            f"SLURM describes {n_tasks} tasks but its job step cannot be resolved ({error}); start the "
            "workers with srun, or pass --no_multi_worker to run as one worker"
        ) from None
    return resolvers.SimpleClusterResolver(spec, task_type=slurm.task_type, task_id=slurm.task_id,
                                           num_accelerators={"GPU": gpus_per_task}, rpc_layer="grpc")


def worker_rank(strategy: Any) -> tuple[int, int]:
    """(rank, number of workers) of this process; (0, 1) for a strategy of one worker.

    The chief is rank 0; workers follow in task order.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 0, 1
    spec = resolver.cluster_spec().as_dict()
    n_chiefs = len(spec.get("chief", ()))
    n_workers = n_chiefs + len(spec.get("worker", ()))
    if n_workers <= 1 or resolver.task_type not in _WORKER_TASK_TYPES:
        return 0, max(n_workers, 1)
    task_id = int(resolver.task_id or 0)
    return (task_id if resolver.task_type == "chief" else n_chiefs + task_id), n_workers


def is_chief(strategy: Any) -> bool:
    """True in the one process that writes files and shows progress (always True on one worker)."""
    return worker_rank(strategy)[0] == 0


class _RankFormatter(logging.Formatter):
    """Prefixes every line another formatter makes with the worker's rank."""

    def __init__(self, inner: logging.Formatter, prefix: str) -> None:
        super().__init__()
        self.inner = inner
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        return self.prefix + self.inner.format(record)


def label_logs(rank: int, n_workers: int, *, logger: logging.Logger | None = None) -> None:
    """Make the handlers of ``logger`` (default: the root logger) start each line with the rank."""
    prefix = f"[worker {rank}/{n_workers}] "
    for handler in (logger or logging.getLogger()).handlers:
        inner = handler.formatter or logging.Formatter()
        if isinstance(inner, _RankFormatter):
            inner = inner.inner
        handler.setFormatter(_RankFormatter(inner, prefix))
