"""Convergence history of a reconstruction: losses, times, best and intermediate states, as safe files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mcrgpu._version import __version__
from mcrgpu.errors import FileFormatError
from mcrgpu.io import atomic_save_npz, read_npz_with_header

__all__ = ["ConvergenceData", "convergence_from_arrays", "load_convergence"]

FORMAT_NAME = "mcrgpu-convergence"
FORMAT_VERSION = 1


@dataclass
class ConvergenceData:
    """What happened during a reconstruction, one entry per loss evaluation.

    Attributes
    ----------
    losses, seconds : list of float
        Loss of each evaluation and wall time since the start.
    stages : list of int
        Multigrid stage of each evaluation (0 = full resolution).
    best_loss : float
        Lowest loss seen in the current multigrid stage (the last stage is full resolution).
    best_field : np.ndarray
        Indicator field ``(*spatial, C)`` with the lowest loss: the state that is kept.
    last_field : np.ndarray
        The field at the last evaluation (where ``--resume`` continues).
    snapshots : dict of int to np.ndarray
        Field every ``convergence_data_steps`` evaluations, keyed by evaluation number, float32;
        read-only memory maps of files in ``snapshot_dir`` when that is set.
    snapshot_dir : Path, optional
        Where snapshots go as ``.npy`` files instead of RAM (a 256^3 field is 64 MB per snapshot).
    interrupted : bool
        True when the run was stopped with Ctrl+C or SIGTERM.
    stop_reason : str, optional
        Why the run stopped before its end: the signal's name (``"SIGINT"``, ``"SIGTERM"``) or the
        message of a non-finite loss.
    settings : dict
        The reconstruction settings, for the record and for resuming.
    comparison : dict, optional
        :func:`mcrgpu.mcr.compare.compare` of the result with the original (``match`` only).
    polish : dict, optional
        What the two-point polish of the final labels did (:class:`mcrgpu.mcr.polish.Polish`:
        ``pixels_changed``, ``s2_error_before``, ``s2_error_after``, ``stopped_by``, and
        ``s2_error_floor``, :func:`mcrgpu.mcr.two_point.s2_error_floor`); None if it did
        not run (switched off, no descriptor that gives S2, or the run was stopped early).
    """

    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    stages: list[int] = field(default_factory=list)
    best_loss: float = float("inf")
    best_field: np.ndarray | None = None
    last_field: np.ndarray | None = None
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    interrupted: bool = False
    stop_reason: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    polish: dict[str, Any] | None = None
    snapshot_dir: Path | None = None
    _started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def n_evaluations(self) -> int:
        return len(self.losses)

    def continue_from(self, previous: ConvergenceData) -> None:
        """Take over the evaluations of an earlier run (resume): its clock, its best state (of its
        last stage) and its snapshots (and where they are kept)."""
        self.losses, self.stages = list(previous.losses), list(previous.stages)
        self.seconds = list(previous.seconds)
        self._started = time.perf_counter() - (previous.seconds[-1] if previous.seconds else 0.0)
        self.best_loss, self.best_field = previous.best_loss, previous.best_field
        self.snapshots, self.snapshot_dir = dict(previous.snapshots), previous.snapshot_dir

    def start_stage(self) -> None:
        """Forget the best state: losses of another multigrid resolution are not comparable."""
        self.best_loss, self.best_field = float("inf"), None

    def record(self, loss: float, field_value, snapshot_value=None, *, stage: int,
               snapshot_every: int | None) -> None:
        """Add one evaluation; keep the field if it is the best so far (or a snapshot is due).

        ``field_value`` is a function returning the evaluated field, called only when needed;
        ``snapshot_value``, when given, returns the state to snapshot instead (the device
        optimiser's current iterate).
        """
        self.losses.append(float(loss))
        self.seconds.append(time.perf_counter() - self._started)
        self.stages.append(stage)
        current = None
        if loss < self.best_loss:
            current = field_value()
            self.best_loss, self.best_field = float(loss), current
        if snapshot_every and self.n_evaluations % snapshot_every == 0:
            if snapshot_value is None:
                snapshot_value = (lambda: current) if current is not None else field_value
            self._add_snapshot(np.asarray(snapshot_value(), np.float32))

    def _add_snapshot(self, value: np.ndarray) -> None:
        if self.snapshot_dir is None:
            self.snapshots[self.n_evaluations] = value
            return
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        path = self.snapshot_dir / f"snapshot_{self.n_evaluations:07d}.npy"
        np.save(path, value)
        self.snapshots[self.n_evaluations] = np.load(path, mmap_mode="r")

    def save(self, path) -> Path:
        """Write an ``.npz`` of arrays with a JSON header (no pickle), atomically."""
        header, arrays = self.as_arrays(with_snapshots=True)
        return atomic_save_npz(path, header=np.array(json.dumps(header)), **arrays)

    def as_arrays(self, *, with_snapshots: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON header, arrays) of the file; without the snapshots (a checkpoint's history), the
        header names ``snapshot_dir``, where they stay as files."""
        header = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "mcrgpu_version": __version__,
            "best_loss": self.best_loss, "interrupted": self.interrupted,
            "stop_reason": self.stop_reason, "settings": self.settings,
            "snapshots": sorted(self.snapshots), "comparison": self.comparison,
            "polish": self.polish,
        }
        arrays = {
            "iteration": np.arange(1, self.n_evaluations + 1),
            "loss": np.asarray(self.losses, dtype=np.float64),
            "seconds": np.asarray(self.seconds, dtype=np.float64),
            "stage": np.asarray(self.stages, dtype=np.int32),
        }
        for name in ("best_field", "last_field"):
            if getattr(self, name) is not None:
                arrays[name] = np.asarray(getattr(self, name), dtype=np.float32)
        if with_snapshots:
            arrays.update({f"snapshot_{k}": np.asarray(v, np.float32) for k, v in self.snapshots.items()})
        else:
            header["snapshot_dir"] = None if self.snapshot_dir is None else str(self.snapshot_dir)
        return header, arrays


def load_convergence(path) -> ConvergenceData:
    """Read a file written by :meth:`ConvergenceData.save`.

    Raises
    ------
    FileFormatError
        Missing, truncated or corrupt file, not a convergence history, or one of a newer format.
    """
    header, arrays = read_npz_with_header(path, what="convergence history")
    return convergence_from_arrays(header, arrays, path, format_name=FORMAT_NAME)


def convergence_from_arrays(header: dict, arrays: dict[str, np.ndarray], path, *, format_name: str
                            ) -> ConvergenceData:
    """The history stored by :meth:`ConvergenceData.as_arrays` in a file of ``format_name``.

    Snapshots missing from ``arrays`` are read from the header's ``snapshot_dir`` (memory maps);
    those no longer there are left out.
    """
    what = "convergence" if format_name == FORMAT_NAME else "checkpoint"
    try:
        if header.get("format") != format_name:
            raise KeyError("format")
        if int(header.get("format_version", 0)) > FORMAT_VERSION:
            raise FileFormatError(
                f"{str(path)!r} was written by a newer mcrgpu ({what} format version "
                f"{header['format_version']}; this one reads up to {FORMAT_VERSION}): upgrade mcrgpu"
            )
        snapshot_dir = Path(header["snapshot_dir"]) if header.get("snapshot_dir") else None
        snapshots = {}
        for k in header["snapshots"]:
            if f"snapshot_{k}" in arrays:
                snapshots[k] = arrays[f"snapshot_{k}"]
            elif snapshot_dir is not None and (snapshot_dir / f"snapshot_{k:07d}.npy").is_file():
                snapshots[k] = np.load(snapshot_dir / f"snapshot_{k:07d}.npy", mmap_mode="r")
        return ConvergenceData(
            losses=arrays["loss"].tolist(),
            seconds=arrays["seconds"].tolist(),
            stages=arrays["stage"].tolist(),
            best_loss=float(header["best_loss"]),
            best_field=arrays.get("best_field"),
            last_field=arrays.get("last_field"),
            snapshots=snapshots,
            interrupted=bool(header["interrupted"]),
            stop_reason=header.get("stop_reason"),
            settings=header["settings"],
            comparison=header.get("comparison"),
            polish=header.get("polish"),
            snapshot_dir=snapshot_dir,
        )
    except FileFormatError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise FileFormatError(
            f"{str(path)!r} is not a valid mcrgpu {what} file (problem: {error})"
        ) from None
