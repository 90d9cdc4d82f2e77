"""Synthetic microstructures the package makes itself, for examples, tests and benchmarks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.ndimage

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure

__all__ = ["gaussian_random_structure"]


def gaussian_random_structure(shape: Sequence[int] = (64, 64), *, volume_fractions: Sequence[float] = (0.6, 0.4),
                              correlation_length: float = 3.0, seed: int | None = 0) -> Microstructure:
    """A periodic random structure: smoothed white noise cut at quantiles into phases.

    Parameters
    ----------
    shape : sequence of int
        (H, W) or (D, H, W).
    volume_fractions : sequence of float
        Target fraction of each phase (summing to 1); two or more phases.
    correlation_length : float
        Standard deviation, in pixels, of the Gaussian filter: the typical feature size.
    seed : int, optional
        Seed of the noise, for reproducible structures.

    Returns
    -------
    Microstructure
    """
    fractions = np.asarray(volume_fractions, dtype=float)
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise InvalidInputError(f"shape must be 2 or 3 sizes >= 2; received {tuple(shape)!r}")
    if len(fractions) < 2 or np.any(fractions <= 0) or not np.isclose(fractions.sum(), 1.0):
        raise InvalidInputError(
            f"volume_fractions must be two or more positive numbers summing to 1; received {list(fractions)}"
        )
    if not correlation_length > 0:
        raise InvalidInputError(f"correlation_length must be > 0; received {correlation_length!r}")
    noise = np.random.default_rng(seed).standard_normal(tuple(shape))
    smooth = scipy.ndimage.gaussian_filter(noise, correlation_length, mode="wrap")
    cuts = np.quantile(smooth, np.cumsum(fractions)[:-1])
    return Microstructure(np.searchsorted(cuts, smooth).astype(np.int32))
