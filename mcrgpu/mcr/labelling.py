"""Turning an optimised indicator field into phase labels that keep the target phase fractions."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure

__all__ = ["phase_counts", "label_field"]


def phase_counts(fractions: Sequence[float], n_pixels: int) -> np.ndarray:
    """Pixels per phase closest to ``fractions`` that sum to ``n_pixels`` (largest remainders first)."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or fractions.size < 2 or np.any(fractions < 0) or not np.isfinite(fractions).all() \
            or fractions.sum() <= 0:
        raise InvalidInputError(
            f"fractions must be two or more finite numbers >= 0 with a positive sum; received {fractions.tolist()}"
        )
    exact = fractions / fractions.sum() * n_pixels
    counts = np.floor(exact).astype(np.int64)
    remainders = np.argsort(-(exact - counts), kind="stable")
    counts[remainders[: n_pixels - counts.sum()]] += 1
    return counts


def label_field(field: np.ndarray, fractions: Sequence[float] | None = None, *,
                phase_values: Sequence[int] | None = None) -> Microstructure:
    """Phase labels of an indicator field ``(*spatial, C)``, with the phase fractions ``fractions``.

    Cutting a partly grey field at 0.5 (or taking the arg-max) moves the phase fractions, and the
    two-point statistics with them. Here the pixels are ranked instead:

    - one channel (indicator of phase 1 of two): the ``round(f_1 N)`` pixels with the highest values
      become phase 1 (a cut at the quantile of the target fraction);
    - several channels: pixels go, most confident first, to the phase of their highest remaining
      indicator until each phase has ``round(f_p N)`` pixels (a greedy assignment with exact counts).

    Parameters
    ----------
    field : np.ndarray
        Optimised field, (H, W, C) or (D, H, W, C).
    fractions : sequence of float, optional
        Target fraction per phase (length 2 for one channel, else C). None: cut at 0.5 / arg-max.
    phase_values : sequence of int, optional
        Original label of each phase.

    Returns
    -------
    Microstructure

    Examples
    --------
    >>> field = np.linspace(0, 0.6, 10).reshape(10, 1, 1)
    >>> label_field(field, [0.5, 0.5]).volume_fractions()
    array([0.5, 0.5])
    """
    field = np.asarray(field, dtype=np.float64)
    if fractions is None:
        return Microstructure.from_indicator(field, phase_values=phase_values)
    if field.ndim not in (3, 4) or not np.isfinite(field).all():
        raise InvalidInputError(f"field must be a finite (H, W, C) or (D, H, W, C) array; received shape {field.shape}")
    channels = field.shape[-1]
    n_phases = max(channels, 2)
    if len(fractions) != n_phases:
        raise InvalidInputError(
            f"fractions must have {n_phases} entries for a field with {channels} channel(s); received {list(fractions)}"
        )
    values = field.reshape(-1, channels)
    counts = phase_counts(fractions, values.shape[0])
    labels = np.zeros(values.shape[0], dtype=np.int64)
    if channels == 1:
        order = np.argsort(-values[:, 0], kind="stable")
        labels[order[: counts[1]]] = 1
    else:
        labels = _greedy_assignment(values, counts)
    return Microstructure(labels.reshape(field.shape[:-1]), phase_values=phase_values or tuple(range(n_phases)))


def _greedy_assignment(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Assign each row of ``values`` (N, C) to one column, with ``counts[c]`` rows per column.

    Rounds: every unassigned pixel proposes its best column that still has room; each column takes
    the proposals with the highest values up to its remaining room. Each round fills a column or
    assigns every pixel, so it ends after at most C rounds.
    """
    n, channels = values.shape
    labels = np.full(n, -1, dtype=np.int64)
    room = counts.copy()
    while (labels < 0).any():
        open_columns = room > 0
        pending = np.flatnonzero(labels < 0)
        scores = np.where(open_columns[None, :], values[pending], -np.inf)
        choice = np.argmax(scores, axis=1)
        for column in np.flatnonzero(open_columns):
            proposers = pending[choice == column]
            if proposers.size == 0:
                continue
            best = proposers[np.argsort(-values[proposers, column], kind="stable")[: room[column]]]
            labels[best] = column
            room[column] -= best.size
    return labels
