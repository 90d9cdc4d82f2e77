"""The stage optimisers behind one protocol: a budget of evaluations, state as arrays, restore from them."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from conftest import cpu_strategy
from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor
from mcrgpu.mcr.losses import LossSettings, SliceLoss
from mcrgpu.mcr.optimizer_adapters import (DeviceLBFGS, KerasSteps, ScipyLBFGSB, make_stage_optimizer,
                                           restore_variables)
from mcrgpu.mcr.reconstruction_settings import ReconstructionSettings
from mcrgpu.mcr.slices import SliceDistributedLoss

SHAPE = (1, 12, 12, 1)  # a 2D field: a volume of depth 1


def stage(optimizer_type, start, **settings):
    """An adapter of ``optimizer_type`` from ``start`` for an FFTCorrelations loss, and the losses it records."""
    strategy = cpu_strategy(1)
    descriptor = get_descriptor("FFTCorrelations", DescriptorSettings(limit_to=3))
    target_field = (np.random.default_rng(1).random(SHAPE) > 0.5).astype(np.float32)
    loss = SliceLoss([descriptor], {descriptor.name: descriptor(tf.constant(target_field)).numpy()[0]}, [1.0],
                     slice_shape=SHAPE[1:3], multiphase=False, settings=LossSettings())
    with strategy.scope():
        variable = tf.Variable(start, dtype=tf.float32)
    distributed = SliceDistributedLoss(strategy, variable, {0: loss}, slice_batch_size=1)
    full = tf.nest.map_structure(tf.constant, distributed.full_tables())
    settings = ReconstructionSettings(("FFTCorrelations",), optimizer_type=optimizer_type, tolerance=0.0, **settings)
    adapter = make_stage_optimizer(settings, strategy, variable, start, distributed, lambda: full)
    recorded = []
    return adapter, recorded, lambda budget: adapter.run(budget, record=lambda value, *_: recorded.append(value),
                                                         after_step=lambda: None, evaluations_before=0)


START = np.random.default_rng(0).uniform(0.3, 0.7, SHAPE).astype(np.float32)


@pytest.mark.parametrize("optimizer_type, kind", [("LBFGSB", DeviceLBFGS), ("Adam", KerasSteps),
                                                  ("LBFGSB_SCIPY", ScipyLBFGSB)])
def test_each_adapter_makes_its_budget_of_evaluations_and_restores_its_state(optimizer_type, kind):
    adapter, losses, run = stage(optimizer_type, START, learning_rate=0.05)
    assert isinstance(adapter, kind)
    run(8)
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert np.shape(adapter.current()) in (SHAPE, (np.prod(SHAPE),))
    state, current = adapter.state(), np.reshape(adapter.current(), SHAPE)
    run(4)  # goes on
    restored, again, run_again = stage(optimizer_type, current, learning_rate=0.05)
    restored.restore(state)
    run_again(4)
    if optimizer_type == "LBFGSB_SCIPY":  # its memory is out of reach: a restart from the accepted iterate
        assert state == {} and min(abs(again[0] - value) for value in losses[:8]) <= 1e-6 * again[0]
    else:
        assert state and all(isinstance(v, (np.ndarray, np.generic)) for v in state.values())  # arrays for a file
        np.testing.assert_allclose(again, losses[8:], rtol=1e-6)


def test_a_state_of_another_optimiser_leaves_it_fresh_and_says_so(caplog):
    adapter, _, _ = stage("Adam", START, learning_rate=0.05)
    fresh = adapter.state()
    with caplog.at_level(logging.WARNING, logger="mcrgpu.mcr.optimizer_adapters"):
        adapter.restore({"000": np.zeros(3)})
    assert "another optimiser: starting it afresh" in caplog.text
    assert all(np.array_equal(fresh[name], value) for name, value in adapter.state().items())
    restore_variables({}, {})  # nothing stored, nothing to say
    assert caplog.text.count("afresh") == 1
