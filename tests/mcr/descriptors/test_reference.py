"""Every descriptor against the plain NumPy references, level by level."""

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor, half_plane_shifts, known_descriptors

WITH_NUMPY_REFERENCE = [name for name in known_descriptors() if name != "GramMatrices"]
"""GramMatrices needs VGG-19 weights: test_gram_matrices.py checks it against its own NumPy reference."""

from . import numpy_reference as ref

TOL = {tf.float32: dict(rtol=1e-5, atol=1e-6), tf.float64: dict(rtol=1e-10, atol=1e-12)}


def reference(name, img, settings):
    """Reference value of one 2D slice on one level."""
    limit, periodic, k = settings.limit_to, settings.periodic, settings.threshold_steepness
    if name == "VolumeFractions":
        return np.array(ref.ref_volume_fraction(img))
    if name == "FFTCorrelations":
        return ref.ref_s2_window(img, limit, periodic)
    if name == "Correlations":
        return ref.ref_gram(img, limit, periodic, k)
    if name == "TwoPointCorrelations":
        return ref.ref_two_point(img, limit, periodic, k)
    if name == "Variation":
        return np.array(ref.ref_variation(img, periodic))
    if name == "LinealPath":
        return ref.ref_lineal_path(img, limit, periodic)
    raise AssertionError(name)


def check_against_reference(name, batch, settings, dtype):
    desc = get_descriptor(name, settings)
    value = desc(tf.constant(batch, dtype=dtype))
    height, width = batch.shape[1:3]
    assert value.dtype == dtype
    assert value.shape == (batch.shape[0], batch.shape[3]) + desc.value_shape(height, width)
    value = value.numpy()
    for b in range(batch.shape[0]):
        for c in range(batch.shape[3]):
            img = batch[b, :, :, c]
            if desc.supports_multigrid:
                for n in range(desc.max_levels(height, width)):
                    expected = reference(name, ref.pool(img, 2**n), settings)
                    np.testing.assert_allclose(value[b, c, n], expected, **TOL[dtype])
            else:
                np.testing.assert_allclose(value[b, c], reference(name, img, settings), **TOL[dtype])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "nonperiodic"])
@pytest.mark.parametrize("shape,limit", [((2, 12, 12, 2), 3), ((1, 18, 22, 1), 2)], ids=["12x12", "18x22"])
@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_random_field_matches_reference(name, shape, limit, periodic, dtype):
    rng = np.random.default_rng(7)
    settings = DescriptorSettings(limit_to=limit, periodic=periodic)
    check_against_reference(name, rng.random(shape), settings, dtype)


STRUCTURES = {
    "checkerboard": ref.checkerboard(12, 12),
    "stripes": ref.stripes(16, 16, 8),
    "disc": ref.disc(20, 20, 6),
}


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "nonperiodic"])
@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_structures_match_reference(name, structure, periodic):
    batch = STRUCTURES[structure][None, :, :, None]
    settings = DescriptorSettings(limit_to=4, periodic=periodic)
    check_against_reference(name, batch, settings, tf.float32)


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "nonperiodic"])
@pytest.mark.parametrize("structure", sorted(STRUCTURES) + ["random"])
def test_lineal_path_counts_segments_exactly(structure, periodic):
    if structure == "random":
        img = (np.random.default_rng(3).random((14, 17)) < 0.6).astype(float)
    else:
        img = STRUCTURES[structure]
    settings = DescriptorSettings(limit_to=5, periodic=periodic, use_multigrid=False)
    value = get_descriptor("LinealPath", settings)(tf.constant(img[None, :, :, None]))
    expected = ref.ref_lineal_path_binary(img, 5, periodic)
    np.testing.assert_allclose(value.numpy()[0, 0, 0], expected, rtol=1e-12, atol=1e-15)


def test_descriptors_without_multigrid_setting_have_one_level():
    settings = DescriptorSettings(limit_to=2, use_multigrid=False)
    batch = np.random.default_rng(0).random((1, 16, 16, 1))
    for name in WITH_NUMPY_REFERENCE:
        desc = get_descriptor(name, settings)
        assert desc.max_levels(16, 16) == 1
        check_against_reference(name, batch, settings, tf.float64)


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_half_plane_shifts_order(limit):
    shifts = half_plane_shifts(limit)
    assert shifts.shape == (limit**2 + (limit - 1) ** 2, 2)
    assert shifts.tolist() == [list(s) for s in ref.ref_half_plane_shifts(limit)]
    assert shifts[0].tolist() == [0, 0]


@pytest.mark.parametrize("limit, stage", [(8, 1), (8, 2), (5, 1)])
def test_fft_correlations_coarse_target_is_the_pooled_images_s2(limit, stage):
    """A multigrid stage's FFTCorrelations target is S2 of the 2**stage-pooled image, averaged over
    where the pooling blocks start (exact for a periodic image), in the window limit_to // 2**stage."""
    img = np.random.default_rng(3).random((24, 32)) ** 3
    settings = DescriptorSettings(limit_to=limit, use_multigrid=False)
    fine = get_descriptor("FFTCorrelations", settings)
    value = fine(tf.constant(img[None, :, :, None], tf.float64)).numpy()[0]
    coarse, target = fine.at_stage(value, stage)
    factor, coarse_limit = 2**stage, limit // 2**stage
    expected = np.mean([ref.ref_s2_window(ref.pool(np.roll(img, (-dy, -dx), (0, 1)), factor), coarse_limit, True)
                        for dy in range(factor) for dx in range(factor)], axis=0)
    assert coarse.settings.limit_to == coarse_limit and target.shape == (1, 2 * coarse_limit - 1, 2 * coarse_limit - 1)
    np.testing.assert_allclose(target[0], expected, rtol=1e-12, atol=1e-14)


def test_coarse_targets_exist_only_where_they_can_be_derived():
    periodic = DescriptorSettings(limit_to=4)
    value = np.ones((1, 7, 7))
    assert get_descriptor("FFTCorrelations", periodic).at_stage(value, 2) is None  # window of 1 shift
    assert get_descriptor("FFTCorrelations", DescriptorSettings(limit_to=4, periodic=False)).at_stage(value, 1) is None
    assert get_descriptor("Variation", periodic).at_stage(np.ones(1), 1) is None
    fractions = np.array([0.3])
    assert get_descriptor("VolumeFractions", periodic).at_stage(fractions, 3)[1] is fractions
    levels = np.arange(12.0).reshape(1, 3, 4)
    np.testing.assert_array_equal(get_descriptor("Correlations", periodic).at_stage(levels, 1)[1], levels[:, 1:])
    assert get_descriptor("Correlations", periodic).at_stage(levels, 3) is None
