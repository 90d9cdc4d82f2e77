"""Helpers every image task shares: listing image files, choosing a model output, keeping inputs safe from outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.decode import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from mcrgpu.images.runner import SavedModelSignature

__all__ = ["image_files", "distinct_images", "pick_output", "refuse_input_as_output"]


def image_files(source: str | Path | Sequence[str | Path], what: str) -> list[Path]:
    """Image paths from a folder (its images, sorted by name) or a list of files."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        files = sorted(path for path in Path(source).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    elif isinstance(source, (str, Path)):
        files = [Path(source)]
    else:
        files = [Path(path) for path in source]
    if not files:
        raise InvalidInputError(f"{what}: no image found in {source!r} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def distinct_images(images: str | Path | Sequence[str | Path]) -> list[Path]:
    """The image files of a folder, a file, or a sequence of files and folders, whose file names
    (which name the items and results) must be distinct.

    Raises
    ------
    InvalidInputError
        Nothing given, a folder without images, or two images with the same file name.
    """
    sources = [images] if isinstance(images, (str, Path)) else list(images)
    if not sources:
        raise InvalidInputError("images: no files or folders given")
    paths = [path for source in sources
             for path in (image_files(source, "images") if Path(source).is_dir() else [Path(source)])]
    names = [path.name for path in paths]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise InvalidInputError(f"two images are named {duplicate!r}; image file names must be distinct")
    return paths


def pick_output(model: "SavedModelSignature", output_name: str | None) -> str:
    """The output to write: ``output_name`` if given; else the model's only output, else the one named ``image``.

    One rule for every task: an explicit name always wins; a model with one output leaves no
    choice; ``image`` is the conventional name of an image-to-image model's result (a grid model
    returns it beside side outputs such as ``strength``). Anything else is ambiguous and refused.

    Raises
    ------
    InvalidInputError
        ``output_name`` is not an output of the model, or none was given and the choice is ambiguous.
    """
    if output_name is not None:
        if output_name not in model.outputs:
            raise InvalidInputError(f"output_name {output_name!r} is not an output of {model.path}; "
                                    f"it has {list(model.outputs)}")
        return output_name
    if len(model.outputs) == 1:
        return next(iter(model.outputs))
    if "image" in model.outputs:
        return "image"
    raise InvalidInputError(f"{model.path} has outputs {list(model.outputs)}; choose one with --output_name")


def refuse_input_as_output(outputs: Iterable[str | Path], inputs: Iterable[str | Path]) -> None:
    """Raise if an output would be written over an input file (also through a link), whatever ``overwrite`` says.

    Raises
    ------
    InvalidInputError
        An output path is one of the input files.
    """
    existing = {}
    for path in inputs:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        existing[(stat.st_dev, stat.st_ino)] = path
    for output in outputs:
        try:
            stat = os.stat(output)
        except OSError:
            continue
        source = existing.get((stat.st_dev, stat.st_ino))
        if source is not None:
            raise InvalidInputError(f"the output {str(output)!r} is the input {str(source)!r}: writing it would "
                                    "destroy the input; choose another output path")
