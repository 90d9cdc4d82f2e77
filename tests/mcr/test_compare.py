"""compare(): hand-computed statistics on tiny structures, and the copy check."""

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.compare import chord_lengths, clusters, compare, copy_check
from mcrgpu.mcr.two_point import two_point_map


@pytest.fixture
def speckle():
    return (np.random.default_rng(0).random((16, 16)) > 0.7).astype(int)


def test_a_shifted_copy_gives_iou_one_and_the_shift(speckle):
    result = compare(speckle, np.roll(speckle, (3, -2), axis=(0, 1)))["results"][0]
    assert result["copy"]["iou"] == pytest.approx(1.0)
    assert result["copy"]["shift"] == [3, -2]
    assert result["copy"]["agreement"] == 1.0
    assert result["is_copy"]
    assert result["s2_error_summary"] == pytest.approx(0.0, abs=1e-12)


def test_a_rotated_and_flipped_copy_is_found(speckle):
    result = compare(speckle, np.flip(np.rot90(speckle), 0))["results"][0]
    assert result["copy"]["iou"] == pytest.approx(1.0)
    assert result["is_copy"]


def test_an_unrelated_structure_is_no_copy(speckle):
    other = (np.random.default_rng(1).random((16, 16)) > 0.7).astype(int)
    result = compare(speckle, other)["results"][0]
    assert result["copy"]["iou"] < 0.5
    assert not result["is_copy"]


def test_copy_check_iou_by_hand():
    original = np.array([[1, 1, 0, 0]] * 4)
    result = np.array([[1, 0, 0, 0]] * 4)  # overlap 4 pixels, union 8
    check = copy_check(original, result, [1])
    assert check["iou"] == pytest.approx(0.5)


def test_two_point_map_by_hand():
    labels = np.tile(np.array([[1, 0], [0, 0]]), (2, 2))  # 4x4, one phase-1 pixel per 2x2 cell
    s2 = two_point_map(labels, 1, limit=2)
    assert s2[1, 1] == pytest.approx(0.25)  # S2(0) is the volume fraction
    assert s2[1, 2] == pytest.approx(0.0)  # a neighbour is never in the phase
    assert s2[0, 0] == pytest.approx(0.0)


def test_chords_and_clusters_by_hand():
    labels = np.array([[1, 1, 0, 1],
                       [0, 1, 1, 1]])
    assert sorted(chord_lengths(labels, 1, axis=1)) == [1, 2, 3]
    assert sorted(chord_lengths(labels, 1, axis=0)) == [1, 1, 2, 2]
    assert sorted(clusters(labels, 1)) == [6]
    assert sorted(clusters(labels, 0)) == [1, 1]


def test_fractions_and_summary_phase():
    original = np.array([[0, 0, 0, 1]] * 4)
    result = np.array([[0, 0, 1, 1]] * 4)
    report = compare(original, result, limit=2)
    assert report["summary_phases"] == [1]
    assert report["results"][0]["fraction_error"] == pytest.approx([0.25, 0.25])
    assert report["original"]["clusters"][1] == {"count": 1, "mean_size": 4.0}


def test_a_volume_is_compared_per_axis_over_all_slices(speckle):
    volume = np.stack([np.roll(speckle, i, axis=0) for i in range(16)])
    result = compare(speckle, volume)["results"][0]
    assert result["copy"]["iou"] == pytest.approx(1.0)  # its slices along axis 0 are copies
    assert len(result["chord_distance"][1]) == 3


def test_bad_input_names_the_argument(speckle):
    with pytest.raises(InvalidInputError, match="results"):
        compare(speckle, [])
    with pytest.raises(InvalidInputError, match="limit"):
        compare(speckle, speckle, limit=0)
