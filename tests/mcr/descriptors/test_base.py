"""Settings, registry, shapes and the pinned error messages."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.mcr.descriptors import (
    DESCRIPTORS,
    Correlations,
    Descriptor,
    DescriptorSettings,
    FFTCorrelations,
    LinealPath,
    TwoPointCorrelations,
    Variation,
    VolumeFractions,
    get_descriptor,
    half_plane_shifts,
    known_descriptors,
)
from mcrgpu.errors import InvalidInputError


def test_settings_defaults_and_json_round_trip():
    settings = DescriptorSettings()
    assert settings.to_dict() == {
        "limit_to": 8,
        "use_multigrid": True,
        "periodic": True,
        "threshold_steepness": 10.0,
        "nl_method": "relu",
        "gram_layers": ("mg_n2", "mg_n4", "mg_n8", "mg_n12", "mg_n16"),
        "gram_weights_filename": None,
    }
    custom = DescriptorSettings(limit_to=np.int64(4), periodic=False, threshold_steepness=20)
    loaded = DescriptorSettings.from_dict(json.loads(json.dumps(custom.to_dict())))
    assert loaded == custom and type(loaded.limit_to) is int
    assert DescriptorSettings.from_dict({"limit_to": 3}) == DescriptorSettings(limit_to=3)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"limit_to": 0}, "limit_to must be an integer >= 1; received 0"),
        ({"limit_to": 2.5}, "limit_to must be an integer >= 1; received 2.5"),
        ({"limit_to": True}, "limit_to must be an integer >= 1"),
        ({"threshold_steepness": 0.0}, "threshold_steepness must be a finite number > 0"),
        ({"threshold_steepness": float("nan")}, "threshold_steepness must be a finite number > 0"),
        ({"periodic": "yes"}, "periodic must be True or False; received 'yes'"),
        ({"use_multigrid": 1}, "use_multigrid must be True or False; received 1"),
    ],
)
def test_settings_validation(kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(")):
        DescriptorSettings(**kwargs)


def test_settings_from_dict_rejects_unknown_keys():
    with pytest.raises(InvalidInputError, match=r"Unknown descriptor setting\(s\) \['limit'\]"):
        DescriptorSettings.from_dict({"limit": 4})
    with pytest.raises(InvalidInputError, match="settings must be a dict"):
        DescriptorSettings.from_dict([("limit_to", 4)])


def test_registry_is_exact_and_complete():
    assert known_descriptors() == sorted(DESCRIPTORS)
    assert set(known_descriptors()) == {
        "VolumeFractions",
        "FFTCorrelations",
        "Correlations",
        "TwoPointCorrelations",
        "Variation",
        "LinealPath",
        "GramMatrices",
    }
    for name in known_descriptors():
        desc = get_descriptor(name)
        assert isinstance(desc, Descriptor) and desc.name == name == type(desc).__name__
    settings = DescriptorSettings(limit_to=3)
    assert get_descriptor("Correlations", settings).settings is settings


def test_unknown_descriptor_lists_known_names():
    with pytest.raises(InvalidInputError) as info:
        get_descriptor("correlations")
    message = str(info.value)
    assert "Unknown descriptor 'correlations'; known descriptors: Correlations, FFTCorrelations" in message
    assert "Did you mean 'Correlations'?" in message
    with pytest.raises(InvalidInputError, match="Unknown descriptor 'Foo'; known descriptors: "):
        get_descriptor("Foo")


def test_settings_argument_type_is_checked():
    with pytest.raises(InvalidInputError, match="settings must be a DescriptorSettings or None; received dict"):
        Correlations({"limit_to": 2})


def test_value_shapes_and_level_weights():
    settings = DescriptorSettings(limit_to=4)
    k = 4**2 + 3**2
    assert Correlations(settings).value_shape(64, 48) == (3, k, k)
    assert TwoPointCorrelations(settings).value_shape(64, 48, n_levels=2) == (2, k)
    assert LinealPath(settings).value_shape(64, 64) == (4, 2, 4)
    assert FFTCorrelations(settings).value_shape(64, 64) == (7, 7)
    assert VolumeFractions(settings).value_shape(64, 64) == ()
    assert Variation(settings).value_shape(64, 64) == ()
    weights = Correlations(settings).level_weights(64, 64)
    assert weights.shape == (4, 1, 1)
    np.testing.assert_array_equal(weights.ravel(), [1.0, 2.0, 4.0, 8.0])
    assert LinealPath(settings).level_weights(64, 64, n_levels=2).shape == (2, 1, 1)
    assert FFTCorrelations(settings).level_weights(64, 64).shape == ()
    assert float(Variation(settings).level_weights(64, 64)) == 1.0
    assert len(half_plane_shifts(4)) == k


@pytest.mark.parametrize(
    "size,limit,levels", [((64, 64), 8, 3), ((63, 80), 8, 2), ((8, 8), 8, 1), ((10, 12), 8, 1), ((17, 17), 2, 3)]
)
def test_max_levels(size, limit, levels):
    settings = DescriptorSettings(limit_to=limit)
    assert Correlations(settings).max_levels(*size) == levels
    assert LinealPath(settings).max_levels(*size) == levels
    assert FFTCorrelations(settings).max_levels(*size) == 1
    no_multigrid = DescriptorSettings(limit_to=limit, use_multigrid=False)
    assert Correlations(no_multigrid).max_levels(*size) == 1


def test_rank_3_input_is_rejected():
    with pytest.raises(InvalidInputError, match=r"x must have rank 4 \(batch, height, width, channels\); received shape \(16, 16, 1\)"):
        VolumeFractions()(tf.zeros((16, 16, 1)))


def test_integer_dtype_is_rejected():
    with pytest.raises(InvalidInputError, match="x must be float32 or float64; received dtype int32"):
        Correlations()(tf.zeros((1, 16, 16, 1), dtype=tf.int32))
    with pytest.raises(InvalidInputError, match="received dtype float16"):
        Correlations()(tf.zeros((1, 16, 16, 1), dtype=tf.float16))


@pytest.mark.parametrize("name", ["Correlations", "TwoPointCorrelations", "FFTCorrelations", "LinealPath"])
def test_limit_to_larger_than_image_is_rejected(name):
    desc = get_descriptor(name, DescriptorSettings(limit_to=8))
    with pytest.raises(InvalidInputError, match=rf"Slices of height 6 and width 20 are too small for {name} with limit_to=8"):
        desc(tf.zeros((1, 6, 20, 1)))


def test_non_periodic_correlations_need_room_on_both_sides():
    desc = Correlations(DescriptorSettings(limit_to=4, periodic=False))
    with pytest.raises(InvalidInputError, match=r"\(non-periodic\): it needs height >= 4 and width >= 7"):
        desc(tf.zeros((1, 8, 6, 1)))
    assert desc(tf.zeros((1, 8, 7, 1))).shape == (1, 1, 1, 25, 25)


@pytest.mark.parametrize("n_levels", [0, 4, 2.0, True])
def test_n_levels_out_of_range_is_rejected(n_levels):
    desc = Correlations(DescriptorSettings(limit_to=2))
    with pytest.raises(InvalidInputError, match=rf"n_levels must be an integer in 1..3 for Correlations on 16x16 slices with limit_to=2; received {n_levels!r}"):
        desc(tf.zeros((1, 16, 16, 1)), n_levels=n_levels)


def test_n_levels_for_non_multigrid_descriptor_must_be_one():
    x = tf.zeros((1, 16, 16, 1))
    assert Variation()(x, n_levels=1).shape == (1, 1)
    with pytest.raises(InvalidInputError, match=r"n_levels must be an integer in 1..1"):
        Variation()(x, n_levels=2)


def test_unknown_spatial_shape_is_rejected_in_graph():
    desc = Correlations(DescriptorSettings(limit_to=2))
    spec = tf.TensorSpec([None, None, 16, 1], tf.float32)
    with pytest.raises(InvalidInputError, match="x must have static height, width and channels"):
        # autograph=False: autograph would re-wrap the error in its StagingError
        tf.function(desc.__call__, input_signature=[spec], autograph=False).get_concrete_function()
