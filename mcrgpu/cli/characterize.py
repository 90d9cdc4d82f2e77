"""``mcrgpu characterize``: descriptors of microstructure files, saved as characterization files."""

from __future__ import annotations

import time
from pathlib import Path

import click

from mcrgpu.cli.options import (MCRPY_DESCRIPTOR_ONLY, McrCommand, command_strategy, descriptor_options, gpu_options,
                                gram_settings, input_file_options, mcrpy_only_options, orientation_options,
                                run_options)

__all__ = ["characterize_command"]

EPILOG = """Examples:

  mcrgpu characterize ms.npy --descriptor_types Correlations Variation --limit_to 8

  mcrgpu characterize --microstructure_filenames a.npy b.tif --cpu_devices 2 --plot
"""


@click.command("characterize", cls=McrCommand, epilog=EPILOG)
@input_file_options
@descriptor_options
@click.option("--use_multiphase/--no_multiphase", default=True, show_default=True,
              help="Keep one channel per phase, or phase 1 only (two-phase structures).")
@orientation_options
@click.option("--plot", is_flag=True, help="Also write a PNG figure of the descriptors.")
@run_options
@mcrpy_only_options(*MCRPY_DESCRIPTOR_ONLY)
@gpu_options
def characterize_command(files, more_files, descriptor_types, limit_to, no_multigrid_descriptor, non_periodic,
                         threshold_steepness, threshold, nl_method, gram_layers, gram_weights_filename, data_folder,
                         information, slice_batch_size, use_multiphase, isotropic, slice_mode, plot, overwrite,
                         gpu_config) -> None:
    """Characterize microstructure files (.npy, .tif, .png, .bmp) by statistical descriptors."""
    from mcrgpu.cli.result_files import (CHARACTERIZE_FILES, check_existing, check_output_folder, result_lock,
                                         runs_for_inputs)
    from mcrgpu.gpu_manager import is_chief
    from mcrgpu.mcr.microstructure_io import load_microstructure

    start = time.perf_counter()
    paths = [*files, *more_files]
    if not paths:
        raise click.UsageError("Give at least one microstructure file (FILES or --microstructure_filenames)")
    runs = runs_for_inputs(data_folder, paths, information)
    check_output_folder(data_folder)
    gram = gram_settings(nl_method, gram_layers, gram_weights_filename, descriptor_types)
    outputs = (*CHARACTERIZE_FILES, "characterization_figure") if plot else CHARACTERIZE_FILES
    check_existing(runs, outputs, overwrite=overwrite)
    microstructures = [load_microstructure(path, threshold=threshold) for path in paths]  # fail early
    strategy = command_strategy(gpu_config)
    chief = is_chief(strategy)
    with result_lock(runs if chief else ()):
        check_existing(runs, outputs, overwrite=overwrite)  # a run that ended meanwhile
        written = _characterize_all(paths, runs, microstructures, descriptor_types, limit_to, no_multigrid_descriptor,
                                    non_periodic, threshold_steepness, use_multiphase, isotropic, plot, strategy,
                                    slice_batch_size, chief, gram)
    click.echo(f"Wrote {len(written)} file(s) to {data_folder} in {time.perf_counter() - start:.1f} s")


def _characterize_all(paths, runs, microstructures, descriptor_types, limit_to, no_multigrid_descriptor, non_periodic,
                      threshold_steepness, use_multiphase, isotropic, plot, strategy, slice_batch_size,
                      chief, gram) -> list[Path]:
    """Characterize each structure and save it (on the chief only); the files written."""
    import dataclasses

    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.characterization_files import save_characterization

    written = []
    for path, run, ms in zip(paths, runs, microstructures):
        result = characterize(ms, list(descriptor_types), limit_to=limit_to,
                              use_multigrid=not no_multigrid_descriptor, use_multiphase=use_multiphase,
                              periodic=not non_periodic, threshold_steepness=threshold_steepness,
                              strategy=strategy, slice_batch_size=slice_batch_size, source=str(path), **gram)
        if isotropic and result.is_3d:
            result = dataclasses.replace(result, axis_descriptors=None)
        out = run.characterization
        if not chief:
            continue
        save_characterization(out, result)
        written.append(out)
        fractions = ", ".join(f"{v:.4f}" for v in result.volume_fractions)
        shapes = ", ".join(f"{name} {value.shape}" for name, value in result.descriptors.items())
        click.echo(f"{path}: shape {ms.shape}, {ms.n_phases} phases, volume fractions [{fractions}]")
        click.echo(f"  {shapes}; {result.seconds:.2f} s -> {out}")
        if plot:
            from mcrgpu.mcr.plotting import plot_characterization, save_figure

            figure_path = save_figure(plot_characterization(result), run.characterization_figure)
            written.append(figure_path)
            click.echo(f"  figure -> {figure_path}")
    return written
