"""Image-pair matching: a pair model run over a list of image pairs, one .npz of keypoints and matches per pair."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.decode import IMAGE_SUFFIXES, read_image
from mcrgpu.images.runner import Item, RunSummary, SavedModelSignature, load_signature, run_items
from mcrgpu.io import atomic_save_npz, atomic_write

__all__ = ["PAIR_INPUTS", "PAIR_OUTPUTS", "MANIFEST_NAME", "read_pair_list", "pairs_from_folders", "match_pairs",
           "draw_matches"]

logger = logging.getLogger(__name__)

PAIR_INPUTS = ("image0", "image1")
PAIR_OUTPUTS = ("keypoints0", "keypoints1", "matches0", "match_scores0")
MANIFEST_NAME = "pairs_manifest.jsonl"


def read_pair_list(path: str | Path) -> list[tuple[Path, Path]]:
    """Read image pairs from a CSV or text file: two paths per line (comma, tab or spaces between).

    Relative paths are taken relative to the list's folder; empty lines, lines starting with
    ``#`` and a header line ``image0,image1`` are skipped; quote paths with spaces (CSV).

    Raises
    ------
    InvalidInputError
        The file is missing or a line does not hold exactly two paths.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"pair list {str(path)!r} does not exist")
    pairs = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = next(csv.reader([text])) if "," in text else text.split()
            fields = [field.strip() for field in fields]
            if [field.lower() for field in fields] == list(PAIR_INPUTS):
                continue
            if len(fields) != 2 or not all(fields):
                raise InvalidInputError(f"{path} line {number}: expected two image paths, got {text!r}")
            pairs.append(tuple(path.parent / field for field in fields))
    if not pairs:
        raise InvalidInputError(f"pair list {str(path)!r} holds no pairs")
    return pairs


def pairs_from_folders(folder0: str | Path, folder1: str | Path) -> list[tuple[Path, Path]]:
    """Pair the images of two folders by file name (stem, so ``a.png`` pairs with ``a.jpg``), sorted by name.

    Raises
    ------
    InvalidInputError
        A folder is missing, a stem occurs twice in one folder, or no name occurs in both.
    """
    found = [_images_by_stem(Path(folder)) for folder in (folder0, folder1)]
    common = sorted(set(found[0]) & set(found[1]))
    unmatched = len(found[0]) + len(found[1]) - 2 * len(common)
    if not common:
        raise InvalidInputError(f"no image name occurs in both {str(folder0)!r} and {str(folder1)!r}")
    if unmatched:
        logger.warning("%d image(s) have no partner of the same name in the other folder; ignored", unmatched)
    return [(found[0][stem], found[1][stem]) for stem in common]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InvalidInputError(f"folder {str(folder)!r} does not exist")
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in images:
                raise InvalidInputError(f"{folder} holds {images[path.stem].name} and {path.name}: one name, two "
                                        "images; keep one so pairs are unambiguous")
            images[path.stem] = path
    return images


def match_pairs(pairs: Sequence[tuple[str | Path, str | Path]] | str | Path,
                model: str | Path | SavedModelSignature, *, output_folder: str | Path,
                strategy: tf.distribute.Strategy | None = None, signature: str = "serving_default",
                output_names: Mapping[str, str] | None = None, visualize: bool = False, batch_size: int = 1,
                size: tuple[int, int] | None = None, mode: str | None = None, overwrite: bool = False,
                progress: bool = True) -> RunSummary:
    """Match every image pair with a pair model; write ``OUT/<stem0>__<stem1>.npz`` per pair.

    The model's signature takes ``image0`` and ``image1`` ((B, H, W, C) float32 in [0, 1]) and
    returns ``keypoints0`` and ``keypoints1`` ((B, K, 2), x then y, in pixels), ``matches0``
    ((B, K), index into keypoints1 or -1) and ``match_scores0`` ((B, K)). Each ``.npz`` holds these
    four arrays (keypoints in the original images' pixels, also after ``mode="resize"``).

    Parameters
    ----------
    pairs : sequence of (path, path), or str or Path
        The pairs, or a pair list file (see :func:`read_pair_list`).
    model : str, Path or SavedModelSignature
        A SavedModel directory (loaded under ``strategy.scope()``) or a loaded signature.
    output_folder : str or Path
        Where the ``.npz`` files (and PNGs) and ``pairs_manifest.jsonl`` go.
    strategy : tf.distribute.Strategy, optional
    signature : str
        Signature name in the SavedModel.
    output_names : mapping, optional
        The model's names for the four outputs, e.g. ``{"matches0": "matches"}``.
    visualize : bool
        Also write ``<stem0>__<stem1>.png``: both images side by side, matches drawn.
    batch_size, size, mode, overwrite, progress
        As in :func:`~mcrgpu.images.runner.run_items`.

    Returns
    -------
    RunSummary

    Raises
    ------
    InvalidInputError
        The model does not take ``image0`` and ``image1`` or lacks an output.

    Examples
    --------
    >>> summary = match_pairs("pairs.txt", "models/matcher", output_folder="results")  # doctest: +SKIP
    """
    if isinstance(pairs, (str, Path)):
        pairs = read_pair_list(pairs)
    if not isinstance(model, SavedModelSignature):
        model = load_signature(model, strategy=strategy, signature=signature)
    names = _output_names(model, output_names)
    if sorted(model.inputs) != sorted(PAIR_INPUTS):
        raise InvalidInputError(f"a pair model takes inputs {list(PAIR_INPUTS)}; {model.path} takes {list(model.inputs)}")
    items = [Item(f"{Path(a).stem}__{Path(b).stem}", {"image0": str(a), "image1": str(b)},
                  f"{Path(a).stem}__{Path(b).stem}.npz", (f"{Path(a).stem}__{Path(b).stem}.png",) if visualize else ())
             for a, b in pairs]
    folder = Path(output_folder)
    fitted = {name: size or tuple(spec.shape[1:3]) for name, spec in model.inputs.items()} if mode == "resize" else None

    def write(item: Item, row: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> None:
        result = _pair_result(item, {key: row[name] for key, name in names.items()})
        if fitted:
            for key, image in (("keypoints0", "image0"), ("keypoints1", "image1")):
                (height, width), (original_h, original_w) = fitted[image], shapes[image][:2]
                result[key] = result[key] * np.array([original_w / width, original_h / height], np.float32)
        path = atomic_save_npz(folder / item.output, **result)
        if visualize:
            picture = draw_matches(read_image(item.inputs["image0"]), read_image(item.inputs["image1"]), **result)
            with atomic_write(path.with_suffix(".png")) as handle:
                picture.save(handle, format="PNG", compress_level=1)

    return run_items(model, items, write, output_folder=folder, manifest_name=MANIFEST_NAME, strategy=strategy,
                     batch_size=batch_size, size=size, mode=mode, overwrite=overwrite, progress=progress,
                     options={"output_names": names})


def _output_names(model: SavedModelSignature, output_names: Mapping[str, str] | None) -> dict[str, str]:
    names = {key: key for key in PAIR_OUTPUTS}
    for key, name in (output_names or {}).items():
        if key not in PAIR_OUTPUTS:
            raise InvalidInputError(f"output_names maps {key!r}, which is not one of {list(PAIR_OUTPUTS)}")
        names[key] = name
    missing = {key: name for key, name in names.items() if name not in model.outputs}
    if missing:
        raise InvalidInputError(f"the pair model {model.path} has no output {sorted(missing.values())} (for "
                                f"{sorted(missing)}); its outputs are {list(model.outputs)}; map them with "
                                "--output_names keypoints0=NAME ...")
    return names


def _pair_result(item: Item, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The four arrays of one pair, checked for shape and index range."""
    keypoints0 = np.asarray(row["keypoints0"], np.float32)
    keypoints1 = np.asarray(row["keypoints1"], np.float32)
    matches0 = np.asarray(row["matches0"])
    scores0 = np.asarray(row["match_scores0"], np.float32)
    count = keypoints0.shape[0] if keypoints0.ndim == 2 else -1
    if keypoints0.shape != (count, 2) or keypoints1.ndim != 2 or keypoints1.shape[1] != 2 \
            or matches0.shape != (count,) or scores0.shape != (count,):
        raise InvalidInputError(
            f"pair outputs have shapes keypoints0 {keypoints0.shape}, keypoints1 {keypoints1.shape}, matches0 "
            f"{matches0.shape}, match_scores0 {scores0.shape}; expected (K, 2), (K1, 2), (K,), (K,)")
    if matches0.dtype.kind not in "iu" or (matches0.size and (matches0.min() < -1 or matches0.max() >= len(keypoints1))):
        raise InvalidInputError(f"matches0 must be integer indices into keypoints1 (0..{len(keypoints1) - 1}) or -1")
    return {"keypoints0": keypoints0, "keypoints1": keypoints1, "matches0": matches0.astype(np.int32),
            "match_scores0": scores0}


def draw_matches(image0: np.ndarray, image1: np.ndarray, *, keypoints0: np.ndarray, keypoints1: np.ndarray,
                 matches0: np.ndarray, match_scores0: np.ndarray):
    """Both images side by side with a line per match, brighter for higher scores (a Pillow image)."""
    from PIL import Image, ImageDraw

    pictures = [Image.fromarray(_as_rgb8(image)) for image in (image0, image1)]
    canvas = Image.new("RGB", (pictures[0].width + pictures[1].width, max(p.height for p in pictures)))
    canvas.paste(pictures[0], (0, 0))
    canvas.paste(pictures[1], (pictures[0].width, 0))
    draw = ImageDraw.Draw(canvas)
    offset = np.array([pictures[0].width, 0], np.float32)
    top = float(match_scores0.max()) if match_scores0.size and match_scores0.max() > 0 else 1.0
    for index in np.flatnonzero(matches0 >= 0):
        start, end = keypoints0[index], keypoints1[matches0[index]] + offset
        level = int(96 + 159 * min(max(float(match_scores0[index]) / top, 0.0), 1.0))
        draw.line([tuple(start), tuple(end)], fill=(0, level, 255 - level), width=1)
        for x, y in (start, end):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], outline=(255, 255, 0))
    return canvas


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    if image.dtype.kind == "f":
        image = np.clip(image * 255.0 + 0.5, 0, 255)
    elif image.dtype == np.uint16:
        image = image // 257
    image = image.astype(np.uint8)
    if image.shape[-1] in (2, 4):
        image = image[..., :-1]
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
