"""Binning images: several SavedModels score every image, rules over their scalar outputs sort the images into bins."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.binning_rules import OCR_OUTPUTS, BinningRules, OcrModelSpec, assign_bins, read_rules
from mcrgpu.images.inputs import distinct_images, refuse_input_as_output
from mcrgpu.images.manifest import finished_items
from mcrgpu.images.ocr import OcrSummary, run_ocr
from mcrgpu.images.runner import Item, RunSummary, RunsSummary, SavedModelSignature, load_signature, run_items
from mcrgpu.io import atomic_write, atomic_write_text

__all__ = ["BinningSummary", "bin_images", "scalar_outputs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinningSummary(RunsSummary):
    """What binning did: images per bin, images without a bin (a model failed on them), one run per model."""

    csv: Path
    scores_folder: Path
    bins: dict[str, int]
    failed: int
    runs: dict[str, RunSummary | OcrSummary] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.interrupted:
            return f"interrupted: rerun to finish (scores kept in {self.scores_folder}); no CSV written"
        counts = ", ".join(f"{name} {count}" for name, count in self.bins.items())
        return (f"{sum(self.bins.values())} images binned ({counts}), {self.failed} failed, models ran "
                f"{self.seconds:.1f} s; {self.csv} (manifests in {self.scores_folder})")


def scalar_outputs(model: SavedModelSignature) -> list[str]:
    """Outputs with one value per image: shape (B,) or (B, 1), numeric."""
    return [name for name, spec in model.outputs.items()
            if (spec.dtype.is_floating or spec.dtype.is_integer or spec.dtype == tf.bool)
            and (spec.shape.rank == 1 or (spec.shape.rank == 2 and spec.shape[1] == 1))]


def bin_images(images: str | Path | Sequence[str | Path], rules: str | Path | BinningRules, *, out: str | Path,
               strategy: tf.distribute.Strategy | None = None, batch_size: int = 1,
               bin_folders: str | Path | None = None, copy: bool = False, overwrite: bool = False,
               progress: bool = True) -> BinningSummary:
    """Score every image with every model of ``rules``, sort the images into bins, write a CSV.

    Each model is loaded once, under ``strategy.scope()``, and run over all images by
    :func:`~mcrgpu.images.runner.run_items` (batches split over the devices, padded last batch,
    one manifest per model, failed items recorded and skipped, finished ones skipped on a rerun).
    The scalar outputs of every image are kept in ``<out stem>_scores/<model>/<image>.json``.
    An OCR model of the rules (a text detector, optionally a recognizer) runs through
    :func:`~mcrgpu.images.ocr.run_ocr` into ``<out stem>_scores/<model>.jsonl`` and gives
    ``text_area``, ``text_lines`` and, with a recognizer, ``text`` (its lines joined by newlines,
    for ``contains`` / ``matches`` conditions).
    When every model has run, the bins are assigned over the whole set at once
    (:func:`~mcrgpu.images.binning_rules.assign_bins`), so ratios and results do not depend on
    the number of devices, and the CSV is written atomically: ``image`` (the path as listed),
    ``MODEL.OUTPUT`` for every scalar output of every model, ``bin``. An image on which a model
    failed gets no row (its reason is in that model's manifest); the others go on.

    Parameters
    ----------
    images : folder, file, or sequence of files and folders
        Images (PNG, JPEG, BMP, TIFF, .npy); a folder gives its images sorted by name. File names
        must be distinct: they name the items.
    rules : str, Path or BinningRules
        A rules file (TOML or JSON, see :func:`~mcrgpu.images.binning_rules.read_rules`).
    out : str or Path
        The CSV to write.
    strategy : tf.distribute.Strategy, optional
        Default: the current (default) strategy.
    batch_size : int
        Images per device and step.
    bin_folders : str or Path, optional
        Also make ``bin_folders/<bin>/<image file name>`` for every image: a symbolic link, or a
        copy with ``copy=True``. Entries of the same images left in other bins by an earlier run
        are removed.
    copy : bool
        Copy the files into the bin folders instead of linking them.
    overwrite : bool
        Score again images a previous run scored, and replace ``out`` even if no earlier run wrote
        it (default: reuse scores made by the same model file, options and image files; refuse
        scores made otherwise).
    progress : bool
        Show a progress bar per model.

    Returns
    -------
    BinningSummary
        ``exit_code`` 0, 3 (some images failed), 130 or 143 (Ctrl+C or SIGTERM: no CSV written; rerun).

    Raises
    ------
    InvalidInputError, FileFormatError
        Malformed rules, a model that is not a SavedModel, takes other than one image input, or
        lacks an output the rules name; no images; two images with the same file name; ``out``
        or ``bin_folders`` holding an image; ``out`` not written by an earlier run (without
        ``overwrite``); cached scores made by another model or from other files.

    Examples
    --------
    >>> bin_images("photos", "rules.toml", out="bins.csv")  # doctest: +SKIP
    """
    if not isinstance(rules, BinningRules):
        rules = read_rules(rules)
    paths = distinct_images(images)
    out = Path(out)
    folder = out.parent / f"{out.stem}_scores"
    _check_outputs(out, folder, paths, bin_folders, overwrite=overwrite)
    models = {name: spec if isinstance(spec, OcrModelSpec) else _load(spec, strategy)
              for name, spec in rules.models.items()}
    outputs = {name: list(OCR_OUTPUTS) if isinstance(model, OcrModelSpec) else scalar_outputs(model)
               for name, model in models.items()}
    texts = {name: list(model.text_outputs) for name, model in models.items() if isinstance(model, OcrModelSpec)}
    rules.check_outputs(outputs, texts)
    runs, options = {}, dict(strategy=strategy, batch_size=batch_size, overwrite=overwrite, progress=progress)
    for name, model in models.items():
        if isinstance(model, OcrModelSpec):
            runs[name] = run_ocr(paths, model.detector, model.recognizer, out=folder / f"{name}.jsonl", **options)
        else:
            runs[name] = _score(name, model, paths, outputs[name], rules, folder, **options)
        if runs[name].interrupted:
            return BinningSummary(out, folder, {}, 0, runs)
        outputs[name] += texts.get(name, [])
    columns = [f"{model}.{output}" for model in models for output in outputs[model]]
    finished = {name: finished_items(folder / f"{name}_manifest.jsonl", folder) for name in models
                if name not in texts}
    read = {name: _ocr_scores(folder / f"{name}.jsonl", bool(texts[name])) for name in texts}
    scored, rows = [], []
    for path in paths:
        scores = _scores_of(path.name, outputs, finished, read, folder)
        if scores is not None:
            scored.append(path)
            rows.append(scores)
    assigned = assign_bins([path.name for path in scored], rows, rules)
    _write_csv(out, columns, scored, rows, assigned)
    if bin_folders is not None:
        _fill_bin_folders(Path(bin_folders), scored, assigned, [b.name for b in rules.bins] + [rules.default], copy)
    counts = {name: assigned.count(name) for name in [b.name for b in rules.bins] + [rules.default]}
    return BinningSummary(out, folder, counts, len(paths) - len(scored), runs)


def _check_outputs(out: Path, folder: Path, paths: list[Path], bin_folders: str | Path | None, *,
                   overwrite: bool) -> None:
    """Refuse to write the CSV over an image or a file no earlier binning wrote, or bin folders among the images."""
    refuse_input_as_output([out], paths)
    if out.exists() and not folder.is_dir() and not overwrite:
        raise InvalidInputError(f"{str(out)!r} exists and no earlier `images bin` run wrote it (there is no "
                                f"{folder.name} beside it); rerun with --overwrite to replace it, or choose another --out")
    if bin_folders is not None:
        root = Path(bin_folders).resolve()
        inside = next((path for path in paths if root in path.resolve().parents), None)
        if inside is not None:
            raise InvalidInputError(f"the image {str(inside)!r} lies inside --bin_folders {str(bin_folders)!r}: "
                                    "sorting would move or remove it; choose a bin folder apart from the images")


def _load(spec, strategy) -> SavedModelSignature:
    model = load_signature(spec.path, strategy=strategy, signature=spec.signature)
    if len(model.inputs) != 1 or next(iter(model.inputs.values())).shape.rank != 4:
        inputs = ", ".join(f"{name} {spec_.shape}" for name, spec_ in model.inputs.items())
        raise InvalidInputError(f"model {spec.name!r} ({spec.path}) takes {inputs}; a binning model takes one "
                                "image input (B, H, W, C)")
    return model


def _score(name: str, model: SavedModelSignature, paths: list[Path], outputs: list[str], rules: BinningRules,
           folder: Path, **options) -> RunSummary:
    """Run one model over the images; each image's scalar outputs go to ``folder/<name>/<image>.json``."""
    spec = rules.models[name]
    (input_name,) = model.inputs
    items = [Item(f"{name}:{path.name}", {input_name: str(path)}, f"{name}/{path.name}.json") for path in paths]

    def write(item: Item, row: dict[str, np.ndarray], shapes) -> None:
        values = {output: np.asarray(row[output]).reshape(-1)[0].item() for output in outputs}
        atomic_write_text(folder / item.output, json.dumps(values) + "\n")

    logger.info("scoring %d images with %s (%s)", len(items), name, spec.path)
    return run_items(model, items, write, output_folder=folder, manifest_name=f"{name}_manifest.jsonl",
                     size=spec.size, mode=spec.fit, options={"outputs": outputs}, **options)


def _ocr_scores(path: Path, with_text: bool) -> dict[str, dict[str, float | int | str]]:
    """An OCR model's outputs by image file name, from the records of :func:`~mcrgpu.images.ocr.run_ocr`."""
    scores = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["error"] is None:
            values = {output: record[output] for output in OCR_OUTPUTS}
            if with_text:
                values["text"] = "\n".join(line["text"] for line in record["lines"])
            scores[Path(record["image"]).name] = values
    return scores


def _scores_of(image: str, outputs: dict[str, list[str]], finished: dict[str, set[str]],
               read: dict[str, dict[str, dict]], folder: Path) -> dict[str, float | str] | None:
    """Every model's outputs for one image, or None if a model has no finished result for it."""
    scores = {}
    for model, names in outputs.items():
        if model in read:
            values = read[model].get(image)
            if values is None:
                return None
        elif f"{model}:{image}" not in finished[model]:
            return None
        else:
            values = json.loads((folder / model / f"{image}.json").read_text(encoding="utf-8"))
        scores.update({f"{model}.{name}": values[name] for name in names})
    return scores


def _write_csv(out: Path, columns: list[str], paths: list[Path], rows: list[dict], assigned: list[str]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["image", *columns, "bin"])
    for path, scores, bin_name in zip(paths, rows, assigned):
        writer.writerow([str(path), *(_format(scores[column]) for column in columns), bin_name])
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as handle:
        handle.write(text.getvalue())


def _format(value: float | int | bool | str) -> str:
    """Shortest text that reads back as the model's value (float32 outputs as float32); text as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return str(np.float32(value)) if np.float32(value) == value else repr(value)


def _fill_bin_folders(root: Path, paths: list[Path], assigned: list[str], bins: list[str], copy: bool) -> None:
    for name in bins:
        (root / name).mkdir(parents=True, exist_ok=True)
    for path, chosen in zip(paths, assigned):
        for name in bins:
            entry = root / name / path.name
            if name != chosen and (entry.is_symlink() or entry.exists()):
                entry.unlink()
        target = root / chosen / path.name
        staging = target.with_name(f".{path.name}.tmp")
        if staging.is_symlink() or staging.exists():
            staging.unlink()
        if copy:
            shutil.copy2(path, staging)
        else:
            os.symlink(path.resolve(), staging)
        os.replace(staging, target)
