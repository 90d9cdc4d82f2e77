"""Out of device memory in the slice loss: the slice batch is halved until a chunk fits, or one clear error."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from conftest import cpu_strategy
from mcrgpu.errors import DeviceConfigError
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.slices import SliceDistributedLoss


def fake_memory(monkeypatch, most_slices: int) -> list[int]:
    """Make every chunk of more than ``most_slices`` slices raise ResourceExhaustedError, as a GPU
    does when it runs out of memory; return the chunk sizes tried."""
    tried = []
    compute = SliceDistributedLoss._chunk_loss_and_gradient

    def chunk_loss_and_gradient(self, field, indices, weights, *, axis):
        tried.append(int(indices.shape[0]))
        if indices.shape[0] > most_slices:
            raise tf.errors.ResourceExhaustedError(None, None, f"OOM when allocating a chunk of {indices.shape[0]}")
        return compute(self, field, indices, weights, axis=axis)

    monkeypatch.setattr(SliceDistributedLoss, "_chunk_loss_and_gradient", chunk_loss_and_gradient)
    return tried


def reconstruct(**settings):
    structure = (np.random.default_rng(0).random((8, 8)) > 0.5).astype(np.int64)
    target = characterize(structure, ["FFTCorrelations"], limit_to=3)
    dmcr = DMCR(["FFTCorrelations"], strategy=cpu_strategy(1), max_iter=3, seed=0, convergence_data_steps=None,
                **settings)
    return dmcr.reconstruct(target, (8, 8, 8))[0]  # 8 slices along each axis


@pytest.mark.slow
def test_out_of_memory_halves_the_slice_batch_and_says_so_once(monkeypatch, caplog):
    expected = reconstruct(slice_batch_size=2).losses
    tried = fake_memory(monkeypatch, 3)
    with caplog.at_level(logging.WARNING):
        history = reconstruct(slice_batch_size=8)
    assert tried[:3] == [8, 4, 2] and set(tried[3:]) == {2}
    warnings = [record.getMessage() for record in caplog.records if "Out of device memory" in record.getMessage()]
    assert len(warnings) == 1 and "8 slices" in warnings[0]
    np.testing.assert_allclose(history.losses, expected, rtol=1e-5)


def test_out_of_memory_for_one_slice_is_one_line_with_the_fix(monkeypatch):
    fake_memory(monkeypatch, 0)
    with pytest.raises(DeviceConfigError) as error:
        reconstruct(slice_batch_size=4)
    message = str(error.value)
    assert "\n" not in message and "more memory" in message and "--memory_limit" in message
    assert "smaller volume" in message
