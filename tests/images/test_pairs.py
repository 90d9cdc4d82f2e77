"""Image-pair matching: outputs per pair in input order, the same on 1, 2 and 3 replicas, pair lists and folders."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images import match_pairs, read_pair_list
from mcrgpu.images.decode import read_image, to_model_input
from mcrgpu.images.pairs import PAIR_OUTPUTS, pairs_from_folders

from conftest import cpu_strategy


def some_pairs(photos):
    names = ["astronaut", "coffee", "chelsea", "camera"]
    return [(photos[a], photos[b]) for a, b in
            [(names[0], names[1]), (names[1], names[2]), (names[2], names[3]), (names[3], names[0]),
             (names[0], names[2])]]


def direct(pair_model, a, b):
    """The model called on one pair, without strategy or runner."""
    model = tf.saved_model.load(str(pair_model)).signatures["serving_default"]
    spec = tf.TensorSpec((None, None, None, None), tf.float32)
    inputs = {name: to_model_input(read_image(path), spec)[np.newaxis] for name, path in (("image0", a), ("image1", b))}
    return {key: value.numpy()[0] for key, value in model(**inputs).items()}


def load(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("replicas, batch_size", [(1, 2), (2, 1), (3, 1), (3, 2)])
def test_each_pair_gets_its_own_result(tmp_path, photos, pair_model, replicas, batch_size):
    # 5 pairs over 3 replicas leave replicas empty in the last batch: it is padded, the padding dropped
    pairs = some_pairs(photos)
    summary = match_pairs(pairs, pair_model, output_folder=tmp_path, strategy=cpu_strategy(replicas),
                          batch_size=batch_size, progress=False)
    assert (summary.done, summary.failed, summary.exit_code) == (5, 0, 0)
    for a, b in pairs:
        result = load(tmp_path / f"{a.stem}__{b.stem}.npz")
        assert sorted(result) == sorted(PAIR_OUTPUTS)
        expected = direct(pair_model, a, b)
        for key in PAIR_OUTPUTS:
            np.testing.assert_array_equal(result[key], expected[key])


def test_one_two_three_replicas_write_identical_files(tmp_path, photos, pair_model):
    pairs = some_pairs(photos)
    results = []
    for replicas in (1, 2, 3):
        folder = tmp_path / str(replicas)
        match_pairs(pairs, pair_model, output_folder=folder, strategy=cpu_strategy(replicas), batch_size=2,
                    progress=False)
        results.append({path.name: load(path) for path in sorted(folder.glob("*.npz"))})
    assert len(results[0]) == 5
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for name in other:
            for key in PAIR_OUTPUTS:
                np.testing.assert_array_equal(other[name][key], results[0][name][key])


def test_corrupt_image_fails_alone_and_rerun_skips_done_pairs(tmp_path, photos, pair_model):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    pairs = some_pairs(photos) + [(photos["astronaut"], broken)]
    out = tmp_path / "out"
    summary = match_pairs(pairs, pair_model, output_folder=out, strategy=cpu_strategy(2), batch_size=2, progress=False)
    assert (summary.done, summary.failed, summary.exit_code) == (5, 1, 3)
    records = [json.loads(line) for line in (out / "pairs_manifest.jsonl").read_text().splitlines()]
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["item"] for r in failed] == ["astronaut__broken"]
    assert "broken.png" in failed[0]["reason"] and failed[0]["output"] is None
    assert all((out / r["output"]).is_file() and r["seconds"] >= 0 for r in records if r["status"] == "ok")

    (out / "coffee__chelsea.npz").unlink()  # a lost output is redone
    again = match_pairs(pairs, pair_model, output_folder=out, strategy=cpu_strategy(2), progress=False)
    assert (again.done, again.skipped, again.failed) == (1, 4, 1)
    redone = match_pairs(pairs, pair_model, output_folder=out, overwrite=True, progress=False)
    assert (redone.done, redone.skipped, redone.failed) == (5, 0, 1)


def test_visualize_writes_a_picture_of_both_images(tmp_path, photos, pair_model):
    pair = (photos["astronaut"], photos["camera"])
    match_pairs([pair], pair_model, output_folder=tmp_path, visualize=True, progress=False)
    picture = read_image(tmp_path / "astronaut__camera.png")
    assert picture.shape == (64, 128, 3)


def test_resize_reports_keypoints_in_original_pixels(tmp_path, photos, pair_model):
    pair = (photos["astronaut"], photos["camera"])
    match_pairs([pair], pair_model, output_folder=tmp_path, size=(16, 16), mode="resize", progress=False)
    result = load(tmp_path / "astronaut__camera.npz")
    assert set(np.unique(result["keypoints0"] % 4)) <= {0.0}  # 64 px -> 16 px: factor 4 back
    assert result["keypoints1"][:, 1].max() < 48


def test_pair_list_file_and_folders(tmp_path, photos):
    listing = tmp_path / "pairs.csv"
    listing.write_text('image0,image1\n# a comment\nleft/a.png,right/a.png\n"b c.png","d.png"\n\ne.png\tf.png\n')
    assert read_pair_list(listing) == [(tmp_path / "left/a.png", tmp_path / "right/a.png"),
                                       (tmp_path / "b c.png", tmp_path / "d.png"),
                                       (tmp_path / "e.png", tmp_path / "f.png")]
    listing.write_text("only_one.png\n")
    with pytest.raises(InvalidInputError, match="line 1: expected two image paths"):
        read_pair_list(listing)
    for side in ("left", "right"):
        (tmp_path / side).mkdir()
        for name in ("x.png", "y.jpg", f"only_{side}.png"):
            (tmp_path / side / name).write_bytes(b"")
    assert pairs_from_folders(tmp_path / "left", tmp_path / "right") == [
        (tmp_path / "left/x.png", tmp_path / "right/x.png"), (tmp_path / "left/y.jpg", tmp_path / "right/y.jpg")]


def test_missing_output_names_are_mapped_or_refused(tmp_path, photos, pair_model):
    pair = [(photos["astronaut"], photos["coffee"])]
    with pytest.raises(InvalidInputError, match=r"has no output \['matches'\].*--output_names"):
        match_pairs(pair, pair_model, output_folder=tmp_path, output_names={"matches0": "matches"}, progress=False)
    with pytest.raises(InvalidInputError, match="not one of"):
        match_pairs(pair, pair_model, output_folder=tmp_path, output_names={"scores": "x"}, progress=False)
