"""``mcrgpu compare``: how close reconstructions are to the original, and whether they are copies of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from mcrgpu.cli.options import POSITIVE_INT, McrCommand

__all__ = ["compare_command"]

EPILOG = """Examples:

  mcrgpu compare ms.npy results/ms_reconstruction.npy

  mcrgpu compare ms.npy results/a.npy results/b.npy --json report.json --plot report.png
"""


@click.command("compare", cls=McrCommand, epilog=EPILOG)
@click.argument("original", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--limit_to", type=POSITIVE_INT, default=8, show_default=True,
              help="S2 is compared for shifts |dy|, |dx| < limit_to.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="OUT.json", help="Also write every figure as JSON ('-' for standard output).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="OUT.png", help="Also write a PNG: structures side by side, S2 and chord-length curves.")
def compare_command(original: Path, results: tuple[Path, ...], limit_to: int, json_path: Path | None,
                    plot_path: Path | None) -> None:
    """Compare RESULT structures with ORIGINAL: S2 per phase and its error, phase fractions, chord lengths,
    clusters, and the copy check (best IoU over periodic shifts and flips; above 0.5 is a copy)."""
    from mcrgpu.errors import InvalidInputError
    from mcrgpu.io import atomic_write_text
    from mcrgpu.mcr.compare import compare
    from mcrgpu.mcr.matching import comparison_lines
    from mcrgpu.mcr.microstructure_io import load_microstructure

    reference = load_microstructure(original)
    structures = [load_microstructure(path) for path in results]
    try:
        report = compare(reference, structures, limit=limit_to)
    except InvalidInputError as error:  # name the file, not its place in the list
        named = re.sub(r"results\[(\d+)\]", lambda match: str(results[int(match.group(1))]), str(error))
        raise InvalidInputError(named) from None
    report["files"] = {"original": str(original), "results": [str(path) for path in results]}
    for line in comparison_lines(report, [path.name for path in results]):
        click.echo(line, err=line.startswith("WARNING"))
    if json_path is not None:
        text = json.dumps(report, indent=1)
        if str(json_path) == "-":
            click.echo(text)
        else:
            click.echo(f"  -> {atomic_write_text(json_path, text + chr(10))}")
    if plot_path is not None:
        from mcrgpu.mcr.plotting import plot_comparison, save_figure

        figure = plot_comparison(reference, structures, limit=limit_to,
                                 names=[original.name, *(path.name for path in results)])
        click.echo(f"  -> {save_figure(figure, plot_path)}")
