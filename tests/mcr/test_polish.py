"""The two-point polish of the final labels: target S2 from descriptors, exact swap costs, the search."""

import numpy as np
import pytest
from scipy import ndimage

from mcrgpu.errors import InvalidInputError
from conftest import cpu_strategy
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.polish import _best_step, _slice_terms, polish_labels, two_point_targets
from mcrgpu.mcr.two_point import structure_s2_error, two_point_map, two_point_maps


def blobs(shape, fractions, seed):
    """A smooth random structure with the given phase fractions (phase 0 where the noise is lowest)."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 1.5, mode="wrap")
    cuts = np.quantile(noise, np.cumsum(fractions)[:-1])
    return np.digitize(noise, cuts)


@pytest.mark.parametrize("name", ["Correlations", "TwoPointCorrelations", "FFTCorrelations"])
def test_descriptors_give_the_s2_of_a_binary_structure(name):
    labels = blobs((24, 24), [0.5, 0.3, 0.2], seed=0)
    target = characterize(Microstructure(labels), [name], limit_to=4)
    descriptor = get_descriptor(name, target.settings)
    for phase in range(3):
        implied = descriptor.two_point_probability(target.descriptors[name][phase], target.volume_fractions[phase])
        np.testing.assert_allclose(implied, two_point_map(labels, phase, limit=4), atol=2e-6)


def test_descriptors_without_s2_or_periodicity_give_none():
    settings = DescriptorSettings(limit_to=4, periodic=False)
    assert get_descriptor("Correlations", settings).two_point_probability(np.zeros((1, 25, 25)), 0.5) is None
    assert get_descriptor("LinealPath").two_point_probability(np.zeros((1, 8)), 0.5) is None


def test_targets_of_a_phase_one_characterization_derive_phase_zero():
    labels = blobs((24, 24), [0.6, 0.4], seed=1)
    target = characterize(Microstructure(labels), ["LinealPath", "Correlations"], limit_to=4, use_multiphase=False)
    targets = two_point_targets(target, ["LinealPath", "Correlations"], 1)  # LinealPath gives none: skipped
    assert targets.shape == (1, 2, 7, 7)
    for phase in range(2):
        np.testing.assert_allclose(targets[0, phase], two_point_map(labels, phase, limit=4), atol=2e-6)
    assert two_point_targets(target, ["LinealPath"], 1) is None


@pytest.mark.parametrize("shape", [(12, 12), (6, 7, 8)])
@pytest.mark.parametrize("n_phases", [2, 3])  # two phases transform phase 1 only
def test_predicted_flip_costs_equal_the_recomputed_error_change(shape, n_phases, strategy):
    rng = np.random.default_rng(2)
    fractions = np.array([0.5, 0.3, 0.2][:n_phases])
    labels = rng.choice(n_phases, size=shape, p=fractions / fractions.sum())
    volume = labels.reshape((1,) * (3 - labels.ndim) + labels.shape)
    n_axes = 1 if labels.ndim == 2 else 3
    targets = rng.uniform(0.05, 0.3, size=(n_axes, n_phases, 5, 5))
    targets += targets[..., ::-1, ::-1]  # point-symmetric, as every S2
    norms = np.sum(targets**2, axis=(2, 3))

    def error(v):
        maps = two_point_maps(v if n_axes == 3 else v[0], n_phases, limit=3)
        return np.sum(np.sum((maps - targets) ** 2, axis=(2, 3)) / norms), maps

    start, maps = error(volume)
    terms = _slice_terms(strategy, volume.shape, n_phases, 3)
    np.testing.assert_allclose(terms.s2_maps(volume.astype(np.int32)), maps, atol=1e-12)
    pixels, costs = terms.flip_costs(volume.astype(np.int32), maps - targets, norms)
    boundary = [i for i, label in enumerate(volume.reshape(-1)) if any(
        np.roll(volume, step, axis).reshape(-1)[i] != label for axis in range(3) for step in (1, -1)
        if volume.shape[axis] > 1)]
    np.testing.assert_array_equal(pixels, boundary)
    for index in rng.choice(pixels.size, size=6, replace=False):
        for phase in range(n_phases):
            changed = volume.copy().reshape(-1)
            if changed[pixels[index]] == phase:
                assert costs[index, phase] == np.inf
                continue
            changed[pixels[index]] = phase
            assert costs[index, phase] == pytest.approx(error(changed.reshape(volume.shape))[0] - start, abs=1e-12)


@pytest.mark.parametrize("shape, fractions", [((24, 24), [0.5, 0.3, 0.2]), ((10, 12, 14), [0.6, 0.4])])
def test_the_polish_is_the_same_on_one_two_and_three_replicas(shape, fractions):
    """Exact reductions: the replica count changes no decision, no label and no reported error."""
    targets = two_point_maps(blobs(shape, fractions, seed=10), len(fractions), limit=3)
    if len(shape) == 3:
        targets = np.repeat(targets.mean(axis=0, keepdims=True), 3, axis=0)  # isotropic
    disturbed = blobs(shape, fractions, seed=11)
    results = [polish_labels(disturbed, targets, strategy=cpu_strategy(n)) for n in (1, 2, 3)]
    assert results[0].pixels_changed > 0
    for result in results[1:]:
        np.testing.assert_array_equal(result.labels, results[0].labels)
        assert (result.s2_error_before, result.s2_error_after) == (results[0].s2_error_before,
                                                                   results[0].s2_error_after)


def test_polish_brings_a_disturbed_structure_back_to_its_s2_and_keeps_the_counts():
    original = blobs((32, 32), [0.5, 0.3, 0.2], seed=3)
    targets = two_point_maps(original, 3, limit=4)
    disturbed = original.copy().reshape(-1)
    rng = np.random.default_rng(4)
    for _ in range(40):  # swaps of random pixels of different phases: the counts stay
        i, j = rng.choice(disturbed.size, size=2, replace=False)
        disturbed[i], disturbed[j] = disturbed[j], disturbed[i]
    disturbed = disturbed.reshape(original.shape)
    result = polish_labels(disturbed, targets)
    np.testing.assert_array_equal(np.bincount(result.labels.ravel()), np.bincount(original.ravel()))
    # what the polish reports is the S2 error compare() gives: the targets are the original's S2
    assert result.s2_error_before == pytest.approx(structure_s2_error(disturbed, original, limit=4))
    assert result.s2_error_after == pytest.approx(structure_s2_error(result.labels, original, limit=4))
    assert result.s2_error_after < 0.5 * result.s2_error_before
    assert result.pixels_changed == np.sum(result.labels != disturbed)


def test_ctrl_c_keeps_the_labels_of_the_last_accepted_round():
    original = blobs((32, 32), [0.6, 0.4], seed=7)
    targets = two_point_maps(original, 2, limit=4)
    disturbed = np.roll(original, 1, axis=1)
    disturbed[::2] = original[::2]  # every other row shifted: counts kept, S2 off
    rounds = []

    def interrupt_after_three(error):
        rounds.append(error)
        if len(rounds) == 3:
            raise KeyboardInterrupt

    result = polish_labels(disturbed, targets, on_round=interrupt_after_three)
    assert result.stopped_by == "SIGINT" and len(rounds) == 3
    assert result.labels.sum() == original.sum()
    assert result.s2_error_after == pytest.approx(rounds[-1])
    assert result.s2_error_after < result.s2_error_before


def test_a_structure_at_its_target_is_left_alone():
    original = blobs((16, 16), [0.7, 0.3], seed=5)
    targets = two_point_maps(original, 2, limit=4)
    result = polish_labels(original, targets)
    assert result.pixels_changed == 0 and result.s2_error_after == pytest.approx(0.0, abs=1e-12)


def test_a_volume_is_fitted_to_every_slice_orientation():
    volume = blobs((12, 12, 12), [0.6, 0.4], seed=6)
    target = characterize(Microstructure(volume), ["FFTCorrelations"], limit_to=3)
    targets = two_point_targets(target, ["FFTCorrelations"], 3)
    for axis in range(3):
        np.testing.assert_allclose(targets[axis, 1], two_point_map(volume, 1, limit=3, axis=axis), atol=1e-6)
    disturbed = volume.copy()
    flat = disturbed.reshape(-1)
    ones, zeros = np.flatnonzero(flat == 1)[:30], np.flatnonzero(flat == 0)[-30:]
    flat[ones], flat[zeros] = 0, 1
    result = polish_labels(disturbed, targets)
    assert result.labels.shape == volume.shape and result.labels.sum() == volume.sum()
    assert result.s2_error_after < 0.5 * result.s2_error_before


def test_the_next_number_of_pairs_comes_from_the_errors_minimum_along_the_trials_change():
    # the error sum |D + t change|**2 / norm over orientations and phases is least at t = 2 when D = -2 change
    rng = np.random.default_rng(7)
    change = rng.normal(size=(3, 2, 7, 7))
    norms = rng.uniform(0.5, 2.0, size=(3, 2))
    assert _best_step(-2.0 * change, change, norms) == pytest.approx(2.0)
    ts = np.linspace(0.0, 3.0, 301)
    differences = rng.normal(size=change.shape)
    errors = [np.sum(np.sum((differences + t * change) ** 2, axis=(2, 3)) / norms) for t in ts]
    assert _best_step(-np.abs(change), np.abs(change), norms) == pytest.approx(1.0)
    best = _best_step(differences, change, norms)
    assert abs(best - ts[int(np.argmin(errors))]) <= 0.01  # also when the least error is at t = 0
    assert _best_step(change, change, norms) == 0.0  # a change that only adds to the error: no step
    assert _best_step(change, np.zeros_like(change), norms) == 0.0


def test_targets_that_do_not_fit_the_labels_are_refused():
    with pytest.raises(InvalidInputError, match="1 slice orientation"):
        polish_labels(np.zeros((4, 4, 4), dtype=int), np.ones((1, 2, 3, 3)))
