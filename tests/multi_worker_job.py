"""One worker of the two-worker test (tests/test_multi_worker.py): run as ``python multi_worker_job.py OUT``.

Builds the strategy from TF_CONFIG through setup_gpus, computes the slice-distributed loss and
gradient of a fixed field and runs a short 3D reconstruction (seed=None) into OUT's folder
``results<rank>``, and saves the loss, gradient, start field, loss curve and rank to OUT (.npz).
"""

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from mcrgpu.gpu_manager import GPUConfig, describe, is_chief, setup_gpus, worker_rank
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.slices import SliceDistributedLoss

FIELD_SHAPE = (6, 7, 5, 2)
VOLUME = (8, 8, 8)
RECONSTRUCTION = dict(max_iter=10, convergence_data_steps=None, seed=None)


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


def target():
    """FFTCorrelations of a fixed random 8x8 two-phase structure (an isotropic 3D target)."""
    structure = (np.random.default_rng(1).random(VOLUME[1:]) > 0.5).astype(np.int64)
    return characterize(structure, ["FFTCorrelations"], limit_to=3, source="target.npy")


def reconstruction(strategy, save_to: Path, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The start field and the loss per evaluation of a short reconstruction of :func:`target`.

    ``start`` replaces the start field (the single-process reference starts from the chief's).
    """
    dmcr = DMCR(["FFTCorrelations"], strategy=strategy, save_to=save_to, name="ms", **RECONSTRUCTION)
    starts = []
    draw = dmcr._initial_field

    def initial_field(*args):
        starts.append(draw(*args) if start is None else start)
        return starts[-1]

    dmcr._initial_field = initial_field
    history, _ = dmcr.reconstruct(target(), VOLUME)
    return starts[0], np.asarray(history.losses)


def main(out: str) -> None:
    strategy = setup_gpus(GPUConfig(multi_worker=True))
    total, gradient = loss_and_gradient(strategy)
    rank, n_workers = worker_rank(strategy)
    start, losses = reconstruction(strategy, Path(out).with_name(f"results{rank}"))
    np.savez(out, loss=total, gradient=gradient, rank=rank, n_workers=n_workers, chief=is_chief(strategy),
             replicas=strategy.num_replicas_in_sync, strategy=describe(strategy).strategy, start=start,
             losses=losses)


if __name__ == "__main__":
    main(sys.argv[1])
