"""Reconstruct a 3D volume whose slices along all three axes look like one 2D micrograph.

Run: python examples/volume_from_slice.py [--cpu_devices N]   (N > 1: slices spread over N replicas)
"""

import argparse

import mcrgpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--cpu_devices", type=int, default=0)
    parser.add_argument("--max_iter", type=int, default=50)
    args = parser.parse_args()
    strategy = mcrgpu.setup_gpus(mcrgpu.GPUConfig(cpu_devices=args.cpu_devices))
    micrograph = mcrgpu.gaussian_random_structure((args.size, args.size), seed=2)
    target = mcrgpu.characterize(micrograph, ["Correlations", "Variation"], limit_to=8, strategy=strategy)
    dmcr = mcrgpu.DMCR(["Correlations", "Variation"], max_iter=args.max_iter, seed=0, strategy=strategy,
                       save_to="results", name="volume_from_slice", progress=True)
    history, volume = dmcr.reconstruct(target, (args.size,) * 3)
    per_axis = mcrgpu.characterize(volume, ["VolumeFractions"], strategy=strategy).axis_descriptors
    print(f"{strategy.num_replicas_in_sync} replica(s): loss {history.losses[0]:.3g} -> {history.best_loss:.3g}; "
          f"phase-1 fraction per axis {[round(float(a['VolumeFractions'][1]), 3) for a in per_axis]} "
          f"(target {micrograph.volume_fractions()[1]:.3f}); saved in results/")


if __name__ == "__main__":
    main()
