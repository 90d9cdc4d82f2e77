"""``mcrgpu characterize``: descriptors of microstructure files, saved as characterization files."""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import click

from mcrgpu.cli.options import (McrCommand, MultiValueOption, descriptor_options, gpu_options, mcrpy_only_options,
                                overwrite_option)

__all__ = ["characterize_command", "result_stem", "check_output_folder", "MAX_STEM_LENGTH"]

MAX_STEM_LENGTH = 160
"""Longest result name stem: leaves room for "_characterization.npz" and the temporary-file suffix
within the 255 bytes most file systems allow for a name."""

EPILOG = """Examples:

  mcrgpu characterize ms.npy --descriptor_types Correlations Variation --limit_to 8

  mcrgpu characterize --microstructure_filenames a.npy b.tif --cpu_devices 2 --plot
"""


def _name_problem(text: str) -> str | None:
    """Why ``text`` cannot be part of a file name in the data folder, or None if it can."""
    if "/" in text or "\\" in text or (os.altsep and os.altsep in text):
        return "contains a path separator"
    if ".." in text:
        return "contains '..'"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text):
        return "contains a control character (newline, tab, ...)"
    return None


def result_stem(path: str | Path, information: str | None) -> str:
    """File name stem of the results for an input file: its stem plus ``_information``.

    Raises
    ------
    InvalidInputError
        ``information`` holds a path separator, ``..`` or a control character, the input's stem a
        control character, or the stem is longer than MAX_STEM_LENGTH: results stay in the data
        folder, under a name that fits the file system.
    """
    from mcrgpu.errors import InvalidInputError

    stem = Path(path).stem
    if information is not None:
        problem = "is empty" if not information else _name_problem(information)
        if problem:
            raise InvalidInputError(
                f"--information {information!r} {problem}; result names stay in --data_folder, so use "
                "letters, digits, '-', '_' and single dots"
            )
    problem = _name_problem(stem.replace("..", "")) if stem not in ("", ".", "..") else "is not a name"
    if problem:
        raise InvalidInputError(f"The name {stem!r} of input {str(path)!r} {problem}; rename the file")
    full = f"{stem}_{information}" if information else stem
    if len(full.encode()) > MAX_STEM_LENGTH:
        raise InvalidInputError(
            f"The result name {full[:40]!r}... is {len(full.encode())} bytes long; at most {MAX_STEM_LENGTH} "
            "fit (with '_characterization.npz') in a file name: shorten --information or the input's name"
        )
    return full


def check_output_folder(folder: str | Path, option: str = "--data_folder") -> Path:
    """``folder`` if results can be written there (it may not exist yet), else InvalidInputError.

    Checked before any work so that a bad folder fails at once, not after a long computation.
    """
    from mcrgpu.errors import InvalidInputError

    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInputError(f"{option} {str(folder)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{option} {str(folder)!r}: {str(existing)!r} is not writable; choose another folder")
    return folder


def unique_stems(paths, information: str | None) -> list[str]:
    """Result stems of ``paths``; InvalidInputError if two inputs would write the same files."""
    from mcrgpu.errors import InvalidInputError

    stems = [result_stem(path, information) for path in paths]
    for index, stem in enumerate(stems):
        if stem in stems[:index]:
            raise InvalidInputError(
                f"{str(paths[stems.index(stem)])!r} and {str(paths[index])!r} would both write results "
                f"named {stem!r}; characterize them in separate calls with different --information"
            )
    return stems


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
@overwrite_option
@mcrpy_only_options("grey_values", "symmetry", "nl_method", "gram_weights_filename", "logfile_name",
                    "logfile_date", "logging_level")
@gpu_options
def characterize_command(files, more_files, descriptor_types, limit_to, no_multigrid_descriptor, non_periodic,
                         threshold_steepness, threshold, data_folder, information, slice_batch_size,
                         use_multiphase, isotropic, slice_mode, plot, overwrite, gpu_config) -> None:
    """Characterize microstructure files (.npy, .tif, .png, .bmp) by statistical descriptors."""
    from mcrgpu.cli.result_files import CHARACTERIZATION, check_existing, result_lock
    from mcrgpu.gpu_manager import is_chief, setup_gpus
    from mcrgpu.mcr.microstructure_io import load_microstructure

    start = time.perf_counter()
    paths = [*files, *more_files]
    if not paths:
        raise click.UsageError("Give at least one microstructure file (FILES or --microstructure_filenames)")
    stems = unique_stems(paths, information)
    check_output_folder(data_folder)
    suffixes = (CHARACTERIZATION, CHARACTERIZATION.replace(".npz", ".png")) if plot else (CHARACTERIZATION,)
    check_existing(data_folder, stems, suffixes, overwrite=overwrite)
    microstructures = [load_microstructure(path, threshold=threshold) for path in paths]  # fail early
    strategy = setup_gpus(gpu_config) if gpu_config is not None else None
    chief = strategy is None or is_chief(strategy)
    with result_lock(data_folder, stems if chief else ()):
        check_existing(data_folder, stems, suffixes, overwrite=overwrite)  # a run that ended meanwhile
        written = _characterize_all(paths, stems, microstructures, descriptor_types, limit_to, no_multigrid_descriptor,
                                    non_periodic, threshold_steepness, use_multiphase, isotropic, plot, strategy,
                                    slice_batch_size, data_folder, chief)
    click.echo(f"Wrote {len(written)} file(s) to {data_folder} in {time.perf_counter() - start:.1f} s")


def _characterize_all(paths, stems, microstructures, descriptor_types, limit_to, no_multigrid_descriptor, non_periodic,
                      threshold_steepness, use_multiphase, isotropic, plot, strategy, slice_batch_size, data_folder,
                      chief) -> list[Path]:
    """Characterize each structure and save it (on the chief only); the files written."""
    import dataclasses

    from mcrgpu.cli.result_files import CHARACTERIZATION
    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.characterization_files import save_characterization

    written = []
    for path, stem, ms in zip(paths, stems, microstructures):
        result = characterize(ms, list(descriptor_types), limit_to=limit_to,
                              use_multigrid=not no_multigrid_descriptor, use_multiphase=use_multiphase,
                              periodic=not non_periodic, threshold_steepness=threshold_steepness,
                              strategy=strategy, slice_batch_size=slice_batch_size, source=str(path))
        if isotropic and result.is_3d:
            result = dataclasses.replace(result, axis_descriptors=None)
        out = Path(data_folder) / f"{stem}{CHARACTERIZATION}"
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

            figure_path = save_figure(plot_characterization(result), out.with_suffix(".png"))
            written.append(figure_path)
            click.echo(f"  figure -> {figure_path}")
    return written
