"""The shared options: how McrCommand reads multi-value options, the strategy commands get, positive integers."""

import click
import pytest
import tensorflow as tf
from click.testing import CliRunner

from mcrgpu.cli import main
from mcrgpu.cli.characterize import characterize_command
from mcrgpu.cli.example import example
from mcrgpu.cli.options import POSITIVE_INT, command_strategy
from mcrgpu.cli.reconstruct import match_command
from mcrgpu.gpu_manager import GPUConfig


def parsed(command: click.Command, *args) -> dict:
    """The values ``command`` receives for ``args`` (parsed only: nothing runs)."""
    return command.make_context(command.name, [str(a) for a in args]).params


@pytest.mark.parametrize("args, expected", [
    (["--descriptor_weights", -1, 2], (-1.0, 2.0)),                  # a negative value right after the flag
    (["--descriptor_weights", 1, -0.5], (1.0, -0.5)),                # ... and after another value
    (["--descriptor_weights", "-2E+1", "1e-3"], (-20.0, 0.001)),     # exponents
    (["--descriptor_weights", 1, "--descriptor_weights", -2], (1.0, -2.0)),  # the flag repeated
])
def test_negative_numbers_are_values_of_a_multi_value_option(args, expected):
    assert parsed(match_command, "ms.npy", *args)["descriptor_weights"] == expected


def test_negative_numbers_are_values_of_single_value_options():
    values = parsed(match_command, "ms.npy", "--seed", -3, "--threshold", -0.5, "--beta_1", "-1e-2")
    assert (values["seed"], values["threshold"], values["beta_1"]) == (-3, -0.5, -0.01)


@pytest.mark.parametrize("args", [
    ["--descriptor_types", "Correlations", "ms.npy"],
    ["--descriptor_types=Correlations", "ms.npy"],
    ["--descriptor_types", "Correlations", "Variation", "ms.npy", "--limit_to", 3],
    ["--descriptor_types", "Correlations", "Variation", "--limit_to", 3, "ms.npy"],
])
def test_a_file_after_a_list_of_names_is_the_input(args):
    values = parsed(characterize_command, *args)
    assert values["files"] == ("ms.npy",)
    assert values["descriptor_types"][0] == "Correlations" and "ms.npy" not in values["descriptor_types"]


def test_a_flag_with_equals_takes_further_values():
    values = parsed(characterize_command, "--descriptor_types=Correlations", "Variation", "a.npy")
    assert values["descriptor_types"] == ("Correlations", "Variation") and values["files"] == ("a.npy",)


def test_file_lists_keep_their_files_and_numbers_end_at_a_file():
    values = parsed(match_command, "--microstructure_filenames", "a.npy", "b.tif", "--gpu_ids", 0, 1)
    assert values["more_files"] == ("a.npy", "b.tif") and values["files"] == () and values["gpu_ids"] == (0, 1)
    assert parsed(example, "--shape", 8, 9, "out.npy") == {**parsed(example, "out.npy"), "shape": (8, 9)}


def test_double_dash_ends_a_list():
    values = parsed(match_command, "--gpu_ids", 0, 1, "--", "-odd.npy")
    assert values["gpu_ids"] == (0, 1) and values["files"] == ("-odd.npy",)


@pytest.mark.parametrize("args, fragment", [
    (["--descriptor_types", "--limit_to", 3], "Option '--descriptor_types' requires a value before --limit_to"),
    (["--gpu_ids", "--no_progress"], "Option '--gpu_ids' requires a value before --no_progress"),
    (["--descriptor_types", "Correlations", "-v"], "No such option '-v'"),
    (["--descriptor_weights", 1, "x"], "'x' is not a valid float"),
])
def test_malformed_lists_are_usage_errors(args, fragment):
    result = CliRunner().invoke(main, ["match", "ms.npy", *map(str, args)])
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_positive_int_refuses_zero_with_the_option_named():
    assert POSITIVE_INT.convert("3", None, None) == 3
    result = CliRunner().invoke(main, ["match", "ms.npy", "--max_iter", "0"])
    assert result.exit_code == 2 and "'--max_iter': 0 is not in the range x>=1" in result.output


def test_command_strategy_is_none_without_auto_configuration():
    assert command_strategy(None) is None


def test_command_strategy_builds_the_strategy_of_the_gpu_options():
    strategy = command_strategy(GPUConfig(cpu_devices=2))
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 2
