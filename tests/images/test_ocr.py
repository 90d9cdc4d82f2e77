"""OCR: RapidOCR's sizes and crops, CTC decoding, and the task's records, bad inputs, resume and devices
(on stand-in models; the real PP-OCRv4 models are checked in test_ocr_models.py)."""

import json

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.ocr import run_ocr
from mcrgpu.images.ocr_inputs import crop_line, ctc_decode, detector_layout, recognizer_input

from conftest import cpu_strategy
from .ocr_support import export_fakes, ink_page, save
from .support import interrupted


def test_detector_sizes_are_rapidocrs():
    assert detector_layout(191, 384).size == (736, 1472) and detector_layout(191, 384).pad == 0  # skimage page()
    assert detector_layout(512, 512).size == (736, 736)
    assert detector_layout(1000, 800).size == (1000, 800)  # short side above 736: only rounded to 32
    wide = detector_layout(20, 400)  # enlarged to 32 x 608, letterboxed by 60 rows (38 of its own) to 152 x 608
    assert wide.pad == 38 and wide.size == (736, 2944)
    with pytest.raises(InvalidInputError, match=r"image is 5x300 pixels; OCR needs at least 8 pixels on each side"):
        detector_layout(5, 300)


def test_ctc_decoding_collapses_repeats_and_drops_blanks():
    characters = np.array(["", "a", "b", " "], dtype=object)
    steps = [1, 1, 0, 1, 2, 2, 3, 0]
    probabilities = np.full((len(steps), 4), 0.1)
    probabilities[np.arange(len(steps)), steps] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.9, 0.4, 0.9]
    text, score = ctc_decode(probabilities, characters)
    assert text == "aab " and score == pytest.approx(np.mean([0.9, 0.6, 0.5, 0.4]))
    assert ctc_decode(np.eye(4)[[0, 0]], characters) == ("", 0.0)


def test_crops_are_upright_and_padded_to_the_recognizer_height():
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    crop = crop_line(image, np.array([[10, 5], [50, 5], [50, 15], [10, 15]], float))
    np.testing.assert_allclose(crop, image[5:15, 10:50], atol=1e-6)  # an axis-aligned box is a plain slice
    tall = crop_line(image, np.array([[10, 0], [20, 0], [20, 30], [10, 30]], float))
    np.testing.assert_allclose(tall, np.rot90(image[0:30, 10:20]), atol=1e-6)  # a vertical line turned to read
    row = recognizer_input(np.zeros((10, 40, 3)))
    assert row.shape == (48, 320, 3) and (row[:, :192] == 0).all() and (row[:, 192:] == 127.5).all()
    assert recognizer_input(np.zeros((10, 100, 3))).shape == (48, 480, 3)  # 480 wide: a multiple of 32


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    return export_fakes(tmp_path_factory.mktemp("ocr_models"))


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Pages of black bars (lines), a blank one, grey 16-bit and float ones, and bad inputs."""
    folder = tmp_path_factory.mktemp("pages")
    paths = [save(folder / "two.png", ink_page(2)), save(folder / "blank.png", ink_page(0)),
             save(folder / "tiny.png", ink_page(0, height=6, width=40)),
             save(folder / "grey16.png", ink_page(3)[..., 0].astype(np.uint16) * 257),
             save(folder / "float.npy", ink_page(1).astype(np.float32) / 255),
             save(folder / "empty.npy", np.zeros((0, 10, 3), np.uint8))]
    (folder / "broken.png").write_bytes(b"not a png")
    return paths + [folder / "broken.png"]


def records(path):
    return {record["image"].rsplit("/", 1)[-1]: record for record in map(json.loads, path.read_text().splitlines())}


def test_each_image_gets_a_record_and_bad_ones_an_error_line(tmp_path, fakes, pages):
    summary = run_ocr(pages, *fakes, out=tmp_path / "text.jsonl", progress=False)
    assert (summary.images, summary.lines, summary.failed, summary.exit_code) == (4, 6, 3, 3)
    found = records(tmp_path / "text.jsonl")
    assert list(found) == [path.name for path in pages]
    two = found["two.png"]
    assert (two["height"], two["width"], two["text_lines"], two["error"]) == (120, 200, 2, None)
    # bars at rows 15..24 and 45..54, columns 20..139, each box grown around its bar
    assert [line["box"] for line in two["lines"]] == [[[12, 7], [148, 7], [148, 33], [12, 33]],
                                                      [[12, 37], [148, 37], [148, 63], [12, 63]]]
    assert [(line["text"], line["score"]) for line in two["lines"]] == [("a", 0.9), ("a", 0.9)]
    assert two["text_area"] == pytest.approx(2 * 137 * 27 / (120 * 200))
    assert found["blank.png"]["lines"] == [] and found["blank.png"]["text_area"] == 0.0
    assert found["grey16.png"]["text_lines"] == 3 and found["float.npy"]["text_lines"] == 1
    errors = {name: record["error"] for name, record in found.items() if record["error"]}
    assert set(errors) == {"tiny.png", "empty.npy", "broken.png"}
    assert errors["tiny.png"] == ("detector: image is 6x40 pixels; OCR needs at least 8 pixels on each side "
                                  "(no text line fits in less)")
    assert "is not an image" in errors["empty.npy"] and "not a readable image" in errors["broken.png"]
    assert all("\n" not in error for error in errors.values())


def test_the_same_records_on_one_and_three_devices_and_a_rerun_skips_everything(tmp_path, fakes, pages):
    texts = []
    for replicas in (1, 3):
        out = tmp_path / str(replicas) / "text.jsonl"
        run_ocr(pages[:2] + pages[3:5], *fakes, out=out, strategy=cpu_strategy(replicas), batch_size=2,
                progress=False)
        texts.append(out.read_text())
    assert texts[0] == texts[1]
    again = run_ocr(pages[:2] + pages[3:5], *fakes, out=tmp_path / "3" / "text.jsonl", strategy=cpu_strategy(3),
                    batch_size=2, progress=False)
    assert again.runs["detector"].skipped == 4 and again.runs["recognizer"].skipped == 6
    assert (tmp_path / "3" / "text.jsonl").read_text() == texts[0]


def test_boxes_only_without_a_recognizer_and_a_foreign_out_is_refused(tmp_path, fakes, pages):
    summary = run_ocr(pages[:1], fakes[0], out=tmp_path / "boxes.jsonl", progress=False)
    (two,) = records(tmp_path / "boxes.jsonl").values()
    assert summary.exit_code == 0 and [line["text"] for line in two["lines"]] == [None, None]
    assert all(0.5 <= line["score"] <= 1 for line in two["lines"])
    (tmp_path / "notes.jsonl").write_text("mine\n")
    with pytest.raises(InvalidInputError, match="exists and no earlier OCR run wrote it"):
        run_ocr(pages[:1], fakes[0], out=tmp_path / "notes.jsonl", progress=False)
    with pytest.raises(InvalidInputError, match="a text_detector takes 'image' and gives 'probability'"):
        run_ocr(pages[:1], fakes[1], out=tmp_path / "x.jsonl", progress=False)


def test_a_line_that_fails_fails_its_image_only(tmp_path, fakes, pages, monkeypatch):
    import mcrgpu.images.ocr as ocr

    real = ocr.crop_line

    def fragile(image, box):
        if box[0][1] > 30:  # the second bar of two.png
            raise InvalidInputError("this line cannot be cut out")
        return real(image, box)

    monkeypatch.setattr(ocr, "crop_line", fragile)
    summary = run_ocr([pages[0], pages[4]], *fakes, out=tmp_path / "text.jsonl", progress=False)
    found = records(tmp_path / "text.jsonl")
    assert (summary.failed, summary.exit_code) == (1, 3)
    assert found["two.png"]["lines"] is None
    assert found["two.png"]["error"] == "recognizer, line 1: this line cannot be cut out"
    assert found["float.npy"]["text_lines"] == 1 and found["float.npy"]["error"] is None


def test_an_interrupted_pass_writes_no_records_and_exits_130(tmp_path, fakes, pages, monkeypatch):
    import mcrgpu.images.ocr as ocr

    monkeypatch.setattr(ocr, "run_items", interrupted(ocr.run_items))
    summary = run_ocr(pages[:1], *fakes, out=tmp_path / "text.jsonl", progress=False)
    assert summary.exit_code == 130 and "rerun to finish" in str(summary)
    assert not (tmp_path / "text.jsonl").exists() and (tmp_path / "text_ocr" / "detector_manifest.jsonl").is_file()
    assert "recognizer" not in summary.runs
