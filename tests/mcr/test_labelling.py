"""label_field(): phase labels that keep the target fractions."""

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.labelling import label_field, phase_counts


def test_two_phases_are_cut_at_the_quantile_of_the_target_fraction():
    field = np.random.default_rng(0).uniform(0.3, 0.6, size=(32, 32, 1))  # all grey, mostly below 0.5
    labels = label_field(field, [0.7, 0.3]).labels
    assert labels.mean() == pytest.approx(0.3, abs=1 / 1024)
    assert field[labels == 1].min() >= field[labels == 0].max()  # the brightest pixels


def test_several_phases_get_exact_counts_and_confident_pixels_keep_their_phase():
    rng = np.random.default_rng(1)
    field = rng.random((20, 20, 3))
    structure = label_field(field, [0.5, 0.3, 0.2], phase_values=(2, 5, 7))
    np.testing.assert_allclose(structure.volume_fractions(), [0.5, 0.3, 0.2])
    assert structure.phase_values == (2, 5, 7)
    one_hot = np.eye(3)[rng.choice(3, size=(20, 20), p=[0.5, 0.3, 0.2])]
    np.testing.assert_array_equal(label_field(one_hot, label_field(one_hot).volume_fractions()).labels,
                                  one_hot.argmax(axis=-1))


def test_phase_counts_sum_to_the_pixels():
    assert phase_counts([1 / 3, 1 / 3, 1 / 3], 10).tolist() == [4, 3, 3]


def test_wrong_number_of_fractions_is_refused():
    with pytest.raises(InvalidInputError, match="fractions must have 3 entries"):
        label_field(np.zeros((4, 4, 3)), [0.5, 0.5])
