"""Result files in a data folder: earlier results kept unless --overwrite, one writer per result name."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterable, Iterator

from mcrgpu.errors import InvalidInputError

__all__ = ["CHARACTERIZATION", "CHECKPOINT", "RECONSTRUCTION", "CONVERGENCE", "check_existing", "result_lock"]

CHARACTERIZATION = "_characterization.npz"
RECONSTRUCTION = "_reconstruction.npy"
CONVERGENCE = "_convergence.npz"
CHECKPOINT = "_checkpoint.npz"


def check_existing(folder: str | Path, stems: Iterable[str], suffixes: Iterable[str], *, overwrite: bool) -> None:
    """Refuse, before any work, to replace a result of an earlier run unless ``overwrite``.

    Raises
    ------
    InvalidInputError
        One of ``folder / (stem + suffix)`` exists; the message names it and the ways out.
    """
    if overwrite:
        return
    suffixes = tuple(suffixes)
    for stem in stems:
        for suffix in suffixes:
            path = Path(folder) / f"{stem}{suffix}"
            if path.exists() and suffix == CHECKPOINT:
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
def result_lock(folder: str | Path, stems: Iterable[str]) -> Iterator[None]:
    """Hold an exclusive lock per result name (``folder/.STEM.lock``) while results are written.

    A second process that writes results of one of these names into ``folder`` gets an
    InvalidInputError at once instead of leaving a mix of both runs' files. The operating system
    releases the lock when the process ends, however it ends; the lock file is removed on exit.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[Path, int]] = []
    try:
        for stem in stems:
            path = folder / f".{stem}.lock"
            held.append((path, _lock(path, stem, folder)))
        yield
    finally:
        for path, descriptor in reversed(held):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # while still held: a process waiting on this file then sees it replaced
            os.close(descriptor)


def _lock(path: Path, stem: str, folder: Path) -> int:
    """Open and lock ``path``; the descriptor. Retries when the previous holder removed the file
    between our open and our lock (then the lock is on a file nobody else will find)."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise InvalidInputError(
                f"Another mcrgpu process is writing results named {stem!r} in {str(folder)!r} (lock {str(path)!r}); "
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
