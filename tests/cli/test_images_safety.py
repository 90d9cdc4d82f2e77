"""Image commands never resume over, skip as done, or replace what another input, model or option made."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from mcrgpu.cli import main

from images.binning_support import ScoreModel, write_rules
from images.binning_support import export as export_scorer
from images.support import GridModel, PairModel, export, write_photos
from images.tiling_models import ConvTanh, crash_on_the_fourth_tile_row
from images.tiling_models import export as export_tiler

pytestmark = pytest.mark.slow  # real processes: seconds each


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    return {"root": root, "photos": write_photos(root / "photos"), "tiler": export_tiler(ConvTanh(size=5), root / "t"),
            "pair": export(PairModel(), root / "pair"), "grid": export(GridModel(), root / "grid")}


def raster(seed, shape=(40, 30)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def tiles(setup, source, output, *more):
    return run("images", "tiles", source, output, "--model", setup["tiler"], "--tile_size", "8", "--no_progress", *more)


def test_tiles_do_not_skip_a_finished_output_made_from_another_raster(tmp_path, setup):
    np.save(tmp_path / "a.npy", raster(1))
    np.save(tmp_path / "b.npy", raster(2))
    assert tiles(setup, tmp_path / "a.npy", tmp_path / "out.npy").exit_code == 0
    made = np.load(tmp_path / "out.npy")
    result = tiles(setup, tmp_path / "b.npy", tmp_path / "out.npy")
    assert result.exit_code == 2
    assert f"was made with source {str(tmp_path / 'a.npy')!r}, this run has {str(tmp_path / 'b.npy')!r}" \
        in result.output and "rerun with --overwrite" in result.output
    assert np.array_equal(np.load(tmp_path / "out.npy"), made)
    np.save(tmp_path / "a.npy", raster(3))  # the same file, changed
    result = tiles(setup, tmp_path / "a.npy", tmp_path / "out.npy")
    assert result.exit_code == 2 and "as it was then" in result.output
    assert tiles(setup, tmp_path / "a.npy", tmp_path / "out.npy", "--tile_size", "16").exit_code == 2
    result = tiles(setup, tmp_path / "b.npy", tmp_path / "out.npy", "--overwrite")
    assert result.exit_code == 0 and "5 bands done, 0 skipped" in result.output
    assert tiles(setup, tmp_path / "b.npy", tmp_path / "out.npy").output.startswith("0 bands done, 5 skipped")


def test_tiles_do_not_resume_a_stopped_run_of_another_raster(tmp_path, setup, monkeypatch):
    np.save(tmp_path / "big.npy", raster(1, (80, 30)))
    np.save(tmp_path / "small.npy", raster(2, (16, 16)))
    crash_on_the_fourth_tile_row(monkeypatch)
    assert tiles(setup, tmp_path / "big.npy", tmp_path / "out.npy").exit_code != 0
    monkeypatch.undo()
    assert (tmp_path / ".out.partial.npy").is_file() and not (tmp_path / "out.npy").exists()
    result = tiles(setup, tmp_path / "small.npy", tmp_path / "out.npy")
    assert result.exit_code == 2 and "big.npy" in result.output and "small.npy" in result.output
    result = tiles(setup, tmp_path / "big.npy", tmp_path / "out.npy")  # the same raster resumes
    assert result.exit_code == 0 and "7 bands done, 3 skipped" in result.output
    module = ConvTanh(size=5)
    assert np.abs(np.load(tmp_path / "out.npy") - module.whole(np.load(tmp_path / "big.npy"))).max() < 1e-6


def test_tiles_never_write_over_the_input_nor_replace_other_files_without_overwrite(tmp_path, setup):
    np.save(tmp_path / "x.npy", raster(1))
    original = (tmp_path / "x.npy").read_bytes()
    for extra in ((), ("--overwrite",)):
        result = tiles(setup, tmp_path / "x.npy", tmp_path / "x.npy", *extra)
        assert result.exit_code == 2 and "is the input" in result.output
    assert (tmp_path / "x.npy").read_bytes() == original
    (tmp_path / "mine.npy").write_text("someone's file")
    result = tiles(setup, tmp_path / "x.npy", tmp_path / "mine.npy")
    assert result.exit_code == 2 and "was not written by an earlier run" in result.output
    assert (tmp_path / "mine.npy").read_text() == "someone's file"
    assert tiles(setup, tmp_path / "x.npy", tmp_path / "mine.npy", "--overwrite").exit_code == 0
    assert np.load(tmp_path / "mine.npy").shape == (40, 30)


def test_tiles_refuse_nan_in_the_raster(tmp_path, setup):
    image = raster(1)
    image[10:20, 5:15] = np.nan
    np.save(tmp_path / "holes.npy", image)
    result = tiles(setup, tmp_path / "holes.npy", tmp_path / "out.npy")
    assert result.exit_code == 2
    assert "holds NaN or infinite values" in result.output and "the first at row 10, column 5" in result.output
    assert not (tmp_path / "out.npy").exists()


def test_models_export_keeps_the_users_files(tmp_path):
    folder = tmp_path / "model"
    assert run("models", "export", "image_statistics", folder).exit_code == 0
    (folder / "README.txt").write_text("notes")
    pb = (folder / "saved_model.pb").read_bytes()
    result = run("models", "export", "image_statistics", folder)
    assert result.exit_code == 2 and "holds a SavedModel already; give --overwrite" in result.output
    assert (folder / "saved_model.pb").read_bytes() == pb
    result = run("models", "export", "image_statistics", folder, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (folder / "README.txt").read_text() == "notes" and (folder / "saved_model.pb").is_file()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep")
    result = run("models", "export", "image_statistics", tmp_path / "notes", "--overwrite")
    assert result.exit_code == 2 and "but no SavedModel" in result.output
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep"


def test_bin_does_not_reuse_scores_of_another_model(tmp_path, setup):
    export_scorer(ScoreModel(), tmp_path / "first")
    export_scorer(ScoreModel(fail_above=2.0), tmp_path / "second")  # same outputs, another graph
    rules = 'default = "rest"\n[models.s]\npath = "{}"\n[[bins]]\nname = "bright"\nwhen = ["s.mean > 0.48"]\n'
    photos = setup["root"] / "photos"
    out = tmp_path / "bins.csv"
    first = write_rules(tmp_path / "first.toml", rules.format("first"))
    assert run("images", "bin", photos, "--rules", first, "--out", out, "--no_progress").exit_code == 0
    csv_before = out.read_text()
    second = write_rules(tmp_path / "second.toml", rules.format("second"))
    result = run("images", "bin", photos, "--rules", second, "--out", out, "--no_progress")
    assert result.exit_code == 2 and "by the model" in result.output and "second" in result.output
    assert "Traceback" not in result.output and out.read_text() == csv_before
    result = run("images", "bin", photos, "--rules", second, "--out", out, "--no_progress", "--overwrite")
    assert result.exit_code == 0, result.output


def test_bin_does_not_replace_a_csv_it_did_not_write(tmp_path, setup):
    export_scorer(ScoreModel(), tmp_path / "scorer")
    rules = write_rules(tmp_path / "r.toml", 'default = "rest"\n[models.s]\npath = "scorer"\n'
                                             '[[bins]]\nname = "bright"\nwhen = ["s.mean > 0.48"]\n')
    (tmp_path / "table.csv").write_text("precious\n")
    result = run("images", "bin", setup["root"] / "photos", "--rules", rules, "--out", tmp_path / "table.csv",
                 "--no_progress")
    assert result.exit_code == 2 and "no earlier `images bin` run wrote it" in result.output
    assert (tmp_path / "table.csv").read_text() == "precious\n"


def grid(setup, out, *more):
    photos = setup["photos"]
    return run("images", "grid", "--model", setup["grid"], "--images", photos["astronaut"], photos["camera"],
               "--references", photos["coffee"], "--samples", "2", "--data_folder", out, "--no_progress", *more)


def test_grid_rerun_with_another_seed_is_refused(tmp_path, setup):
    out = tmp_path / "out"
    assert grid(setup, out, "--seed", "0").exit_code == 0
    before = {path.name: np.load(path) for path in out.glob("*.npy")}
    result = grid(setup, out, "--seed", "1")
    assert result.exit_code == 2 and "was made with seed 0, this run has 1" in result.output
    assert all(np.array_equal(np.load(out / name), array) for name, array in before.items())
    assert "0 done, 4 skipped" in grid(setup, out, "--seed", "0").output
    result = grid(setup, out, "--seed", "1", "--overwrite")
    assert result.exit_code == 0 and "4 done, 0 skipped" in result.output
    assert not any(np.array_equal(np.load(out / name), array) for name, array in before.items())


def test_grid_refuses_an_image_that_changed_since_its_result(tmp_path, setup):
    out = tmp_path / "out"
    image = tmp_path / "astronaut.png"
    image.write_bytes(setup["photos"]["astronaut"].read_bytes())
    command = ["images", "grid", "--model", setup["grid"], "--images", image, "--references",
               setup["photos"]["coffee"], "--data_folder", out, "--no_progress"]
    assert run(*command).exit_code == 0
    image.write_bytes(setup["photos"]["chelsea"].read_bytes())
    result = run(*command)
    assert result.exit_code == 2 and "'astronaut__coffee__0' with image" in result.output
    assert "as it was then" in result.output


def test_pairs_do_not_replace_files_their_manifest_does_not_list(tmp_path, setup):
    photos, out = setup["photos"], tmp_path / "out"
    out.mkdir()
    (out / "astronaut__coffee.npz").write_text("not mine")
    listing = tmp_path / "pairs.txt"
    listing.write_text(f"{photos['astronaut']} {photos['coffee']}\n")
    command = ["images", "pairs", "--model", setup["pair"], "--pairs", listing, "--data_folder", out, "--no_progress"]
    result = run(*command)
    assert result.exit_code == 2 and "astronaut__coffee.npz" in result.output and "--overwrite" in result.output
    assert (out / "astronaut__coffee.npz").read_text() == "not mine"
    assert run(*command, "--overwrite").exit_code == 0
    assert set(np.load(out / "astronaut__coffee.npz")) == {"keypoints0", "keypoints1", "matches0", "match_scores0"}


def test_pairs_never_write_over_an_input(tmp_path, setup):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a", "b", "a__b"):
        (folder / f"{name}.png").write_bytes(setup["photos"]["coffee"].read_bytes())
    (tmp_path / "pairs.txt").write_text("photos/a.png photos/b.png\nphotos/a__b.png photos/b.png\n")
    before = (folder / "a__b.png").read_bytes()
    result = run("images", "pairs", "--model", setup["pair"], "--pairs", tmp_path / "pairs.txt", "--visualize",
                 "--data_folder", folder, "--no_progress", "--overwrite")
    assert result.exit_code == 2 and "is the input" in result.output
    assert (folder / "a__b.png").read_bytes() == before


def stop_after_two_records(command, manifest, signum):
    """Run ``mcrgpu COMMAND`` in a process started with SIGINT ignored (as a background job is), send ``signum``
    once ``manifest`` holds two records; (exit code, output), the process killed if it outlives the timeouts."""
    process = subprocess.Popen([sys.executable, "-c", "from mcrgpu.cli import main; main()", *map(str, command)],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if manifest.is_file() and len(manifest.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, output


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_keeps_finished_items_and_prints_the_summary(tmp_path, setup, signum, code):
    model = export(GridModel(busy_iterations=300), tmp_path / "slow")
    photos, out = setup["photos"], tmp_path / "out"
    manifest = out / "grid_manifest.jsonl"
    returncode, output = stop_after_two_records(
        ["images", "grid", "--model", model, "--images", photos["astronaut"], "--references", photos["coffee"],
         "--samples", "400", "--data_folder", out, "--cpu_devices", "2", "--no_progress"], manifest, signum)
    assert returncode == code, output
    assert f"Interrupted ({signal.Signals(signum).name}): finishing the work in flight" in output
    assert "(interrupted: rerun to finish)" in output
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert 2 <= len(records) < 400 and all(r["status"] == "ok" and (out / r["output"]).is_file() for r in records)
    assert len(list(out.glob("*.npy"))) == len(records) and not list(out.glob(".*.tmp"))


def test_sigterm_stops_tiles_after_the_band_in_flight_and_a_rerun_finishes(tmp_path, setup):
    image = raster(4, (4000, 48))
    np.save(tmp_path / "long.npy", image)
    out = tmp_path / "out.npy"
    manifest = tmp_path / "out.npy.manifest.jsonl"
    command = ["images", "tiles", tmp_path / "long.npy", out, "--model", setup["tiler"], "--tile_size", "8",
               "--no_progress"]
    returncode, output = stop_after_two_records(command, manifest, signal.SIGTERM)
    assert returncode == 143, output
    assert "Interrupted (SIGTERM)" in output and "(interrupted: rerun to finish)" in output
    bands = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert 2 <= len(bands) < 500 and all(band["status"] == "ok" for band in bands)
    result = tiles(setup, tmp_path / "long.npy", out)
    assert result.exit_code == 0 and f"{500 - len(bands)} bands done, {len(bands)} skipped" in result.output
    assert np.abs(np.load(out) - ConvTanh(size=5).whole(image)).max() < 1e-6
