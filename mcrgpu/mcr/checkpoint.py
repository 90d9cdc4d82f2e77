"""Resumable checkpoints of a reconstruction: where it stands, the optimiser's state and its history, as a safe file."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.io import atomic_save_npz, read_npz_with_header
from mcrgpu.mcr.characterization import Characterization
from mcrgpu.mcr.convergence import FORMAT_NAME as CONVERGENCE_FORMAT
from mcrgpu.mcr.convergence import ConvergenceData, convergence_from_arrays

__all__ = ["OPERATIONAL_SETTINGS", "Checkpoint", "load_resume_point", "resume_point", "save_checkpoint",
           "settings_differences", "target_fingerprint"]


FORMAT_NAME = "mcrgpu-checkpoint"
_OPTIMIZER_PREFIX = "optimizer__"


@dataclass
class Checkpoint:
    """Everything a reconstruction needs to go on exactly where it stopped.

    Attributes
    ----------
    history : ConvergenceData
        Losses, times, best state and settings so far; its snapshots stay in its ``snapshot_dir``.
    stage : int
        Multigrid stage being run (0 = full resolution); the coarser ones are finished.
    stage_evaluations : int
        Evaluations made in that stage.
    field : np.ndarray
        The current iterate (*spatial, C) at the stage's resolution: the last accepted point.
    optimizer : dict of str to np.ndarray
        The optimiser's variables by name (none for SciPy's L-BFGS-B, whose memory is out of reach,
        and for a run continued from a convergence file).
    rng_state : dict, optional
        State of the generator drawing random slices (``greedy``).
    target : str, optional
        :func:`target_fingerprint` of the characterization reconstructed.
    """

    history: ConvergenceData
    stage: int
    stage_evaluations: int
    field: np.ndarray
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    rng_state: dict | None = None
    target: str | None = None


def target_fingerprint(desired: Characterization) -> str:
    """A short hash of the descriptors a reconstruction matches (a checkpoint belongs to one target)."""
    digest = hashlib.sha256()
    for name in sorted(desired.descriptors):
        value = np.ascontiguousarray(desired.descriptors[name], dtype=np.float64)
        digest.update(name.encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically as an ``.npz`` of arrays with a JSON header (no pickle)."""
    header, arrays = checkpoint.history.as_arrays(with_snapshots=False)
    if header["snapshot_dir"] is not None:  # relative to the checkpoint: found again from another folder
        header["snapshot_dir"] = os.path.relpath(header["snapshot_dir"], Path(path).parent)
    header.update(format=FORMAT_NAME, stage=checkpoint.stage, stage_evaluations=checkpoint.stage_evaluations,
                  rng_state=checkpoint.rng_state, target=checkpoint.target)
    arrays["field"] = np.asarray(checkpoint.field, np.float32)
    arrays.update({_OPTIMIZER_PREFIX + name: value for name, value in checkpoint.optimizer.items()})
    return atomic_save_npz(path, header=np.array(json.dumps(header)), **arrays)


def load_resume_point(path: str | Path) -> Checkpoint:
    """Where to resume: a checkpoint file, or a convergence file of a finished run.

    A convergence file continues from its last field with a fresh optimiser, for another
    ``max_iter`` evaluations of its last stage.

    Raises
    ------
    FileFormatError
        Missing or corrupt file, neither a checkpoint nor a convergence history, or a newer format.
    """
    header, arrays = read_npz_with_header(path, what="checkpoint or convergence history")
    if header.get("format") == CONVERGENCE_FORMAT:
        history = convergence_from_arrays(header, arrays, path, format_name=CONVERGENCE_FORMAT)
        if history.last_field is None or not history.stages:
            raise FileFormatError(f"{str(path)!r} holds no evaluated state to resume from")
        return Checkpoint(history, stage=history.stages[-1], stage_evaluations=0, field=history.last_field)
    if header.get("format") != FORMAT_NAME:
        kind = str(header.get("format") or "no format name").removeprefix("mcrgpu-")
        raise FileFormatError(f"{str(path)!r} holds a {kind} (format {header.get('format')!r}), not a checkpoint; "
                              "--resume takes the _checkpoint.npz or _convergence.npz that a run wrote")
    if isinstance(header.get("snapshot_dir"), str):
        header["snapshot_dir"] = str(Path(path).parent / header["snapshot_dir"])
    history = convergence_from_arrays(header, arrays, path, format_name=FORMAT_NAME)
    try:
        return Checkpoint(
            history, stage=int(header["stage"]), stage_evaluations=int(header["stage_evaluations"]),
            field=arrays["field"],
            optimizer={name[len(_OPTIMIZER_PREFIX):]: value for name, value in arrays.items()
                       if name.startswith(_OPTIMIZER_PREFIX)},
            rng_state=header.get("rng_state"), target=header.get("target"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise FileFormatError(f"{str(path)!r} is not a valid mcrgpu checkpoint file (problem: {error})") from None


OPERATIONAL_SETTINGS = ("slice_batch_size", "use_distributed_loss", "jit_compile", "convergence_data_steps",
                        "outfile_data_steps", "checkpoint_every")
"""Settings that change how a run is carried out, not its result: free to change on resume."""


def settings_differences(stored: dict, current: dict) -> list[tuple[str, object, object]]:
    """(name, stored value, current value) of the settings that decide the result and differ.

    Names an older file does not know are not compared; values are compared as JSON stores them.
    """
    def normal(value):
        return json.loads(json.dumps(value))

    return [(name, stored[name], value) for name, value in current.items()
            if name not in OPERATIONAL_SETTINGS and name in stored and normal(stored[name]) != normal(value)]


def resume_point(path, target: str, settings: dict, *, override_settings: bool = False) -> Checkpoint:
    """:func:`load_resume_point`, checked against this run's target fingerprint and settings.

    Raises
    ------
    InvalidInputError
        The file was made for another target, or with other settings (unless ``override_settings``).
    """
    resume = load_resume_point(path)
    if resume.target is not None and resume.target != target:
        raise InvalidInputError(
            f"Cannot resume from {str(path)!r}: it was made for another target (another structure, "
            "characterization or descriptor settings); give the one that run reconstructed, with its descriptor options"
        )
    differences = settings_differences(resume.history.settings, settings)
    if differences and not override_settings:
        listed = "; ".join(f"{name} {stored!r} there, {value!r} here" for name, stored, value in differences)
        raise InvalidInputError(
            f"Cannot resume from {str(path)!r} with other settings ({listed}): use the stored ones, "
            "or override them on purpose (override_settings=True, --override_settings)"
        )
    return resume
