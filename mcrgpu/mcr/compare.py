"""compare(): the statistics MCR papers report to judge a reconstruction, and a check that it is no copy."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import scipy.ndimage
import scipy.stats

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.two_point import s2_error, s2_errors, summary_phases, two_point_maps

__all__ = ["COPY_IOU_WARNING", "compare", "chord_lengths", "clusters", "copy_check"]

COPY_IOU_WARNING = 0.5
"""Best IoU above which a result is reported as a (shifted, flipped) copy of the original. Unrelated
structures of the same kind score 0.15-0.46 (the most for coarse ones with a 30-40 % minority phase).
For a few particles the threshold hardly separates copies: pmma's five particles (48, 12, 8, 4 and
4 pixels) placed at random score 0.46-0.52, as the biggest one alone overlaps 48 of 76 pixels."""


def _labels(structure: Microstructure | np.ndarray, name: str) -> np.ndarray:
    if isinstance(structure, Microstructure):
        return np.asarray(structure.labels)
    labels = Microstructure(structure).labels
    if labels.ndim not in (2, 3):
        raise InvalidInputError(f"{name} must be a 2D or 3D array of phase labels; received shape {labels.shape}")
    return np.asarray(labels)


def chord_lengths(labels: np.ndarray, phase: int, *, axis: int) -> np.ndarray:
    """Lengths of all runs of ``phase`` along ``axis`` (lineal chords; runs cut by the border count as
    they are), as a 1D int array."""
    lines = np.moveaxis(labels == phase, axis, -1).reshape(-1, labels.shape[axis])
    padded = np.pad(lines, ((0, 0), (1, 1))).astype(np.int8)
    steps = np.diff(padded, axis=1)
    starts = np.nonzero(steps == 1)
    ends = np.nonzero(steps == -1)
    return ends[1] - starts[1]  # both in row-major order, so the k-th start pairs with the k-th end


def clusters(labels: np.ndarray, phase: int) -> np.ndarray:
    """Sizes (pixels) of the connected clusters of ``phase`` (face connectivity, not periodic)."""
    clustered, count = scipy.ndimage.label(labels == phase)
    return np.bincount(clustered.ravel(), minlength=count + 1)[1:]


def _transforms(ndim: int) -> list[tuple[str, Any]]:
    """The 8 flips/rotations of a square (2D) or the 48 of a cube (3D), as (name, function)."""
    found = []
    for axes in itertools.permutations(range(ndim)):
        for flips in itertools.product((False, True), repeat=ndim):
            flip_axes = tuple(i for i, f in enumerate(flips) if f)

            def apply(a, axes=axes, flip_axes=flip_axes):
                return np.flip(np.transpose(a, axes), flip_axes) if flip_axes else np.transpose(a, axes)

            name = f"axes {axes}" + (f", flipped {flip_axes}" if flip_axes else "")
            found.append((name, apply))
    return found


def copy_check(original: np.ndarray, result: np.ndarray, phases: Sequence[int]) -> dict[str, Any]:
    """Best IoU of ``phases`` of ``result`` with ``original`` over all periodic shifts and flips/rotations.

    For each flip/rotation of the result with the original's shape, the intersection for every shift
    is one FFT cross-correlation. ``shift`` is the roll that takes the (transformed) result onto the
    original: ``np.roll(result, -shift)`` overlaps it best, so a copy rolled by ``s`` reports ``s``.
    A 3D result compared with a 2D original is checked slice by slice (every slice along every axis).

    Returns
    -------
    dict
        ``iou`` (mean over ``phases`` at the best placement), ``agreement`` (fraction of equal
        pixels there), ``shift`` and ``transform``; ``iou`` is None if no placement fits.
    """
    candidates = [result]
    if result.ndim == 3 and original.ndim == 2:
        candidates = [np.moveaxis(result, axis, 0)[i] for axis in range(3) for i in range(result.shape[axis])]
    best = {"iou": None, "agreement": None, "shift": None, "transform": None}
    spectra = {p: np.fft.rfftn((original == p).astype(np.float64)) for p in phases}
    sizes = {p: float(np.sum(original == p)) for p in phases}
    all_phases = np.unique(original)
    for candidate in candidates:
        for name, transform in _transforms(original.ndim):
            moved = transform(candidate)
            if moved.shape != original.shape:
                continue
            iou = 0.0
            for p in phases:
                indicator = (moved == p).astype(np.float64)
                overlap = np.fft.irfftn(np.conj(spectra[p]) * np.fft.rfftn(indicator), s=original.shape,
                                        axes=tuple(range(original.ndim)))
                union = sizes[p] + indicator.sum() - overlap
                iou = iou + overlap / np.maximum(union, 1.0)
            iou /= len(phases)
            index = np.unravel_index(int(np.argmax(iou)), iou.shape)
            if best["iou"] is None or iou[index] > best["iou"] + 1e-12:
                shift = tuple(int(i) if i <= n // 2 else int(i) - n for i, n in zip(index, original.shape))
                placed = np.roll(moved, tuple(-s for s in shift), axis=tuple(range(original.ndim)))
                agreement = float(np.mean(placed == original)) if np.isin(placed, all_phases).all() else None
                best = {"iou": float(iou[index]), "agreement": agreement, "shift": list(shift), "transform": name}
    return best


def _distribution_distance(reference: np.ndarray, other: np.ndarray) -> float | None:
    """Wasserstein-1 distance between two chord-length samples, relative to the mean reference length."""
    if reference.size == 0 or other.size == 0:
        return None
    return float(scipy.stats.wasserstein_distance(reference, other) / reference.mean())


def _reference_chords(per_axis: list[np.ndarray], axis: int, ndim: int) -> np.ndarray:
    """The original's chords to compare with a result's along ``axis``: the same axis if the dimensions
    agree, else (a volume from a 2D original) the chords along every axis of the original."""
    return per_axis[axis] if len(per_axis) == ndim else np.concatenate(per_axis)


def _describe(labels: np.ndarray, n_phases: int, limit: int) -> dict[str, Any]:
    axes = range(labels.ndim)
    return {
        "shape": list(labels.shape),
        "fractions": [float(np.mean(labels == p)) for p in range(n_phases)],
        "s2": two_point_maps(labels, n_phases, limit=limit),
        "chords": [[chord_lengths(labels, p, axis=a) for a in axes] for p in range(n_phases)],
        "clusters": [clusters(labels, p) for p in range(n_phases)],
    }


def compare(original: Microstructure | np.ndarray, results: Microstructure | np.ndarray
            | Sequence[Microstructure | np.ndarray], *, limit: int = 8) -> dict[str, Any]:
    """Compare reconstructions with the original: S2, phase fractions, chords, clusters, copy check.

    Parameters
    ----------
    original : Microstructure or array of int
        The structure that was characterized (2D or 3D).
    results : Microstructure, array, or a sequence of them
        Reconstructions with the same phases (2D, or 3D from a 2D original: judged per axis over all
        slices).
    limit : int
        S2 is compared over shifts ``|dy|, |dx| < limit`` (the descriptors' ``limit_to``).

    Returns
    -------
    dict
        JSON-safe: ``original`` (fractions, mean chord lengths, cluster counts), and ``results``, one
        dict each with ``s2_error`` per phase (:func:`~mcrgpu.mcr.two_point.s2_errors`; a 3D original's
        S2 is the mean over its three orientations),
        ``fraction_error`` per phase, ``chord_distance`` per phase and axis (Wasserstein-1 distance of
        the chord-length distributions along that axis over the original's mean chord length), ``mean_chord``,
        ``clusters`` (count, mean size per phase), ``copy`` (see :func:`copy_check`) and the summary
        figures over :func:`~mcrgpu.mcr.two_point.summary_phases`: ``s2_error_summary`` (the S2 error,
        :func:`~mcrgpu.mcr.two_point.s2_error`), ``fraction_error_max``,
        ``chord_distance_summary``, ``is_copy``.

    Examples
    --------
    >>> a = (np.random.default_rng(0).random((16, 16)) > 0.7).astype(int)
    >>> compare(a, np.roll(a, (3, -2), axis=(0, 1)))["results"][0]["copy"]["shift"]
    [3, -2]
    """
    if isinstance(results, (Microstructure, np.ndarray)):
        results = [results]
    if not results:
        raise InvalidInputError("results must hold at least one structure; received an empty list")
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise InvalidInputError(f"limit must be an integer >= 1; received {limit!r}")
    reference = _labels(original, "original")
    n_phases = int(reference.max()) + 1
    if isinstance(original, Microstructure):
        n_phases = original.n_phases
    if 2 * limit - 1 > min(reference.shape):
        raise InvalidInputError(f"limit {limit} is too large for the original of shape {reference.shape}")
    ref = _describe(reference, n_phases, limit)
    phases = summary_phases(np.asarray(ref["fractions"]))
    report = {"limit": limit, "summary_phases": phases, "original": _public(ref), "results": []}
    for index, structure in enumerate(results):
        labels = _labels(structure, f"results[{index}]")
        if labels.max() >= n_phases:
            raise InvalidInputError(
                f"results[{index}] has phase label {int(labels.max())}, the original only {n_phases} phases"
            )
        if labels.ndim < reference.ndim:
            raise InvalidInputError(f"results[{index}] is 2D but the original is 3D; compare structures of the "
                                    "same dimension (or a 3D result with a 2D original)")
        own = _describe(labels, n_phases, limit)
        targets = ref["s2"].mean(axis=0, keepdims=True)  # a 3D original: the mean of its orientations
        per_phase = s2_errors(own["s2"], targets)
        chord_distance = [[_distribution_distance(_reference_chords(ref["chords"][p], axis, labels.ndim), c)
                           for axis, c in enumerate(own["chords"][p])] for p in range(n_phases)]
        fraction_error = [abs(a - b) for a, b in zip(own["fractions"], ref["fractions"])]
        copy = copy_check(reference, labels, phases)
        summary_chords = [d for p in phases for d in chord_distance[p] if d is not None]
        report["results"].append({
            **_public(own),
            "s2_error": [float(e) for e in per_phase],
            "fraction_error": fraction_error,
            "chord_distance": chord_distance,
            "copy": copy,
            "s2_error_summary": s2_error(own["s2"], targets, fractions=ref["fractions"]),
            "fraction_error_max": float(max(fraction_error)),
            "chord_distance_summary": float(np.mean(summary_chords)) if summary_chords else None,
            "is_copy": copy["iou"] is not None and copy["iou"] > COPY_IOU_WARNING,
        })
    return report


def _public(described: dict[str, Any]) -> dict[str, Any]:
    """The JSON part of :func:`_describe`: fractions, mean chord lengths, cluster counts and mean sizes."""
    return {
        "shape": described["shape"],
        "fractions": described["fractions"],
        "mean_chord": [[float(c.mean()) if c.size else 0.0 for c in per_axis] for per_axis in described["chords"]],
        "clusters": [{"count": int(s.size), "mean_size": float(s.mean()) if s.size else 0.0}
                     for s in described["clusters"]],
    }
