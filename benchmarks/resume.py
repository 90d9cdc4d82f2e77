"""Resumed vs uninterrupted: each optimiser run straight, and stopped after --stop_at evaluations then
resumed from its checkpoint; prints how far the two runs' losses and results differ.

    python benchmarks/resume.py [--shape 16 32 32] [--max_iter 100] [--stop_at 37]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.convergence import ConvergenceData
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.synthetic import gaussian_random_structure

OPTIMIZERS = {"LBFGSB": {}, "Adam": {"learning_rate": 0.05}, "LBFGSB_SCIPY": {}}


def stopped_and_resumed(target, shape, folder, stop_at, settings):
    """The history and result of a run stopped (KeyboardInterrupt) after ``stop_at`` evaluations, then resumed."""
    record = ConvergenceData.record

    def record_then_stop(self, loss, *args, **kwargs):
        record(self, loss, *args, **kwargs)
        if self.n_evaluations == stop_at:
            raise KeyboardInterrupt

    dmcr = DMCR(["Correlations"], save_to=folder, **settings)
    ConvergenceData.record = record_then_stop
    try:
        stopped, _ = dmcr.reconstruct(target, shape)
    finally:
        ConvergenceData.record = record
    resumed, result = dmcr.reconstruct(target, shape, resume_from=dmcr.run_files(target).checkpoint)
    return stopped.n_evaluations, resumed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[16, 32, 32])
    parser.add_argument("--max_iter", type=int, default=100)
    parser.add_argument("--stop_at", type=int, default=37)
    args = parser.parse_args()
    structure = gaussian_random_structure((32, 32), volume_fractions=(0.6, 0.4), correlation_length=2.0, seed=3)
    target = characterize(structure, ["Correlations"], limit_to=4, source="s.npy")
    print("| optimiser | stopped after | evaluations | max relative loss difference | final loss straight / resumed "
          "| labels that differ |\n|---|---|---|---|---|---|")
    for optimizer, extra in OPTIMIZERS.items():
        settings = dict(max_iter=args.max_iter, seed=0, optimizer_type=optimizer, tolerance=0.0, **extra)
        with tempfile.TemporaryDirectory() as straight_folder, tempfile.TemporaryDirectory() as resumed_folder:
            straight, expected = DMCR(["Correlations"], save_to=straight_folder, **settings).reconstruct(
                target, tuple(args.shape))
            stopped_at, resumed, result = stopped_and_resumed(target, tuple(args.shape), resumed_folder,
                                                              args.stop_at, settings)
        a, b = np.asarray(straight.losses), np.asarray(resumed.losses)
        difference = np.max(np.abs(a - b) / a) if len(a) == len(b) else float("nan")
        print(f"| {optimizer} | {stopped_at} | {len(a)} / {len(b)} | {difference:.2e} | {a[-1]:.6g} / {b[-1]:.6g} "
              f"| {np.mean(expected.labels != result.labels):.4f} |", flush=True)


if __name__ == "__main__":
    main()
