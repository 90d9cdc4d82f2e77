"""Two worker processes on 127.0.0.1 (CPU, TF_CONFIG) give the single-process loss, gradient and
reconstruction, and only the chief writes files.

Each worker runs under a hard timeout that ends in SIGKILL: a worker whose peer never joins
blocks in MultiWorkerMirroredStrategy's constructor and ignores SIGTERM.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cpu_strategy
from multi_worker_job import loss_and_gradient, reconstruction

pytestmark = pytest.mark.slow  # real processes: seconds each

JOB = Path(__file__).with_name("multi_worker_job.py")
TIMEOUT_S = 240


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_workers(tmp_path: Path, n_workers: int) -> list[dict]:
    """Start ``n_workers`` workers, wait for all (SIGKILL after TIMEOUT_S), return their results."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(n_workers)]
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    environ.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=os.pathsep.join([str(JOB.parent), environ.get("PYTHONPATH", "")]))
    processes = []
    try:
        for index in range(n_workers):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes.append(subprocess.Popen(
                [sys.executable, str(JOB), str(tmp_path / f"worker{index}.npz")],
                env={**environ, "TF_CONFIG": json.dumps(config)}, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True))
        deadline = time.monotonic() + TIMEOUT_S
        outputs = [process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
                   for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()  # SIGKILL: a waiting worker ignores SIGTERM
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return [dict(np.load(tmp_path / f"worker{index}.npz")) for index in range(n_workers)]


def test_two_workers_equal_one_process(tmp_path):
    results = run_workers(tmp_path, 2)
    loss_1, gradient_1 = loss_and_gradient(cpu_strategy(1))
    assert [int(r["rank"]) for r in results] == [0, 1]
    assert [bool(r["chief"]) for r in results] == [True, False]
    for result in results:
        assert str(result["strategy"]) == "MultiWorkerMirroredStrategy"
        assert int(result["n_workers"]) == 2 and int(result["replicas"]) == 2
        np.testing.assert_allclose(result["loss"], loss_1, rtol=2e-6)
        np.testing.assert_allclose(result["gradient"], gradient_1, rtol=2e-6, atol=1e-6)
    # seed=None: both workers start from the chief's field and follow the single-process loss curve
    np.testing.assert_array_equal(results[1]["start"], results[0]["start"])
    _, losses_1 = reconstruction(cpu_strategy(1), tmp_path / "single", start=results[0]["start"])
    assert len(losses_1) >= 5
    for result in results:
        np.testing.assert_allclose(result["losses"], losses_1, rtol=1e-4)
    assert sorted(path.name for path in (tmp_path / "results0").iterdir()) == [
        "ms_convergence.npz", "ms_reconstruction.npy"]
    assert not (tmp_path / "results1").exists()
