"""Box-constrained L-BFGS on the device: the field, its history and the line search stay in TensorFlow.

The method is a projected quasi-Newton method with a two-metric projection (Bertsekas 1982): the
variables at (or within a small distance of) a bound whose gradient pushes outwards are held fixed,
the quasi-Newton step over the others comes from the compact L-BFGS matrix (10 pairs by default)
restricted to them and inverted exactly (as L-BFGS-B's subspace step; a plain two-loop recursion
with masked vectors reached 3e-8 in 200 evaluations of the 2D 64x64 FFT case, SciPy 8e-15, this
one 3e-14), and a line search along the projected
path ``P(x + t d)`` (P clips to [lo, hi]) finds a step satisfying the strong Wolfe conditions
(sufficient decrease measured along the projected path, cubic interpolation in the zoom phase,
Nocedal & Wright, Algorithms 3.5 and 3.6). Each pass of the loop evaluates the loss once, so
``max_iter`` counts loss evaluations exactly, as with SciPy. Several evaluations run in one
``tf.function`` call (a ``tf.while_loop``); between calls the state lives in variables created
under ``strategy.scope()``, and only the losses of the chunk go back to the host. The pairs, 2m
fields and most of the optimiser's memory, are 2m slot variables written in place, one pair per
accepted step; their products ``S'Y`` and ``S'S`` are kept up to date one row and column at a
time, and the products the step needs are taken in one pass over column blocks of the slots, so
that no (m, n) array of the pairs is ever formed or copied. At 256^3 a step's peak is about
2m + 10 fields (``benchmarks/results/memory_issue19.md``); float16 slots halve the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError

__all__ = ["BoxLBFGS", "ChunkResult", "PAIR_PRECISIONS"]

LossAndGradient = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]

# Search stages of the state machine: evaluate the start point, bracket a step, zoom in on it.
_START, _BRACKET, _ZOOM = 0, 1, 2
_C1, _C2 = 1e-3, 0.9  # strong Wolfe constants, SciPy's L-BFGS-B's
_EXTRAPOLATE = 4.0  # growth of the step while bracketing (MCS/dcsrch's upper factor)
PAIR_PRECISIONS = ("float32", "float16")
_BLOCK = 2**16  # columns of the pairs per pass step: a few (2m, _BLOCK) float32 temporaries


@dataclass(frozen=True)
class ChunkResult:
    """What one call of :meth:`BoxLBFGS.run` did: the loss of each evaluation, in order, and
    whether the search has stopped (converged, stalled, or no descent left at float32)."""

    losses: np.ndarray
    stopped: bool


def _f64(value: float) -> tf.Tensor:
    return tf.constant(value, tf.float64)


def _dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.reduce_sum(a * b), tf.float64)


class BoxLBFGS:
    """Minimise a loss of a float32 field within bounds, with state kept on the device.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
        The variables holding the state are created under its scope.
    loss_and_gradient : callable
        Field tensor -> (scalar loss, gradient of the field's shape), traceable in a
        ``tf.function`` in cross-replica context (e.g. the slice-distributed loss).
    x0 : array
        Start field; values outside the bounds are clipped.
    bounds : (float, float)
        Box for every variable; [0, 1] for indicator fields.
    memory : int
        Number of (s, y) pairs kept (L-BFGS memory).
    tolerance : float
        Stop when an accepted step lowers the loss by no more than ``tolerance`` times the loss
        (the same meaning as for SciPy's run in :func:`mcrgpu.mcr.optimizers.minimize_lbfgsb`).
    max_line_search : int
        Evaluations one line search may take before it takes the best point found, or restarts
        along the steepest descent when there is none.
    pair_precision : {"float32", "float16"}
        How the pairs are stored. float16 halves their memory (2m of the 2m + 5 resident fields);
        each stored vector is scaled by its largest magnitude, and the products of the pairs are
        taken from the stored values, so that the quasi-Newton matrix stays consistent.

    References
    ----------
    .. [1] Bertsekas, D. P., "Projected Newton methods for optimization problems with simple
       constraints", SIAM J. Control Optim. 20 (1982) 221-246.
    .. [2] Nocedal, J., Wright, S. J., "Numerical Optimization", 2nd ed., Springer (2006), ch. 3, 7.
    .. [3] Byrd, R. H., Nocedal, J., Schnabel, R. B., "Representations of quasi-Newton matrices and
       their use in limited memory methods", Math. Program. 63 (1994) 129-156.
    """

    def __init__(self, strategy: tf.distribute.Strategy, loss_and_gradient: LossAndGradient, x0, *,
                 bounds: tuple[float, float] = (0.0, 1.0), memory: int = 10, tolerance: float = 0.0,
                 max_line_search: int = 20, pair_precision: str = "float32") -> None:
        if memory < 1 or max_line_search < 2:
            raise InvalidInputError(
                f"memory must be >= 1 and max_line_search >= 2; received {memory!r}, {max_line_search!r}"
            )
        if pair_precision not in PAIR_PRECISIONS:
            raise InvalidInputError(f"pair_precision must be one of {', '.join(PAIR_PRECISIONS)}; "
                                    f"received {pair_precision!r}")
        if not bounds[0] < bounds[1]:
            raise InvalidInputError(f"bounds must be (low, high) with low < high; received {bounds!r}")
        self.loss_and_gradient = loss_and_gradient
        self.low, self.high = float(bounds[0]), float(bounds[1])
        self.memory = memory
        self.pair_dtype = tf.as_dtype(pair_precision)
        self.tolerance = float(tolerance)
        self.max_line_search = max_line_search
        x0 = np.clip(np.asarray(x0, np.float32), self.low, self.high)
        shape = x0.shape
        field = lambda: tf.zeros(shape, tf.float32)  # noqa: E731
        scalar = lambda value=0.0: tf.constant(value, tf.float64)  # noqa: E731
        initial = {
            "x": tf.constant(x0), "g": field(), "d": field(), "g_lo": field(), "best_x": tf.constant(x0),
            **{name: tf.zeros(shape, self.pair_dtype) for name in _slot_names(memory)},
            "scales": tf.ones(2 * memory, tf.float32),
            "sy": tf.zeros((memory, memory), tf.float64), "ss": tf.zeros((memory, memory), tf.float64),
            "yy_last": scalar(), "pairs": tf.constant(0), "head": tf.constant(0), "stage": tf.constant(_START),
            "f": scalar(), "dphi0": scalar(), "t": scalar(), "t_prev": scalar(), "f_prev": scalar(),
            "dphi_prev": scalar(), "t_lo": scalar(), "f_lo": scalar(), "dphi_lo": scalar(),
            "t_hi": scalar(), "f_hi": scalar(), "dphi_hi": scalar(), "searched": tf.constant(0),
            "best_f": scalar(np.inf), "stopped": tf.constant(False), "t_max": scalar(1.0),
        }
        with strategy.scope():
            self.state = {name: tf.Variable(value, trainable=False, name=f"lbfgs_{name}")
                          for name, value in initial.items()}
        self._pair_slots = [self.state[name] for name in _slot_names(memory)]  # S then Y
        self._size = x0.size
        self._blocks = -(-x0.size // _BLOCK)

    # -- public ---------------------------------------------------------------------------------
    def run(self, n_evaluations: int, *args) -> ChunkResult:
        """Evaluate the loss up to ``n_evaluations`` more times (fewer once the search stops).

        ``args`` (tensors) are passed on to ``loss_and_gradient`` after the field, the same for
        every evaluation of this call (e.g. the slice tables of the distributed loss).
        """
        losses, stopped = self._run_chunk(tf.constant(n_evaluations, tf.int32), *args)
        return ChunkResult(losses.numpy(), bool(stopped))

    def best(self) -> tuple[float, np.ndarray]:
        """Lowest loss evaluated so far and the field it was evaluated at."""
        return float(self.state["best_f"].numpy()), self.state["best_x"].numpy()

    def current(self) -> np.ndarray:
        """The current iterate (the last accepted point of the line searches)."""
        return self.state["x"].numpy()

    # -- the loop -------------------------------------------------------------------------------
    # A method-level tf.function holds its instance weakly: the state's memory goes with the optimiser.
    @tf.function(autograph=False)
    def _run_chunk(self, n_evaluations: tf.Tensor, *args):
        slots = set(_slot_names(self.memory))
        state = {name: tf.convert_to_tensor(variable) for name, variable in self.state.items() if name not in slots}
        losses = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=())

        def body(k, losses, state):
            trial = self._trial_point(state)
            loss, gradient = self.loss_and_gradient(trial, *args)
            gradient = tf.reshape(tf.cast(gradient, tf.float32), trial.shape)
            state = self._update(state, trial, tf.cast(loss, tf.float64), gradient)
            return k + 1, losses.write(k, tf.cast(loss, tf.float32)), state

        k, losses, state = tf.while_loop(
            lambda k, losses, state: tf.logical_and(k < n_evaluations, tf.logical_not(state["stopped"])),
            body, (tf.constant(0), losses, state), parallel_iterations=1)
        for name, value in state.items():
            self.state[name].assign(value)
        return losses.stack()[:k], state["stopped"]

    def _trial_point(self, state) -> tf.Tensor:
        return tf.clip_by_value(state["x"] + tf.cast(state["t"], tf.float32) * state["d"], self.low, self.high)

    def _update(self, state, trial, loss, gradient):
        """One evaluation's step: move the bracket, or accept a point and set up the next search."""
        improved = loss < state["best_f"]
        state = {**state, "best_f": tf.where(improved, loss, state["best_f"]),
                 "best_x": tf.where(improved, trial, state["best_x"])}
        start, zoom = state["stage"] == _START, state["stage"] == _ZOOM
        t = state["t"]
        moving = tf.cast((trial > self.low) & (trial < self.high), tf.float32)
        dphi = _dot(gradient, state["d"] * moving)  # slope of f(P(x + t d)) at t
        decrease = loss <= state["f"] + _C1 * _dot(state["g"], trial - state["x"])
        curvature = tf.abs(dphi) <= -_C2 * state["dphi0"]
        searched = state["searched"] + 1
        point, lo_old, hi_old = (t, loss, dphi), _bracket(state, "lo"), _bracket(state, "hi")
        previous = (state["t_prev"], state["f_prev"], state["dphi_prev"])
        # Zoom (N&W Alg. 3.6): the point replaces hi if too high, else lo (hi <- lo if it points back).
        # Bracketing (Alg. 3.5): too high -> zoom in (prev, point); uphill -> zoom in (point, prev).
        too_high = tf.logical_not(decrease) | tf.where(
            zoom, loss >= state["f_lo"], (state["searched"] > 0) & (loss >= state["f_prev"]))
        accept = start | (tf.logical_not(too_high) & (curvature | (t >= state["t_max"])))
        uphill = tf.logical_not(too_high) & (dphi * tf.where(zoom, state["t_hi"] - state["t_lo"], _f64(1.0)) >= 0)
        lo = _pick(zoom, _pick(too_high, lo_old, point), _pick(too_high, previous, point))
        hi = _pick(zoom, _pick(too_high, point, _pick(uphill, lo_old, hi_old)), _pick(too_high, point, previous))
        g_lo = tf.where(too_high, state["g_lo"], gradient)
        zoom_next = zoom | too_high | uphill
        next_t = tf.where(zoom_next, _cubic_step(lo, hi), tf.minimum(_EXTRAPOLATE * t, state["t_max"]))
        width = tf.abs(hi[0] - lo[0])
        exhausted = tf.logical_not(accept) & ((searched >= self.max_line_search)
                                              | (zoom_next & (width <= 1e-12 * tf.maximum(hi[0], lo[0]))))
        found = lo[1] < state["f"]  # when exhausted: take the best point of the search, else restart
        x_lo = tf.clip_by_value(state["x"] + tf.cast(lo[0], tf.float32) * state["d"], self.low, self.high)
        new_point = (tf.where(accept, trial, x_lo), tf.where(accept, loss, lo[1]), tf.where(accept, gradient, g_lo))

        def keep_searching():
            return {**state, "searched": searched, "t": next_t, "t_prev": t, "f_prev": loss, "dphi_prev": dphi,
                    "t_lo": lo[0], "f_lo": lo[1], "dphi_lo": lo[2], "t_hi": hi[0], "f_hi": hi[1],
                    "dphi_hi": hi[2], "g_lo": g_lo, "stage": tf.where(zoom_next, _ZOOM, _BRACKET)}

        def next_iteration():
            move = accept | found
            return self._next_iteration(state, *new_point, move=move, first=start)

        return tf.cond(accept | exhausted, next_iteration, keep_searching)

    def _next_iteration(self, state, x_new, f_new, g_new, *, move, first):
        """Accept the new point (``move``) and store its pair, or restart from the current one
        with no pairs (stop if there were none: no descent left at float32); new direction."""
        s, y = x_new - state["x"], g_new - state["g"]
        sy, yy = _dot(s, y), _dot(y, y)
        store = move & tf.logical_not(first) & (sy > 1e-10 * yy)
        # Ring buffer of slot variables: the new pair overwrites the oldest in place, and only the
        # row and column of its slot in S'Y and S'S change.
        head = state["head"]

        def store_pair():
            m = self.memory
            (s_slot, s_scale, s_kept), (y_slot, y_scale, y_kept) = self._stored(s), self._stored(y)
            assigned = tf.switch_case(head, [lambda i=i: self._assign_pair(i, s_slot, y_slot) for i in range(m)])
            scales = tf.tensor_scatter_nd_update(state["scales"], [[head], [head + m]], [s_scale, y_scale])
            with tf.control_dependencies([assigned]):
                products = self._fold_pairs(  # [S; Y] [s, y]: (2m, 2), the new pair included
                    lambda start, block, total: total + _gram(block, tf.stack([_columns(s_kept, start),
                                                                               _columns(y_kept, start)])),
                    tf.zeros((2 * m, 2), tf.float64), scales)
            s_ts, s_ty, y_ts, y_ty = products[:m, 0], products[:m, 1], products[m:, 0], products[m:, 1]
            return (_set_row_and_column(state["sy"], head, y_ts, s_ty),
                    _set_row_and_column(state["ss"], head, s_ts, s_ts), y_ty[head], scales, tf.constant(True))

        def keep_pairs():
            return state["sy"], state["ss"], state["yy_last"], state["scales"], tf.constant(False)

        sy_matrix, ss_matrix, yy_last, scales, stored = tf.cond(store, store_pair, keep_pairs)
        head = tf.where(stored, (head + 1) % self.memory, head)
        pairs = tf.where(store, tf.minimum(state["pairs"] + 1, self.memory), state["pairs"])
        pairs = tf.where(move, pairs, 0)
        stalled = move & tf.logical_not(first) & (state["f"] - f_new <= self.tolerance * tf.abs(state["f"]))
        stop = stalled | (tf.logical_not(move) & (state["pairs"] == 0))
        state = {**state, "x": tf.where(move, x_new, state["x"]), "f": tf.where(move, f_new, state["f"]),
                 "g": tf.where(move, g_new, state["g"]), "pairs": pairs, "head": head,
                 "sy": sy_matrix, "ss": ss_matrix, "yy_last": yy_last, "scales": scales}
        return self._new_direction(state, stop, first_iteration=first)

    def _new_direction(self, state, stop, *, first_iteration):
        x, g = state["x"], state["g"]
        projected = x - tf.clip_by_value(x - g, self.low, self.high)
        epsilon = tf.minimum(1e-3, tf.reduce_max(tf.abs(projected)))
        held = ((x <= self.low + epsilon) & (g > 0)) | ((x >= self.high - epsilon) & (g < 0))
        free = tf.cast(tf.logical_not(held), tf.float32)
        d = self._reduced_newton_step(state, g * free, free)
        dphi0 = _dot(g, d)
        no_descent = tf.logical_not(dphi0 < 0)
        d = tf.where(no_descent, -g * free, d)  # safeguard: rounding in the small system
        dphi0 = tf.where(no_descent, _dot(g, d), dphi0)
        stop = stop | tf.logical_not(dphi0 < 0)  # no descent direction: converged
        zero = tf.constant(0.0, tf.float64)
        return {**state, "d": d, "dphi0": dphi0, "t": tf.constant(1.0, tf.float64), "t_prev": zero,
                "f_prev": state["f"], "dphi_prev": dphi0, "t_lo": zero, "f_lo": state["f"], "dphi_lo": dphi0,
                "t_hi": zero, "f_hi": state["f"], "dphi_hi": dphi0, "g_lo": g, "searched": tf.constant(0),
                "stage": tf.constant(_BRACKET), "stopped": state["stopped"] | stop,
                # The first step (B = I) is not extrapolated beyond 1, as in L-BFGS-B.
                "t_max": tf.where(first_iteration, _f64(1.0), _f64(1e10))}

    def _reduced_newton_step(self, state, g_free, free):
        """-B_FF^-1 g_F: the quasi-Newton step over the free variables F, the others fixed.

        B = theta I - W M W' is the compact L-BFGS matrix (Byrd, Nocedal & Schnabel 1994) with
        W = [Y, theta S]; its restriction to F is inverted by the Sherman-Morrison-Woodbury
        formula, a (2m, 2m) solve in float64. Without pairs it is the steepest descent -g_F.
        """
        m = self.memory
        pairs = state["pairs"]
        valid = tf.range(m) >= m - pairs
        valid2 = tf.concat([valid, valid], 0)
        # The pairs sit in a ring buffer (oldest at slot ``head``); the field-sized products are
        # taken in slot order, the small matrices permuted to age order (oldest first).
        order = (state["head"] + tf.range(m)) % m
        order2 = tf.concat([order, order + m], 0)
        sy_full = _permute(state["sy"], order)  # (m, m): s_i' y_j
        ss_full = _permute(state["ss"], order)
        theta = tf.where(pairs > 0, state["yy_last"] / tf.where(pairs > 0, sy_full[m - 1, m - 1], _f64(1.0)),
                         _f64(1.0))
        mask = tf.cast(valid[:, None] & valid[None, :], tf.float64)
        d_diag = tf.linalg.diag(tf.linalg.diag_part(sy_full)) * mask
        lower = tf.linalg.band_part(sy_full, -1, 0) - tf.linalg.band_part(sy_full, 0, 0)
        lower = lower * mask
        m_inverse = tf.concat([tf.concat([-d_diag, tf.transpose(lower)], 1),
                               tf.concat([lower, theta * ss_full * mask], 1)], 0)

        def masked_products(start, block, totals):  # [S; Y] diag(free) [S; Y]' and [S; Y] g_F
            grams, rhs = totals
            grams = grams + _gram(block * _columns(free, start)[None], block)
            return grams, rhs + _gram(block, _columns(g_free, start)[None])

        grams, w_g = self._fold_pairs(masked_products, (tf.zeros((2 * m, 2 * m), tf.float64),
                                                        tf.zeros((2 * m, 1), tf.float64)), state["scales"])
        sfs, yfy, sfy = grams[:m, :m], grams[m:, m:], grams[:m, m:]
        # W_F'W_F with W = [Y, theta S] restricted to F, from the blocks Y_F'Y_F, S_F'Y_F, S_F'S_F.
        wtw = _permute(tf.concat([tf.concat([yfy, theta * tf.transpose(sfy)], 1),
                                  tf.concat([theta * sfy, theta**2 * sfs], 1)], 0), order2)
        pair_mask = tf.cast(valid2[:, None] & valid2[None, :], tf.float64)
        k = (m_inverse - wtw / theta) * pair_mask + tf.linalg.diag(1.0 - tf.cast(valid2, tf.float64))
        rhs = tf.concat([w_g[m:], theta * w_g[:m]], 0)
        rhs = tf.gather(rhs, order2) * tf.cast(valid2, tf.float64)[:, None]
        v = tf.scatter_nd(order2[:, None], tf.linalg.solve(k, rhs) / theta**2, (2 * m, 1))  # slot order
        # W'v = Y'v_1 + theta S'v_2, as one row over [S; Y]
        weights = tf.cast(tf.transpose(tf.concat([theta * v[m:], v[:m]], 0)), tf.float32)
        pieces = self._fold_pairs(
            lambda start, block, pieces: pieces.write(start // _BLOCK, tf.matmul(weights, block)[0]),
            tf.TensorArray(tf.float32, size=self._blocks, infer_shape=False), state["scales"])
        correction = tf.reshape(pieces.concat(), g_free.shape)
        return -(g_free * tf.cast(1.0 / theta, tf.float32) + correction * free)

    def _assign_pair(self, slot: int, s: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.control_dependencies([self._pair_slots[slot].assign(s)]):  # one field's copy at a time
            assigned = self._pair_slots[self.memory + slot].assign(y)
        with tf.control_dependencies([assigned]):
            return tf.constant(True)

    def _stored(self, vector: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(what a slot holds, its scale, the float32 vector it stands for) for a new s or y. In
        float16 the vector is divided by its largest magnitude first: gradients far below float16's
        smallest normal number (6e-5) keep their relative precision."""
        if self.pair_dtype == tf.float32:
            return vector, tf.constant(1.0), vector
        scale = tf.reduce_max(tf.abs(vector))
        scale = tf.where(scale > 0, scale, 1.0)
        slot = tf.cast(vector / scale, self.pair_dtype)
        return slot, scale, tf.cast(slot, tf.float32) * scale

    def _fold_pairs(self, step, initial, scales):
        """``step(start, block, total)`` over the pairs' columns in blocks of ``_BLOCK``, in order;
        ``block`` is (2m, columns) float32: the S slots, then the Y slots, times their ``scales``.
        No copy of all the pairs is ever made, and one block at a time is alive."""
        flat = [tf.reshape(slot, [-1]) for slot in self._pair_slots]

        def body(start, total):
            block = tf.cast(tf.stack([_columns(slot, start) for slot in flat]), tf.float32) * scales[:, None]
            return start + _BLOCK, step(start, block, total)

        if self._blocks == 1:  # no loop traced for one block (2^16 values: 40^3, 256^2)
            return body(tf.constant(0), initial)[1]
        return tf.while_loop(lambda start, total: start < self._size, body, (tf.constant(0), initial),
                             parallel_iterations=1)[1]


def _slot_names(memory: int) -> list[str]:
    return [f"s{i}" for i in range(memory)] + [f"y{i}" for i in range(memory)]


def _columns(field: tf.Tensor, start) -> tf.Tensor:
    """Elements ``start .. start + _BLOCK`` of a field, flattened."""
    return tf.reshape(field, [-1])[start:start + _BLOCK]


def _gram(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """a b' in float64, for (m, n) a and (k, n) b."""
    return tf.cast(tf.matmul(a, b, transpose_b=True), tf.float64)


def _set_row_and_column(matrix: tf.Tensor, index: tf.Tensor, row: tf.Tensor, column: tf.Tensor) -> tf.Tensor:
    """``matrix`` with row ``index`` replaced by ``row`` and column ``index`` by ``column``."""
    at = tf.range(tf.shape(matrix)[0]) == index
    return tf.where(at[:, None], row[None, :], tf.where(at[None, :], column[:, None], matrix))


def _permute(matrix: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
    """Rows and columns of a square matrix taken in ``order``."""
    return tf.gather(tf.gather(matrix, order), order, axis=1)


def _bracket(state, end: str):
    return state[f"t_{end}"], state[f"f_{end}"], state[f"dphi_{end}"]


def _pick(condition, a, b):
    return tuple(tf.where(condition, u, v) for u, v in zip(a, b))


def _cubic_step(lo, hi):
    """Minimiser of the cubic through (t, f, f') at both ends, kept within the middle 80 % of the
    interval (bisection when the cubic has no minimum there)."""
    (t1, f1, d1), (t2, f2, d2) = lo, hi
    span = t2 - t1
    safe_span = tf.where(tf.abs(span) > 0, span, 1.0)
    e1 = d1 + d2 - 3.0 * (f1 - f2) / (-safe_span)
    radicand = e1 * e1 - d1 * d2
    e2 = tf.sign(span) * tf.sqrt(tf.maximum(radicand, 0.0))
    denominator = d2 - d1 + 2.0 * e2
    safe_denominator = tf.where(tf.abs(denominator) > 0, denominator, 1.0)
    t = t2 - span * (d2 + e2 - e1) / safe_denominator
    middle = t1 + 0.5 * span
    usable = (radicand >= 0) & (tf.abs(denominator) > 0) & tf.math.is_finite(t)
    t = tf.where(usable, t, middle)
    low, high = tf.minimum(t1, t2), tf.maximum(t1, t2)
    margin = 0.1 * (high - low)
    return tf.clip_by_value(t, low + margin, high - margin)
