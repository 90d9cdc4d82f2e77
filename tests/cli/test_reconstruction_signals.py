"""SIGTERM and Ctrl+C sent to a real ``mcrgpu match`` process: best state saved, exit 143 or 130."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mcrgpu.mcr.convergence import load_convergence
from mcrgpu.mcr.microstructure_io import load_microstructure
from mcrgpu.mcr.synthetic import gaussian_random_structure

pytestmark = pytest.mark.slow  # real processes: seconds each


PLAIN_PROGRESS_EVERY_SECOND = "import mcrgpu.progress as p; p.LINE_EVERY_SECONDS = 1; from mcrgpu.cli import main; main()"
"""The command line with a progress line every second on a pipe (else the first comes after 30 s)."""


def start_match(tmp_path):
    structure = gaussian_random_structure((32, 32), volume_fractions=(0.6, 0.4), correlation_length=2.0, seed=3)
    np.save(tmp_path / "s.npy", structure.labels)
    command = [sys.executable, "-c", PLAIN_PROGRESS_EVERY_SECOND, "match", str(tmp_path / "s.npy"),
               "--add_dimension", "32", "--descriptor_types", "FFTCorrelations", "--limit_to", "4",
               "--max_iter", "1000000",
               "--tolerance", "0", "--data_folder", str(tmp_path / "out"), "--progress"]
    # started with SIGINT ignored, as a background job of a non-interactive shell is
    return subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def stop(process, signum, *, wait_for=None):
    """Send ``signum`` (once ``wait_for`` is in the output), return (exit code, output); kill on expiry."""
    output = []
    reader = threading.Thread(target=lambda: output.extend(iter(lambda: process.stdout.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while wait_for and wait_for not in "".join(output) and time.monotonic() < deadline \
                and process.poll() is None:
            time.sleep(0.1)
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    return process.returncode, "".join(output)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_after_progress_saves_the_best_state(tmp_path, signum, code):
    returncode, output = stop(start_match(tmp_path), signum, wait_for="loss=")
    name = signal.Signals(signum).name
    assert returncode == code, output
    assert f"Interrupted ({name}): the best state so far was saved." in output
    history = load_convergence(tmp_path / "out" / "s_convergence.npz")
    assert history.interrupted and history.stop_reason == name and 0 < history.n_evaluations < 1000000
    assert history.best_loss == min(history.losses)
    assert load_microstructure(tmp_path / "out" / "s_reconstruction.npy").shape == (32, 32, 32)
    assert (tmp_path / "out" / "s_checkpoint.npz").is_file()  # and its snapshots, until the run is finished


def test_a_signal_at_once_writes_nothing(tmp_path):
    returncode, output = stop(start_match(tmp_path), signal.SIGTERM)
    assert returncode in (-signal.SIGTERM, 143), output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("s_*"))


def run_in_process(*args):
    from click.testing import CliRunner

    from mcrgpu.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_sigterm_then_resume_ends_as_the_uninterrupted_run(tmp_path):
    """Adam with a fixed seed: stopped by SIGTERM at a random moment, resumed from the checkpoint, the
    run records the uninterrupted run's losses and ends with its result."""
    structure = gaussian_random_structure((32, 32), volume_fractions=(0.6, 0.4), correlation_length=2.0, seed=3)
    np.save(tmp_path / "s.npy", structure.labels)
    options = ["--descriptor_types", "FFTCorrelations", "--limit_to", "4", "--optimizer_type", "Adam",
               "--learning_rate", "0.05", "--seed", "0", "--max_iter", "1500", "--tolerance", "0"]
    straight = run_in_process("match", tmp_path / "s.npy", *options, "--data_folder", tmp_path / "straight",
                              "--no_progress")
    assert straight.exit_code == 0, straight.output
    command = [sys.executable, "-c", PLAIN_PROGRESS_EVERY_SECOND, "match", str(tmp_path / "s.npy"),
               *options, "--data_folder", str(tmp_path / "out"), "--progress"]
    process = subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    returncode, output = stop(process, signal.SIGTERM, wait_for="loss=")
    checkpoint = tmp_path / "out" / "s_checkpoint.npz"
    assert returncode == 143, output
    assert f"Continue with --resume {checkpoint}" in output
    stopped = load_convergence(tmp_path / "out" / "s_convergence.npz")
    assert 0 < stopped.n_evaluations < 1500
    again = run_in_process("match", tmp_path / "s.npy", "--data_folder", tmp_path / "out", "--max_iter", 500,
                           "--resume", checkpoint, "--no_progress")
    assert again.exit_code == 2 and "--max_iter 500 differs from the stored setting" in again.output
    resumed = run_in_process("match", tmp_path / "s.npy", "--data_folder", tmp_path / "out", "--resume", checkpoint,
                             "--no_progress")
    assert resumed.exit_code == 0, resumed.output
    expected = load_convergence(tmp_path / "straight" / "s_convergence.npz")
    result = load_convergence(tmp_path / "out" / "s_convergence.npz")
    np.testing.assert_allclose(result.losses, expected.losses, rtol=1e-5)
    assert np.array_equal(np.load(tmp_path / "out" / "s_reconstruction.npy"),
                          np.load(tmp_path / "straight" / "s_reconstruction.npy"))
    assert not checkpoint.exists()
