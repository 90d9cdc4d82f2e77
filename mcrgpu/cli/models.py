"""``mcrgpu models export|show``: save the built-in image models as SavedModels and list any SavedModel's signatures."""

from __future__ import annotations

import click

from mcrgpu.cli.options import PRECISIONS, McrCommand

__all__ = ["models"]


@click.group("models", context_settings={"help_option_names": ["-h", "--help"]})
def models() -> None:
    """Built-in image models as SavedModels: export them, and show the signatures of any SavedModel."""


@models.command("export", cls=McrCommand, epilog="""Built-in models: matcher (pair model for `mcrgpu images
pairs`), colour_transfer (grid model for `mcrgpu images grid`),
segment_phases (tile model for `mcrgpu images tiles`: grey micrograph -> phase labels),
image_statistics, microstructure_descriptors and faces (scoring models for `mcrgpu images bin`;
faces needs the [faces] extra), text_detector and text_recognizer (PaddleOCR PP-OCRv4 from
rapidocr-onnxruntime's ONNX files, Apache-2.0; need the [ocr] extra; float32 only).

Examples:

  mcrgpu models export colour_transfer models/colour_transfer

  mcrgpu models export matcher models/matcher_bf16 --precision mixed_bfloat16
""")
@click.argument("name")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="Keras policy the model is built under: it computes in float32, float16 or bfloat16; "
                   "inputs and outputs stay float32 (bfloat16 is faster on CPUs with AVX512-BF16, float16 on GPUs).")
@click.option("--overwrite", is_flag=True,
              help="Replace a SavedModel already in DIRECTORY (only its own files; other files stay).")
def export_command(name: str, directory: str, precision: str, overwrite: bool) -> None:
    """Build the built-in model NAME and save it as a SavedModel in DIRECTORY (signature serving_default)."""
    from mcrgpu.images.models import export_model

    path = export_model(name, directory, precision=precision, overwrite=overwrite)
    click.echo(f"{name} ({precision}) -> {path}")


@models.command("show", cls=McrCommand, epilog="Example: mcrgpu models show models/colour_transfer")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--signature", default=None, help="Show only this signature.")
def show_command(directory: str, signature: str | None) -> None:
    """List the signatures of the SavedModel in DIRECTORY with their inputs and outputs (as saved_model_cli show)."""
    from mcrgpu.errors import InvalidInputError
    from mcrgpu.images.runner import describe_saved_model

    described = describe_saved_model(directory)
    if not described:
        raise InvalidInputError(f"{directory} is a SavedModel without signatures: mcrgpu runs a signature; save it "
                                "with tf.saved_model.save(module, DIR, signatures={'serving_default': ...})")
    if signature is not None:
        if signature not in described:
            raise InvalidInputError(f"signature {signature!r} not in {directory}; it has {sorted(described)}")
        described = {signature: described[signature]}
    for name, parts in described.items():
        click.echo(f"signature_def[{name!r}]:")
        for part in ("inputs", "outputs"):
            click.echo(f"  {part}:")
            for key, spec in parts[part].items():
                shape = "unknown rank" if spec.shape.rank is None else \
                    "(" + ", ".join("-1" if n is None else str(n) for n in spec.shape) + ")"
                click.echo(f"    {part}[{key!r}]: dtype {spec.dtype.name}, shape {shape}")
