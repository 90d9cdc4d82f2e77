"""OCR with the real PP-OCRv4 SavedModels on scikit-image's photographs: RapidOCR's strings and boxes, and
binning by text (the example rules file) with the same CSV on 1 and 3 devices."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcrgpu.images import bin_images

from conftest import cpu_strategy

EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "examples" / "text_rules.toml"
PHOTOS = ("page", "text", "astronaut", "coffee", "camera")
CROPS = {"text": np.s_[:, :344], "coffee": np.s_[:, 100:500]}
"""text and coffee are cropped to the detector sizes of page (736 x 1472) and astronaut (736 x 736): on three
devices images of one size share a step, which keeps the padding of short batches (and the test's time) small."""


@pytest.fixture(scope="module")
def binned(tmp_path_factory, text_models):
    """The five photographs binned by the example rules on one device: (folder, rules file, CSV rows)."""
    from skimage import data

    root = tmp_path_factory.mktemp("ocr_binning")
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()[CROPS.get(name, np.s_[:])]).save(root / f"{name}.png")
    detector, recognizer = text_models
    rules = root / "rules.toml"
    rules.write_text(EXAMPLE_RULES.read_text().replace('"models/text_detector"', json.dumps(str(detector)))
                     .replace('"models/text_recognizer"', json.dumps(str(recognizer))))
    summary = bin_images([root / f"{name}.png" for name in PHOTOS], rules, out=root / "1" / "bins.csv",
                         strategy=cpu_strategy(1), progress=False)
    assert summary.exit_code == 0, str(summary)
    return root, rules


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def ocr_records(root):
    lines = (root / "1" / "bins_scores" / "ocr.jsonl").read_text().splitlines()
    return {Path(record["image"]).stem: record for record in map(json.loads, lines)}


def test_text_bins_of_the_photographs_are_the_same_on_one_and_three_devices(binned):
    root, rules = binned
    rows = read_csv(root / "1" / "bins.csv")
    assert {Path(row["image"]).stem: row["bin"] for row in rows} == {
        "page": "about_coins", "text": "some_text", "astronaut": "other", "coffee": "other", "camera": "other"}
    page = next(row for row in rows if row["image"].endswith("page.png"))
    assert float(page["ocr.text_area"]) > 0.2 and page["ocr.text_lines"] == "5"
    summary = bin_images([root / f"{name}.png" for name in PHOTOS], rules, out=root / "3" / "bins.csv",
                         strategy=cpu_strategy(3), progress=False)
    assert summary.exit_code == 0
    assert (root / "3" / "bins.csv").read_text() == (root / "1" / "bins.csv").read_text()


def test_the_page_reads_as_rapidocr_reads_each_line_and_photographs_hold_no_text(binned):
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    from skimage import data

    records = ocr_records(binned[0])
    assert records["astronaut"]["lines"] == [] and records["coffee"]["lines"] == []
    lines = records["page"]["lines"]
    # RapidOCR recognises its lines in batches of 6 padded to the widest; one at a time, as mcrgpu does, it reads
    # the spaces that batching loses ("Region-basedsegmentation" batched)
    alone, _ = rapidocr.RapidOCR(rec_batch_num=1)(data.page(), use_cls=False)
    assert [line["text"] for line in lines] == [text for _, text, _ in alone]
    assert [line["text"] for line in lines][:2] == ["Region-based segmentation",
                                                    "Let us first determine markers of the coins and the"]
    np.testing.assert_allclose([line["box"] for line in lines], [box for box, _, _ in alone], atol=1.0)
    np.testing.assert_allclose([line["score"] for line in lines], [score for _, _, score in alone], atol=0.05)
