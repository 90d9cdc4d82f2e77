"""Image x reference jobs: every image with every reference, K samples each, seeds derived from the item."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.inputs import image_files, pick_output
from mcrgpu.images.runner import Item, RunSummary, SavedModelSignature, load_signature, run_items
from mcrgpu.io import atomic_write

__all__ = ["GRID_INPUTS", "MANIFEST_NAME", "sample_seed", "run_grid"]

GRID_INPUTS = ("image", "reference", "seed")
MANIFEST_NAME = "grid_manifest.jsonl"


def sample_seed(image: str, reference: str, sample: int, *, seed: int = 0) -> int:
    """The seed of one sample: a hash of (seed, image name, reference name, sample index), in [0, 2**63).

    It depends on nothing else (not the device count, batch or order), so a sample is the same
    in every run and two samples never share a seed by construction of the loop.
    """
    text = f"{seed}\x1f{image}\x1f{reference}\x1f{sample}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def run_grid(images: str | Path | Sequence[str | Path], references: str | Path | Sequence[str | Path],
             model: str | Path | SavedModelSignature, *, output_folder: str | Path, samples: int = 1, seed: int = 0,
             output_name: str | None = None, strategy: tf.distribute.Strategy | None = None,
             signature: str = "serving_default", batch_size: int = 1, size: tuple[int, int] | None = None,
             mode: str | None = None, overwrite: bool = False, progress: bool = True) -> RunSummary:
    """Run a two-input model on every image x every reference x ``samples``.

    The model's signature takes ``image`` and ``reference`` ((B, H, W, C) images) and ``seed``
    ((B,) int64, from :func:`sample_seed`), so a sample's result depends only on its inputs.
    Results go to ``OUT/<image>__<reference>__<k>.png`` when the chosen output is uint8 or uint16
    (H, W[, C]), else ``.npy``. With ``mode="pad"`` image outputs are cropped back to the image.

    Parameters
    ----------
    images, references : folder, file, or sequence of files
    model : str, Path or SavedModelSignature
        A SavedModel directory (loaded under ``strategy.scope()``) or a loaded signature.
    output_folder : str or Path
        Where results and ``grid_manifest.jsonl`` go.
    samples : int
        Samples per (image, reference), numbered 0 .. samples - 1.
    seed : int
        Mixed into every sample seed: another value gives other samples.
    output_name : str, optional
        The output to write; default the only output, else ``image``
        (:func:`~mcrgpu.images.inputs.pick_output`).
    strategy, signature, batch_size, size, mode, overwrite, progress
        As in :func:`~mcrgpu.images.runner.run_items`.

    Returns
    -------
    RunSummary

    Examples
    --------
    >>> run_grid("photos", "styles", "models/colour_transfer", output_folder="results", samples=3)  # doctest: +SKIP
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInputError(f"samples must be an integer >= 1; received {samples!r}")
    image_paths, reference_paths = image_files(images, "images"), image_files(references, "references")
    if not isinstance(model, SavedModelSignature):
        model = load_signature(model, strategy=strategy, signature=signature)
    if sorted(model.inputs) != sorted(GRID_INPUTS):
        raise InvalidInputError(f"a grid model takes inputs {list(GRID_INPUTS)}; {model.path} takes {list(model.inputs)}")
    name = pick_output(model, output_name)
    spec = model.outputs[name]
    as_png = spec.dtype in (tf.uint8, tf.uint16) and spec.shape.rank in (3, 4)
    suffix = ".png" if as_png else ".npy"
    items = []
    for image in image_paths:
        for reference in reference_paths:
            for sample in range(samples):
                stem = f"{image.stem}__{reference.stem}__{sample}"
                items.append(Item(stem, {"image": str(image), "reference": str(reference),
                                         "seed": sample_seed(image.stem, reference.stem, sample, seed=seed)},
                                  stem + suffix))
    folder = Path(output_folder)

    def write(item: Item, row: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> None:
        result = row[name]
        if mode == "pad" and result.ndim >= 2:
            height, width = shapes["image"][:2]
            result = result[:height, :width]
        with atomic_write(folder / item.output) as handle:
            if as_png:
                _save_png(handle, result)
            else:
                np.save(handle, result, allow_pickle=False)

    return run_items(model, items, write, output_folder=folder, manifest_name=MANIFEST_NAME, strategy=strategy,
                     batch_size=batch_size, size=size, mode=mode, overwrite=overwrite, progress=progress,
                     options={"seed": seed, "samples": samples, "output_name": name})


def _save_png(handle, array: np.ndarray) -> None:
    from PIL import Image

    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] not in (3, 4):
        raise InvalidInputError(f"output of shape {array.shape} is no image (H, W) or (H, W, 1|3|4)")
    if array.dtype == np.uint16 and array.ndim == 3:  # Pillow writes 16-bit PNGs for grey only
        array = (array // 257).astype(np.uint8)
    Image.fromarray(array).save(handle, format="PNG", compress_level=1)  # 4-8x faster than level 6, files ~12 % larger
