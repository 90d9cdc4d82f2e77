"""``mcrgpu match``, ``reconstruct`` and ``interpolate``: descriptor-based reconstruction from the command line."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from mcrgpu.cli.options import (DESCRIPTOR_NAMES, MCRPY_ONLY, McrCommand, MultiValueOption, command_strategy,
                                compose, descriptor_options, exit_on_signals, gpu_options, gram_settings,
                                input_file_options, mcrpy_only_options, orientation_options, reconstruction_options,
                                run_options)

__all__ = ["match_command", "reconstruct_command", "interpolate_command"]

MATCH_EPILOG = """Examples:

  mcrgpu match --microstructure_filename ms.npy --descriptor_types Correlations --max_iter 200

  mcrgpu match ms.npy --add_dimension 64 --descriptor_types Correlations Variation --descriptor_weights 1 100
"""

RECONSTRUCT_EPILOG = """Example:

  mcrgpu reconstruct --descriptor_filename results/ms_characterization.npz --extent_x 64 --extent_y 64 --extent_z 64
"""


INTERPOLATE_EPILOG = """Examples:

  mcrgpu interpolate results/a_characterization.npz results/b_characterization.npz --steps 5

  mcrgpu interpolate a.npz b.npz --steps 5 --reconstruct --extent_x 64 --extent_y 64 --max_iter 300
"""


def extent_options(command):
    """The size of the structure to reconstruct (reconstruct, interpolate)."""
    return compose([
        click.option("--extent_x", type=click.IntRange(min=2), default=64, show_default=True),
        click.option("--extent_y", type=click.IntRange(min=2), default=64, show_default=True),
        click.option("--extent_z", type=click.IntRange(min=0), default=1, show_default=True,
                     help="Depth; 0 or 1 reconstructs a 2D structure."),
    ], command)


paraview_option = click.option(
    "--paraview", is_flag=True,
    help="Also write the result as NAME_reconstruction.vti, a VTK image (phases as cell data) that ParaView opens.")


@click.command("match", cls=McrCommand, epilog=MATCH_EPILOG)
@input_file_options
@click.option("--add_dimension", type=click.IntRange(min=2), default=None,
              help="Reconstruct a volume of this depth from a 2D structure.")
@orientation_options
@descriptor_options
@run_options
@reconstruction_options
@paraview_option
@mcrpy_only_options(*MCRPY_ONLY)
@gpu_options
@exit_on_signals
def match_command(files, more_files, add_dimension, isotropic, slice_mode, descriptor_types, limit_to,
                  no_multigrid_descriptor, non_periodic, threshold_steepness, threshold, nl_method, gram_layers,
                  gram_weights_filename, data_folder, information, slice_batch_size, overwrite, paraview, gpu_config,
                  **options) -> None:
    """Characterize structures, then reconstruct new ones with the same descriptors.

    Ctrl+C or SIGTERM saves the best state so far and exits 130 or 143.
    """
    from mcrgpu.cli.result_files import MATCH_FILES, check_existing, result_lock, runs_for_inputs
    from mcrgpu.gpu_manager import is_chief
    from mcrgpu.mcr.matching import comparison_lines, match
    from mcrgpu.mcr.microstructure_io import load_microstructure

    start = time.perf_counter()
    paths = [*files, *more_files]
    if not paths:
        raise click.UsageError("Give a microstructure file (FILES or --microstructure_filename)")
    runs = runs_for_inputs(data_folder, paths, information)
    if options["resume"] and len(paths) > 1:
        raise click.UsageError("--resume continues one run: give one structure with it")
    _check_before_writing(descriptor_types, data_folder, options)
    options, _ = _stored_settings({**options, "descriptor_types": descriptor_types, "limit_to": limit_to,
                                   "no_multigrid_descriptor": no_multigrid_descriptor, "non_periodic": non_periodic,
                                   "threshold_steepness": threshold_steepness, "nl_method": nl_method,
                                   "gram_layers": gram_layers, "gram_weights_filename": gram_weights_filename})
    descriptor_types, limit_to, threshold_steepness = (options.pop(name) for name in (
        "descriptor_types", "limit_to", "threshold_steepness"))
    gram = gram_settings(*(options.pop(name) for name in ("nl_method", "gram_layers", "gram_weights_filename")),
                         descriptor_types)
    no_multigrid_descriptor, non_periodic = options.pop("no_multigrid_descriptor"), options.pop("non_periodic")
    overwrite = overwrite or _continues_own_run(options["resume"], runs[0])
    check_existing(runs, MATCH_FILES, overwrite=overwrite)
    structures = [load_microstructure(path, threshold=threshold) for path in paths]
    arguments = _run_arguments(options, slice_batch_size)
    strategy = command_strategy(gpu_config)
    chief = is_chief(strategy)
    with result_lock(runs if chief else ()):
        check_existing(runs, MATCH_FILES, overwrite=overwrite)  # a run that ended meanwhile
        for path, run, ms in zip(paths, runs, structures):
            shape = ms.shape if add_dimension is None or ms.is_3d else (add_dimension, *ms.shape)
            found = match(ms, descriptor_types, shape=shape, limit_to=limit_to,
                          use_multigrid=not no_multigrid_descriptor, periodic=not non_periodic,
                          threshold_steepness=threshold_steepness, isotropic=isotropic, strategy=strategy,
                          save_to=data_folder, name=run.stem, source=str(path), **gram, **arguments)
            _report(found.history, found.result, run, paraview=paraview and chief)
            for line in comparison_lines(found.comparison, [run.stem]):
                click.echo(line, err=line.startswith("WARNING"))
            _exit_if_stopped(found.history, checkpoint=run.checkpoint if chief else None)
    click.echo(f"Wrote the results of {len(paths)} structure(s) to {data_folder} in {time.perf_counter() - start:.1f} s")


@click.command("reconstruct", cls=McrCommand, epilog=RECONSTRUCT_EPILOG)
@click.option("--descriptor_filename", "--descriptor_filenames", "descriptor_filenames", cls=MultiValueOption,
              required=True, type=click.Path(dir_okay=False),
              help="A characterization (.npz from mcrgpu characterize or merge, or MCRpy's .pickle), or "
                   "three 2D ones, one per axis, for an anisotropic volume (two: see mcrgpu merge).")
@click.option("--descriptor_types", cls=MultiValueOption, default=None,
              help="Descriptors to match (default: all in the file), of: " + DESCRIPTOR_NAMES + ".")
@extent_options
@click.option("--limit_to", type=int, default=None, hidden=True)
@click.option("--threshold_steepness", type=float, default=None, hidden=True)
@click.option("--no_multigrid_descriptor", is_flag=True, default=None, hidden=True)
@click.option("--non_periodic", is_flag=True, default=None, hidden=True)
@click.option("--nl_method", default=None, hidden=True)
@click.option("--gram_weights_filename", default=None,
              help="GramMatrices: read MCRpy's VGG-19 weights from here instead of where the characterization says.")
@run_options
@reconstruction_options
@paraview_option
@mcrpy_only_options(*MCRPY_ONLY)
@gpu_options
@exit_on_signals
def reconstruct_command(descriptor_filenames, descriptor_types, extent_x, extent_y, extent_z, data_folder,
                        information, slice_batch_size, limit_to, threshold_steepness, no_multigrid_descriptor,
                        non_periodic, nl_method, gram_weights_filename, overwrite, paraview, gpu_config,
                        **options) -> None:
    """Reconstruct a structure of a given extent from a saved characterization.

    The descriptor settings (limit_to, multigrid, periodicity, steepness) are those stored in the file;
    the corresponding options are accepted for MCRpy users and must agree with it. Ctrl+C or
    SIGTERM saves the best state so far and exits 130 or 143.
    """
    from mcrgpu.cli.result_files import RECONSTRUCT_FILES, check_existing, result_lock
    from mcrgpu.gpu_manager import is_chief
    from mcrgpu.mcr.characterization import combine_axes
    from mcrgpu.mcr.characterization_files import load_characterization
    from mcrgpu.mcr.dmcr import DMCR
    from mcrgpu.mcr.run_files import RunFiles

    start = time.perf_counter()
    if len(descriptor_filenames) > 3:
        raise click.UsageError("Give one --descriptor_filename, two (axes x and y, then z: an axis-symmetric "
                               "volume) or three (one per axis)")
    run = RunFiles.for_characterization(data_folder, descriptor_filenames[0], information)
    targets = [load_characterization(path) for path in descriptor_filenames]
    target = targets[0] if len(targets) == 1 else combine_axes(targets)
    stored = target.settings
    for flag, given, actual in (("--limit_to", limit_to, stored.limit_to),
                                ("--threshold_steepness", threshold_steepness, stored.threshold_steepness),
                                ("--no_multigrid_descriptor", no_multigrid_descriptor and True,
                                 not stored.use_multigrid),
                                ("--non_periodic", non_periodic and True, not stored.periodic),
                                ("--nl_method", nl_method, stored.nl_method)):
        if given and given != actual:
            raise click.UsageError(f"{flag} {given} differs from the characterization file ({actual}); "
                                   "characterize again with the settings you want")
    if gram_weights_filename is not None:
        target = dataclasses.replace(target, settings=dataclasses.replace(
            stored, gram_weights_filename=gram_weights_filename))
    gram_settings(target.settings.nl_method, target.settings.gram_layers, target.settings.gram_weights_filename,
                  descriptor_types or target.descriptor_types)
    shape = _shape(extent_x, extent_y, extent_z)
    _check_before_writing(descriptor_types or target.descriptor_types, data_folder, options)
    options, stored = _stored_settings({**options, "descriptor_types": descriptor_types})
    descriptor_types = options.pop("descriptor_types")
    if stored and not any(_given(name) for name in ("extent_x", "extent_y", "extent_z")):
        shape = tuple(stored.get("shape", shape))
    overwrite = overwrite or _continues_own_run(options["resume"], run)
    check_existing([run], RECONSTRUCT_FILES, overwrite=overwrite)
    arguments = _run_arguments(options, slice_batch_size)
    resume_from, override_settings = arguments.pop("resume_from"), arguments.pop("override_settings")
    strategy = command_strategy(gpu_config)
    with result_lock([run] if is_chief(strategy) else ()):
        check_existing([run], RECONSTRUCT_FILES, overwrite=overwrite)  # a run that ended meanwhile
        dmcr = DMCR(list(descriptor_types or target.descriptor_types), strategy=strategy, save_to=data_folder,
                    name=run.stem, **arguments)
        history, result = dmcr.reconstruct(target, shape, resume_from=resume_from,
                                           override_settings=override_settings)
        _report(history, result, run, paraview=paraview and is_chief(strategy))
    _exit_if_stopped(history, checkpoint=run.checkpoint)
    click.echo(f"Wrote the results to {data_folder} in {time.perf_counter() - start:.1f} s")


@click.command("interpolate", cls=McrCommand, epilog=INTERPOLATE_EPILOG)
@click.argument("start_file", type=click.Path(dir_okay=False))
@click.argument("end_file", type=click.Path(dir_okay=False))
@click.option("--steps", "--n_steps", type=click.IntRange(min=2), default=5, show_default=True,
              help="Characterizations from START_FILE to END_FILE, both included.")
@click.option("--reconstruct", "reconstruct_each", is_flag=True,
              help="Also reconstruct a structure from each (with the options below).")
@extent_options
@run_options
@reconstruction_options
@paraview_option
@gpu_options
@exit_on_signals
def interpolate_command(start_file, end_file, steps, reconstruct_each, extent_x, extent_y, extent_z, data_folder,
                        information, slice_batch_size, overwrite, paraview, gpu_config, **options) -> None:
    """Write the characterizations on the straight line between two (MCRpy's mcrpy.interpolate) as
    interpolated_I_characterization.npz, and with --reconstruct a structure from each."""
    from mcrgpu.cli.result_files import RECONSTRUCT_FILES, check_existing, result_lock
    from mcrgpu.gpu_manager import is_chief
    from mcrgpu.mcr.characterization_files import load_characterization, save_characterization
    from mcrgpu.mcr.dmcr import DMCR
    from mcrgpu.mcr.interpolation import interpolate
    from mcrgpu.mcr.run_files import RunFiles

    start = time.perf_counter()
    if not reconstruct_each:
        series_only = {"start_file", "end_file", "steps", "reconstruct_each", "data_folder", "information", "overwrite"}
        unused = [p.opts[0] for p in click.get_current_context().command.params
                  if p.name not in series_only and _given(p.name)]
        if unused:
            raise click.UsageError(f"{unused[0]} applies with --reconstruct only; add --reconstruct, or leave it out")
    if options["resume"]:
        raise click.UsageError("--resume continues one run: resume it with mcrgpu reconstruct")
    series = interpolate(load_characterization(start_file), load_characterization(end_file), steps)
    runs = [RunFiles.for_input(data_folder, f"interpolated_{i}", information) for i in range(steps)]
    files = ("characterization", *(RECONSTRUCT_FILES if reconstruct_each else ()))
    check_existing(runs, files, overwrite=overwrite)
    if reconstruct_each:
        _check_before_writing(series[0].descriptor_types, data_folder, options)
    arguments = _run_arguments(options, slice_batch_size)
    arguments.pop("resume_from"), arguments.pop("override_settings")
    strategy = command_strategy(gpu_config) if reconstruct_each else None
    chief = strategy is None or is_chief(strategy)
    with result_lock(runs if chief else ()):
        check_existing(runs, files, overwrite=overwrite)  # runs that ended meanwhile
        for run, target in zip(runs, series):
            if chief:
                click.echo(f"{save_characterization(run.characterization, target)}: {target.source}")
            if reconstruct_each:
                dmcr = DMCR(target.descriptor_types, strategy=strategy, save_to=data_folder, name=run.stem,
                            **arguments)
                history, result = dmcr.reconstruct(target, _shape(extent_x, extent_y, extent_z))
                _report(history, result, run, paraview=paraview and chief)
                _exit_if_stopped(history, checkpoint=run.checkpoint if chief else None)
    click.echo(f"Wrote {steps} characterization(s){' and reconstructions' if reconstruct_each else ''} to "
               f"{data_folder} in {time.perf_counter() - start:.1f} s")


def _shape(extent_x: int, extent_y: int, extent_z: int) -> tuple[int, ...]:
    return (extent_x, extent_y) if extent_z in (0, 1) else (extent_x, extent_y, extent_z)


STOPPED_EARLY = 3
"""Exit code of a run that a NaN or infinite loss stopped (its best state was saved)."""


def _exit_if_stopped(history, *, saved: bool = True, checkpoint: Path | None = None) -> None:
    """A signal or a non-finite loss stopped the run: say what was kept (and the ``checkpoint`` to
    resume from), exit 130 (Ctrl+C), 143 (SIGTERM) or 3 (non-finite loss)."""
    from mcrgpu.interrupts import exit_code

    if history.interrupted:
        kept = "stopped before the first evaluation finished; nothing was saved" if not saved else \
            "the best state so far was saved" + (f". Continue with --resume {checkpoint}" if checkpoint else "")
        click.echo(f"Interrupted ({history.stop_reason}): {kept}.", err=True)
        raise SystemExit(exit_code(history.stop_reason))
    if history.stop_reason is not None:
        click.echo(history.stop_reason if saved else f"{history.stop_reason}; nothing was saved", err=True)
        raise SystemExit(STOPPED_EARLY)


def _check_before_writing(descriptor_types, data_folder, options) -> None:
    """Refuse options that cannot work before anything is computed or written."""
    from mcrgpu.cli.result_files import check_output_folder
    from mcrgpu.errors import InvalidInputError
    from mcrgpu.mcr.microstructure_io import load_microstructure

    check_output_folder(data_folder)
    weights = options["descriptor_weights"]
    if weights and len(weights) != len(descriptor_types):
        raise InvalidInputError(
            f"--descriptor_weights gives {len(weights)} weight(s) ({' '.join(f'{w:g}' for w in weights)}) for "
            f"{len(descriptor_types)} descriptor type(s) ({' '.join(descriptor_types)}); give one per descriptor type"
        )
    if options["initial_microstructure_file"]:
        load_microstructure(options["initial_microstructure_file"])
    resume = options["resume"]
    if resume and not Path(resume).is_file():
        raise InvalidInputError(
            f"--resume {resume!r} is not a file; give a NAME_checkpoint.npz or NAME_convergence.npz written by mcrgpu"
        )
    if options["override_settings"] and not resume:
        raise click.UsageError("--override_settings only applies with --resume")


def _given(name: str) -> bool:
    """Whether option ``name`` was given on the command line (or by an environment variable)."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP)


def _stored_settings(options: dict) -> tuple[dict, dict]:
    """With --resume: the stored settings for every option not given; a given option that differs
    from the stored value is a usage error unless --override_settings. (options, the stored settings
    or {} without --resume)."""
    from mcrgpu.mcr.checkpoint import OPERATIONAL_SETTINGS, load_resume_point, settings_differences

    if not options["resume"]:
        return options, {}
    stored = load_resume_point(options["resume"]).history.settings
    if stored.get("characterization"):  # the options of match's characterization
        described = stored["characterization"]
        stored = {**stored, "limit_to": described["limit_to"], "threshold_steepness": described["threshold_steepness"],
                  "no_multigrid_descriptor": not described["use_multigrid"], "non_periodic": not described["periodic"],
                  **{name: described[name] for name in ("nl_method", "gram_layers", "gram_weights_filename")
                     if name in described}}
    given = {name: value for name, value in options.items() if _given(name)}
    differences = settings_differences(stored, given)
    if differences and not options["override_settings"]:
        name, stored_value, value = differences[0]
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        raise click.UsageError(
            f"--{name} {shown} differs from the stored setting of the run to resume ({stored_value}); leave it "
            "out to continue with the stored settings, or add --override_settings"
        )
    merged = dict(options)
    for name in merged.keys() - given.keys() - set(OPERATIONAL_SETTINGS):
        if name in stored:
            merged[name] = tuple(stored[name]) if isinstance(stored[name], list) else stored[name]
    return merged, stored


def _continues_own_run(resume, run) -> bool:
    """Whether --resume names this run's own checkpoint or convergence file (which it may replace)."""
    return bool(resume) and Path(resume).resolve() in (run.checkpoint.resolve(), run.convergence.resolve())


def _run_arguments(options: dict, slice_batch_size: int | None) -> dict:
    """The reconstruction options as keyword arguments of :func:`mcrgpu.mcr.matching.match` (and of
    DMCR with its ``reconstruct``: ``resume_from``, ``override_settings``)."""
    from mcrgpu.mcr.microstructure_io import load_microstructure

    arguments = dict(options)
    initial = arguments.pop("initial_microstructure_file")
    arguments.update(initial_microstructure=load_microstructure(initial) if initial else None,
                     descriptor_weights=arguments.pop("descriptor_weights") or None,
                     resume_from=arguments.pop("resume"))
    if slice_batch_size:
        arguments["slice_batch_size"] = slice_batch_size
    return arguments


def _report(history, result, run, *, paraview: bool = False) -> None:
    """Print what a reconstruction did and where its results are (writing the ``paraview`` file
    first, when asked); exit if it stopped before evaluating."""
    from mcrgpu.mcr.matching import steady_seconds_per_evaluation
    from mcrgpu.mcr.microstructure_io import save_microstructure

    if result is None:
        _exit_if_stopped(history, saved=False)
    fractions = ", ".join(f"{v:.4f}" for v in result.volume_fractions())
    click.echo(f"{run.stem}: {history.n_evaluations} evaluations in {history.seconds[-1]:.1f} s "
               f"({steady_seconds_per_evaluation(history):.3f} s per evaluation at steady state), best loss "
               f"{history.best_loss:.4g}, volume fractions [{fractions}]")
    if paraview:
        save_microstructure(run.paraview, result)
    written = [run.reconstruction, *([run.paraview] if paraview else []), run.convergence]
    click.echo("  -> " + ", ".join(map(str, written)))
