"""Batching, dtypes and graph mode: the descriptors as TensorFlow kernels."""

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor, known_descriptors

WITH_NUMPY_REFERENCE = [name for name in known_descriptors() if name != "GramMatrices"]
"""GramMatrices needs VGG-19 weights: test_gram_matrices.py checks it against its own NumPy reference."""

SETTINGS = DescriptorSettings(limit_to=3)


@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_batch_equals_stacked_single_slices(name):
    x = tf.constant(np.random.default_rng(0).random((3, 16, 16, 2)), dtype=tf.float32)
    desc = get_descriptor(name, SETTINGS)
    whole = desc(x).numpy()
    single = np.concatenate([desc(x[i : i + 1]).numpy() for i in range(3)])
    np.testing.assert_allclose(whole, single, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_float64_in_float64_out_and_close_to_float32(name):
    x = np.random.default_rng(1).random((1, 16, 16, 1))
    desc = get_descriptor(name, SETTINGS)
    v64 = desc(tf.constant(x, dtype=tf.float64))
    v32 = desc(tf.constant(x, dtype=tf.float32))
    assert v64.dtype == tf.float64 and v32.dtype == tf.float32
    np.testing.assert_allclose(v32.numpy(), v64.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_tf_function_traces_once(name):
    desc = get_descriptor(name, SETTINGS)
    traces = []

    @tf.function
    def compute(x):
        traces.append(1)
        return desc(x)

    rng = np.random.default_rng(2)
    first = compute(tf.constant(rng.random((2, 16, 16, 1)), dtype=tf.float32))
    second = compute(tf.constant(rng.random((2, 16, 16, 1)), dtype=tf.float32))
    assert len(traces) == 1
    assert first.shape == second.shape


@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_unknown_batch_size_in_graph_and_empty_batch(name):
    desc = get_descriptor(name, SETTINGS)
    spec = tf.TensorSpec([None, 16, 16, 1], tf.float32)
    compute = tf.function(desc.__call__, input_signature=[spec])
    x = tf.constant(np.random.default_rng(3).random((2, 16, 16, 1)), dtype=tf.float32)
    np.testing.assert_allclose(compute(x).numpy(), desc(x).numpy(), rtol=1e-6, atol=1e-7)
    empty = compute(tf.zeros((0, 16, 16, 1)))
    assert empty.shape == (0, 1) + desc.value_shape(16, 16)


@pytest.mark.parametrize("name", ["Correlations", "LinealPath"])
def test_n_levels_selects_leading_levels(name):
    desc = get_descriptor(name, DescriptorSettings(limit_to=2))
    x = tf.constant(np.random.default_rng(4).random((1, 16, 16, 1)))
    assert desc.max_levels(16, 16) == 3
    full = desc(x).numpy()
    one = desc(x, n_levels=1).numpy()
    assert one.shape[2] == 1
    np.testing.assert_array_equal(one, full[:, :, :1])


def test_numpy_input_is_accepted():
    x = np.random.default_rng(5).random((1, 8, 8, 1))
    value = get_descriptor("VolumeFractions")(x)
    assert value.dtype == tf.float64
    assert value.numpy()[0, 0] == pytest.approx(x.mean())
