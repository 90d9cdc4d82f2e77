"""The two-point probability S2 of a labelled structure and the S2 error of a reconstruction (NumPy).

The one definition that :func:`~mcrgpu.mcr.compare.compare`, the two-point polish's log, the
benchmarks and the examples report as "S2 error": see :func:`s2_error`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["S2_LIMIT", "two_point_map", "two_point_maps", "summary_phases", "s2_errors", "s2_error",
           "s2_error_floor", "structure_s2_error"]

S2_LIMIT = 8
"""Default window of the S2 error: shifts ``|dy|, |dx| < 8`` (the descriptors' usual ``limit_to``)."""


def two_point_map(labels: np.ndarray, phase: int, *, limit: int, axis: int = 0) -> np.ndarray:
    """Periodic two-point probability S2 of ``phase`` for shifts ``|dy|, |dx| < limit``.

    ``S2(r)`` is the mean over pixels p of ``I(p) I(p + r)``, with I the indicator of ``phase``
    and the image wrapped around (periodic).

    Parameters
    ----------
    labels : np.ndarray
        Phase labels, (H, W) or (D, H, W).
    phase : int
        The label whose S2 is wanted.
    limit : int
        The window: shifts ``1 - limit .. limit - 1`` along both slice axes.
    axis : int
        3D: the mean over the slices perpendicular to ``axis`` (slices oriented as
        ``np.moveaxis(labels, axis, 0)`` gives them). Ignored for 2D.

    Returns
    -------
    np.ndarray
        ``(2 limit - 1, 2 limit - 1)``, shift ``(dy, dx)`` at ``[dy + limit - 1, dx + limit - 1]``:
        the centre is ``S2(0)``, the volume fraction.
    """
    indicator = (labels == phase).astype(np.float64)
    if indicator.ndim == 3:
        indicator = np.moveaxis(indicator, axis, 0)
    else:
        indicator = indicator[None]
    spectrum = np.fft.rfft2(indicator)
    height, width = indicator.shape[1:]
    s2 = np.fft.irfft2(spectrum * np.conj(spectrum), s=(height, width)).mean(axis=0) / (height * width)
    rows = np.arange(-(limit - 1), limit) % height
    cols = np.arange(-(limit - 1), limit) % width
    return s2[np.ix_(rows, cols)]


def two_point_maps(labels: np.ndarray, n_phases: int, *, limit: int) -> np.ndarray:
    """:func:`two_point_map` of every phase in every slice orientation: ``(n_axes, n_phases, 2L - 1, 2L - 1)``,
    one orientation for 2D labels, the slices perpendicular to axes 0, 1, 2 for 3D."""
    axes = range(3) if labels.ndim == 3 else [0]
    return np.stack([[two_point_map(labels, p, limit=limit, axis=a) for p in range(n_phases)] for a in axes])


def summary_phases(fractions: np.ndarray) -> list[int]:
    """Phases the summary figures are about: all but the most abundant one (the matrix)."""
    majority = int(np.argmax(fractions))
    return [p for p in range(len(fractions)) if p != majority]


def s2_errors(maps: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Relative L2 error of S2 per phase: ``|S2 - target| / |target|`` over the window, mean over
    the slice orientations.

    Parameters
    ----------
    maps : np.ndarray
        ``(n_axes, K, 2L - 1, 2L - 1)``, from :func:`two_point_maps`.
    targets : np.ndarray
        The same shape, or ``(1, K, 2L - 1, 2L - 1)``: one target for every orientation.

    Returns
    -------
    np.ndarray
        ``(K,)``, float64.
    """
    targets = np.broadcast_to(targets, maps.shape)
    return np.array([np.mean([np.linalg.norm(m - t) / max(float(np.linalg.norm(t)), 1e-12)
                              for m, t in zip(maps[:, p], targets[:, p])]) for p in range(maps.shape[1])])


def s2_error(maps: np.ndarray, targets: np.ndarray, *, fractions: np.ndarray | None = None) -> float:
    """The S2 error: the mean of :func:`s2_errors` over all phases but the most abundant one.

    That is, for each phase p other than the majority (the matrix, whose S2 is ruled by the others
    in a two-phase structure), the relative L2 norm ``|S2_p - T_p| / |T_p|`` over every shift
    ``|dy|, |dx| < L`` of the window (both signs; ``S2(r) = S2(-r)``, so each pair counts twice),
    averaged over the slice orientations (one in 2D; in 3D the slices perpendicular to axes 0, 1
    and 2, each orientation's map being the mean over its slices); then the mean over those phases.
    Relative, so it compares across structures and window sizes; 0 means S2 agrees exactly.

    Parameters
    ----------
    maps, targets : np.ndarray
        As for :func:`s2_errors`.
    fractions : np.ndarray, optional
        Phase fractions that decide the majority phase; default the targets' ``S2(0)``.

    Returns
    -------
    float
    """
    if fractions is None:
        limit = (targets.shape[-1] + 1) // 2
        fractions = targets[0, :, limit - 1, limit - 1]
    return float(np.mean(s2_errors(maps, targets)[summary_phases(fractions)]))


def s2_error_floor(targets: np.ndarray) -> float:
    """A lower bound of the :func:`s2_error` any volume can reach against 3D ``targets``
    ``(3, K, 2L - 1, 2L - 1)`` (one per slice orientation, oriented as :func:`two_point_maps`).

    Two orientations share each axis: the slices perpendicular to axes 0 and 2 both hold axis 1,
    as rows in the first and columns in the second, and S2 along that line is one function of the
    volume. Where their targets differ along it, as for one anisotropic micrograph used for all
    three orientations, no volume meets both: for the shared line ``s`` and the targets' lines
    ``a``, ``b``, ``|s - a| + |s - b| >= |a - b|``, so the mean over the three orientations of a
    phase's relative error is at least ``|a - b| / (3 max(|T_1|, |T_2|))``, whichever axis gives
    most. 0 for 2D targets, whose one orientation has no such conflict."""
    if targets.shape[0] != 3:
        return 0.0
    centre = (targets.shape[-1] - 1) // 2
    rows, columns = targets[..., :, centre], targets[..., centre, :]  # S2 along a slice's first / second axis
    norms = np.linalg.norm(targets, axis=(2, 3))
    shared = [(0, rows, 2, columns), (1, rows, 2, rows), (0, columns, 1, columns)]  # axes 1, 0 and 2
    floors = np.max([np.linalg.norm(line[o] - other[p], axis=-1) / (3 * np.maximum(norms[o], norms[p]))
                     for o, line, p, other in shared], axis=0)
    return float(np.mean(floors[summary_phases(targets[0, :, centre, centre])]))


def structure_s2_error(result: np.ndarray, original: np.ndarray, *, limit: int = S2_LIMIT) -> float:
    """:func:`s2_error` of the labels ``result`` against the labels ``original``.

    The target is the original's S2 (3D: the mean over its three orientations, as an isotropic
    target for each of the result's); the majority phase is the original's. A 3D result may be
    judged against a 2D original.

    Examples
    --------
    >>> a = (np.random.default_rng(0).random((16, 16)) > 0.7).astype(int)
    >>> round(structure_s2_error(np.roll(a, 3, axis=0), a, limit=4), 12)  # S2 does not see a shift
    0.0
    """
    original, result = np.asarray(original), np.asarray(result)
    n_phases = int(max(original.max(), result.max())) + 1
    targets = two_point_maps(original, n_phases, limit=limit).mean(axis=0, keepdims=True)
    fractions = [np.mean(original == p) for p in range(n_phases)]
    return s2_error(two_point_maps(result, n_phases, limit=limit), targets, fractions=fractions)
