"""``mcrgpu compare`` through click's test runner, and what ``match`` prints at the end."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mcrgpu import known_descriptors
from mcrgpu.cli import main
from mcrgpu.cli.options import DESCRIPTOR_NAMES
from mcrgpu.mcr.convergence import load_convergence


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_shifted_copy_is_reported_with_its_shift(tmp_path):
    original = (np.random.default_rng(0).random((16, 16)) > 0.7).astype(np.int64)
    other = (np.random.default_rng(1).random((16, 16)) > 0.7).astype(np.int64)
    np.save(tmp_path / "a.npy", original)
    np.save(tmp_path / "copy.npy", np.roll(original, (2, 5), axis=(0, 1)))
    np.save(tmp_path / "other.npy", other)
    result = run("compare", tmp_path / "a.npy", tmp_path / "copy.npy", tmp_path / "other.npy",
                 "--limit_to", 4, "--json", tmp_path / "r.json", "--plot", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    assert "WARNING: copy.npy is a copy of the original (IoU 1.000 > 0.5 at shift [2, 5]" in result.output
    assert "WARNING: other.npy" not in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["files"]["results"][1].endswith("other.npy")
    assert report["results"][0]["copy"]["shift"] == [2, 5] and not report["results"][1]["is_copy"]
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_match_prints_and_stores_the_comparison(tmp_path):
    path = tmp_path / "s.npy"
    assert run("example", path, "--shape", 24, 24, "--seed", 2).exit_code == 0
    result = run("match", path, "--descriptor_types", "Correlations", "VolumeFractions", "--limit_to", 3,
                 "--max_iter", 20, "--data_folder", tmp_path, "--seed", 0, "--no_progress")
    assert result.exit_code == 0, result.output
    assert "per evaluation at steady state" in result.output
    assert "copy check IoU" in result.output
    comparison = load_convergence(tmp_path / "s_convergence.npz").comparison
    assert comparison["results"][0]["fraction_error_max"] < 0.01  # labels keep the fractions


def test_help_lists_the_descriptor_names():
    assert DESCRIPTOR_NAMES.split(", ") == known_descriptors()
    result = run("characterize", "--help")
    assert "TwoPointCorrelations" in result.output
