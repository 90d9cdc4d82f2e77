"""The slice-distributed loss equals the single-device loss for 1, 2 and 3 replicas."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import cpu_strategy
from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor
from mcrgpu.mcr.losses import LossSettings, SliceLoss
from mcrgpu.gpu_manager import DeviceMemory
from mcrgpu.mcr.slices import (CPU_BUDGET_BYTES, SliceDistributedLoss, auto_slice_batch_size,
                               field_from_view, gather_slices, replica_slice_sum, slice_budget_bytes, slice_table,
                               slice_view)

SETTINGS = DescriptorSettings(limit_to=3)


def make_loss(shape_hw, target_seed=1, multiphase=False, channels=1, names=("Correlations", "Variation")):
    descriptors = [get_descriptor(name, SETTINGS) for name in names]
    rng = np.random.default_rng(target_seed)
    target_field = tf.constant((rng.random((1, *shape_hw, channels)) > 0.5).astype("float32"))
    targets = {d.name: d(target_field).numpy()[0] for d in descriptors}
    return SliceLoss(descriptors, targets, [1.0, 100.0], slice_shape=shape_hw,
                     multiphase=multiphase, settings=LossSettings())


def reference(field, losses):
    """Plain single-device loss and gradient: every slice of every axis, one tape."""
    x = tf.constant(field)
    with tf.GradientTape() as tape:
        tape.watch(x)
        axes = (0,) if field.shape[0] == 1 else (0, 1, 2)
        total = tf.add_n([tf.reduce_sum(losses[a](slice_view(x, a))) for a in axes])
    return total.numpy(), tape.gradient(total, x).numpy()


@pytest.mark.parametrize("names", [("Correlations", "Variation"), ("FFTCorrelations", "Variation")],
                         ids=["corr", "fft"])
@pytest.mark.parametrize("n_replicas", [1, 2, 3])
@pytest.mark.parametrize("shape, batch", [((1, 12, 12, 1), None), ((7, 8, 9, 1), None),
                                          ((7, 8, 9, 1), 2), ((8, 8, 8, 1), 3)])
def test_distributed_loss_equals_single_device(n_replicas, shape, batch, names):
    """Slice counts 7, 8, 9 over 2 and 3 replicas and chunks of 2 and 3 leave remainders and padding."""
    check_against_single_device(n_replicas, shape, batch, names)


@pytest.mark.parametrize("n_replicas", [1, 2])
def test_xla_compiled_loss_equals_single_device(n_replicas):
    """``jit_compile`` (on by default for Correlations on large fields) changes the speed, not the numbers."""
    check_against_single_device(n_replicas, (7, 8, 9, 1), 2, ("Correlations", "Variation"), jit_compile=True)


def check_against_single_device(n_replicas, shape, batch, names, jit_compile=False):
    field = np.random.default_rng(0).random(shape).astype("float32")
    d, h, w, _ = shape
    if d == 1:
        losses = {0: make_loss((h, w), names=names)}
    else:  # anisotropic shapes: one target per axis, each for its slice size
        losses = {0: make_loss((h, w), names=names), 1: make_loss((d, w), 2, names=names),
                  2: make_loss((d, h), 3, names=names)}
    strategy = cpu_strategy(n_replicas)
    with strategy.scope():
        variable = tf.Variable(field)
    distributed = SliceDistributedLoss(strategy, variable, losses, slice_batch_size=batch, jit_compile=jit_compile)
    loss, gradient = tf.function(distributed.loss_and_gradient)(distributed.full_tables())
    expected_loss, expected_gradient = reference(field, losses)
    np.testing.assert_allclose(loss.numpy(), expected_loss, rtol=2e-5)
    np.testing.assert_allclose(gradient.numpy(), expected_gradient, rtol=2e-4,
                               atol=2e-5 * np.abs(expected_gradient).max())


def test_slice_table_deals_every_slice_once_with_remainder():
    indices, weights = slice_table(np.arange(10), 3, slice_batch_size=2)
    assert indices.shape == weights.shape == (3, 2, 2)
    dealt = sorted(indices[weights > 0].tolist())
    assert dealt == list(range(10))
    assert weights.sum(axis=(1, 2)).tolist() == [4, 3, 3]


def test_slice_budget_comes_from_the_device_memory():
    def fake(total, used):
        return lambda device: DeviceMemory(total, used)

    assert slice_budget_bytes("/device:CPU:0") == CPU_BUDGET_BYTES  # the real query: CPUs report none
    assert slice_budget_bytes("/device:GPU:0", query=fake(None, 0)) == CPU_BUDGET_BYTES
    gib = 2**30
    assert slice_budget_bytes("/device:GPU:0", query=fake(16 * gib, 4 * gib)) == 3 * gib  # a quarter of 12 free
    assert slice_budget_bytes("/device:GPU:0", query=fake(gib, gib)) == CPU_BUDGET_BYTES // 8  # full: a floor
    descriptors = [get_descriptor("Correlations", DescriptorSettings(limit_to=8))]
    on_cpu = auto_slice_batch_size(descriptors, 64, 64, 1)
    on_gpu = auto_slice_batch_size(descriptors, 64, 64, 1,
                                   budget_bytes=slice_budget_bytes("GPU:0", query=fake(80 * gib, 0)))
    per_slice = 8 * 4 * 64 * 64 * descriptors[0].maps_per_pixel()  # 8 copies of float32 maps
    assert on_cpu == CPU_BUDGET_BYTES // per_slice == 2
    assert on_gpu == 20 * gib // per_slice  # a quarter of an 80 GiB device


def test_slice_view_rows_are_the_slices_numpy_takes_and_gradients_flow_back():
    field = np.random.default_rng(0).random((4, 5, 6, 2)).astype(np.float32)
    for axis, shape in enumerate([(4, 5, 6, 2), (5, 4, 6, 2), (6, 4, 5, 2)]):
        view = slice_view(tf.constant(field), axis).numpy()
        assert view.shape == shape
        for b in range(field.shape[axis]):
            np.testing.assert_array_equal(view[b], np.take(field, b, axis=axis))
    volume = tf.Variable(field)
    weights = [tf.constant(np.random.default_rng(a).random(slice_view(volume, a).shape), tf.float32) for a in range(3)]
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(w * slice_view(volume, a)) for a, w in enumerate(weights))
    expected = sum(field_from_view(w, a).numpy() for a, w in enumerate(weights))
    np.testing.assert_allclose(tape.gradient(loss, volume).numpy(), expected, rtol=1e-6)


def test_slice_view_rows_are_the_gathered_slices_and_field_from_view_inverts_it():
    field = tf.reshape(tf.range(60, dtype=tf.float32), (3, 4, 5, 1))
    indices = tf.constant([2, 0, 1])
    for axis in range(3):
        view = slice_view(field, axis)
        np.testing.assert_array_equal(tf.gather(view, indices).numpy(), gather_slices(field, indices, axis).numpy())
        np.testing.assert_array_equal(field_from_view(view, axis).numpy(), field.numpy())


def test_chunks_run_one_at_a_time():
    """A chunk does not depend on the running total, so a loop with several iterations in flight would
    hold several chunks' intermediates at once (TensorFlow's default: 10); memory is bounded by one."""
    strategy = cpu_strategy(1)
    tables = {0: slice_table(np.arange(6), 1, 2)}

    @tf.function
    def total():
        return strategy.run(lambda: replica_slice_sum(
            tables, lambda indices, weights, axis: tf.reduce_sum(tf.cast(indices, tf.float32) * weights),
            tf.zeros(())))

    graph = total.get_concrete_function().graph
    loops = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
    assert loops and all(op.get_attr("parallel_iterations") == 1 for op in loops)
    assert float(total()) == sum(range(6))
