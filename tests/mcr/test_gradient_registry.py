"""A traced custom gradient no longer keeps its graph, and what the graph captures, alive."""

import gc
import weakref

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.gradient_registry import released_custom_gradients


@tf.custom_gradient
def _square(x):
    return x * x, lambda upstream: 2.0 * x * upstream


def _traced_graph(release: bool):
    """Trace and call a loss with a custom gradient; a weak reference to its graph, the gradient."""
    field = tf.Variable(np.arange(4, dtype=np.float32))

    @tf.function
    def loss_and_gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_square(field))
        return loss, tape.gradient(loss, field)

    if release:
        with released_custom_gradients():
            _, gradient = loss_and_gradient()
    else:
        _, gradient = loss_and_gradient()
    graph = weakref.ref(loss_and_gradient.get_concrete_function().graph)
    del loss_and_gradient, field
    gc.collect()
    return graph, gradient.numpy()


def test_the_graph_of_a_finished_call_is_freed_and_its_gradient_was_right():
    graph, gradient = _traced_graph(release=True)
    np.testing.assert_array_equal(gradient, [0.0, 2.0, 4.0, 6.0])
    assert graph() is None


def test_without_it_tensorflow_keeps_the_graph():
    graph, _ = _traced_graph(release=False)
    assert graph() is not None  # TensorFlow issue 27492: what released_custom_gradients undoes


def test_a_reconstruction_leaves_no_custom_gradient_registered():
    from tensorflow.python.framework import ops

    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.dmcr import DMCR
    from mcrgpu.mcr.synthetic import gaussian_random_structure

    target = characterize(gaussian_random_structure((16, 16), seed=0), ["Correlations", "Variation"], limit_to=3)
    registered = lambda: {name for name in ops._gradient_registry._registry if name.startswith("CustomGradient-")}  # noqa: E731
    before = registered()
    DMCR(["Correlations", "Variation"], max_iter=3, seed=0, two_point_polish=False).reconstruct(target, (8, 8, 8))
    assert registered() == before
