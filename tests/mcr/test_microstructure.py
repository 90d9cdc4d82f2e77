"""Tests for mcrgpu.mcr.microstructure: label mapping and indicator fields."""

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize(
    ("values", "expected_values"),
    [((0, 255), (0, 255)), ((1, 2, 5), (1, 2, 5)), ((-3, 7), (-3, 7)), ((0, 1, 2), (0, 1, 2))],
)
def test_labels_mapped_to_indices_and_reversible(rng, values, expected_values):
    original = rng.choice(values, size=(6, 7))
    original[0, : len(values)] = values  # every value occurs
    ms = Microstructure(original)
    assert ms.phase_values == expected_values
    assert ms.n_phases == len(values)
    assert set(np.unique(ms.labels)) == set(range(len(values)))
    # sorted order: phase i is the i-th smallest original value
    for index, value in enumerate(sorted(values)):
        np.testing.assert_array_equal(ms.labels == index, original == value)
    np.testing.assert_array_equal(ms.original_labels(), original)
    assert ms.labels.dtype == np.int32


def test_bool_and_integral_float_accepted():
    mask = np.array([[True, False], [False, False]])
    ms = Microstructure(mask)
    assert ms.phase_values == (0, 1)
    np.testing.assert_array_equal(ms.labels, mask.astype(int))
    ms_float = Microstructure(mask.astype(np.float64))
    np.testing.assert_array_equal(ms_float.labels, ms.labels)


def test_properties_2d_and_3d():
    ms2 = Microstructure(np.eye(4, dtype=int))
    assert (ms2.shape, ms2.ndim, ms2.is_3d) == ((4, 4), 2, False)
    ms3 = Microstructure(np.zeros((2, 3, 4), dtype=np.uint8) + np.arange(4, dtype=np.uint8) % 2)
    assert (ms3.shape, ms3.ndim, ms3.is_3d) == ((2, 3, 4), 3, True)
    text = repr(ms2)
    assert "shape=(4, 4)" in text and "n_phases=2" in text and "0.75" in text


def test_volume_fractions():
    labels = np.array([[0, 0, 0, 1], [2, 2, 0, 1]])
    fractions = Microstructure(labels).volume_fractions()
    assert fractions.dtype == np.float64
    np.testing.assert_allclose(fractions, [4 / 8, 2 / 8, 2 / 8])
    assert fractions.sum() == pytest.approx(1.0)


def test_labels_are_a_read_only_copy():
    source = np.array([[0, 1], [1, 0]])
    ms = Microstructure(source)
    source[0, 0] = 1
    assert ms.labels[0, 0] == 0
    with pytest.raises(ValueError, match="read-only"):
        ms.labels[0, 0] = 1


def test_indicator_two_phase():
    labels = np.array([[0, 1, 1], [0, 0, 1]])
    ms = Microstructure(labels)
    single = ms.indicator()
    assert single.shape == (2, 3, 1) and single.dtype == np.float32
    np.testing.assert_array_equal(single[..., 0], labels)
    both = ms.indicator(multiphase=True, dtype=np.float64)
    assert both.shape == (2, 3, 2) and both.dtype == np.float64
    np.testing.assert_array_equal(both[..., 1], labels)
    np.testing.assert_array_equal(both.sum(axis=-1), 1)


def test_indicator_three_phase_3d(rng):
    labels = rng.integers(0, 3, size=(3, 4, 5))
    ms = Microstructure(labels)
    field = ms.indicator()
    assert field.shape == (3, 4, 5, 3)
    np.testing.assert_array_equal(np.argmax(field, axis=-1), labels)
    np.testing.assert_array_equal(field.sum(axis=-1), 1)
    np.testing.assert_allclose(field.mean(axis=(0, 1, 2)), ms.volume_fractions())
    with pytest.raises(InvalidInputError, match="multiphase=False needs a two-phase"):
        ms.indicator(multiphase=False)
    with pytest.raises(InvalidInputError, match="dtype must be a floating dtype"):
        ms.indicator(dtype="int32")


@pytest.mark.parametrize("multiphase", [True, False])
def test_from_indicator_round_trip(rng, multiphase):
    ms = Microstructure(rng.choice([0, 255], size=(5, 6, 7)))
    back = Microstructure.from_indicator(ms.indicator(multiphase=multiphase), phase_values=ms.phase_values)
    np.testing.assert_array_equal(back.labels, ms.labels)
    assert back.phase_values == (0, 255)


def test_from_indicator_soft_fields():
    soft = np.array([[[0.2], [0.5]], [[0.7], [0.49]]], dtype=np.float32)
    np.testing.assert_array_equal(Microstructure.from_indicator(soft).labels, [[0, 1], [1, 0]])
    three = np.zeros((2, 2, 3))
    three[..., 2] = 1.0  # phase 1 never occurs: K still comes from the channels
    ms = Microstructure.from_indicator(three, phase_values=(1, 2, 5))
    assert ms.n_phases == 3
    np.testing.assert_allclose(ms.volume_fractions(), [0, 0, 1])
    np.testing.assert_array_equal(ms.original_labels(), np.full((2, 2), 5))


def test_from_indicator_errors():
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        Microstructure.from_indicator(np.full((2, 2, 1), np.nan))
    with pytest.raises(InvalidInputError, match=r"with a channel axis, got shape \(4, 4\)"):
        Microstructure.from_indicator(np.zeros((4, 4)))
    with pytest.raises(InvalidInputError, match="phase_values must have 3 entries"):
        Microstructure.from_indicator(np.zeros((2, 2, 3)), phase_values=(0, 1))


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (np.zeros((0, 4), dtype=int), "must not be empty"),
        (np.array([0, 1, 1]), r"2D \(H, W\) or 3D \(D, H, W\), got 1D"),
        (np.zeros((2, 2, 2, 2), dtype=int) + np.arange(2), "got 4D"),
        (np.array([[0.0, 0.5], [1.0, 1.0]]), "non-integral values.*thresholding"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), "NaN or infinite"),
        (np.array([[0.0, np.inf], [1.0, 1.0]]), "NaN or infinite"),
        (np.full((3, 3), 7), r"single phase \(every value is 7\)"),
        (np.array([["a", "b"], ["a", "a"]]), "got dtype <U1"),
    ],
)
def test_invalid_labels(labels, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        Microstructure(labels)


def test_phase_values_argument():
    ms = Microstructure(np.zeros((2, 2), dtype=int), phase_values=(0, 255))
    assert ms.n_phases == 2
    np.testing.assert_allclose(ms.volume_fractions(), [1, 0])
    with pytest.raises(InvalidInputError, match=r"phase indices 0..1 when phase_values"):
        Microstructure(np.array([[0, 255]]), phase_values=(0, 255))
    with pytest.raises(InvalidInputError, match="at least two distinct integers"):
        Microstructure(np.array([[0, 1]]), phase_values=(3, 3))
    with pytest.raises(InvalidInputError, match="integers only"):
        Microstructure(np.array([[0, 1]]), phase_values=(0.5, 1))
