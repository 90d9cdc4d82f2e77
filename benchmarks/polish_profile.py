"""The two-point polish alone: time, S2 error and peak resident memory at N^3.

``python benchmarks/polish_profile.py --size 512 --rounds 3`` characterizes the package's synthetic
64x64 two-phase target (FFTCorrelations, limit_to 8), takes another N^3 structure of its generator
(``gaussian_random_structure((N, N, N), seed=1)``: labels near the target, as after a converged
run) and polishes it for at most ``--rounds`` rounds on ``--devices`` logical CPU devices. Prints
one JSON line: seconds, rounds, S2 error before and after, voxels changed, the peak RSS before the
polish (the set-up) and of the whole process, and a hash of the polished labels, so that two
versions of the package (``PYTHONPATH=...``) can be compared for equal results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import time

import numpy as np


def peak_rss_gib() -> float:
    """The process's peak resident set size so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="N of the N^3 labels (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="most rounds of the polish (default 3)")
    parser.add_argument("--devices", type=int, default=1, help="logical CPU devices (default 1)")
    args = parser.parse_args()

    from mcrgpu.gpu_manager import GPUConfig, setup_gpus

    strategy = setup_gpus(GPUConfig(cpu_devices=args.devices) if args.devices > 1 else GPUConfig())
    import mcrgpu.mcr.polish
    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.synthetic import gaussian_random_structure

    descriptors = ["FFTCorrelations", "Variation"]
    desired = characterize(gaussian_random_structure((64, 64), seed=0), descriptors, limit_to=8,
                           use_multiphase=False, strategy=strategy)
    targets = mcrgpu.mcr.polish.two_point_targets(desired, descriptors, 3)
    labels = gaussian_random_structure((args.size,) * 3, seed=1).labels
    set_up = peak_rss_gib()
    rounds = []
    start = time.perf_counter()
    with strategy.scope():
        polish = mcrgpu.mcr.polish.polish_labels(labels, targets, max_rounds=args.rounds,
                                                 on_round=lambda error: rounds.append(error))
    print(json.dumps({
        "module": mcrgpu.mcr.polish.__file__, "size": args.size, "devices": args.devices, "rounds": len(rounds),
        "seconds": round(time.perf_counter() - start, 1),
        "s2_error": [round(polish.s2_error_before, 6), round(polish.s2_error_after, 6)],
        "voxels_changed": polish.pixels_changed, "peak_rss_set_up_gib": round(set_up, 2),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "labels_sha1": hashlib.sha1(np.ascontiguousarray(polish.labels, dtype=np.int64)).hexdigest()[:12]}))


if __name__ == "__main__":
    main()
