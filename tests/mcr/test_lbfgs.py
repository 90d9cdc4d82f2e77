"""The device L-BFGS: bounded solutions SciPy agrees with, exact evaluation counts, replicas, Ctrl+C."""

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from conftest import cpu_strategy
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.convergence import ConvergenceData, load_convergence
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr import lbfgs
from mcrgpu.mcr.lbfgs import BoxLBFGS
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.optimizers import minimize_on_device
from mcrgpu.mcr.slices import SliceDistributedLoss
from mcrgpu.errors import InvalidInputError
from test_slices import make_loss


def quadratic(a, c):
    """f(x) = 1/2 (x - c)' A (x - c) in float32 TensorFlow and float64 NumPy."""
    a32, c32 = tf.constant(a, tf.float32), tf.constant(c, tf.float32)

    def tf_loss(x):
        r = x - c32
        ar = tf.linalg.matvec(a32, r)
        return 0.5 * tf.reduce_sum(r * ar), ar

    def np_loss(x):
        r = x - c
        return 0.5 * r @ a @ r, a @ r

    return tf_loss, np_loss


def test_diagonal_quadratic_reaches_the_clipped_minimum():
    rng = np.random.default_rng(0)
    n = 40
    c = rng.uniform(-1.0, 2.0, n)  # about a third below 0, a third above 1
    a = np.diag(np.logspace(0, 2, n))
    tf_loss, _ = quadratic(a, c)
    optimizer = BoxLBFGS(tf.distribute.get_strategy(), tf_loss, np.full(n, 0.5, np.float32))
    result = optimizer.run(200)
    assert result.stopped and len(result.losses) < 200
    best_loss, best_x = optimizer.best()
    assert np.all(best_x[c < 0] == 0) and np.all(best_x[c > 1] == 1)  # exactly on the active bounds
    assert best_loss == pytest.approx(tf_loss(tf.constant(np.clip(c, 0, 1), tf.float32))[0].numpy(), rel=1e-6)
    # The free variables to the loss's float32 resolution (one ulp of ~92 over the weakest curvature, 1).
    np.testing.assert_allclose(best_x, np.clip(c, 0, 1), atol=5e-3)


def test_coupled_quadratic_matches_scipy_within_bounds():
    rng = np.random.default_rng(1)
    n = 30
    m = rng.normal(size=(n, n))
    a = m @ m.T / n + 0.5 * np.eye(n)
    c = rng.uniform(-0.5, 1.5, n)
    tf_loss, np_loss = quadratic(a, c)
    optimizer = BoxLBFGS(tf.distribute.get_strategy(), tf_loss, np.full(n, 0.5, np.float32))
    result = optimizer.run(300)
    reference = scipy.optimize.minimize(np_loss, np.full(n, 0.5), jac=True, method="L-BFGS-B",
                                        bounds=[(0, 1)] * n, options={"ftol": 0, "gtol": 1e-12, "maxfun": 1000})
    best_loss, best_x = optimizer.best()
    assert result.losses.min() == np.float32(best_loss)
    assert best_loss == pytest.approx(reference.fun, rel=1e-5)
    np.testing.assert_allclose(best_x, reference.x, atol=2e-3)
    assert best_x.min() >= 0 and best_x.max() <= 1


def test_chunks_continue_the_same_search():
    """Several calls of run() give the same evaluations as one call: the state is in variables."""
    rng = np.random.default_rng(2)
    n = 20
    tf_loss, _ = quadratic(np.diag(rng.uniform(1, 10, n)), rng.uniform(-1, 2, n))
    x0 = np.full(n, 0.5, np.float32)
    whole = BoxLBFGS(tf.distribute.get_strategy(), tf_loss, x0).run(15).losses
    chunked = BoxLBFGS(tf.distribute.get_strategy(), tf_loss, x0)
    parts = np.concatenate([chunked.run(k).losses for k in (4, 1, 6, 4)])
    np.testing.assert_array_equal(parts, whole)


def test_invalid_settings_fail_clearly():
    with pytest.raises(InvalidInputError, match="memory must be >= 1"):
        BoxLBFGS(tf.distribute.get_strategy(), None, np.zeros(3, np.float32), memory=0)
    with pytest.raises(InvalidInputError, match="bounds"):
        BoxLBFGS(tf.distribute.get_strategy(), None, np.zeros(3, np.float32), bounds=(1.0, 0.0))
    with pytest.raises(InvalidInputError, match="pair_precision must be one of float32, float16"):
        BoxLBFGS(tf.distribute.get_strategy(), None, np.zeros(3, np.float32), pair_precision="int8")


def _descriptor_run(strategy, n_evaluations):
    field = np.random.default_rng(0).random((6, 6, 6, 1)).astype("float32")
    losses = {axis: make_loss((6, 6), axis + 1) for axis in range(3)}
    with strategy.scope():
        variable = tf.Variable(field)
    distributed = SliceDistributedLoss(strategy, variable, losses)
    tables = tf.nest.map_structure(tf.constant, distributed.full_tables())
    with strategy.scope():
        optimizer = BoxLBFGS(strategy, lambda x: distributed.loss_and_gradient(tables, x), field)
    return optimizer.run(n_evaluations).losses


@pytest.mark.slow
def test_descriptor_losses_are_the_same_on_one_two_and_three_replicas():
    single = _descriptor_run(cpu_strategy(1), 10)
    assert single[-1] < single[0] / 2
    for n_replicas in (2, 3):
        losses = _descriptor_run(cpu_strategy(n_replicas), 10)
        np.testing.assert_allclose(losses[:6], single[:6], rtol=1e-5)  # same trajectory, float32 rounding
        np.testing.assert_allclose(losses, single, rtol=1e-3)


@pytest.fixture(scope="module")
def target_2d():
    rng = np.random.default_rng(5)
    labels = (np.fft.irfft2(np.fft.rfft2(rng.normal(size=(24, 24))) * np.exp(
        -0.2 * (np.arange(24)[:, None] ** 2 % 144 + np.arange(13)[None] ** 2))) > 0).astype(int)
    return characterize(Microstructure(labels), ["FFTCorrelations"], limit_to=4, use_multiphase=False)


def test_descriptor_reconstruction_is_as_good_as_scipy(target_2d):
    device, _ = DMCR(["FFTCorrelations"], max_iter=80, seed=0).reconstruct(target_2d, (24, 24))
    host, _ = DMCR(["FFTCorrelations"], max_iter=80, seed=0, optimizer_type="LBFGSB_SCIPY").reconstruct(
        target_2d, (24, 24))
    assert device.losses[0] == pytest.approx(host.losses[0], rel=1e-6)  # same start
    assert device.best_loss < host.losses[0] * 1e-3
    assert device.best_loss < 10 * host.best_loss


def test_max_iter_counts_evaluations_and_snapshots_go_to_disk(target_2d, tmp_path):
    dmcr = DMCR(["FFTCorrelations"], max_iter=37, seed=0, tolerance=0.0, convergence_data_steps=10,
                save_to=tmp_path, name="run")
    history, _ = dmcr.reconstruct(target_2d, (24, 24))
    assert history.n_evaluations == 37
    assert sorted(history.snapshots) == [10, 20, 30]  # chunks end on them
    assert all(isinstance(s, np.memmap) and s.dtype == np.float32 and s.shape == (24, 24, 1)
               for s in history.snapshots.values())  # float32 files, not arrays in RAM
    assert history.best_loss == min(history.losses)
    saved = load_convergence(dmcr.run_files(target_2d).convergence)
    np.testing.assert_array_equal(saved.snapshots[20], history.snapshots[20])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_convergence.npz", "run_reconstruction.npy"]


def test_tolerance_stops_a_stalled_search(target_2d):
    history, _ = DMCR(["FFTCorrelations"], max_iter=200, seed=0, tolerance=0.5).reconstruct(target_2d, (24, 24))
    assert history.n_evaluations < 200


def test_interrupt_keeps_the_best_evaluated_state():
    rng = np.random.default_rng(3)
    n = 25
    tf_loss, _ = quadratic(np.diag(rng.uniform(1, 100, n)), rng.uniform(-1, 2, n))
    optimizer = BoxLBFGS(tf.distribute.get_strategy(), tf_loss, np.full(n, 0.5, np.float32))
    history = ConvergenceData()

    def record(loss, field_value, snapshot_value=None):
        history.record(loss, field_value, snapshot_value, stage=0, snapshot_every=None)
        if history.n_evaluations == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        minimize_on_device(optimizer, max_iter=50, chunk=5, record=record)
    assert history.n_evaluations == 10  # the chunk under way is recorded to its end
    assert history.best_loss == min(history.losses)
    assert tf_loss(tf.constant(history.best_field))[0].numpy() == np.float32(history.best_loss)


def two_loop_direction(g, s_pairs, y_pairs):
    """-H g by the two-loop recursion over pairs in age order (oldest first), H0 = s'y / y'y."""
    q, alphas = g.copy(), []
    for s, y in zip(s_pairs[::-1], y_pairs[::-1]):
        alpha = s @ q / (y @ s)
        alphas.append(alpha)
        q -= alpha * y
    r = q * (s_pairs[-1] @ y_pairs[-1]) / (y_pairs[-1] @ y_pairs[-1])
    for s, y, alpha in zip(s_pairs, y_pairs, alphas[::-1]):
        r += s * (alpha - y @ r / (y @ s))
    return -r


@pytest.mark.parametrize("block, precision", [(lbfgs._BLOCK, "float32"), (7, "float32"), (7, "float16")])
def test_ring_buffered_pairs_give_the_lbfgs_direction_after_wrapping_around(block, precision, monkeypatch):
    """With no bound near, the step is the two-loop recursion's over the pairs in age order, also
    once the newest pairs have overwritten the oldest in the ring buffer, when the passes over the
    pairs go in several blocks of columns (the last one shorter), and over the pairs as float16
    slots hold them (times their scales)."""
    monkeypatch.setattr(lbfgs, "_BLOCK", block)
    rng = np.random.default_rng(3)
    n, memory = 25, 3
    m = rng.normal(size=(n, n))
    tf_loss, _ = quadratic(m @ m.T / n + 0.5 * np.eye(n), rng.uniform(0.0, 1.0, n))
    optimizer = BoxLBFGS(tf.distribute.get_strategy(), tf_loss, np.full(n, 0.5, np.float32),
                         bounds=(-100.0, 100.0), memory=memory, pair_precision=precision)
    checked = 0
    for _ in range(15):
        optimizer.run(1)
        state = {name: variable.numpy() for name, variable in optimizer.state.items()}
        if state["searched"] == 0 and state["pairs"] == memory and state["head"] != 0:
            order = (state["head"] + np.arange(memory)) % memory
            scales = state["scales"].astype(np.float64)
            s = np.stack([state[f"s{i}"] * scales[i] for i in order]).astype(np.float64)
            y = np.stack([state[f"y{i}"] * scales[memory + i] for i in order]).astype(np.float64)
            # S'Y, kept up to date one pair at a time, is the product of the pairs
            np.testing.assert_allclose(state["sy"][np.ix_(order, order)], s @ y.T, rtol=1e-5, atol=1e-9)
            expected = two_loop_direction(state["g"].astype(np.float64), s, y)
            np.testing.assert_allclose(state["d"], expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
            checked += 1
    assert checked >= 2
