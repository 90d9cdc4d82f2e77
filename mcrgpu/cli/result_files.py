"""Result files in a data folder: a writable folder, earlier results kept unless --overwrite, one writer per name."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterable, Iterator

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.run_files import RunFiles

__all__ = ["CHARACTERIZE_FILES", "MATCH_FILES", "RECONSTRUCT_FILES", "check_output_folder", "runs_for_inputs",
           "check_existing", "result_lock"]

CHARACTERIZE_FILES = ("characterization",)
MATCH_FILES = ("checkpoint", "characterization", "reconstruction", "paraview", "convergence")
RECONSTRUCT_FILES = ("checkpoint", "reconstruction", "paraview", "convergence")
"""The files (:class:`~mcrgpu.mcr.run_files.RunFiles` attributes) each command writes per run."""


def check_output_folder(folder: str | Path, option: str = "--data_folder") -> Path:
    """``folder`` if results can be written there (it may not exist yet), else InvalidInputError.

    Checked before any work so that a bad folder fails at once, not after a long computation.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInputError(f"{option} {str(folder)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{option} {str(folder)!r}: {str(existing)!r} is not writable; choose another folder")
    return folder


def runs_for_inputs(folder: str | Path, paths, information: str | None) -> list[RunFiles]:
    """The files of a run per input structure; InvalidInputError if two inputs would write the same files."""
    runs = [RunFiles.for_input(folder, path, information) for path in paths]
    stems = [run.stem for run in runs]
    for index, stem in enumerate(stems):
        if stem in stems[:index]:
            raise InvalidInputError(
                f"{str(paths[stems.index(stem)])!r} and {str(paths[index])!r} would both write results "
                f"named {stem!r}; characterize them in separate calls with different --information"
            )
    return runs


def check_existing(runs: Iterable[RunFiles], files: Iterable[str], *, overwrite: bool) -> None:
    """Refuse, before any work, to replace a result of an earlier run unless ``overwrite``.

    ``files`` names the :class:`~mcrgpu.mcr.run_files.RunFiles` attributes to check (``"checkpoint"``, ...).

    Raises
    ------
    InvalidInputError
        One of those files exists; the message names it and the ways out.
    """
    if overwrite:
        return
    files = tuple(files)
    for run in runs:
        for kind in files:
            path = getattr(run, kind)
            if path.exists() and kind == "checkpoint":
                raise InvalidInputError(
                    f"{str(path)!r} exists (an unfinished earlier run); continue it with --resume {path}, "
                    "or pass --overwrite to start afresh"
                )
            if path.exists():
                raise InvalidInputError(
                    f"{str(path)!r} exists (a result of an earlier run); pass --overwrite to replace it, or "
                    "choose another --information or --data_folder"
                )


@contextlib.contextmanager
def result_lock(runs: Iterable[RunFiles]) -> Iterator[None]:
    """Hold an exclusive lock per run (its ``RunFiles.lock``, ``folder/.STEM.lock``) while results are written.

    A second process that writes results of one of these names into the same folder gets an
    InvalidInputError at once instead of leaving a mix of both runs' files. The operating system
    releases the lock when the process ends, however it ends; the lock file is removed on exit.
    """
    held: list[tuple[Path, int]] = []
    try:
        for run in runs:
            run.folder.mkdir(parents=True, exist_ok=True)
            held.append((run.lock, _lock(run)))
        yield
    finally:
        for path, descriptor in reversed(held):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # while still held: a process waiting on this file then sees it replaced
            os.close(descriptor)


def _lock(run: RunFiles) -> int:
    """Open and lock ``run.lock``; the descriptor. Retries when the previous holder removed the file
    between our open and our lock (then the lock is on a file nobody else will find)."""
    path = run.lock
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise InvalidInputError(
                f"Another mcrgpu process is writing results named {run.stem!r} in {str(run.folder)!r} "
                f"(lock {str(path)!r}); "
                "wait for it to finish, or choose another --information or --data_folder"
            ) from None
        try:
            current = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            return descriptor
        os.close(descriptor)
