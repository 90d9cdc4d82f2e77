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

DATA_DIR = Path(os.environ.get("MCRGPU_TEST_DATA",
                               Path(__file__).resolve().parents[2] / "shared" / "data" / "microstructures"))
"""The real microstructures some tests read in place (the project's ``../shared/data``; never copied)."""

_needed_missing_data: list[str] = []


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
def data_dir(request):
    """The folder of real microstructures; a test that needs it is skipped, and named at the end of
    the run, where it is missing."""
    if not DATA_DIR.is_dir():
        _needed_missing_data.append(request.node.nodeid)
        pytest.skip(f"needs the shared microstructures, not found at {DATA_DIR}")
    return DATA_DIR


def pytest_terminal_summary(terminalreporter):
    """Say plainly that tests on real data did not run, instead of one skip among many."""
    if _needed_missing_data:
        terminalreporter.write_line(
            f"WARNING: {len(_needed_missing_data)} test(s) on real microstructures did not run: {DATA_DIR} is "
            "missing (the project's ../shared/data; or set MCRGPU_TEST_DATA to a folder holding them).",
            yellow=True, bold=True)


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder, so default outputs (``results/``) never land in
    the repository or meet another test's files."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def text_models(tmp_path_factory):
    """PP-OCRv4's text detector and recognizer exported once per session (the ``[ocr]`` extra, part of
    ``[test]``): ``(detector_dir, recognizer_dir)``, each checked against onnxruntime by its export."""
    from mcrgpu.images.models import export_model

    folder = tmp_path_factory.mktemp("text_models")
    return export_model("text_detector", folder / "text_detector"), export_model("text_recognizer",
                                                                                 folder / "text_recognizer")
