"""``mcrgpu images pairs|grid`` and ``mcrgpu models export|show``: outputs, exit codes and one-line errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mcrgpu.cli import main

from images.support import GridModel, PairModel, export, write_photos


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_images")
    photos = write_photos(root / "photos")
    return {"root": root, "photos": photos, "pair": export(PairModel(), root / "pair"),
            "grid": export(GridModel(), root / "grid")}


def manifest(folder, name):
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def test_pairs_from_a_list_with_a_bad_pair_exits_3(tmp_path, setup):
    photos = setup["photos"]
    listing = tmp_path / "pairs.txt"
    listing.write_text(f"{photos['astronaut']} {photos['coffee']}\n{photos['camera']} missing.png\n")
    out = tmp_path / "out"
    result = run("images", "pairs", "--model", setup["pair"], "--pairs", listing, "--data_folder", out,
                 "--cpu_devices", "2", "--visualize", "--no_progress")
    assert result.exit_code == 3, result.output
    assert "1 done, 0 skipped, 1 failed" in result.output
    assert (out / "astronaut__coffee.npz").is_file() and (out / "astronaut__coffee.png").is_file()
    records = manifest(out, "pairs_manifest.jsonl")
    records = {r["item"]: r for r in records}  # in the order items finished
    assert (records["astronaut__coffee"]["status"], records["camera__missing"]["status"]) == ("ok", "failed")
    assert "missing.png: no such file" in records["camera__missing"]["reason"]


def test_pairs_from_folders_and_output_names(tmp_path, setup):
    photos = setup["photos"]
    for side, names in (("left", ("astronaut", "camera")), ("right", ("astronaut", "camera"))):
        (tmp_path / side).mkdir()
        for name in names:
            (tmp_path / side / f"{name}.png").write_bytes(photos[name].read_bytes())
    result = run("images", "pairs", "--model", setup["pair"], "--folders", tmp_path / "left", tmp_path / "right",
                 "--data_folder", tmp_path / "out", "--output_names", "matches0=matches0", "--no_progress")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out" / "camera__camera.npz") as data:
        assert (data["matches0"] >= 0).all()  # an image matched with itself
    result = run("images", "pairs", "--model", setup["pair"], "--folders", tmp_path / "left", tmp_path / "right",
                 "--data_folder", tmp_path / "out", "--no_progress")
    assert result.exit_code == 0 and "0 done, 2 skipped, 0 failed" in result.output


@pytest.mark.parametrize("args, message", [
    (["--resize", "--pad"], "--resize and --pad contradict"),
    (["--size", "8", "8"], "--size applies to --resize or --pad"),
    (["--output_names", "matches"], "--output_names takes KEY=NAME"),
    (["--output_names", "matches0=nothing"], "has no output ['nothing']"),
])
def test_pairs_usage_errors_exit_2(tmp_path, setup, args, message):
    listing = tmp_path / "pairs.txt"
    listing.write_text(f"{setup['photos']['astronaut']},{setup['photos']['coffee']}\n")
    result = run("images", "pairs", "--model", setup["pair"], "--pairs", listing, "--data_folder", tmp_path, *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_pairs_needs_a_pair_model(tmp_path, setup):
    listing = tmp_path / "pairs.txt"
    listing.write_text(f"{setup['photos']['astronaut']},{setup['photos']['coffee']}\n")
    result = run("images", "pairs", "--model", setup["grid"], "--pairs", listing, "--data_folder", tmp_path)
    assert result.exit_code == 2 and "has no output" in result.output


def test_grid_writes_every_image_reference_sample(tmp_path, setup):
    photos = setup["photos"]
    result = run("images", "grid", "--model", setup["grid"], "--images", photos["astronaut"], photos["camera"],
                 "--references", photos["coffee"], "--samples", "2", "--data_folder", tmp_path, "--cpu_devices", "3",
                 "--batch_size", "2", "--no_progress")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == [
        "astronaut__coffee__0.npy", "astronaut__coffee__1.npy", "camera__coffee__0.npy", "camera__coffee__1.npy"]


def test_models_export_and_show(tmp_path):
    result = run("models", "export", "colour_transfer", tmp_path / "ct", "--precision", "mixed_bfloat16")
    assert result.exit_code == 0, result.output
    result = run("models", "show", tmp_path / "ct")
    assert result.exit_code == 0, result.output
    assert "signature_def['serving_default']:" in result.output
    assert "inputs['seed']: dtype int64, shape (-1)" in result.output
    assert "outputs['image']: dtype uint8, shape (-1, -1, -1, 3)" in result.output
    result = run("models", "export", "nope", tmp_path / "x")
    assert result.exit_code == 2 and "unknown model 'nope'" in result.output
