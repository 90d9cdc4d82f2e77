"""The runner: signature loading and checks, decoding into model inputs, failures isolated per item."""

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tifffile

from mcrgpu.errors import DeviceConfigError, FileFormatError, InvalidInputError
from mcrgpu.images.decode import read_image, to_model_input
from mcrgpu.images.runner import Item, describe_saved_model, load_signature, run_items

from conftest import cpu_strategy

from .support import export

ANY_IMAGE = tf.TensorSpec((None, None, None, None), tf.float32, "image")


class FixedBatch(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec((4, 8, 8, 1), tf.float32, name="image")])
    def serve(self, image):
        return {"mean": tf.reduce_mean(image, axis=[1, 2, 3])}


class Picky(tf.Module):
    """Fails (an op error) on images whose mean is above one half; 8x8 grey only."""

    @tf.function(input_signature=[tf.TensorSpec((None, 8, 8, 1), tf.float32, name="image")])
    def serve(self, image):
        mean = tf.reduce_mean(image, axis=[1, 2, 3])
        tf.debugging.assert_less(mean, 0.5, message="too bright")
        return {"mean": mean}


def test_a_fixed_batch_dimension_is_refused_with_the_fix(tmp_path):
    path = export(FixedBatch(), tmp_path / "fixed")
    with pytest.raises(InvalidInputError, match=r"input 'image' .* shape \(4, 8, 8, 1\).*batch.*must be None"):
        load_signature(path)
    with pytest.raises(FileFormatError, match="not a SavedModel"):
        load_signature(tmp_path)
    assert describe_saved_model(path)["serving_default"]["outputs"]["mean"].dtype == tf.float32


def test_unknown_signature_lists_the_known_ones(tmp_path):
    path = export(Picky(), tmp_path / "picky")
    with pytest.raises(InvalidInputError, match=r"signature 'serve' not in .*\['serving_default'\]"):
        load_signature(path, signature="serve")


@pytest.mark.parametrize("replicas", [1, 3])
def test_an_item_that_breaks_the_model_fails_alone(tmp_path, replicas):
    strategy = cpu_strategy(replicas)
    model = load_signature(export(Picky(), tmp_path / "picky"), strategy=strategy)
    values = [0.1, 0.9, 0.2, 0.3, np.full((4, 4), 0.1)]  # one too bright, one of the wrong size
    items = [Item(f"item{i}", {"image": np.full((8, 8), v) if np.isscalar(v) else v}, f"item{i}.npy")
             for i, v in enumerate(values)]
    written = {}

    def write(item, outputs, shapes):
        written[item.name] = float(outputs["mean"])

    summary = run_items(model, items, write, output_folder=tmp_path / "out", manifest_name="m.jsonl",
                        strategy=strategy, batch_size=2, progress=False)
    assert (summary.done, summary.failed) == (3, 2)
    assert written == pytest.approx({"item0": 0.1, "item2": 0.2, "item3": 0.3})
    manifest = (tmp_path / "out" / "m.jsonl").read_text()
    assert "too bright" in manifest and "takes 8x8; use --resize or --pad" in manifest


def test_items_must_be_unique_and_complete(tmp_path):
    model = load_signature(export(Picky(), tmp_path / "picky"))
    item = Item("a", {"image": np.zeros((8, 8))}, "a.npy")
    with pytest.raises(InvalidInputError, match="'a' occurs more than once"):
        run_items(model, [item, item], print, output_folder=tmp_path, manifest_name="m.jsonl")
    with pytest.raises(InvalidInputError, match=r"no value for the model inputs \['image'\]"):
        run_items(model, [Item("b", {}, "b.npy")], print, output_folder=tmp_path, manifest_name="m.jsonl")


def test_read_image_formats(tmp_path):
    from PIL import Image

    rgb = (np.arange(6 * 5 * 3) % 256).astype(np.uint8).reshape(6, 5, 3)
    for suffix in (".png", ".bmp"):
        Image.fromarray(rgb).save(tmp_path / f"a{suffix}")
        np.testing.assert_array_equal(read_image(tmp_path / f"a{suffix}"), rgb)
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    assert read_image(tmp_path / "a.jpg").shape == (6, 5, 3)
    tifffile.imwrite(tmp_path / "a.tif", rgb.astype(np.uint16) * 257)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), rgb.astype(np.uint16) * 257)
    np.save(tmp_path / "a.npy", rgb[..., 0].astype(np.float32) / 255)
    assert read_image(tmp_path / "a.npy").shape == (6, 5, 1)
    np.save(tmp_path / "objects.npy", np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="never loads"):
        read_image(tmp_path / "objects.npy")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 broken")
    with pytest.raises(FileFormatError, match="bad.tif"):
        read_image(tmp_path / "bad.tif")
    with pytest.raises(FileFormatError, match="unknown image kind '.gif'"):
        read_image(tmp_path / "a.gif")


def test_model_input_scaling_channels_and_fitting():
    grey16 = np.full((4, 6, 1), 65535, np.uint16)
    np.testing.assert_array_equal(to_model_input(grey16, ANY_IMAGE), np.ones((4, 6, 1), np.float32))
    rgba = np.zeros((4, 6, 4), np.uint8)
    assert to_model_input(rgba, ANY_IMAGE).shape == (4, 6, 3)
    rgb_spec = tf.TensorSpec((None, 8, 8, 3), tf.float32, "image")
    assert to_model_input(grey16, rgb_spec, mode="resize").shape == (8, 8, 3)
    padded = to_model_input(grey16, rgb_spec, mode="pad")
    assert padded.shape == (8, 8, 3) and padded[:4, :6].min() == 1 and padded[4:].max() == 0
    with pytest.raises(InvalidInputError, match="takes 8x8; use --resize or --pad"):
        to_model_input(grey16, rgb_spec)
    with pytest.raises(InvalidInputError, match="needs a size.*--size H W"):
        to_model_input(grey16, ANY_IMAGE, mode="resize")
    grey_spec = tf.TensorSpec((None, None, None, 1), tf.float32, "image")
    luma = to_model_input(np.array([[[255, 0, 0]]], np.uint8), grey_spec)
    assert luma.shape == (1, 1, 1) and luma[0, 0, 0] == pytest.approx(0.299, abs=0.005)


def test_a_strategy_over_several_workers_is_refused(tmp_path):
    model = load_signature(export(Picky(), tmp_path / "picky"))
    cluster = tf.train.ClusterSpec({"worker": ["localhost:1", "localhost:2"]})
    two_workers = SimpleNamespace(cluster_resolver=SimpleNamespace(cluster_spec=lambda: cluster))
    with pytest.raises(DeviceConfigError, match="spans 2 workers"):
        run_items(model, [], print, output_folder=tmp_path, manifest_name="m.jsonl", strategy=two_workers)


def test_an_item_whose_writing_fails_is_recorded_and_the_rest_written(tmp_path):
    strategy = cpu_strategy(2)
    model = load_signature(export(Picky(), tmp_path / "picky"), strategy=strategy)
    items = [Item(f"item{i}", {"image": np.full((8, 8), 0.1 * i)}, f"item{i}.npy") for i in range(5)]
    written = []

    def write(item, outputs, shapes):
        if item.name == "item2":
            raise OSError("disk says no")
        written.append(item.name)

    summary = run_items(model, items, write, output_folder=tmp_path, manifest_name="m.jsonl", strategy=strategy,
                        progress=False)
    assert (summary.done, summary.failed, sorted(written)) == (4, 1, ["item0", "item1", "item3", "item4"])
    assert "writing failed: disk says no" in (tmp_path / "m.jsonl").read_text()
