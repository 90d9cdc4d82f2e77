"""match(): characterize a structure, reconstruct a new one with the same descriptors, compare the two."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.characterization import Characterization, characterize
from mcrgpu.mcr.characterization_files import save_characterization
from mcrgpu.mcr.convergence import ConvergenceData
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.microstructure import Microstructure

__all__ = ["MatchResult", "match", "steady_seconds_per_evaluation", "comparison_lines"]


@dataclass(frozen=True)
class MatchResult:
    """What :func:`match` produced: the target, the history, the new structure and the comparison.

    ``result`` and ``comparison`` are None when the run was stopped before its first evaluation.
    """

    characterization: Characterization
    history: ConvergenceData
    result: Microstructure | None
    comparison: dict[str, Any] | None


def steady_seconds_per_evaluation(history: ConvergenceData) -> float:
    """Mean wall time per evaluation after the first TensorFlow call (which traces the graph).

    The device optimiser records a whole chunk of evaluations at once, so the first call is every
    evaluation stamped with the first time; SciPy's optimiser records one evaluation per call.
    """
    seconds = np.asarray(history.seconds, dtype=float)
    warm = int(np.count_nonzero(seconds == seconds[0])) if seconds.size else 0
    if seconds.size <= warm:
        return float("nan")
    return float((seconds[-1] - seconds[warm - 1]) / (seconds.size - warm))


def match(structure: Microstructure | np.ndarray, descriptor_types: Sequence[str] = ("Correlations",
                                                                                     "VolumeFractions"), *,
          shape: Sequence[int] | None = None, limit_to: int = 8, use_multigrid: bool = True,
          periodic: bool = True, threshold_steepness: float = 10.0, nl_method: str = "relu",
          gram_layers: Sequence[str] | None = None, gram_weights_filename: str | None = None, isotropic: bool = False,
          strategy: tf.distribute.Strategy | None = None, save_to: str | Path | None = None,
          name: str | None = None, source: str | None = None,
          initial_microstructure: Microstructure | None = None, progress: bool = False,
          resume_from: str | Path | None = None, override_settings: bool = False, **settings) -> MatchResult:
    """Characterize ``structure``, reconstruct a new one with the same descriptors and compare them.

    What ``mcrgpu match`` does, from Python: the multiphase characterization of ``structure``, a
    :class:`~mcrgpu.mcr.dmcr.DMCR` reconstruction of ``shape`` (default the structure's shape; a 3D
    shape from a 2D structure reconstructs a volume), and :func:`~mcrgpu.mcr.compare.compare` of the
    result with the original, stored in the history (``history.comparison``). With ``save_to``, the
    characterization is saved too (``NAME_characterization.npz``, see
    :class:`~mcrgpu.mcr.run_files.RunFiles`), once the reconstruction has run: a resume file that
    does not fit leaves nothing behind.

    Parameters
    ----------
    structure : Microstructure or array of int
        The original, 2D or 3D.
    descriptor_types : sequence of str
        Descriptors to match.
    shape : sequence of int, optional
        Shape of the reconstruction.
    limit_to, use_multigrid, periodic, threshold_steepness, nl_method, gram_layers, gram_weights_filename
        Descriptor settings, see :func:`~mcrgpu.mcr.characterization.characterize`.
    isotropic : bool
        A 3D structure: match the mean over the three orientations, not one target per axis.
    strategy : tf.distribute.Strategy, optional
        Strategy for both steps (default: TensorFlow's current one).
    save_to, name
        Folder and file stem for the results (see :class:`~mcrgpu.mcr.dmcr.DMCR`); None saves nothing.
    source : str, optional
        Where the structure came from, recorded in the characterization (default ``name``).
    initial_microstructure, progress
        See :class:`~mcrgpu.mcr.dmcr.DMCR`.
    resume_from, override_settings
        Continue an earlier match of this structure, see :meth:`~mcrgpu.mcr.dmcr.DMCR.reconstruct`.
    **settings
        Reconstruction settings (``max_iter``, ``seed``, ``descriptor_weights``, ...), see
        :class:`~mcrgpu.mcr.reconstruction_settings.ReconstructionSettings`.

    Returns
    -------
    MatchResult

    Raises
    ------
    InvalidInputError
        ``resume_from`` was written for another structure (or other descriptor settings), or with
        other settings (unless ``override_settings``).

    Examples
    --------
    >>> from mcrgpu import gaussian_random_structure
    >>> found = match(gaussian_random_structure((32, 32)), max_iter=50, limit_to=4)  # doctest: +SKIP
    >>> found.comparison["results"][0]["copy"]["iou"] < 0.5  # doctest: +SKIP
    True
    """
    if not isinstance(structure, Microstructure):
        structure = Microstructure(structure)
    target = characterize(structure, list(descriptor_types), limit_to=limit_to, use_multigrid=use_multigrid,
                          use_multiphase=True, periodic=periodic, threshold_steepness=threshold_steepness,
                          nl_method=nl_method, gram_layers=gram_layers, gram_weights_filename=gram_weights_filename,
                          strategy=strategy, source=source if source is not None else name or "")
    if isotropic and target.is_3d:
        target = replace(target, axis_descriptors=None)
    dmcr = DMCR(list(descriptor_types), strategy=strategy, save_to=save_to, name=name or "mcrgpu",
                initial_microstructure=initial_microstructure, progress=progress, **settings)
    history, result = dmcr.reconstruct(target, tuple(shape) if shape is not None else structure.shape,
                                       resume_from=resume_from, override_settings=override_settings,
                                       compare_with=structure)
    if result is not None and dmcr.save_to is not None:
        save_characterization(dmcr.run_files(target).characterization, target)
    return MatchResult(target, history, result, history.comparison)


def comparison_lines(comparison: dict[str, Any], names: Sequence[str] | None = None) -> list[str]:
    """Human-readable summary of :func:`~mcrgpu.mcr.compare.compare`, one line per result (plus warnings)."""
    original = comparison["original"]
    phases = comparison["summary_phases"]
    fractions = ", ".join(f"{f:.4f}" for f in original["fractions"])
    lines = [f"original: phase fractions [{fractions}], clusters "
             + ", ".join(str(c["count"]) for c in original["clusters"])]
    for index, result in enumerate(comparison["results"]):
        label = names[index] if names else f"result {index + 1}"
        copy = result["copy"]
        iou = "n/a" if copy["iou"] is None else f"{copy['iou']:.3f}"
        chord = result["chord_distance_summary"]
        lines.append(
            f"{label}: S2 error {result['s2_error_summary']:.4f} (phase {', '.join(map(str, phases))}; per phase "
            + ", ".join(f"{e:.4f}" for e in result["s2_error"]) + "), "
            f"fraction error {result['fraction_error_max']:.4f}, "
            f"chord distance {'n/a' if chord is None else f'{chord:.3f}'}, clusters "
            + ", ".join(str(c["count"]) for c in result["clusters"])
            + f", copy check IoU {iou}"
        )
        if result["is_copy"]:
            lines.append(f"WARNING: {label} is a copy of the original (IoU {iou} > 0.5 at shift {copy['shift']}, "
                         f"{copy['transform']}); it is not a new structure")
    return lines
