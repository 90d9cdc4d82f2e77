"""smooth(): periodic Gaussian smoothing of labels with exact phase fractions."""

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.smoothing import smooth
from mcrgpu.mcr.synthetic import gaussian_random_structure


def interface_pairs(labels):
    return sum(int(np.sum(labels != np.roll(labels, 1, axis))) for axis in range(labels.ndim))


@pytest.mark.parametrize("shape, fractions", [((48, 40), (0.7, 0.3)), ((16, 18, 20), (0.5, 0.3, 0.2))])
def test_phase_counts_stay_exact_and_boundaries_shorten(shape, fractions):
    noisy = gaussian_random_structure(shape, volume_fractions=fractions, correlation_length=0.7, seed=3)
    smoothed = smooth(noisy, 1.5)
    assert smoothed.shape == noisy.shape and smoothed.phase_values == noisy.phase_values
    np.testing.assert_array_equal(np.bincount(smoothed.labels.ravel()), np.bincount(noisy.labels.ravel()))
    assert interface_pairs(smoothed.labels) < 0.6 * interface_pairs(noisy.labels)


def test_straight_layers_are_already_smooth():
    labels = np.zeros((32, 8), int)
    labels[10:20] = 1
    np.testing.assert_array_equal(smooth(Microstructure(labels), 2.0).labels, labels)


def test_boundaries_are_periodic():
    """A particle across the edge is smoothed as the same particle in the middle (shifted)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((32, 32), int)
    labels[12:20, 12:20] = rng.random((8, 8)) < 0.6
    middle = smooth(Microstructure(labels), 1.0).labels
    across = smooth(Microstructure(np.roll(labels, (16, 16), (0, 1))), 1.0).labels
    np.testing.assert_array_equal(across, np.roll(middle, (16, 16), (0, 1)))


@pytest.mark.parametrize("strength", [0, -1.0, float("nan"), "1"])
def test_strength_must_be_positive(strength):
    with pytest.raises(InvalidInputError, match="strength must be a number of pixels > 0"):
        smooth(Microstructure(np.eye(4, dtype=int)), strength)
