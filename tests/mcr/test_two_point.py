"""S2 of labels and the S2 error, against a brute-force reference: one np.roll per shift."""

import numpy as np
import pytest

from mcrgpu.mcr.compare import compare
from mcrgpu.mcr.two_point import (s2_error, s2_error_floor, s2_errors, structure_s2_error, two_point_map,
                                   two_point_maps)


def s2_by_rolling(image: np.ndarray, phase: int, limit: int) -> np.ndarray:
    """S2 window of a 2D periodic image: mean of I(p) I(p + r), one np.roll per shift."""
    indicator = (image == phase).astype(np.float64)
    steps = range(1 - limit, limit)
    return np.array([[np.mean(indicator * np.roll(indicator, (-dy, -dx), axis=(0, 1))) for dx in steps]
                     for dy in steps])


def error_by_hand(result, original, limit):
    """The S2 error written out: per phase but the majority, |S2 - T| / |T| averaged over the result's
    slice orientations (T: the 2D original's S2), then averaged over those phases."""
    fractions = np.bincount(original.ravel(), minlength=3) / original.size
    phases = [p for p in range(3) if p != np.argmax(fractions)]
    stacks = [result[None]] if result.ndim == 2 else [np.moveaxis(result, a, 0) for a in range(3)]
    errors = []
    for p in phases:
        target = s2_by_rolling(original, p, limit)
        maps = [np.mean([s2_by_rolling(plane, p, limit) for plane in stack], axis=0) for stack in stacks]
        errors.append(np.mean([np.linalg.norm(m - target) / np.linalg.norm(target) for m in maps]))
    return np.mean(errors)


@pytest.fixture
def labels():
    return np.random.default_rng(0).choice(3, size=(11, 13), p=[0.5, 0.3, 0.2])


def test_two_point_map_equals_rolling_in_2d_and_per_axis_in_3d(labels):
    for phase in range(3):
        np.testing.assert_allclose(two_point_map(labels, phase, limit=4), s2_by_rolling(labels, phase, 4), atol=1e-12)
    volume = np.random.default_rng(1).choice(2, size=(5, 6, 7))
    for axis in range(3):
        expected = np.mean([s2_by_rolling(plane, 1, 3) for plane in np.moveaxis(volume, axis, 0)], axis=0)
        np.testing.assert_allclose(two_point_map(volume, 1, limit=3, axis=axis), expected, atol=1e-12)
    maps = two_point_maps(volume, 2, limit=3)
    assert maps.shape == (3, 2, 5, 5)
    np.testing.assert_allclose(maps[2, 0], two_point_map(volume, 0, limit=3, axis=2))


def test_s2_at_zero_is_the_fraction_and_the_phases_add_up(labels):
    maps = two_point_maps(labels, 3, limit=4)[0]
    np.testing.assert_allclose(maps[:, 3, 3], np.bincount(labels.ravel()) / labels.size)
    # sum over phases of S2_p(r) is the probability that p and p + r share a phase: 1 at r = 0
    assert maps.sum(axis=0)[3, 3] == pytest.approx(1.0)


def test_the_s2_error_leaves_out_the_majority_phase_and_is_relative(labels):
    other = np.random.default_rng(2).choice(3, size=labels.shape, p=[0.5, 0.3, 0.2])
    assert structure_s2_error(other, labels, limit=4) == pytest.approx(error_by_hand(other, labels, 4), rel=1e-10)
    maps, targets = two_point_maps(other, 3, limit=4), two_point_maps(labels, 3, limit=4)
    per_phase = s2_errors(maps, targets)
    assert s2_error(maps, targets) == pytest.approx(np.mean(per_phase[1:]))  # phase 0 is the majority
    assert s2_error(maps, targets, fractions=[0.1, 0.8, 0.1]) == pytest.approx(np.mean(per_phase[[0, 2]]))


def test_a_shifted_copy_has_no_s2_error_and_a_volume_is_judged_per_orientation(labels):
    assert structure_s2_error(np.roll(labels, (3, -5), axis=(0, 1)), labels, limit=4) == pytest.approx(0, abs=1e-12)
    volume = np.random.default_rng(3).choice(3, size=(13, 11, 13), p=[0.5, 0.3, 0.2])
    assert structure_s2_error(volume, labels, limit=3) == pytest.approx(error_by_hand(volume, labels, 3), rel=1e-10)


def test_compare_reports_this_s2_error(labels):
    other = np.random.default_rng(4).choice(3, size=labels.shape, p=[0.5, 0.3, 0.2])
    result = compare(labels, other, limit=4)["results"][0]
    assert result["s2_error_summary"] == structure_s2_error(other, labels, limit=4)
    assert result["s2_error"] == pytest.approx(s2_errors(two_point_maps(other, 3, limit=4),
                                                         two_point_maps(labels, 3, limit=4)))


def test_the_floor_bounds_every_volumes_error_against_an_anisotropic_micrograph():
    """One 2D target for all three orientations: its S2 along rows and along columns must both be
    S2 along axis 1 of the volume, so no volume gets below |rows - columns| / (3 |T|)."""
    rng = np.random.default_rng(5)
    elongated = (np.cumsum(rng.random((48, 48)) - 0.5, axis=1) > 0.4).astype(int)  # streaks along x
    target = two_point_maps(elongated, 2, limit=4)
    targets = np.repeat(target, 3, axis=0)
    minority = int(np.argmin(target[0, :, 3, 3]))
    rows, columns = target[0, minority, :, 3], target[0, minority, 3, :]
    expected = np.linalg.norm(rows - columns) / (3 * np.linalg.norm(target[0, minority]))
    assert s2_error_floor(targets) == pytest.approx(expected) and expected > 0.05
    streaks = np.repeat(elongated[None, :16, :16], 16, axis=0)
    for seed in range(4):  # isotropic and elongated volumes alike stay above it
        volume = np.random.default_rng(seed).random((16, 16, 16)) < 0.3 + 0.1 * seed
        for labels in (volume.astype(int), streaks, np.moveaxis(streaks, 2, 1)):
            assert s2_error(two_point_maps(labels, 2, limit=4), targets) >= s2_error_floor(targets)
    isotropic = (target + np.swapaxes(target, -1, -2)) / 2
    assert s2_error_floor(np.repeat(isotropic, 3, axis=0)) == 0.0 and s2_error_floor(target) == 0.0
