"""Image x reference jobs: one file per (image, reference, sample), seeded by the item, whatever the devices."""

import json

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.images import run_grid
from mcrgpu.images.grid import sample_seed

from conftest import cpu_strategy


def outputs(folder):
    return {path.name: np.load(path) for path in sorted(folder.glob("*.npy"))}


def test_one_two_three_replicas_write_identical_samples(tmp_path, photos, grid_model):
    images = [photos["astronaut"], photos["camera"]]  # two shapes: batched by shape
    references = [photos["coffee"], photos["chelsea"]]
    results = []
    for replicas in (1, 2, 3):
        folder = tmp_path / str(replicas)
        summary = run_grid(images, references, grid_model, output_folder=folder, samples=3,
                           strategy=cpu_strategy(replicas), batch_size=2, progress=False)
        assert (summary.done, summary.failed) == (12, 0)
        results.append(outputs(folder))
    names = sorted(results[0])
    assert names[:3] == ["astronaut__chelsea__0.npy", "astronaut__chelsea__1.npy", "astronaut__chelsea__2.npy"]
    assert len(names) == 12
    for other in results[1:]:
        assert sorted(other) == names
        for name in names:
            np.testing.assert_array_equal(other[name], results[0][name])
    samples = [results[0][f"astronaut__coffee__{k}.npy"] for k in range(3)]
    assert not np.array_equal(samples[0], samples[1]) and not np.array_equal(samples[1], samples[2])


def test_each_sample_is_its_items_result_whatever_the_order(tmp_path, photos, grid_model):
    # a sample computed alone equals the same sample computed among others, on another device count
    alone = tmp_path / "alone"
    run_grid([photos["camera"]], [photos["coffee"]], grid_model, output_folder=alone, samples=2,
             strategy=cpu_strategy(1), progress=False)
    many = tmp_path / "many"
    run_grid([photos["astronaut"], photos["camera"]], [photos["chelsea"], photos["coffee"]], grid_model,
             output_folder=many, samples=2, strategy=cpu_strategy(3), batch_size=1, progress=False)
    for k in range(2):
        name = f"camera__coffee__{k}.npy"
        np.testing.assert_array_equal(np.load(alone / name), np.load(many / name))
        assert np.load(alone / name).shape == (48, 64, 1)  # camera is grey


def test_seed_depends_on_image_reference_sample_and_base_seed():
    seeds = {sample_seed(i, r, k, seed=s) for i in ("a", "b") for r in ("a", "b") for k in range(3) for s in (0, 1)}
    assert len(seeds) == 24 and all(0 <= seed < 2 ** 63 for seed in seeds)
    assert sample_seed("a", "b", 0) == sample_seed("a", "b", 0)


def test_corrupt_reference_fails_its_items_only(tmp_path, photos, grid_model):
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"garbage")
    summary = run_grid([photos["astronaut"], photos["camera"]], [photos["coffee"], broken], grid_model,
                       output_folder=tmp_path / "out", strategy=cpu_strategy(2), progress=False)
    assert (summary.done, summary.failed, summary.exit_code) == (2, 2, 3)
    records = [json.loads(line) for line in (tmp_path / "out" / "grid_manifest.jsonl").read_text().splitlines()]
    assert sorted(r["item"] for r in records if r["status"] == "failed") == ["astronaut__broken__0", "camera__broken__0"]
    again = run_grid([photos["astronaut"], photos["camera"]], [photos["coffee"], broken], grid_model,
                     output_folder=tmp_path / "out", strategy=cpu_strategy(2), progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 2, 2)


def test_pad_crops_outputs_back_to_the_image(tmp_path, photos, grid_model):
    run_grid([photos["camera"]], [photos["coffee"]], grid_model, output_folder=tmp_path, size=(64, 80), mode="pad",
             progress=False)
    assert np.load(tmp_path / "camera__coffee__0.npy").shape == (48, 64, 1)


def test_png_output_for_uint8_images_and_output_choice(tmp_path, photos, grid_model):
    with pytest.raises(InvalidInputError, match="output_name 'nothing' is not an output"):
        run_grid([photos["camera"]], [photos["coffee"]], grid_model, output_folder=tmp_path, output_name="nothing")
    run_grid([photos["camera"]], [photos["coffee"]], grid_model, output_folder=tmp_path, output_name="offset",
             progress=False)
    assert np.load(tmp_path / "camera__coffee__0.npy").shape == ()


def test_one_item_on_three_replicas_leaves_two_replicas_padding_only(tmp_path, photos, grid_model):
    summary = run_grid([photos["camera"]], [photos["coffee"]], grid_model, output_folder=tmp_path / "three",
                       strategy=cpu_strategy(3), batch_size=4, progress=False)
    run_grid([photos["camera"]], [photos["coffee"]], grid_model, output_folder=tmp_path / "one",
             strategy=cpu_strategy(1), batch_size=4, progress=False)  # same rows per device: same bits
    assert (summary.done, summary.failed) == (1, 0)
    np.testing.assert_array_equal(np.load(tmp_path / "three" / "camera__coffee__0.npy"),
                                  np.load(tmp_path / "one" / "camera__coffee__0.npy"))
