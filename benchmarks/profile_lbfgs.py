"""Per-evaluation time of the device L-BFGS against its loss alone and SciPy's path, interleaved.

``python benchmarks/profile_lbfgs.py --case fft --reps 3`` prints, per repetition, the median
milliseconds per evaluation of: the loss + gradient alone (one ``tf.function`` per evaluation and
the same in a ``tf.while_loop``), the device :class:`~mcrgpu.mcr.lbfgs.BoxLBFGS`, SciPy's
L-BFGS-B path, and the optimiser alone on a trivial loss of the same size.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import scipy.optimize
import tensorflow as tf

from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.lbfgs import BoxLBFGS
from mcrgpu.mcr.slices import SliceDistributedLoss, auto_slice_batch_size, slice_budget_bytes

DATA = Path(os.environ.get("MCRGPU_BENCH_DATA", "/work/shared/data/microstructures"))
CASES = {"fft": ["FFTCorrelations", "Variation"], "corr": ["Correlations", "Variation"]}


def build(case: str, size: int, slice_batch_size: int | None):
    image = np.load(DATA / "pymks_ms_64x64_2.npy")[:size, :size]
    descriptors = CASES[case]
    c = characterize(image, descriptors, limit_to=8, use_multiphase=False)
    dmcr = DMCR(descriptors, [1.0, 100.0], max_iter=10, seed=0)
    shape = (size, size, size, 1)
    strategy = tf.distribute.get_strategy()
    field = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    variable = tf.Variable(field)
    losses = dmcr._slice_losses(c, shape, 0, False)
    largest = max(losses.values(), key=lambda loss: loss.slice_shape[0] * loss.slice_shape[1])
    budget = slice_budget_bytes(tf.config.list_logical_devices()[0].name)  # as DMCR sizes it on this device
    batch = slice_batch_size or auto_slice_batch_size(largest.descriptors, *largest.slice_shape, 1, budget_bytes=budget)
    distributed = SliceDistributedLoss(strategy, variable, losses, slice_batch_size=batch)
    tables = tf.nest.map_structure(tf.constant, distributed.full_tables())
    return strategy, distributed, tables, field


def pieces(distributed, batch: int, reps: int) -> None:
    """Forward + backward time of one chunk of ``batch`` slices of axis 0: the slice loss, each
    descriptor alone, and for Correlations its level-0 soft-AND maps and Gram matmuls."""
    from mcrgpu.mcr.descriptors.correlations import _gram

    loss = distributed.slice_losses[0]
    size = loss.slice_shape[0]
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (batch, *loss.slice_shape, 1)).astype(np.float32))

    def forward_backward(fn):
        @tf.function
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = tf.reduce_sum(fn(x))
            return tape.gradient(value, x)
        return run

    jobs = {"slice loss": (forward_backward(loss), x)}
    for descriptor, levels in zip(loss.descriptors, loss._levels):
        jobs[descriptor.name] = (forward_backward(lambda x, d=descriptor, n=levels: d(x, n_levels=n) ** 2), x)
        if descriptor.name == "Correlations":
            jobs["  soft-AND maps, level 0"] = (forward_backward(lambda x, d=descriptor: d._tanh_maps(x) ** 2), x)
            jobs["  Gram matmuls, level 0"] = (forward_backward(lambda m: _gram(m) ** 2), descriptor._tanh_maps(x))
    for job, argument in jobs.values():
        job(argument)
    results = {name: [] for name in jobs}
    for _ in range(reps):
        for name, (job, argument) in jobs.items():
            results[name].append(timed(lambda: job(argument).numpy(), 1))
    chunks = 3 * -(-size // batch)
    print(f"chunks of {batch} slices of {size}^2 ({chunks} per evaluation of {size}^3), forward + backward: "
          "ms per chunk (median), ms per evaluation")
    for name, values in results.items():
        print(f"  {name:32s} {np.median(values):8.2f} {np.median(values) * chunks:8.0f}")


def timed(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=sorted(CASES), default="fft")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--evaluations", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="subset of the timings")
    parser.add_argument("--slice_batch_size", type=int, default=None, help="default: as DMCR chooses it")
    parser.add_argument("--pieces", action="store_true", help="time one chunk's loss and descriptors instead")
    args = parser.parse_args()
    n = args.evaluations
    strategy, distributed, tables, field = build(args.case, args.size, args.slice_batch_size)
    if args.pieces:
        pieces(distributed, min(distributed.slice_batch_size, args.size), args.reps)
        return
    x0 = tf.constant(field)

    single = tf.function(lambda x, t: distributed.loss_and_gradient(t, x))

    @tf.function
    def looped(x, t, n):
        def body(k, x, total):
            loss, gradient = distributed.loss_and_gradient(t, x)
            return k + 1, tf.clip_by_value(x - 1e-6 * gradient, 0.0, 1.0), total + loss
        return tf.while_loop(lambda k, x, total: k < n, body, (0, x, tf.constant(0.0)))[2]

    def alone():
        for _ in range(n):
            single(x0, tables)[1].numpy()

    def in_loop():
        looped(x0, tables, tf.constant(n)).numpy()

    optimizer = BoxLBFGS(strategy, lambda x, t: distributed.loss_and_gradient(t, x), field)

    def device():
        optimizer.run(n, tables)

    evaluate = tf.function(lambda x, t: (distributed.field.assign(x), distributed.loss_and_gradient(t))[1])

    def scipy_path():
        count = [0]

        def objective(x):
            count[0] += 1
            loss, gradient = evaluate(tf.constant(np.reshape(x, field.shape), tf.float32), tables)
            return float(loss), gradient.numpy().astype(np.float64).ravel()
        scipy.optimize.minimize(objective, field.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                                bounds=scipy.optimize.Bounds(0.0, 1.0),
                                options={"maxiter": n, "maxfun": n, "ftol": 0.0, "gtol": 0.0})
        return count[0]

    rng = np.random.default_rng(1)
    target = tf.constant(rng.uniform(-0.5, 1.5, field.shape).astype(np.float32))
    scale = tf.constant(rng.uniform(1.0, 100.0, field.shape).astype(np.float32))
    trivial = BoxLBFGS(strategy, lambda x: (tf.reduce_sum(scale * (x - target) ** 4),
                                            4.0 * scale * (x - target) ** 3), field)

    trivial.run(15)  # past the first iterations, with pairs stored
    start_state = {name: variable.numpy() for name, variable in trivial.state.items()}

    def trivial_run():  # from the same state each time: the trivial loss converges quickly
        for name, variable in trivial.state.items():
            variable.assign(start_state[name])
        trivial.run(n)

    jobs = {"loss alone": alone, "loss in while_loop": in_loop, "device L-BFGS": device,
            "SciPy path": scipy_path, "optimiser alone (trivial loss)": trivial_run}
    if args.only:
        jobs = {name: job for name, job in jobs.items() if any(word in name for word in args.only)}
    for job in jobs.values():  # warm-up: tracing and the first evaluations
        job()
    results = {name: [] for name in jobs}
    for _ in range(args.reps):
        for name, job in jobs.items():
            results[name].append(timed(job, n))
    print(f"{args.case} {args.size}^3, slice batch {distributed.slice_batch_size}, {n} evaluations x {args.reps} reps, "
          "ms per evaluation (median; all)")
    for name, values in results.items():
        print(f"  {name:32s} {np.median(values):8.1f}   {' '.join(f'{v:.1f}' for v in values)}")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
