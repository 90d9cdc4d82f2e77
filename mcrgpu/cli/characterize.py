"""``mcrgpu characterize``: descriptors of microstructure files, saved as characterization files."""

from __future__ import annotations

from pathlib import Path

import click

from mcrgpu.cli.options import McrCommand, MultiValueOption, descriptor_options, gpu_options, mcrpy_only_options

__all__ = ["characterize_command", "result_stem"]

EPILOG = """Examples:

  mcrgpu characterize ms.npy --descriptor_types Correlations Variation --limit_to 8

  mcrgpu characterize --microstructure_filenames a.npy b.tif --cpu_devices 2 --plot
"""


def result_stem(path: str | Path, information: str | None) -> str:
    """File name stem of the results for an input file: its stem plus ``_information``."""
    stem = Path(path).stem
    return f"{stem}_{information}" if information else stem


@click.command("characterize", cls=McrCommand, epilog=EPILOG)
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--microstructure_filenames", "--microstructure_filename", "more_files", cls=MultiValueOption,
              type=click.Path(dir_okay=False), help="Input files (MCRpy's spelling; same as FILES).")
@descriptor_options
@click.option("--use_multiphase/--no_multiphase", default=True, show_default=True,
              help="Keep one channel per phase, or phase 1 only (two-phase structures).")
@click.option("--isotropic", is_flag=True, help="3D: keep only the mean over the three slice orientations.")
@click.option("--slice_mode", type=click.Choice(["average"]), default="average",
              help="3D: average the descriptors over all slices (the only mode).")
@click.option("--plot", is_flag=True, help="Also write a PNG figure of the descriptors.")
@mcrpy_only_options("grey_values", "symmetry", "nl_method", "gram_weights_filename", "logfile_name",
                    "logfile_date", "logging_level")
@gpu_options
def characterize_command(files, more_files, descriptor_types, limit_to, no_multigrid_descriptor, non_periodic,
                         threshold_steepness, threshold, data_folder, information, slice_batch_size,
                         use_multiphase, isotropic, slice_mode, plot, gpu_config) -> None:
    """Characterize microstructure files (.npy, .tif, .png, .bmp) by statistical descriptors."""
    import dataclasses

    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.characterization_files import save_characterization
    from mcrgpu.gpu_manager import setup_gpus
    from mcrgpu.mcr.microstructure_io import load_microstructure

    paths = [*files, *more_files]
    if not paths:
        raise click.UsageError("Give at least one microstructure file (FILES or --microstructure_filenames)")
    microstructures = [load_microstructure(path, threshold=threshold) for path in paths]  # fail early
    strategy = setup_gpus(gpu_config) if gpu_config is not None else None
    for path, ms in zip(paths, microstructures):
        result = characterize(ms, list(descriptor_types), limit_to=limit_to,
                              use_multigrid=not no_multigrid_descriptor, use_multiphase=use_multiphase,
                              periodic=not non_periodic, threshold_steepness=threshold_steepness,
                              strategy=strategy, slice_batch_size=slice_batch_size, source=str(path))
        if isotropic and result.is_3d:
            result = dataclasses.replace(result, axis_descriptors=None)
        out = Path(data_folder) / f"{result_stem(path, information)}_characterization.npz"
        save_characterization(out, result)
        fractions = ", ".join(f"{v:.4f}" for v in result.volume_fractions)
        shapes = ", ".join(f"{name} {value.shape}" for name, value in result.descriptors.items())
        click.echo(f"{path}: shape {ms.shape}, {ms.n_phases} phases, volume fractions [{fractions}]")
        click.echo(f"  {shapes}; {result.seconds:.2f} s -> {out}")
        if plot:
            from mcrgpu.plotting import plot_characterization, save_figure

            figure_path = save_figure(plot_characterization(result), out.with_suffix(".png"))
            click.echo(f"  figure -> {figure_path}")
