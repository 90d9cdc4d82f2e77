"""The optimiser drivers: how the device L-BFGS is run in chunks."""

import time

import numpy as np

from mcrgpu.mcr.lbfgs import ChunkResult
from mcrgpu.mcr.optimizers import minimize_on_device


class SlowOptimizer:
    """Stands in for BoxLBFGS: 10 ms per evaluation, records the length of each call."""

    def __init__(self):
        self.lengths = []

    def run(self, n_evaluations, *args):
        self.lengths.append(n_evaluations)
        time.sleep(0.01 * n_evaluations)
        return ChunkResult(np.ones(n_evaluations, np.float32), False)

    def best(self):
        return 1.0, np.zeros(1, np.float32)

    def current(self):
        return np.zeros(1, np.float32)


def test_device_calls_are_bounded_in_time_so_a_signal_acts_soon():
    optimizer = SlowOptimizer()
    minimize_on_device(optimizer, max_iter=100, chunk=50, record=lambda *args: None, max_seconds=0.05)
    assert optimizer.lengths[0] == 1 and max(optimizer.lengths) <= 5 and sum(optimizer.lengths) == 100


def test_without_a_time_bound_calls_end_at_snapshot_multiples():
    optimizer = SlowOptimizer()
    minimize_on_device(optimizer, max_iter=25, chunk=10, evaluations_before=3, record=lambda *args: None)
    assert optimizer.lengths == [7, 10, 8]
