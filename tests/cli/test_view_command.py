"""``mcrgpu view`` on each kind of file, through click's test runner."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner


from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.characterization_files import save_characterization
from mcrgpu.cli import main
from mcrgpu.cli.view import default_output_path
from mcrgpu.mcr.convergence import ConvergenceData
from mcrgpu.mcr.microstructure_io import save_microstructure
from mcrgpu.mcr.microstructure import Microstructure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(main, ["view", *map(str, args)])


def assert_png_written(result, expected: Path):
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(expected)
    assert expected.read_bytes().startswith(PNG_SIGNATURE)


def labels():
    return (np.random.default_rng(0).random((16, 16)) < 0.5).astype(np.uint8)


def write_convergence(path):
    history = ConvergenceData()
    for loss in np.geomspace(1.0, 1e-3, 5):
        history.record(loss, lambda: np.zeros((4, 4, 1)), stage=0, snapshot_every=None)
    return history.save(path)


def test_microstructure_npy_gives_png_next_to_it(tmp_path):
    np.save(tmp_path / "ms.npy", labels())
    assert_png_written(run(tmp_path / "ms.npy"), tmp_path / "ms.png")


def test_png_microstructure_gives_view_png_and_output_option_is_honoured(tmp_path):
    save_microstructure(tmp_path / "ms.png", Microstructure(labels()))
    assert_png_written(run(tmp_path / "ms.png"), tmp_path / "ms_view.png")
    assert_png_written(run(tmp_path / "ms.png", "-o", tmp_path / "out" / "a.png"), tmp_path / "out" / "a.png")


def test_characterization_npz(tmp_path):
    ch = characterize(labels(), ["VolumeFractions", "TwoPointCorrelations"], limit_to=4)
    save_characterization(tmp_path / "ch.npz", ch)
    assert_png_written(run(tmp_path / "ch.npz"), tmp_path / "ch.png")


def test_convergence_history_npz(tmp_path):
    write_convergence(tmp_path / "history.npz")
    assert_png_written(run(tmp_path / "history.npz", "--output", tmp_path / "h.png"), tmp_path / "h.png")


def test_missing_file_exits_2_with_one_line(tmp_path):
    result = run(tmp_path / "nothing.npy")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: File {str(tmp_path / 'nothing.npy')!r} does not exist"]


@pytest.mark.parametrize("make, fragment", [
    (lambda p: np.savez(p / "f.npz", a=np.ones(3)), "is not a readable mcrgpu result file"),
    (lambda p: (p / "f.npz").write_bytes(b"not a zip"), "is not a readable mcrgpu result file"),
    (lambda p: np.savez(p / "f.npz", header=np.array('{"format": "other"}')),
     "neither an mcrgpu characterization nor a convergence"),
    (lambda p: (p / "f.txt").write_text("0 1\n1 0\n"), "unknown file kind '.txt'"),
    (lambda p: np.savez(p / "f.npz", header=np.array(json.dumps({"format": "mcrgpu-convergence"}))),
     "not a valid mcrgpu convergence file"),
], ids=["random-npz", "corrupt-npz", "foreign-header", "unknown-suffix", "convergence-without-loss"])
def test_unknown_or_broken_file_exits_2_with_one_line(tmp_path, make, fragment):
    make(tmp_path)
    (path,) = tmp_path.iterdir()
    result = run(path)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ") and fragment in line
    assert not path.with_suffix(".png").exists()


def test_default_output_path():
    assert default_output_path(Path("a/ms.tif")) == Path("a/ms.png")
    assert default_output_path(Path("a/ms.PNG")) == Path("a/ms_view.png")


def test_view_writes_a_microstructure_as_vti_for_paraview(tmp_path):
    volume = np.stack([labels()] * 3)
    save_microstructure(tmp_path / "volume.npy", Microstructure(volume))
    out = tmp_path / "volume.vti"
    result = run(tmp_path / "volume.npy", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    assert b'WholeExtent="0 3 0 16 0 16"' in out.read_bytes()[:400]


def test_view_refuses_vti_of_a_characterization(tmp_path):
    path = save_characterization(tmp_path / "c.npz", characterize(Microstructure(labels()), ["VolumeFractions"]))
    result = run(path, "-o", tmp_path / "c.vti")
    assert result.exit_code == 2 and "Only microstructures" in result.output
    assert not (tmp_path / "c.vti").exists()
