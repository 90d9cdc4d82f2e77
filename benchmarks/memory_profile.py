"""Peak resident memory of a reconstruction, phase by phase.

``python benchmarks/memory_profile.py --size 256 --case fft --max_iter 10`` runs one
reconstruction of the alloy micrograph's characterization (64x64, two phases) at ``size``^3
through :class:`~mcrgpu.mcr.dmcr.DMCR`, as ``mcrgpu reconstruct`` does, and prints the peak
resident set size (VmHWM, reset between phases through ``/proc/self/clear_refs``) of each phase:
set-up, the first chunk of slices (``fit_slice_batch``), the optimiser's construction, each of its
TensorFlow calls, the labelling, the polish and the saving; then the whole run's peak and the
seconds per evaluation. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("MCRGPU_BENCH_DATA", "/work/shared/data/microstructures"))
CASES = {"fft": ["FFTCorrelations", "Variation"], "corr": ["Correlations", "Variation"]}


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` entry in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    """Set VmHWM to the current resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


class Phases:
    """Peak resident size per named phase; phases do not nest (an inner one ends the outer one's
    count, which goes on as ``outer (rest)``)."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.current: str | None = None

    def switch(self, name: str | None) -> None:
        if self.current is not None:
            self.peaks[self.current] = max(self.peaks.get(self.current, 0), status_bytes("VmHWM"))
        reset_peak()
        self.current = name

    @contextlib.contextmanager
    def phase(self, name: str):
        outer = self.current
        self.switch(name)
        try:
            yield
        finally:
            self.switch(None if outer is None else outer.removesuffix(" (rest)") + " (rest)")

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--case", choices=sorted(CASES), default="fft")
    parser.add_argument("--max_iter", type=int, default=10)
    parser.add_argument("--polish", action="store_true", help="run the two-point polish (default: off)")
    parser.add_argument("--slice_batch_size", type=int, default=None)
    parser.add_argument("--lbfgs_memory", type=int, default=None, help="pairs of the device L-BFGS (default: its own)")
    parser.add_argument("--lbfgs_precision", choices=["float32", "float16"], default="float32",
                        help="how the device L-BFGS stores its pairs")
    parser.add_argument("--jit_compile", choices=["default", "on", "off"], default="default",
                        help="XLA for the loss (default: the package's rule)")
    parser.add_argument("--multigrid", choices=["off", "default", "on"], default="off",
                        help="coarse to fine (default: off, every evaluation at size^3; 'default': the package's rule)")
    parser.add_argument("--structure", default="alloy_resized_s.npy")
    parser.add_argument("--json", type=Path, default=None, help="append the figures to this JSON-lines file")
    args = parser.parse_args()

    phases = Phases()
    phases.switch("import + set-up")
    import tensorflow as tf

    from mcrgpu.mcr import dmcr, optimizers
    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.lbfgs import BoxLBFGS
    from mcrgpu.mcr.matching import steady_seconds_per_evaluation
    from mcrgpu.mcr.microstructure import Microstructure

    image = np.load(DATA / args.structure)
    target = characterize(Microstructure(image), CASES[args.case], limit_to=8)
    phases.wrap(dmcr.DMCR, "_initial_field", "initial field")
    phases.wrap(dmcr, "fit_slice_batch", "first chunks (fit_slice_batch)")
    phases.wrap(dmcr, "make_stage_optimizer", "optimiser construction")
    phases.wrap(BoxLBFGS, "run", "optimiser calls (L-BFGS + loss)")
    phases.wrap(optimizers, "minimize_lbfgsb", "SciPy L-BFGS-B")
    phases.wrap(dmcr, "label_field", "label_field")
    phases.wrap(dmcr.DMCR, "_polish", "two-point polish")
    phases.wrap(dmcr.DMCR, "_save", "saving results")
    with tempfile.TemporaryDirectory() as folder:
        phases.switch("DMCR set-up")
        started = time.perf_counter()
        history, _ = dmcr.DMCR(CASES[args.case], save_to=folder, max_iter=args.max_iter, seed=0,
                               two_point_polish=args.polish,
                               use_multigrid_reconstruction={"off": False, "default": None, "on": True}[args.multigrid],
                               slice_batch_size=args.slice_batch_size,
                               **({} if args.lbfgs_memory is None else {"lbfgs_memory": args.lbfgs_memory}),
                               **({} if args.lbfgs_precision == "float32" else {"lbfgs_precision": args.lbfgs_precision}),
                               **({} if args.jit_compile == "default" else {"jit_compile": args.jit_compile == "on"})
                               ).reconstruct(target, (args.size,) * 3)
        wall = time.perf_counter() - started
    phases.switch(None)
    figures = {
        "size": args.size, "case": args.case, "max_iter": args.max_iter, "polish": args.polish,
        "lbfgs_memory": args.lbfgs_memory, "lbfgs_precision": args.lbfgs_precision, "jit_compile": args.jit_compile,
        "multigrid": args.multigrid,
        "code": os.path.dirname(dmcr.__file__),
        "evaluations": history.n_evaluations, "loss": history.best_loss, "wall_s": round(wall, 1),
        "s_per_eval": round(steady_seconds_per_evaluation(history), 3),
        "peak_rss_bytes": max(phases.peaks.values()),
        "phases": phases.peaks,
    }
    try:
        figures["tf_cpu_peak_bytes"] = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    except (ValueError, RuntimeError):
        pass
    for name, peak in phases.peaks.items():
        print(f"{name:40s} {peak / 2**30:7.2f} GiB")
    print(f"peak {figures['peak_rss_bytes'] / 2**30:.2f} GiB, {figures['evaluations']} evaluations, "
          f"{figures['s_per_eval']} s per evaluation (after the first call), loss {figures['loss']:.6g}, wall {wall:.0f} s")
    if args.json is not None:
        with open(args.json, "a") as handle:
            handle.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
