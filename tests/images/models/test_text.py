"""PP-OCRv4's text detector and recognizer as SavedModels: agreement with onnxruntime on real
photographs (small sizes keep the tests fast), reading scikit-image's page as rapidocr does,
dynamic batch and sizes, two replicas, the character list, the licence notice, and the errors
of a missing extra, another precision and a failed export check."""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from skimage import data, transform

from conftest import cpu_strategy
from mcrgpu.cli import main
from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.images.models import build_model, export_model, text
from mcrgpu.images.models.text import TOLERANCE, onnx_model_path, onnxruntime_outputs

# rapidocr 1.4.4 on skimage.data.page() (its boxes and texts, read once): rows, columns, text
PAGE_LINES = [((12, 33), (7, 292), "Region-basedsegmentation"),
              ((47, 66), (4, 379), "Let us first determine markers of the coins and the"),
              ((64, 86), (3, 379), "background.These markers are pixels that we can label")]


def _rgb(image, height, width):
    """A photograph as RGB float32 0..255 at (height, width)."""
    image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image
    return (transform.resize(image, (height, width), anti_aliasing=True, preserve_range=True)).astype(np.float32)


def _line(rows, columns, width):
    """A line of page() at height 48 (aspect kept), right-padded to ``width`` with the grey rapidocr pads with."""
    crop = data.page()[rows[0]:rows[1], columns[0]:columns[1]]
    resized = _rgb(crop, 48, min(width, int(np.ceil(48 * crop.shape[1] / crop.shape[0]))))
    padded = np.full((48, width, 3), 127.5, np.float32)  # 0 after rapidocr's normalisation
    padded[:, :resized.shape[1]] = resized
    return padded


@pytest.fixture(scope="module")
def served(text_models):
    """The exported models loaded once: (detector, recognizer), each ``f(images) -> its output array``."""
    detector, recognizer = (tf.saved_model.load(str(folder)) for folder in text_models)
    return (lambda images: detector.signatures["serving_default"](image=tf.constant(images))["probability"].numpy(),
            lambda images: recognizer.signatures["serving_default"](image=tf.constant(images))[
                "probabilities"].numpy(),
            [c.decode() for c in recognizer.signatures["characters"]()["characters"].numpy()])


def _max_difference(name, serve, batches):
    return max(float(np.abs(serve(batch) - reference).max())
               for batch, reference in zip(batches, onnxruntime_outputs(name, batches)))


def _decode(probabilities, characters):
    """Greedy CTC: the best class per column, repeats merged, blanks (class 0) dropped."""
    best = probabilities.argmax(-1)
    kept = best[(best != 0) & np.concatenate([[True], best[1:] != best[:-1]])]
    return "".join(characters[k] for k in kept)


def test_detector_matches_onnxruntime_on_photographs_at_several_sizes(served):
    page, astronaut, coffee = _rgb(data.page(), 192, 384), _rgb(data.astronaut(), 160, 160), _rgb(
        data.coffee(), 128, 192)
    assert _max_difference("text_detector", served[0], [page[None], astronaut[None], coffee[None]]) < TOLERANCE


def test_detector_finds_the_text_of_the_page_and_none_on_a_blank_image(served):
    page = _rgb(data.page(), 192, 384)
    probability = served[0](np.stack([page, np.full_like(page, 200.0)]))
    assert probability.shape == (2, 192, 384)
    assert np.mean(probability[0, 21:26, 10:290] > 0.3) > 0.6  # the heading "Region-basedsegmentation"
    assert probability[0, 34:44].max() < 0.3  # the blank between the heading and the paragraph
    assert probability[1].max() < 0.3


def test_recognizer_matches_onnxruntime_at_the_widths_generic_converters_got_wrong(served):
    lines = [np.stack([_line(rows, columns, width) for rows, columns, _ in PAGE_LINES]) for width in (320, 960)]
    astronaut = _rgb(data.astronaut(), 48, 1024)[None]
    assert _max_difference("text_recognizer", served[1], lines + [astronaut]) < TOLERANCE


def test_recognizer_reads_the_page_lines_with_its_character_list(served):
    probabilities = served[1](np.stack([_line(rows, columns, 960) for rows, columns, _ in PAGE_LINES]))
    assert probabilities.shape == (3, 120, 6625)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    assert [_decode(p, served[2]) for p in probabilities] == [expected for _, _, expected in PAGE_LINES]


def test_character_list_is_rapidocrs_blank_metadata_lines_space(served):
    import onnx

    metadata = {p.key: p.value for p in onnx.load(onnx_model_path("text_recognizer")).metadata_props}
    assert len(served[2]) == 6625
    assert served[2] == [""] + metadata["character"].splitlines() + [" "]


@pytest.mark.parametrize("which, shapes", [(0, [(64, 96), (96, 64)]), (1, [(48, 64), (48, 200)])],
                         ids=["detector", "recognizer"])
def test_batch_of_two_equals_two_batches_of_one_at_two_sizes(served, which, shapes):
    rng = np.random.default_rng(which)
    for height, width in shapes:
        images = rng.uniform(0, 255, (2, height, width, 3)).astype(np.float32)
        together = served[which](images)
        assert together.shape[:2] == (2, height if which == 0 else width // 8)
        np.testing.assert_allclose(together, np.concatenate([served[which](images[:1]), served[which](images[1:])]),
                                   atol=1e-5)


def test_saved_models_carry_the_apache_licence_notice(text_models):
    for folder in text_models:
        notice = (folder / "assets" / "LICENSE-PP-OCRv4.txt").read_text()
        assert "Apache License, Version 2.0" in notice and "PaddlePaddle Authors" in notice
        assert "https://www.apache.org/licenses/LICENSE-2.0" in notice and "rapidocr-onnxruntime 1.4.4" in notice


def test_missing_extra_is_one_line_naming_the_install_command(monkeypatch, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "rapidocr_onnxruntime" else find_spec(name, *args))
    with pytest.raises(InvalidInputError, match="needs rapidocr-onnxruntime, onnx and onnxruntime: "
                                                   'pip install "mcrgpu\\[ocr\\]"'):
        build_model("text_recognizer")
    result = CliRunner().invoke(main, ["models", "export", "text_detector", str(tmp_path / "det")])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: the text_detector model needs rapidocr-onnxruntime, onnx and " \
                                    'onnxruntime: pip install "mcrgpu[ocr]"'
    assert not (tmp_path / "det").exists()


def test_other_precisions_are_refused():
    with pytest.raises(InvalidInputError, match="the text models compute in float32 only; received precision "
                                                "'bfloat16'"):
        build_model("text_detector", precision="mixed_bfloat16")


def test_export_that_disagrees_with_onnxruntime_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(text, "max_difference", lambda *args: 0.5)
    with pytest.raises(FileFormatError, match="the exported text_detector differs from onnxruntime by 0.5 \\(more "
                                              "than 0.001\\) on the check images; the model was not written"):
        export_model("text_detector", tmp_path / "det")
    assert list(tmp_path.iterdir()) == []


def test_the_interpreter_covers_exactly_the_operators_of_the_two_graphs():
    import onnx

    from mcrgpu.images.models.onnx_graph import SUPPORTED_OPS

    used = {node.op_type for name in ("text_detector", "text_recognizer")
            for node in onnx.load(onnx_model_path(name)).graph.node}
    assert used == set(SUPPORTED_OPS)


def test_detector_loaded_under_two_replicas_gives_the_single_device_map(text_models, served):
    strategy = cpu_strategy(2)
    with strategy.scope():
        serve = tf.saved_model.load(str(text_models[0])).signatures["serving_default"]
    images = _rgb(data.astronaut(), 64, 96)[None] * np.array([1.0, 0.5])[:, None, None, None].astype(np.float32)
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(images).batch(2))
    per_replica = strategy.run(lambda batch: serve(image=batch)["probability"], args=(next(iter(dataset)),))
    together = np.concatenate([part.numpy() for part in strategy.experimental_local_results(per_replica)])
    np.testing.assert_allclose(together, served[0](images), atol=1e-5)
