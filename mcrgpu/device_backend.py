"""The TensorFlow device calls that setup_gpus makes, behind one seam so tests can fake GPUs."""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from mcrgpu.cluster import make_cluster_resolver

__all__ = ["TFDeviceBackend"]


class TFDeviceBackend:
    """The few TensorFlow device calls setup_gpus makes, behind one seam so tests can fake GPUs."""

    def physical_devices(self, device_type: str) -> list:
        return tf.config.list_physical_devices(device_type)

    def set_memory_growth(self, device, enable: bool) -> None:
        tf.config.experimental.set_memory_growth(device, enable)

    def get_memory_growth(self, device) -> bool:
        return bool(tf.config.experimental.get_memory_growth(device))

    def set_logical_devices(self, device, memory_limits: Sequence[int | None]) -> None:
        """Give ``device`` one logical device per entry (a memory limit in MiB, or None)."""
        configs = [tf.config.LogicalDeviceConfiguration(memory_limit=limit) for limit in memory_limits]
        tf.config.set_logical_device_configuration(device, configs)

    def get_logical_devices(self, device) -> list[int | None]:
        configs = tf.config.get_logical_device_configuration(device) or []
        return [config.memory_limit for config in configs]

    def usable_memory(self, index: int) -> int | None:
        """Bytes GPU ``index`` may use (its allocator's limit), None if TensorFlow lists no such GPU."""
        from tensorflow.python.client import device_lib  # the only API that reports a GPU's usable total

        for local in device_lib.list_local_devices():
            if local.device_type == "GPU" and (tf.DeviceSpec.from_string(local.name).device_index or 0) == index:
                return int(local.memory_limit)
        return None

    def memory_in_use(self, index: int) -> int:
        """Bytes TensorFlow holds on GPU ``index`` now (0 if it does not say)."""
        try:
            return int(tf.config.experimental.get_memory_info(f"GPU:{index}")["current"])
        except (ValueError, RuntimeError):
            return 0

    def set_visible_gpus(self, devices: list) -> None:
        tf.config.set_visible_devices(devices, "GPU")

    def visible_gpus(self) -> list:
        return tf.config.get_visible_devices("GPU")

    def logical_device_names(self, device_type: str) -> list[str]:
        return [device.name for device in tf.config.list_logical_devices(device_type)]

    def set_precision_policy(self, name: str) -> None:
        tf.keras.mixed_precision.set_global_policy(name)

    def precision_policy(self) -> str:
        return tf.keras.mixed_precision.global_policy().name

    def set_tf32(self, enabled: bool) -> None:
        """Allow (or forbid) TensorFloat-32 in float32 matmuls and convolutions; process-wide, any time."""
        tf.config.experimental.enable_tensor_float_32_execution(enabled)

    def tf32_enabled(self) -> bool:
        return bool(tf.config.experimental.tensor_float_32_execution_enabled())

    def built_with_cuda(self) -> bool:
        return tf.test.is_built_with_cuda()

    def make_strategy(self, kind: str, devices: list[str], *, environ: Mapping[str, str],
                      gpus_per_task: int = 0):
        """Build the strategy; a multi-worker one blocks until every worker has joined."""
        if kind.startswith("multi_worker_"):
            resolver = make_cluster_resolver(kind.removeprefix("multi_worker_"), environ,
                                             gpus_per_task=gpus_per_task)
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        if kind == "mirrored":
            return tf.distribute.MirroredStrategy(devices=devices)
        return tf.distribute.OneDeviceStrategy(devices[0])
