"""The image models mcrgpu builds itself and exports as SavedModels: a registry by name, and export."""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.models.colour_transfer import build_colour_transfer
from mcrgpu.images.models.faces import build_face_detector
from mcrgpu.images.models.image_statistics import build_image_statistics
from mcrgpu.images.models.matcher import build_matcher
from mcrgpu.images.models.microstructure_descriptors import build_microstructure_descriptors
from mcrgpu.images.models.segment_phases import build_segment_phases
from mcrgpu.images.models.text import build_text_detector, build_text_recognizer

__all__ = ["COMPUTE_DTYPES", "known_models", "build_model", "export_model"]

COMPUTE_DTYPES = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
"""Precision name (Keras policy) -> dtype the built-in models compute in; inputs and outputs stay float32."""


_BUILDERS = {
    "matcher": build_matcher,  # pair model: image0, image1 -> keypoints0/1, matches0, match_scores0
    "colour_transfer": build_colour_transfer,  # grid model: image, reference, seed -> image, strength
    "segment_phases": build_segment_phases,  # tile model: image -> labels (declares its receptive radius)
    "image_statistics": build_image_statistics,  # binning: image -> sharpness, edge_density, entropy, ...
    "microstructure_descriptors": build_microstructure_descriptors,  # binning: micrograph -> phase_fraction, ...
    "faces": build_face_detector,  # binning: image -> face_count, max_confidence (MTCNN; needs the [faces] extra)
    "text_detector": build_text_detector,  # OCR: image -> probability (PP-OCRv4 DB; needs the [ocr] extra)
    "text_recognizer": build_text_recognizer,  # OCR: text line -> probabilities, characters (PP-OCRv4 CTC)
}


def known_models() -> list[str]:
    """Names of the built-in models."""
    return sorted(_BUILDERS)


def build_model(name: str, *, precision: str = "float32") -> tf.Module:
    """Build a built-in model: a tf.Module whose tf.function ``serve`` is its serving signature.

    Parameters
    ----------
    name : str
        One of :func:`known_models`.
    precision : {"float32", "mixed_float16", "mixed_bfloat16"}
        The Keras policy name: the model computes in float32, float16 or bfloat16; its inputs
        and outputs keep their dtypes (float32 images).

    Raises
    ------
    InvalidInputError
        Unknown name or precision.
    """
    if name not in _BUILDERS:
        raise InvalidInputError(f"unknown model {name!r}; known models: {', '.join(known_models())}")
    if precision not in COMPUTE_DTYPES:
        raise InvalidInputError(f"precision must be one of {', '.join(COMPUTE_DTYPES)}; received {precision!r}")
    return _BUILDERS[name](compute_dtype=COMPUTE_DTYPES[precision])


def export_model(name: str, directory: str | Path, *, precision: str = "float32", overwrite: bool = False) -> Path:
    """Build a built-in model and save it as a SavedModel (signature ``serving_default``) in ``directory``.

    The SavedModel is written to a temporary folder beside ``directory`` and moved into place, so
    ``directory`` holds a complete model or is left as it was. A model with more signatures lists
    them in its ``signatures()`` method; a model whose export is completed or checked (licence
    notices, agreement with a reference) does so in its ``finish_export(folder)`` method, on the
    temporary folder, and raises to stop the export. A new or empty folder is used as it is; a
    SavedModel already there is replaced only with ``overwrite``, and then only its own parts
    (``saved_model.pb``, ``variables/``, ...): other files in the folder stay.

    Raises
    ------
    InvalidInputError
        Unknown name or precision; ``directory`` is a file, holds files but no SavedModel, or
        holds a SavedModel and ``overwrite`` is False.
    FileFormatError
        The model's export check failed (the text models: disagreement with onnxruntime).
    OSError
        The SavedModel could not be written (naming ``directory``).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"{str(directory)!r} is a file; give a folder for the SavedModel")
    content = sorted(entry.name for entry in directory.iterdir()) if directory.is_dir() else []
    if content and not (directory / "saved_model.pb").is_file():
        raise InvalidInputError(f"{str(directory)!r} holds files ({', '.join(content[:3])}) but no SavedModel; "
                                "choose a new or empty folder")
    if content and not overwrite:
        raise InvalidInputError(f"{str(directory)!r} holds a SavedModel already; give --overwrite (overwrite=True) to "
                                "replace it, or choose a new folder")
    module = build_model(name, precision=precision)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        try:
            signatures = module.signatures() if hasattr(module, "signatures") else {"serving_default": module.serve}
            tf.saved_model.save(module, str(staging), signatures=signatures)
        except (OSError, tf.errors.OpError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
            raise OSError(getattr(error, "errno", None) or errno.EIO,
                          f"writing the SavedModel failed ({reason.splitlines()[0] if reason else type(error).__name__})",
                          str(directory)) from None
        if hasattr(module, "finish_export"):
            module.finish_export(staging)
        if content:
            _replace_parts(staging, directory)
        else:
            if directory.exists():
                directory.rmdir()  # empty: nothing of the user's is lost
            staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _replace_parts(staging: Path, directory: Path) -> None:
    """Move the new SavedModel's parts into ``directory``, the old parts of the same names aside and then away."""
    old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
    parts = sorted(entry.name for entry in staging.iterdir())
    stale = [name for name in _SAVED_MODEL_PARTS if name not in parts and (directory / name).exists()]
    try:
        for name in parts + stale:
            if (directory / name).exists():
                (directory / name).rename(old / name)
        for name in parts:
            (staging / name).rename(directory / name)
    except OSError:
        for name in parts + stale:  # put the old model back as it was
            if (old / name).exists():
                if (directory / name).is_dir():  # the new part, ours
                    shutil.rmtree(directory / name)
                elif (directory / name).exists():
                    (directory / name).unlink()
                (old / name).rename(directory / name)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


_SAVED_MODEL_PARTS = ("saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", "keras_metadata.pb", "variables",
                      "assets")
"""What a SavedModel export writes in its folder: replaced together; other files are the user's."""
