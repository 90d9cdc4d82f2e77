"""Reconstruction from a real MCRpy 0.2.0 characterization pickle (tests/data, made by MCRpy itself)."""

import logging
from pathlib import Path

import numpy as np
import pytest

from mcrgpu import DMCR, Microstructure, characterize, compare, load_characterization
from mcrgpu.mcr.mcrpy_compat import mixed_sign_pairs
from mcrgpu.mcr.polish import two_point_targets

DATA = Path(__file__).resolve().parents[1] / "data"
DESCRIPTORS = ["Correlations", "VolumeFractions"]


@pytest.fixture(scope="module")
def original():
    return Microstructure(np.load(DATA / "generated32.npy"))


@pytest.fixture(scope="module")
def own(original):
    return characterize(original, DESCRIPTORS, limit_to=4)


def test_mcrpy_pickle_is_read_in_our_shift_order_with_one_warning(own, caplog):
    with caplog.at_level(logging.WARNING, logger="mcrgpu.mcr.mcrpy_compat"):
        imported = load_characterization(DATA / "generated32_characterization.pickle")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "pairing dx >= 0 with dx < 0 shifts are left out of the loss" in warnings[0]
    assert imported.settings.limit_to == 4 and imported.descriptors["Correlations"].shape == own.descriptors[
        "Correlations"][1:].shape  # MCRpy stored phase 1 only (--no_multiphase)
    ours, theirs = own.descriptors["Correlations"][1], imported.descriptors["Correlations"][0]
    # S2 (the diagonal) per shift, on every multigrid level: only right if both shift axes were reordered
    np.testing.assert_allclose(np.diagonal(theirs, axis1=-2, axis2=-1), np.diagonal(ours, axis1=-2, axis2=-1),
                               atol=2e-5)
    mixed = mixed_sign_pairs(4)
    assert np.isnan(theirs[:, mixed]).all()
    np.testing.assert_allclose(theirs[:, ~mixed], ours[:, ~mixed], atol=2e-5)  # three-point, same-sign shifts
    np.testing.assert_allclose(imported.volume_fractions, own.volume_fractions, atol=1e-6)


def test_reconstruction_from_the_mcrpy_pickle_is_as_good_as_from_our_own(original, own):
    imported = load_characterization(DATA / "generated32_characterization.pickle")
    reports = {}
    for name, target in (("own", own), ("mcrpy", imported)):
        _, result = DMCR(DESCRIPTORS, max_iter=200, seed=1).reconstruct(target, original.shape)
        reports[name] = compare(original, result, limit=4)["results"][0]
    own_error, mcrpy_error = reports["own"]["s2_error_summary"], reports["mcrpy"]["s2_error_summary"]
    assert mcrpy_error < 1.5 * own_error + 0.01, (mcrpy_error, own_error)
    assert reports["mcrpy"]["fraction_error_max"] < 0.01
    assert reports["mcrpy"]["copy"]["iou"] < 0.5


def test_the_mcrpy_pickle_gives_the_same_s2_target_for_the_polish(own):
    """Its Correlations' mixed-sign entries are NaN; S2 comes from the diagonal, which both agree on."""
    imported = load_characterization(DATA / "generated32_characterization.pickle")
    np.testing.assert_allclose(two_point_targets(imported, DESCRIPTORS, 1), two_point_targets(own, DESCRIPTORS, 1),
                               atol=5e-5)
