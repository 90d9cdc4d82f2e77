"""Bad input and unusable options end in one ``Error: ...`` line and exit code 2, before anything is written."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from click.testing import CliRunner

from mcrgpu.cli import COMMANDS, main
from mcrgpu.cli.options import error_message
from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.run_files import MAX_STEM_LENGTH, RunFiles


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_error_line(result, fragment):
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()[-1:]
    assert line.startswith("Error: ") and fragment in line, result.output
    assert "Traceback" not in result.output


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.npy"
    assert run("example", path, "--shape", 12, 12).exit_code == 0
    return path


def test_unwritable_and_overlong_outputs(tmp_path):
    assert_one_error_line(run("example", "/proc/x/y.npy"), "No such file or directory: '/proc/x'")
    assert_one_error_line(run("example", tmp_path / ("a" * 300 + ".npy")), "304 bytes long; at most 237")
    (tmp_path / "afile").write_text("")
    assert_one_error_line(run("example", tmp_path / "afile" / "ms.npy"), "Not a directory")


@pytest.mark.parametrize("information, fragment", [
    ("x/../../../../ESCAPED2", "contains a path separator"),
    ("..", "contains '..'"),
    ("a\nb", "contains a control character"),
    ("", "is empty"),
    ("x" * 200, f"at most {MAX_STEM_LENGTH} fit"),
])
def test_information_that_would_leave_the_data_folder_is_refused(sample, tmp_path, information, fragment):
    out = tmp_path / "results"
    assert_one_error_line(run("characterize", sample, "--information", information, "--data_folder", out), fragment)
    assert_one_error_line(run("match", sample, "--information", information, "--data_folder", out, "--max_iter", 1),
                          fragment)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sample.npy"]


def test_result_names_keep_plain_names():
    assert RunFiles.for_input("out", "dir/ms.v2.npy", "run-1.b").stem == "ms.v2_run-1.b"
    with pytest.raises(InvalidInputError, match="control character"):
        RunFiles.for_input("out", "ms\t1.npy")


def test_data_folder_under_a_file_is_refused_before_work(sample, tmp_path):
    (tmp_path / "afile").write_text("")
    assert_one_error_line(run("characterize", sample, "--data_folder", tmp_path / "afile" / "sub"),
                          "cannot be created: " + repr(str(tmp_path / "afile")) + " is a file")


def test_two_inputs_with_one_name_are_refused(sample, tmp_path):
    other = tmp_path / "other" / "sample.npy"
    other.parent.mkdir()
    other.write_bytes(sample.read_bytes())
    assert_one_error_line(run("characterize", sample, other, "--data_folder", tmp_path / "r"),
                          "would both write results named 'sample'")


@pytest.mark.parametrize("args, fragment", [
    (["--descriptor_weights", 1, 2], "--descriptor_weights gives 2 weight(s) (1 2) for 1 descriptor type(s)"),
    (["--initial_microstructure_file", "missing.npy"], "missing.npy does not exist"),
    (["--resume", "missing_convergence.npz"], "--resume 'missing_convergence.npz' is not a file"),
])
def test_match_refuses_options_before_writing_the_characterization(sample, tmp_path, args, fragment):
    out = tmp_path / "results"
    assert_one_error_line(run("match", sample, "--data_folder", out, "--max_iter", 2, "--no_progress", *args),
                          fragment)
    assert not out.exists()


def test_reconstruct_from_a_microstructure_file_is_one_line(sample, tmp_path):
    assert_one_error_line(run("reconstruct", "--descriptor_filename", sample, "--data_folder", tmp_path / "r"),
                          "is not a readable mcrgpu characterization")


def test_error_messages_speak_option_names_and_plain_numbers():
    command = COMMANDS and __import__("mcrgpu.cli.gpus", fromlist=["gpus"]).gpus
    message = error_message(InvalidInputError(
        "memory_limit_mb=5 and gpu_ids [np.float64(0.5), np.int64(2)] in results/gpu_ids_x.npz\nsecond line"), command)
    assert message == "--memory_limit 5 and --gpu_ids [0.5, 2] in results/gpu_ids_x.npz second line"


def test_os_and_memory_errors_become_messages_and_bugs_do_not():
    temp = OSError(28, "No space left on device", "/data/.ms_characterization.npz.0123456789ab.tmp")
    assert error_message(temp) == ("No space left on device: '/data/ms_characterization.npz'; check the path "
                                   "and that you may read or write there")
    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,64]")
    assert error_message(oom).startswith("Out of memory (OOM when allocating tensor with shape[64,64]); lower "
                                         "--slice_batch_size")
    assert error_message(ZeroDivisionError("bug")) is None


def test_group_help_lists_each_commands_own_summary():
    for name, (module, attribute, summary) in COMMANDS.items():
        command = getattr(__import__(module, fromlist=[attribute]), attribute)
        assert command.get_short_help_str(limit=200) == summary, name


def _python(code, *args, **environ):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **environ})


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["gpus", "--help"], ["example", "--help"],
                                  ["characterize", "--help"], ["view", "--help"], ["match", "--help"],
                                  ["reconstruct", "--help"], ["compare", "--help"]])
def test_help_and_version_do_not_import_tensorflow(args):
    code = ("import sys\nfrom mcrgpu.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nassert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    result = _python(code, *args)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout or "version" in result.stdout


@pytest.mark.slow
def test_real_process_prints_only_the_error_line():
    environ = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", "from mcrgpu.cli import main; main()", "gpus", "--cpu_devices", "2",
                             "--memory_limit", "100"], capture_output=True, text=True, timeout=180, env=environ)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: --memory_limit 100 applies to GPUs")


def test_file_after_a_list_of_names_is_an_input(sample, tmp_path):
    result = run("characterize", "--descriptor_types", "Correlations", "VolumeFractions", sample,
                 "--limit_to", 2, "--data_folder", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "sample_characterization.npz").is_file()
    assert result.output.splitlines()[-1].startswith(f"Wrote 1 file(s) to {tmp_path / 'r'} in ")


def test_the_help_lists_the_optimisers_and_losses_there_are():
    from mcrgpu.cli import options
    from mcrgpu.mcr.losses import LOSS_TYPES
    from mcrgpu.mcr.lbfgs import PAIR_PRECISIONS
    from mcrgpu.mcr.optimizers import OPTIMIZER_TYPES

    assert options.OPTIMIZER_TYPES == OPTIMIZER_TYPES and options.LOSS_TYPES == LOSS_TYPES
    assert options.PAIR_PRECISIONS == PAIR_PRECISIONS
