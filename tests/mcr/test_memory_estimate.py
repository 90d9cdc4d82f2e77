"""The memory estimate of a reconstruction and the refusal, before any work, of shapes that cannot fit."""

import numpy as np
import pytest
from click.testing import CliRunner

from mcrgpu.cli import main
from mcrgpu.errors import InvalidInputError
from mcrgpu.gpu_manager import DeviceMemory
from mcrgpu.mcr import memory_estimate
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.descriptors import get_descriptor
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.memory_estimate import available_host_bytes, check_memory, estimate_memory

FFT = [get_descriptor("FFTCorrelations"), get_descriptor("Variation")]
GB = 10**9


def test_the_estimate_grows_with_the_field_and_the_pairs():
    small = estimate_memory((64, 64, 64), 1, FFT)
    large = estimate_memory((128, 128, 128), 1, FFT)
    assert large.field == 8 * small.field == 8 * 4 * 64**3
    assert large.optimizer == 8 * small.optimizer  # proportional to the field
    fewer = estimate_memory((128, 128, 128), 1, FFT, lbfgs_memory=3)
    half = estimate_memory((128, 128, 128), 1, FFT, lbfgs_precision="float16")
    assert large.optimizer - half.optimizer == 10 * large.field  # float16 pairs: 1 field per pair
    assert large.optimizer - fewer.optimizer == 7 * 2 * large.field  # 2 fields per pair (s and y)
    assert estimate_memory((128, 128, 128), 3, FFT).field == 3 * large.field


def test_the_slice_chunk_follows_slice_batch_size_and_replicas():
    auto = estimate_memory((256, 256, 256), 1, FFT)
    assert auto.slices == 16 * 8 * 4 * 256**2  # 32 MiB: the CPU budget's chunk
    assert estimate_memory((256, 256, 256), 1, FFT, slice_batch_size=4).slices == 4 * 8 * 4 * 256**2
    two = estimate_memory((256, 256, 256), 1, FFT, replicas=2)
    assert (two.slices, two.loss) == (2 * auto.slices, 2 * auto.loss)
    assert two.optimizer == auto.optimizer


def test_a_host_that_is_too_small_is_refused_with_the_estimate_and_the_fixes():
    estimate = estimate_memory((512, 512, 512), 1, FFT)
    with pytest.raises(InvalidInputError) as error:
        check_memory(estimate, (512, 512, 512), "/device:CPU:0", lbfgs_memory=10,
                     query=lambda device: DeviceMemory(None), host=lambda: 8 * GB)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"A 512x512x512 reconstruction needs about {estimate.total / 1e9:.1f} GB")
    assert "this host has 8.00 GB available" in message
    assert "--lbfgs_memory, 10 now" in message and "--lbfgs_precision float16" in message
    assert "smaller volume" in message
    assert "--slice_batch_size" not in message  # its chunk is 0.1 % of the estimate: no way out


def test_a_large_chunk_of_slices_is_named_as_a_way_out():
    correlations = [get_descriptor("Correlations")]
    estimate = estimate_memory((256, 256, 256), 1, correlations, lbfgs_memory=1, slice_batch_size=64)
    assert estimate.slices > estimate.optimizer
    with pytest.raises(InvalidInputError, match="a smaller --slice_batch_size"):
        check_memory(estimate, (256,) * 3, "/device:CPU:0", lbfgs_memory=1,
                     query=lambda device: DeviceMemory(None), host=lambda: GB)


def test_a_gpu_that_is_too_small_is_refused_by_its_free_memory():
    estimate = estimate_memory((256, 256, 256), 1, FFT)
    free_enough = estimate.device + 2**20
    used = 2 * GB
    with pytest.raises(InvalidInputError, match="/device:GPU:0 has"):
        check_memory(estimate, (256,) * 3, "/device:GPU:0", lbfgs_memory=10,
                     query=lambda device: DeviceMemory(free_enough + used - 2**21, used), host=lambda: 10**15)
    # the host copies are not on the GPU: a GPU with room for the device part fits, whatever the host has
    check_memory(estimate, (256,) * 3, "/device:GPU:0", lbfgs_memory=10,
                 query=lambda device: DeviceMemory(free_enough + used, used), host=lambda: 0)


def test_what_fits_passes_and_unknown_memory_passes():
    estimate = estimate_memory((64, 64, 64), 1, FFT)
    check_memory(estimate, (64,) * 3, "/device:CPU:0", lbfgs_memory=10,
                 query=lambda device: DeviceMemory(None), host=lambda: estimate.total)
    check_memory(estimate, (64,) * 3, "/device:CPU:0", lbfgs_memory=10,
                 query=lambda device: DeviceMemory(None), host=lambda: None)


def test_the_host_memory_is_read_from_the_system():
    available = available_host_bytes()
    assert available is None or 0 < available < 2**50


@pytest.fixture
def small_host(monkeypatch):
    """A host with 1 GB available: a 256^3 reconstruction does not fit, 8^3 does."""
    monkeypatch.setattr(memory_estimate, "available_host_bytes", lambda: GB)


@pytest.fixture(scope="module")
def target():
    structure = (np.random.default_rng(0).random((16, 16)) > 0.5).astype(int)
    return characterize(structure, ["FFTCorrelations"], limit_to=3)


def test_dmcr_refuses_before_any_work(small_host, target, monkeypatch):
    started = []
    monkeypatch.setattr(DMCR, "_initial_field", lambda *args: started.append(1))
    with pytest.raises(InvalidInputError, match="256x256x256 reconstruction needs about"):
        DMCR(["FFTCorrelations"], max_iter=2).reconstruct(target, (256, 256, 256))
    assert not started


def test_dmcr_runs_what_fits(small_host, target):
    history, result = DMCR(["FFTCorrelations"], max_iter=2, seed=0).reconstruct(target, (8, 8, 8))
    assert history.n_evaluations == 2 and result.shape == (8, 8, 8)


def test_the_cli_refuses_with_exit_2_one_line_and_writes_nothing(small_host, tmp_path):
    sample = tmp_path / "sample.npy"
    assert CliRunner().invoke(main, ["example", str(sample), "--shape", "16", "16", "--seed", "1"]).exit_code == 0
    characterized = tmp_path / "char"
    result = CliRunner().invoke(main, ["characterize", str(sample), "--descriptor_types", "FFTCorrelations",
                                       "--limit_to", "3", "--data_folder", str(characterized)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["reconstruct", "--descriptor_filename",
                                       str(characterized / "sample_characterization.npz"), "--extent_x", "256",
                                       "--extent_y", "256", "--extent_z", "256", "--lbfgs_memory", "4",
                                       "--data_folder", str(out), "--no_progress"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "256x256x256 reconstruction needs about" in errors[0]
    assert "--lbfgs_memory, 4 now" in errors[0]
    assert not out.exists() or not any(out.iterdir())

