"""``mcrgpu images ocr``: the JSON Lines records, exit 3 when an image failed, a usage error for a missing model."""

import json

import numpy as np
from click.testing import CliRunner

from mcrgpu.cli import main

from images.ocr_support import export_fakes, ink_page, save


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_ocr_writes_the_records_and_exits_3_when_an_image_failed(tmp_path):
    detector, recognizer = export_fakes(tmp_path / "models")
    page = save(tmp_path / "page.png", ink_page(2))
    tiny = save(tmp_path / "tiny.png", np.zeros((4, 4, 3), np.uint8))
    out = tmp_path / "text.jsonl"
    result = run("images", "ocr", page, tiny, "--detector", detector, "--recognizer", recognizer, "--out", out,
                 "--no_progress")
    assert result.exit_code == 3, result.output
    assert "1 images read (2 text lines), 1 failed" in result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [[line["text"] for line in record["lines"] or []] for record in records] == [["a", "a"], []]
    assert records[1]["error"].startswith("detector: image is 4x4 pixels")
    missing = run("images", "ocr", page, "--detector", tmp_path / "nowhere", "--out", out)
    assert missing.exit_code == 2 and "is not a SavedModel directory" in missing.output
