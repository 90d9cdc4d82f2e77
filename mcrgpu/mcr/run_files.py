"""The names of a run's files in its data folder (characterization, results, checkpoint, lock), in one place."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mcrgpu.errors import InvalidInputError

__all__ = ["RunFiles", "MAX_STEM_LENGTH", "run_name"]

MAX_STEM_LENGTH = 160
"""Longest result name stem: leaves room for "_characterization.npz" and the temporary-file suffix
within the 255 bytes most file systems allow for a name."""

_CHARACTERIZATION = "_characterization"


def run_name(path: str | Path) -> str:
    """The run a file stands for: its stem without ``_characterization`` (``ms_characterization.npz`` -> ``ms``)."""
    return Path(path).stem.removesuffix(_CHARACTERIZATION)


@dataclass(frozen=True)
class RunFiles:
    """Where one run (one result name) keeps its files: ``folder / (stem + suffix)``.

    Build it with :meth:`named` (any name, as the library takes it) or, for names made from user
    input, :meth:`for_input` and :meth:`for_characterization`, which refuse names that would leave
    the folder or not fit the file system.

    Parameters
    ----------
    folder : Path
        The data folder.
    stem : str
        The result name: the input's name, plus ``_information`` when given.

    Examples
    --------
    >>> RunFiles.for_input("results", "data/ms.npy", "run1").convergence
    PosixPath('results/ms_run1_convergence.npz')
    """

    folder: Path
    stem: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    @classmethod
    def named(cls, folder: str | Path, name: str, information: str | None = None) -> RunFiles:
        """The files of run ``name``, with ``_information`` added when given (names unchecked)."""
        return cls(Path(folder), f"{name}_{information}" if information else name)

    @classmethod
    def for_input(cls, folder: str | Path, path: str | Path, information: str | None = None) -> RunFiles:
        """The files of the run on the structure ``path``: named after its stem, plus ``_information``.

        Raises
        ------
        InvalidInputError
            ``information`` holds a path separator, ``..`` or a control character, the input's stem a
            control character, or the name is longer than MAX_STEM_LENGTH bytes: results stay in the
            data folder, under a name that fits the file system.
        """
        return cls._checked(folder, Path(path).stem, path, information)

    @classmethod
    def for_characterization(cls, folder: str | Path, path: str | Path, information: str | None = None
                             ) -> RunFiles:
        """The files of the run on the characterization file ``path`` (named after :func:`run_name`);
        checked as :meth:`for_input`."""
        return cls._checked(folder, run_name(path), path, information)

    @classmethod
    def _checked(cls, folder, name: str, path, information: str | None) -> RunFiles:
        if information is not None:
            problem = "is empty" if not information else _name_problem(information)
            if problem:
                raise InvalidInputError(
                    f"--information {information!r} {problem}; result names stay in --data_folder, so use "
                    "letters, digits, '-', '_' and single dots"
                )
        problem = _name_problem(name.replace("..", "")) if name not in ("", ".", "..") else "is not a name"
        if problem:
            raise InvalidInputError(f"The name {name!r} of input {str(path)!r} {problem}; rename the file")
        files = cls.named(folder, name, information)
        if len(files.stem.encode()) > MAX_STEM_LENGTH:
            raise InvalidInputError(
                f"The result name {files.stem[:40]!r}... is {len(files.stem.encode())} bytes long; at most "
                f"{MAX_STEM_LENGTH} fit (with '_characterization.npz') in a file name: shorten --information "
                "or the input's name"
            )
        return files

    def _file(self, suffix: str) -> Path:
        return self.folder / f"{self.stem}{suffix}"

    @property
    def characterization(self) -> Path:
        """The target's descriptors (``characterize``, ``match``)."""
        return self._file(f"{_CHARACTERIZATION}.npz")

    @property
    def characterization_figure(self) -> Path:
        """The figure of the descriptors (``characterize --plot``)."""
        return self._file(f"{_CHARACTERIZATION}.png")

    @property
    def reconstruction(self) -> Path:
        """The reconstructed structure."""
        return self._file("_reconstruction.npy")

    @property
    def paraview(self) -> Path:
        """The reconstructed structure as a VTK image for ParaView (``--paraview``)."""
        return self._file("_reconstruction.vti")

    @property
    def convergence(self) -> Path:
        """The convergence history (losses, times, snapshots, comparison)."""
        return self._file("_convergence.npz")

    @property
    def checkpoint(self) -> Path:
        """Where an unfinished reconstruction goes on from (removed when it finishes)."""
        return self._file("_checkpoint.npz")

    @property
    def snapshots(self) -> Path:
        """Hidden folder of the snapshots while the run goes on (in the convergence file at its end)."""
        return self.folder / f".{self.stem}_snapshots"

    @property
    def lock(self) -> Path:
        """Hidden lock file held while a process writes this run's files."""
        return self.folder / f".{self.stem}.lock"

    def intermediate(self, stage: int, evaluation: int) -> Path:
        """The best state at ``evaluation`` of multigrid ``stage`` (``outfile_data_steps``)."""
        return self._file(f"_stage_{stage}_iteration_{evaluation:06d}.npz")


def _name_problem(text: str) -> str | None:
    """Why ``text`` cannot be part of a file name in the data folder, or None if it can."""
    if "/" in text or "\\" in text or (os.altsep and os.altsep in text):
        return "contains a path separator"
    if ".." in text:
        return "contains '..'"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text):
        return "contains a control character (newline, tab, ...)"
    return None
