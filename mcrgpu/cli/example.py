"""``mcrgpu example``: write a synthetic microstructure to try the other commands on."""

import time

import click

from mcrgpu.cli.options import McrCommand, MultiValueOption

__all__ = ["example"]


@click.command(cls=McrCommand, epilog="Example: mcrgpu example ms.npy --shape 64 64 && mcrgpu match ms.npy")
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--shape", cls=MultiValueOption, type=click.IntRange(min=2), help="Size, e.g. --shape 64 64 (default).")
@click.option("--volume_fractions", cls=MultiValueOption, type=float, help="Per phase, e.g. 0.6 0.4 (default).")
@click.option("--correlation_length", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
              help="Typical feature size in pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
def example(output, shape, volume_fractions, correlation_length, seed) -> None:
    """Write a random periodic structure (smoothed noise cut into phases) to OUTPUT (.npy, .tif, .png)."""
    from mcrgpu.mcr.synthetic import gaussian_random_structure
    from mcrgpu.mcr.microstructure_io import save_microstructure

    start = time.perf_counter()
    ms = gaussian_random_structure(shape or (64, 64), volume_fractions=volume_fractions or (0.6, 0.4),
                                   correlation_length=correlation_length, seed=seed)
    path = save_microstructure(output, ms)
    fractions = ", ".join(f"{v:.3f}" for v in ms.volume_fractions())
    click.echo(f"Wrote {path}: shape {ms.shape}, volume fractions [{fractions}] in {time.perf_counter() - start:.1f} s")
