"""interpolate(): characterizations on the straight line between two."""

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.characterization import characterize, combine_axes
from mcrgpu.mcr.interpolation import interpolate
from mcrgpu.mcr.synthetic import gaussian_random_structure

NAMES = ["FFTCorrelations", "Variation", "VolumeFractions"]


def characterization(seed, shape=(24, 24), names=NAMES, **settings):
    ms = gaussian_random_structure(shape, volume_fractions=(0.5 + 0.05 * seed, 0.5 - 0.05 * seed),
                                   correlation_length=1 + seed, seed=seed)
    return characterize(ms, names, limit_to=3, **settings)


def test_ends_are_the_inputs_and_the_middle_is_the_mean():
    a, b = characterization(1), characterization(3)
    series = interpolate(a, b, 5)
    assert len(series) == 5
    for name in NAMES:
        np.testing.assert_array_equal(series[0].descriptors[name], a.descriptors[name])
        np.testing.assert_array_equal(series[-1].descriptors[name], b.descriptors[name])
        np.testing.assert_allclose(series[2].descriptors[name], (a.descriptors[name] + b.descriptors[name]) / 2,
                                   rtol=1e-6)
    np.testing.assert_allclose(series[1].volume_fractions, 0.75 * a.volume_fractions + 0.25 * b.volume_fractions)


def test_anisotropic_characterizations_interpolate_axis_by_axis():
    a = combine_axes([characterization(1), characterization(2), characterization(3)])
    b = combine_axes([characterization(3), characterization(3), characterization(1)])
    middle = interpolate(a, b, 3)[1]
    assert middle.is_3d
    for axis in range(3):
        np.testing.assert_allclose(middle.axis_descriptors[axis]["FFTCorrelations"],
                                   (a.axis_descriptors[axis]["FFTCorrelations"]
                                    + b.axis_descriptors[axis]["FFTCorrelations"]) / 2, rtol=1e-6)


@pytest.mark.parametrize("other, fragment", [
    (lambda: characterization(2, names=NAMES[:2]), "differ in their descriptors"),
    (lambda: characterization(2, use_multigrid=False), "differ in their descriptor settings"),
    (lambda: combine_axes([characterization(2)] * 3), "differ in their dimension"),
])
def test_unlike_characterizations_are_refused(other, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        interpolate(characterization(1), other(), 3)


def test_different_multigrid_levels_are_refused():
    small, large = (characterization(1, shape=shape, names=["Correlations"]) for shape in ((24, 24), (48, 48)))
    with pytest.raises(InvalidInputError, match="multigrid levels follow the structure's size"):
        interpolate(small, large, 3)


@pytest.mark.parametrize("steps", [1, 0, 2.5, True])
def test_steps_below_two_are_refused(steps):
    a = characterization(1)
    with pytest.raises(InvalidInputError, match="steps must be an integer >= 2"):
        interpolate(a, a, steps)
