"""Physical invariants a scientist would check on the descriptors."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from mcrgpu.mcr.descriptors import (
    Correlations,
    DescriptorSettings,
    FFTCorrelations,
    LinealPath,
    TwoPointCorrelations,
    Variation,
    VolumeFractions,
    half_plane_shifts,
)

from . import numpy_reference as ref


def blob_field(size=96, sigma=2.0, seed=0):
    """A binary random structure with a short correlation length (periodic Gaussian blobs)."""
    noise = np.random.default_rng(seed).standard_normal((size, size))
    smooth = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    return (smooth > np.quantile(smooth, 0.6)).astype(float)  # volume fraction 0.4


def as_batch(*imgs):
    return tf.constant(np.stack(imgs)[..., None])


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_at_zero_is_volume_fraction(periodic):
    img = blob_field()
    x = as_batch(img)
    vf = VolumeFractions()(x).numpy()[0, 0]
    limit = 8
    settings = DescriptorSettings(limit_to=limit, periodic=periodic)
    fft = FFTCorrelations(settings)(x).numpy()[0, 0]
    corr = Correlations(settings)(x).numpy()[0, 0]
    two_point = TwoPointCorrelations(settings)(x).numpy()[0, 0]
    lineal = LinealPath(settings)(x).numpy()[0, 0]
    assert fft[limit - 1, limit - 1] == pytest.approx(vf, abs=1e-12)
    if periodic:  # non-periodic crops positions, so level 0 sees a sub-window
        assert corr[0, 0, 0] == pytest.approx(vf, abs=1e-12)
        assert two_point[0, 0] == pytest.approx(vf, abs=1e-12)
    np.testing.assert_allclose(lineal[0, :, 0], [vf, vf], atol=1e-12)


def test_s2_tends_to_vf_squared_at_large_r():
    img = blob_field(size=128)
    x = as_batch(img)
    vf = float(img.mean())
    limit = 16
    fft = FFTCorrelations(DescriptorSettings(limit_to=limit))(x).numpy()[0, 0]
    far = [fft[0, limit - 1], fft[limit - 1, 0], fft[-1, limit - 1], fft[limit - 1, -1]]
    np.testing.assert_allclose(far, vf**2, atol=0.03)
    assert fft[limit - 1, limit - 1] - vf**2 > 0.1  # it does decay from vf to vf^2
    # the soft AND is (nearly) exact on binary input when it is steep
    steep = DescriptorSettings(limit_to=limit, use_multigrid=False, threshold_steepness=100.0)
    two_point = TwoPointCorrelations(steep)(x).numpy()[0, 0, 0]
    shifts = half_plane_shifts(limit)
    far_idx = [i for i, (dy, dx) in enumerate(shifts) if max(abs(dy), abs(dx)) == limit - 1]
    np.testing.assert_allclose(two_point[far_idx].mean(), vf**2, atol=0.03)


def test_lineal_path_decays_below_s2():
    img = blob_field()
    x = as_batch(img)
    lineal = LinealPath(DescriptorSettings(limit_to=8, use_multigrid=False))(x).numpy()[0, 0, 0]
    assert np.all(np.diff(lineal, axis=-1) <= 1e-12)  # longer segments are rarer
    fft = FFTCorrelations(DescriptorSettings(limit_to=8))(x).numpy()[0, 0]
    np.testing.assert_array_less(lineal[0, 1:], fft[7, 8:] + 1e-12)  # L(r) <= S2(r) along x


@pytest.mark.parametrize("periodic", [True, False])
def test_gram_diagonal_is_two_point_and_gram_is_symmetric(periodic):
    x = tf.constant(np.random.default_rng(1).random((2, 16, 16, 2)), dtype=tf.float32)
    settings = DescriptorSettings(limit_to=3, periodic=periodic)
    gram = Correlations(settings)(x).numpy()
    two_point = TwoPointCorrelations(settings)(x).numpy()
    np.testing.assert_allclose(np.diagonal(gram, axis1=-2, axis2=-1), two_point, rtol=1e-5)
    np.testing.assert_allclose(gram, np.swapaxes(gram, -1, -2), rtol=1e-6, atol=1e-7)


def test_fft_centre_equals_volume_fraction_for_binary():
    x = as_batch(ref.disc(20, 20, 6), ref.checkerboard(20, 20), blob_field(size=20, seed=4))
    for periodic in (True, False):
        fft = FFTCorrelations(DescriptorSettings(limit_to=5, periodic=periodic))(x).numpy()
        np.testing.assert_allclose(fft[:, 0, 4, 4], VolumeFractions()(x).numpy()[:, 0], atol=1e-12)


def test_fft_is_point_symmetric():
    x = tf.constant(np.random.default_rng(2).random((1, 12, 14, 1)))
    for periodic in (True, False):
        fft = FFTCorrelations(DescriptorSettings(limit_to=4, periodic=periodic))(x).numpy()
        np.testing.assert_allclose(fft, fft[..., ::-1, ::-1], atol=1e-12)


def test_stripes_give_analytic_s2():
    period, limit = 8, 4
    img = ref.stripes(16, 16, period)  # stripes of width period / 2 along x, vf = 1/2
    fft = FFTCorrelations(DescriptorSettings(limit_to=limit))(as_batch(img)).numpy()[0, 0]
    dx = np.arange(1 - limit, limit)
    expected_row = (period / 2 - np.abs(dx)) / period  # overlap of a stripe with its shift
    np.testing.assert_allclose(fft, np.tile(expected_row, (2 * limit - 1, 1)), atol=1e-12)
    lineal = LinealPath(DescriptorSettings(limit_to=limit, use_multigrid=False))(as_batch(img))
    r = np.arange(limit)
    np.testing.assert_allclose(lineal[0, 0, 0, 0], (period / 2 - r) / period, atol=1e-12)
    np.testing.assert_allclose(lineal[0, 0, 0, 1], np.full(limit, 0.5), atol=1e-12)


def test_checkerboard_s2_and_variation():
    img = ref.checkerboard(12, 12)
    fft = FFTCorrelations(DescriptorSettings(limit_to=3))(as_batch(img)).numpy()[0, 0]
    dy, dx = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij")
    np.testing.assert_allclose(fft, np.where((dy + dx) % 2 == 0, 0.5, 0.0), atol=1e-12)
    assert Variation()(as_batch(img)).numpy()[0, 0] == pytest.approx(2.0)
    assert Variation()(as_batch(np.ones((12, 12)))).numpy()[0, 0] == 0.0


def test_the_soft_and_is_exact_on_equal_binary_pixels_and_small_on_unequal_ones():
    """TwoPointCorrelations on binary images: the mean of soft_and(x(p), x(p + r))**2 is 1 where every
    pair is (1, 1), 0 where every pair is (0, 0), and a small value that falls with the steepness
    where every pair is (1, 0) or (0, 1) (a checkerboard's nearest neighbours)."""
    shifts = [tuple(r) for r in half_plane_shifts(2)]  # (0, 0), (0, 1), (1, -1), (1, 0), (1, 1)
    mixed = []
    for k in (1.0, 10.0, 100.0):
        descriptor = TwoPointCorrelations(DescriptorSettings(limit_to=2, use_multigrid=False, threshold_steepness=k))
        np.testing.assert_allclose(descriptor(as_batch(np.ones((8, 8)))).numpy()[0, 0, 0], 1.0, atol=1e-12)
        np.testing.assert_allclose(descriptor(as_batch(np.zeros((8, 8)))).numpy()[0, 0, 0], 0.0, atol=1e-12)
        board = descriptor(as_batch(ref.checkerboard(8, 8))).numpy()[0, 0, 0]
        for diagonal in ((0, 0), (1, -1), (1, 1)):  # half (1, 1) pairs, half (0, 0) pairs
            assert board[shifts.index(diagonal)] == pytest.approx(0.5, abs=1e-12)
        assert board[shifts.index((0, 1))] == pytest.approx(board[shifts.index((1, 0))], rel=1e-12)
        mixed.append(board[shifts.index((0, 1))])
        assert 0.0 < mixed[-1] < 0.5
    assert mixed[0] > mixed[1] > mixed[2] and mixed[2] < 1e-9  # steep: nearly a hard AND
