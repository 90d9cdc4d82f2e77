"""Existing results are kept unless --overwrite, and one data folder takes one writer per result name."""

import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from mcrgpu.cli import main
from mcrgpu.cli.result_files import result_lock
from mcrgpu.mcr.run_files import RunFiles


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def make_sample(tmp_path):
    path = tmp_path / "ms.npy"
    np.save(path, (np.random.default_rng(0).random((12, 12)) > 0.5).astype(np.int64))
    return path


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_characterize_keeps_an_existing_result_unless_overwrite(tmp_path):
    sample, out = make_sample(tmp_path), tmp_path / "out"
    args = ("characterize", sample, "--descriptor_types", "VolumeFractions", "--data_folder", out)
    assert run(*args).exit_code == 0
    written = out / "ms_characterization.npz"
    written.write_bytes(b"earlier result")
    assert_one_line_error(run(*args), str(written), "--overwrite")
    assert written.read_bytes() == b"earlier result"
    assert run(*args, "--overwrite").exit_code == 0
    assert written.read_bytes() != b"earlier result"


def test_match_and_reconstruct_refuse_before_any_work(tmp_path):
    sample, out = make_sample(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "ms_convergence.npz").write_bytes(b"earlier")
    result = run("match", sample, "--descriptor_types", "VolumeFractions", "--max_iter", 2, "--data_folder", out,
                 "--no_progress")
    assert_one_line_error(result, "ms_convergence.npz", "--overwrite")
    assert sorted(path.name for path in out.iterdir()) == ["ms_convergence.npz"]  # no characterization either

    other = tmp_path / "other"
    assert run("characterize", sample, "--descriptor_types", "VolumeFractions", "--data_folder", other).exit_code == 0
    (other / "ms_reconstruction.npy").write_bytes(b"earlier")
    args = ("reconstruct", "--descriptor_filename", other / "ms_characterization.npz", "--extent_x", 8,
            "--extent_y", 8, "--max_iter", 2, "--data_folder", other, "--no_progress")
    assert_one_line_error(run(*args), "ms_reconstruction.npy", "--overwrite")
    assert (other / "ms_reconstruction.npy").read_bytes() == b"earlier"
    assert not (other / "ms_convergence.npz").exists()
    assert run(*args, "--overwrite").exit_code == 0
    assert (other / "ms_convergence.npz").exists()


def test_a_second_process_writing_the_same_results_is_refused(tmp_path):
    sample, out = make_sample(tmp_path), tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom mcrgpu.cli.result_files import result_lock\n"
         "from mcrgpu.mcr.run_files import RunFiles\n"
         f"with result_lock([RunFiles({str(out)!r}, 'ms')]):\n    print('locked', flush=True)\n    sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run("characterize", sample, "--descriptor_types", "VolumeFractions", "--data_folder", out)
        assert_one_line_error(result, "Another mcrgpu process", "'ms'")
        assert not (out / "ms_characterization.npz").exists()
        other_name = run("characterize", sample, "--descriptor_types", "VolumeFractions", "--data_folder", out,
                         "--information", "b")
        assert other_name.exit_code == 0, other_name.output
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    assert sorted(path.name for path in out.iterdir()) == ["ms_b_characterization.npz"]  # lock files removed
    assert run("characterize", sample, "--descriptor_types", "VolumeFractions", "--data_folder", out).exit_code == 0


def test_the_lock_is_taken_again_after_release(tmp_path):
    with result_lock([RunFiles(tmp_path, "a"), RunFiles(tmp_path, "b")]):
        assert sorted(path.name for path in tmp_path.iterdir()) == [".a.lock", ".b.lock"]
    with result_lock([RunFiles(tmp_path, "a")]):
        pass
    assert list(tmp_path.iterdir()) == []
