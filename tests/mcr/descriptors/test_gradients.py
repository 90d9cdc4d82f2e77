"""Gradients of every descriptor against central finite differences in float64."""

import numpy as np
import pytest
import tensorflow as tf

from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor, known_descriptors

WITH_NUMPY_REFERENCE = [name for name in known_descriptors() if name != "GramMatrices"]
"""GramMatrices needs VGG-19 weights: test_gram_matrices.py checks it against its own NumPy reference."""


def check_gradient(desc, x0, eps=1e-6):
    """Compare d/dx sum(w * D(x)) by tape with central differences for every pixel."""
    rng = np.random.default_rng(5)
    x = tf.constant(x0[None])
    weights = tf.constant(rng.standard_normal(desc(x).shape[1:]))

    def objective(batch):
        return tf.reduce_sum(desc(batch) * weights, axis=list(range(1, len(weights.shape) + 1)))

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(objective(x))
    analytic = tape.gradient(value, x).numpy()[0]
    # all 2 * size perturbed copies in one batch
    n = x0.size
    steps = np.eye(n).reshape((n,) + x0.shape) * eps
    batch = np.concatenate([x0[None] + steps, x0[None] - steps])
    values = objective(tf.constant(batch)).numpy()
    numeric = ((values[:n] - values[n:]) / (2 * eps)).reshape(x0.shape)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "nonperiodic"])
@pytest.mark.parametrize("name", WITH_NUMPY_REFERENCE)
def test_gradient_matches_finite_differences(name, periodic):
    # 8x8 with limit_to=2 gives two multigrid levels; values away from 0/1 and from ties
    x0 = np.random.default_rng(11).uniform(0.1, 0.9, size=(8, 8, 2))
    desc = get_descriptor(name, DescriptorSettings(limit_to=2, periodic=periodic))
    check_gradient(desc, x0)


def test_gradient_flows_through_variable():
    desc = get_descriptor("Correlations", DescriptorSettings(limit_to=2))
    var = tf.Variable(np.random.default_rng(0).random((1, 8, 8, 1)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(desc(var))
    grad = tape.gradient(loss, var)
    assert grad is not None and grad.dtype == tf.float32
    assert np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "nonperiodic"])
@pytest.mark.parametrize("name, shape, limit", [
    ("FFTCorrelations", (5, 7, 1), 4),  # periodic window wider than the slice: shifts repeat modulo its size
    ("FFTCorrelations", (9, 6, 2), 3),
    ("Correlations", (7, 9, 1), 3),
    ("TwoPointCorrelations", (6, 11, 2), 3),
])
def test_written_out_gradients_at_odd_sizes(name, shape, limit, periodic):
    """FFTCorrelations and the half-plane correlations write their gradients out (not TensorFlow's);
    odd, non-square slices and windows that wrap around must still match finite differences."""
    x0 = np.random.default_rng(3).uniform(0.1, 0.9, size=shape)
    check_gradient(get_descriptor(name, DescriptorSettings(limit_to=limit, periodic=periodic)), x0)
