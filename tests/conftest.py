"""Test set-up: split the CPU into logical devices once, before TensorFlow starts its runtime.

TensorFlow's device configuration is per process and fixed at first use, so every test that needs
several replicas takes a prefix of these devices (1, 2 or 3 replicas).
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

N_LOGICAL_CPUS = 3

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(N_LOGICAL_CPUS)]
)
assert len(tf.config.list_logical_devices("CPU")) == N_LOGICAL_CPUS  # starts the runtime: fixed now

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "microstructures"


def cpu_strategy(n_replicas: int) -> tf.distribute.Strategy:
    """A MirroredStrategy over the first ``n_replicas`` logical CPU devices (OneDevice for 1)."""
    devices = [device.name for device in tf.config.list_logical_devices("CPU")[:n_replicas]]
    if n_replicas == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}replicas")
def strategy(request):
    return cpu_strategy(request.param)


@pytest.fixture
def data_dir():
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared microstructures not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder, so default outputs (``results/``) never land in
    the repository or meet another test's files."""
    monkeypatch.chdir(tmp_path)
