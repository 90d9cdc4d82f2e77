"""The built-in colour-transfer model and the model registry: statistics moved, seeds, precision, export."""

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.models import build_model, export_model, known_models
from mcrgpu.images.models.colour_transfer import lab_to_rgb, rgb_to_lab
from mcrgpu.images.runner import describe_saved_model


def photos():
    from skimage import data

    return (data.astronaut()[::8, ::8] / 255.0).astype(np.float32), (data.coffee()[::8, ::8] / 255.0).astype(np.float32)


def test_lab_round_trip_and_white():
    rgb = tf.random.stateless_uniform([100, 3], seed=[1, 2])
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)).numpy(), rgb.numpy(), atol=2e-4)
    np.testing.assert_allclose(rgb_to_lab(tf.ones([3]))[:1].numpy(), [100.0], atol=1e-3)


def test_full_strength_gives_the_reference_statistics():
    image, reference = photos()
    module = build_model("colour_transfer")
    module.strength_range = (1.0, 1.0)
    result = module.serve(image[None], reference[None], tf.constant([7], tf.int64))
    lab = rgb_to_lab(tf.cast(result["image"], tf.float32) / 255.0).numpy()[0]
    target = rgb_to_lab(tf.constant(reference)).numpy()
    # up to the few colours the sRGB gamut clips
    np.testing.assert_allclose(lab.mean(axis=(0, 1)), target.mean(axis=(0, 1)), atol=4)
    np.testing.assert_allclose(lab.std(axis=(0, 1)), target.std(axis=(0, 1)), rtol=0.15)


def test_strength_comes_from_the_seed_only():
    image, reference = photos()
    module = build_model("colour_transfer")
    batch = module.serve(np.stack([image, image]), np.stack([reference, reference]), tf.constant([3, 4], tf.int64))
    alone = module.serve(image[None], reference[None], tf.constant([4], tf.int64))
    assert 0.5 <= batch["strength"][0] < 1.0 and batch["strength"][0] != batch["strength"][1]
    np.testing.assert_array_equal(batch["image"][1], alone["image"][0])


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_reduced_precision_computes_close_to_float32(precision):
    image, reference = photos()
    seed = tf.constant([1], tf.int64)
    full_model, reduced_model = build_model("colour_transfer"), build_model("colour_transfer", precision=precision)
    full = full_model.serve(image[None], reference[None], seed)["image"].numpy()
    reduced = reduced_model.serve(image[None], reference[None], seed)
    difference = np.abs(reduced["image"].numpy().astype(int) - full.astype(int))
    assert reduced["image"].dtype == tf.uint8 and np.median(difference) <= 3


def test_export_and_registry(tmp_path):
    assert {"matcher", "colour_transfer"} <= set(known_models())
    path = export_model("colour_transfer", tmp_path / "ct", precision="mixed_bfloat16")
    signature = describe_saved_model(path)["serving_default"]
    assert sorted(signature["inputs"]) == ["image", "reference", "seed"]
    assert signature["inputs"]["image"].dtype == tf.float32 and signature["outputs"]["image"].dtype == tf.uint8
    with pytest.raises(InvalidInputError, match="holds a SavedModel already; give --overwrite"):
        export_model("colour_transfer", path)
    (path / "README.txt").write_text("the user's")
    assert export_model("colour_transfer", path, overwrite=True) == path  # the SavedModel's own parts replaced
    assert (path / "README.txt").read_text() == "the user's"
    assert describe_saved_model(path)["serving_default"]["outputs"]["image"].dtype == tf.uint8
    assert not [entry for entry in tmp_path.iterdir() if entry.name.startswith(".")]  # no staging left
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep")
    with pytest.raises(InvalidInputError, match="holds files \\(notes.txt\\) but no SavedModel"):
        export_model("colour_transfer", tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep"
    with pytest.raises(InvalidInputError, match="unknown model 'nope'; known models: colour_transfer, "):
        build_model("nope")
    with pytest.raises(InvalidInputError, match="precision must be one of"):
        build_model("colour_transfer", precision="mixed")
