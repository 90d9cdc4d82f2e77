"""The ``mcrgpu`` command line: one click group, one module per command."""

import logging
import os

import click

# Quieten TensorFlow's C++ start-up banner for command-line users (before TensorFlow is imported).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mcrgpu._version import __version__  # noqa: E402
from mcrgpu.cli.characterize import characterize_command  # noqa: E402
from mcrgpu.cli.compare import compare_command  # noqa: E402
from mcrgpu.cli.example import example  # noqa: E402
from mcrgpu.cli.gpus import gpus  # noqa: E402
from mcrgpu.cli.reconstruct import match_command, reconstruct_command  # noqa: E402
from mcrgpu.cli.view import view  # noqa: E402

__all__ = ["main", "match_main", "reconstruct_main", "characterize_main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcrgpu")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details.")
def main(verbose: bool) -> None:
    """Microstructure characterization and reconstruction on TensorFlow distribution strategies."""
    _configure_logging(verbose)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="mcrgpu: %(levelname)s: %(message)s")
    logging.getLogger("mcrgpu").setLevel(logging.DEBUG if verbose else logging.INFO)


main.add_command(gpus)
main.add_command(characterize_command)
main.add_command(match_command)
main.add_command(reconstruct_command)
main.add_command(view)
main.add_command(compare_command)
main.add_command(example)


def _standalone(command: click.Command, name: str):
    """Entry point running one command as its own program (``mcrgpu-match``, ...)."""
    def run() -> None:
        _configure_logging(verbose=False)
        command.main(prog_name=f"mcrgpu-{name}")
    return run


match_main = _standalone(match_command, "match")
reconstruct_main = _standalone(reconstruct_command, "reconstruct")
characterize_main = _standalone(characterize_command, "characterize")
