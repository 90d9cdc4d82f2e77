"""One worker of the two-worker test (tests/test_multi_worker.py): run as ``python multi_worker_job.py OUT``.

Builds the strategy from TF_CONFIG through setup_gpus, computes the slice-distributed loss and
gradient of a fixed field, and saves them with the worker's rank to OUT (.npz).
"""

import sys

import numpy as np
import tensorflow as tf

from mcrgpu.gpu_manager import GPUConfig, describe, is_chief, setup_gpus, worker_rank
from mcrgpu.mcr.slices import SliceDistributedLoss

FIELD_SHAPE = (6, 7, 5, 2)


def slice_loss(slices: tf.Tensor) -> tf.Tensor:
    """A smooth, non-quadratic per-slice loss, (b, h, w, C) -> (b,)."""
    return tf.reduce_sum(tf.sin(3.0 * slices) * slices ** 2, axis=[1, 2, 3])


def loss_and_gradient(strategy: tf.distribute.Strategy) -> tuple[np.ndarray, np.ndarray]:
    """Total loss and gradient over every slice of a fixed random field, summed across replicas."""
    with strategy.scope():
        field = tf.Variable(np.random.default_rng(0).random(FIELD_SHAPE).astype(np.float32))
    loss = SliceDistributedLoss(strategy, field, {axis: slice_loss for axis in (0, 1, 2)}, slice_batch_size=2)
    total, gradient = loss.loss_and_gradient(loss.full_tables())
    return total.numpy(), gradient.numpy()


def main(out: str) -> None:
    strategy = setup_gpus(GPUConfig(multi_worker=True))
    total, gradient = loss_and_gradient(strategy)
    rank, n_workers = worker_rank(strategy)
    np.savez(out, loss=total, gradient=gradient, rank=rank, n_workers=n_workers, chief=is_chief(strategy),
             replicas=strategy.num_replicas_in_sync, strategy=describe(strategy).strategy)


if __name__ == "__main__":
    main(sys.argv[1])
