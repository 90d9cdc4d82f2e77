"""Reconstruction from a real MCRpy 0.2.0 characterization pickle (tests/data, made by MCRpy itself)."""

import contextlib
import logging
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mcrgpu import DMCR, Microstructure, characterize, compare, load_characterization
from mcrgpu.mcr.mcrpy_compat import mixed_sign_pairs
from mcrgpu.mcr.polish import two_point_targets
from mcrgpu.mcr.two_point import structure_s2_error

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


@pytest.mark.slow
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


@contextlib.contextmanager
def mcrpy_settings_module():
    """A throwaway ``mcrpy.src.Settings`` with a plain ``CharacterizationSettings``, so that the test
    can unpickle MCRpy's file and pickle a changed copy as MCRpy would."""
    names = ("mcrpy", "mcrpy.src", "mcrpy.src.Settings")
    assert not any(name in sys.modules for name in names)
    modules = {name: types.ModuleType(name) for name in names}
    modules["mcrpy.src.Settings"].CharacterizationSettings = type(
        "CharacterizationSettings", (), {"__module__": "mcrpy.src.Settings"})
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in names:
            del sys.modules[name]


@pytest.fixture(scope="module")
def volume_pickle(tmp_path_factory):
    """MCRpy's pickle rewritten as MCRpy's characterize stores a 3D structure: every descriptor a
    tuple of three arrays (the slices perpendicular to axes 0, 1, 2), ``desired_shape_extended``
    (1, D, H, W, C). Here a 32^3 volume whose slices along every axis have generated32's statistics."""
    with mcrpy_settings_module():
        content = pickle.loads((DATA / "generated32_characterization.pickle").read_bytes())
        assert content["settings"].desired_shape_extended == (1, 32, 32, 1)
        content["settings"].desired_shape_extended = (1, 32, 32, 32, 1)
        per_axis = {name: value if name == "settings" else (value, value.copy(), value.copy())
                    for name, value in content.items()}
        path = tmp_path_factory.mktemp("mcrpy_3d") / "volume_characterization.pickle"
        path.write_bytes(pickle.dumps(per_axis))
    return path


@pytest.mark.slow
def test_a_3d_mcrpy_pickle_gives_one_target_per_axis_and_reconstructs_a_volume(volume_pickle, original):
    flat = load_characterization(DATA / "generated32_characterization.pickle")
    volume = load_characterization(volume_pickle)
    assert volume.is_3d and volume.source_shape == (32, 32, 32) and len(volume.axis_descriptors) == 3
    for values in (*volume.axis_descriptors, volume.descriptors):
        for name in DESCRIPTORS:  # NaN where MCRpy's mixed-sign Correlations are left out, as in 2D
            np.testing.assert_allclose(values[name], flat.descriptors[name], rtol=1e-12)
    np.testing.assert_allclose(volume.volume_fractions, flat.volume_fractions)
    targets = two_point_targets(volume, DESCRIPTORS, 3)
    np.testing.assert_allclose(targets, np.repeat(two_point_targets(flat, DESCRIPTORS, 1), 3, axis=0))
    history, result = DMCR(DESCRIPTORS, max_iter=50, seed=1).reconstruct(volume, (16, 16, 16))
    assert result.shape == (16, 16, 16)
    np.testing.assert_allclose(result.volume_fractions(), flat.volume_fractions, atol=1 / 16**3)
    s2_error = structure_s2_error(result.labels, original.labels, limit=4)  # every slice orientation
    assert s2_error < 0.03  # measured 0.008
    assert history.polish["s2_error_after"] == pytest.approx(s2_error, abs=1e-4)  # the same S2 error
