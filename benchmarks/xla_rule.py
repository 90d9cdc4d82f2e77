"""Wall time of small reconstructions with and without XLA: where compiling the loss pays.

``python benchmarks/xla_rule.py`` reconstructs from the pymks 64x64 micrograph (Correlations +
Variation, limit_to 8, no polish) at each ``SHAPE:EVALUATIONS`` of ``--points`` (default 2D
64x64 and 128x128, 3D 16^3 and 32^3), once plain and once with ``jit_compile=True``, each in a
fresh process, and prints a Markdown table of the wall times of ``DMCR.reconstruct`` (tracing and
compilation included). The default rule (:data:`mcrgpu.mcr.reconstruction_settings.XLA_MIN_VOXELS`)
comes from this table and ``scaling.py --jit-compile both`` for the larger volumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("MCRGPU_BENCH_DATA", "/work/shared/data/microstructures"))
DESCRIPTORS = ["Correlations", "Variation"]


def worker(shape: tuple[int, ...], evaluations: int, jit_compile: bool) -> dict:
    """One reconstruction; its wall time and best loss."""
    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.dmcr import DMCR
    from mcrgpu.mcr.microstructure_io import load_microstructure

    desired = characterize(load_microstructure(DATA / "pymks_ms_64x64_1.npy"), DESCRIPTORS, limit_to=8,
                           use_multiphase=False)
    start = time.perf_counter()
    history, _ = DMCR(DESCRIPTORS, max_iter=evaluations, seed=0, two_point_polish=False,
                      jit_compile=jit_compile).reconstruct(desired, shape)
    return {"wall_s": time.perf_counter() - start, "best_loss": history.best_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", nargs="+", default=["64x64:500", "128x128:200", "16x16x16:20", "32x32x32:200"],
                        help="SHAPE:EVALUATIONS, e.g. 32x32x32:200")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(tuple(spec["shape"]), spec["evaluations"], spec["jit_compile"])))
        return
    print("| shape | evaluations | plain s | XLA s | best loss plain / XLA |\n|---|---|---|---|---|")
    for point in args.points:
        shape_text, evaluations = point.split(":")
        shape = [int(size) for size in shape_text.split("x")]
        runs = []
        for jit_compile in (False, True):
            spec = json.dumps({"shape": shape, "evaluations": int(evaluations), "jit_compile": jit_compile})
            output = subprocess.run([sys.executable, __file__, "--worker", spec], check=True, capture_output=True,
                                    text=True).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
        print(f"| {shape_text} | {evaluations} | {runs[0]['wall_s']:.2f} | {runs[1]['wall_s']:.2f} | "
              f"{runs[0]['best_loss']:.3g} / {runs[1]['best_loss']:.3g} |", flush=True)


if __name__ == "__main__":
    main()
