"""Reading text in images: a text detector and a text recognizer (SavedModels) under the strategy, a record per image."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.decode import read_image
from mcrgpu.images.inputs import distinct_images, refuse_input_as_output
from mcrgpu.images.manifest import last_records
from mcrgpu.images.ocr_inputs import (as_rgb255, crop_line, ctc_decode, detector_input, detector_layout,
                                      recognizer_input)
from mcrgpu.images.runner import Item, RunSummary, RunsSummary, SavedModelSignature, load_signature, run_items
from mcrgpu.images.text_boxes import DBSettings, text_area, text_boxes
from mcrgpu.io import atomic_write, atomic_write_text

__all__ = ["TEXT_SCORE", "OcrSummary", "run_ocr", "load_text_models", "ocr_folder"]

logger = logging.getLogger(__name__)

TEXT_SCORE = 0.5
"""Lines read with a lower score are dropped (RapidOCR's ``text_score``)."""
_DETECTOR_MANIFEST, _RECOGNIZER_MANIFEST = "detector_manifest.jsonl", "recognizer_manifest.jsonl"


@dataclass(frozen=True)
class OcrSummary(RunsSummary):
    """What OCR did: the JSON Lines file, images read and lines kept, images failed, one run per model."""

    out: Path
    folder: Path
    images: int
    lines: int
    failed: int
    runs: dict[str, RunSummary] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.interrupted:
            return f"interrupted: rerun to finish (work kept in {self.folder}); {self.out} not written"
        return (f"{self.images} images read ({self.lines} text lines), {self.failed} failed, models ran "
                f"{self.seconds:.1f} s; {self.out} (manifests in {self.folder})")


def ocr_folder(out: str | Path) -> Path:
    """The work folder of an OCR run beside its output: ``results/text.jsonl`` -> ``results/text_ocr``."""
    out = Path(out)
    return out.parent / f"{out.stem}_ocr"


def load_text_models(detector: str | Path, recognizer: str | Path | None, *,
                     strategy: tf.distribute.Strategy | None = None
                     ) -> tuple[SavedModelSignature, SavedModelSignature | None, np.ndarray | None]:
    """Load the detector and the recognizer (with its character list) under ``strategy.scope()``.

    Raises
    ------
    InvalidInputError, FileFormatError
        A folder is not a SavedModel of the kind ``mcrgpu models export text_detector`` /
        ``text_recognizer`` writes (inputs, outputs or the ``characters`` signature differ).
    """
    det = load_signature(detector, strategy=strategy)
    _require(det, "image", "probability", "text_detector")
    if recognizer is None:
        return det, None, None
    rec = load_signature(recognizer, strategy=strategy)
    _require(rec, "image", "probabilities", "text_recognizer")
    if "characters" not in rec.module.signatures:
        raise InvalidInputError(f"{rec.path} has no 'characters' signature (the recognizer's character list); "
                                "export it with `mcrgpu models export text_recognizer DIR`")
    characters = rec.module.signatures["characters"]()["characters"].numpy()
    characters = np.array([c.decode("utf-8") for c in characters], dtype=object)
    classes = rec.outputs["probabilities"].shape[-1]
    if classes is not None and classes != len(characters):
        raise InvalidInputError(f"{rec.path}: {classes} classes but {len(characters)} characters; export it again")
    return det, rec, characters


def _require(model: SavedModelSignature, input_name: str, output_name: str, kind: str) -> None:
    if list(model.inputs) != [input_name] or output_name not in model.outputs:
        raise InvalidInputError(f"{model.path} takes {list(model.inputs)} and gives {list(model.outputs)}; a {kind} "
                                f"takes {input_name!r} and gives {output_name!r} (`mcrgpu models export {kind} DIR`)")


def run_ocr(images: str | Path | Sequence[str | Path], detector: str | Path, recognizer: str | Path | None = None, *,
            out: str | Path, strategy: tf.distribute.Strategy | None = None, batch_size: int = 1,
            settings: DBSettings = DBSettings(), text_score: float = TEXT_SCORE, overwrite: bool = False,
            progress: bool = True) -> OcrSummary:
    """Find and read the text lines of every image; write one JSON record per image to ``out`` (JSON Lines).

    Two passes of :func:`~mcrgpu.images.runner.run_items` (batches split over the devices, one
    writer, a manifest each, failed items recorded and the others going on, finished items
    skipped on a rerun): the detector over the images, resized as RapidOCR resizes them, its
    probability maps turned into boxes (:func:`~mcrgpu.images.text_boxes.text_boxes`); then the
    recognizer over every box's upright crop (height 48), decoded greedily. A line's result
    depends on its image alone, not on batching or the number of devices. Lines scoring below
    ``text_score`` are dropped. ``out`` is written atomically when both passes are done; every
    record is ``{"image": path as listed, "height", "width", "lines": [{"box": [[x, y] x 4],
    "text", "score"}], "text_lines", "text_area", "error"}``, boxes clockwise from the top left
    in image pixels, lines in reading order. Without a recognizer, lines have ``text`` null and
    the box score. An image that failed has ``lines`` null and the reason in ``error``.

    Parameters
    ----------
    images : folder, file, or sequence of files and folders
        Images (PNG, JPEG, BMP, TIFF, .npy; grey, RGB, uint8, uint16 or float in [0, 1]); file
        names must be distinct.
    detector, recognizer : str or Path
        SavedModels from ``mcrgpu models export text_detector`` / ``text_recognizer``; without a
        recognizer only boxes are found.
    out : str or Path
        The JSON Lines file; work files and manifests go to :func:`ocr_folder` of it.
    strategy : tf.distribute.Strategy, optional
        Default: the current (default) strategy.
    batch_size : int
        Images (detector) or lines (recognizer) per device and step; images of one size and lines
        of one padded width share a batch.
    settings : DBSettings
        Detection thresholds.
    text_score : float
        Lowest score of a line kept.
    overwrite : bool
        Redo everything (default: resume; work made by other models, settings or files is refused).
    progress : bool
        Show a progress bar per pass.

    Returns
    -------
    OcrSummary
        ``exit_code`` 0, 3 (some images failed), 130 or 143 (Ctrl+C or SIGTERM: ``out`` not written).

    Raises
    ------
    InvalidInputError, FileFormatError
        Models of another kind, no images, two images of the same file name, ``out`` holding an
        image or not written by an earlier run (without ``overwrite``).

    Examples
    --------
    >>> run_ocr("scans", "models/text_detector", "models/text_recognizer", out="text.jsonl")  # doctest: +SKIP
    """
    paths = distinct_images(images)
    out, folder = Path(out), ocr_folder(out)
    refuse_input_as_output([out], paths)
    if out.exists() and not folder.is_dir() and not overwrite:
        raise InvalidInputError(f"{str(out)!r} exists and no earlier OCR run wrote it (there is no "
                                f"{folder.name} beside it); rerun with --overwrite to replace it, or choose another --out")
    det, rec, characters = load_text_models(detector, recognizer, strategy=strategy)
    read = functools.lru_cache(maxsize=4)(read_image)  # an image's lines come one after another
    options = dict(strategy=strategy, batch_size=batch_size, overwrite=overwrite, progress=progress, read=read)
    runs = {"detector": _detect(det, paths, folder, settings, **options)}
    if runs["detector"].interrupted or rec is None:
        return _finish(out, folder, paths, runs, text_score, recognizer=False)
    runs["recognizer"] = _recognize(rec, characters, paths, folder, **options)
    return _finish(out, folder, paths, runs, text_score, recognizer=True)


def _detect(model: SavedModelSignature, paths: list[Path], folder: Path, settings: DBSettings, read,
            **options) -> RunSummary:
    """Detector pass: ``folder/boxes/<image>.json`` per image (its size and boxes)."""
    items = [Item(f"detect:{path.name}", {"image": str(path)}, f"boxes/{path.name}.json") for path in paths]

    def prepare(item: Item):
        image = read(item.inputs["image"])
        layout = detector_layout(*image.shape[:2])
        return {"image": detector_input(as_rgb255(image), layout)}, {"image": image.shape}

    def write(item: Item, row: dict[str, np.ndarray], shapes) -> None:
        height, width = shapes["image"][:2]
        layout = detector_layout(height, width)
        boxes, scores = text_boxes(row["probability"], (height + 2 * layout.pad, width), settings=settings)
        boxes[:, :, 1] = np.clip(boxes[:, :, 1] - layout.pad, 0, height)
        record = {"height": int(height), "width": int(width),
                  "boxes": boxes.astype(int).tolist(), "scores": [round(float(s), 5) for s in scores]}
        atomic_write_text(folder / item.output, json.dumps(record) + "\n")

    logger.info("detecting text in %d images", len(items))
    return run_items(model, items, write, output_folder=folder, manifest_name=_DETECTOR_MANIFEST,
                     options={"task": "ocr detector", "db": asdict(settings)}, prepare=prepare, **options)


def _boxes_of(folder: Path, paths: list[Path]) -> dict[str, dict]:
    """The detector's finished results by image name."""
    done = {}
    for name, record in last_records(folder / _DETECTOR_MANIFEST).items():
        output = folder / (record.get("output") or "")
        if record.get("status") == "ok" and output.is_file():
            done[name.removeprefix("detect:")] = json.loads(output.read_text(encoding="utf-8"))
    return {path.name: done[path.name] for path in paths if path.name in done}


def _recognize(model: SavedModelSignature, characters: np.ndarray, paths: list[Path], folder: Path, read,
               **options) -> RunSummary:
    """Recognizer pass: ``folder/lines/<image>/<k>.json`` per box (its text and score)."""
    detected = _boxes_of(folder, paths)
    items = [Item(f"read:{path.name}#{k}", {"image": str(path), "box": box}, f"lines/{path.name}/{k:04d}.json")
             for path in paths if path.name in detected for k, box in enumerate(detected[path.name]["boxes"])]

    def prepare(item: Item):
        crop = crop_line(read(item.inputs["image"]), np.array(item.inputs["box"], float))
        return {"image": recognizer_input(crop)}, {}

    def write(item: Item, row: dict[str, np.ndarray], shapes) -> None:
        text, score = ctc_decode(row["probabilities"], characters)
        atomic_write_text(folder / item.output, json.dumps({"text": text, "score": round(score, 5)}) + "\n")

    logger.info("reading %d text lines", len(items))
    return run_items(model, items, write, output_folder=folder, manifest_name=_RECOGNIZER_MANIFEST,
                     options={"task": "ocr recognizer"}, prepare=prepare, **options)


def _finish(out: Path, folder: Path, paths: list[Path], runs: dict[str, RunSummary], text_score: float, *,
            recognizer: bool) -> OcrSummary:
    """Join both passes into one record per image and write ``out`` atomically (unless interrupted)."""
    if any(run.interrupted for run in runs.values()):
        return OcrSummary(out, folder, 0, 0, 0, runs)
    detected = _boxes_of(folder, paths)
    detector_records = last_records(folder / _DETECTOR_MANIFEST)
    line_records = last_records(folder / _RECOGNIZER_MANIFEST) if recognizer else {}
    records, lines_kept, failed = [], 0, 0
    for path in paths:
        record = {"image": str(path), "height": None, "width": None, "lines": None, "text_lines": None,
                  "text_area": None, "error": None}
        found = detected.get(path.name)
        if found is None:
            reason = (detector_records.get(f"detect:{path.name}") or {}).get("reason") or "not processed"
            record["error"] = f"detector: {reason}"
        else:
            record.update(height=found["height"], width=found["width"])
            lines, error = _lines(path.name, found, folder, line_records, text_score, recognizer=recognizer)
            if error:
                record["error"] = error
            else:
                shape = (found["height"], found["width"])
                record.update(lines=lines, text_lines=len(lines),
                              text_area=round(text_area(np.array([line["box"] for line in lines]), shape), 6))
                lines_kept += len(lines)
        failed += record["error"] is not None
        records.append(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as handle:
        handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return OcrSummary(out, folder, len(paths) - failed, lines_kept, failed, runs)


def _lines(name: str, found: dict, folder: Path, line_records: dict[str, dict], text_score: float, *,
           recognizer: bool) -> tuple[list[dict], str | None]:
    """The kept lines of one image, or the reason one of its lines failed."""
    if not recognizer:
        return [{"box": box, "text": None, "score": score} for box, score in zip(found["boxes"], found["scores"])], None
    lines = []
    for k, box in enumerate(found["boxes"]):
        record = line_records.get(f"read:{name}#{k}") or {}
        output = folder / f"lines/{name}/{k:04d}.json"
        if record.get("status") != "ok" or not output.is_file():
            return [], f"recognizer, line {k}: {record.get('reason') or 'not processed'}"
        read = json.loads(output.read_text(encoding="utf-8"))
        if read["score"] >= text_score:
            lines.append({"box": box, "text": read["text"], "score": read["score"]})
    return lines, None
