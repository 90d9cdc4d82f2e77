"""Match a 2D structure: characterize it, reconstruct a new one, compare two-point correlations.

Run: python examples/match_2d.py [path/to/structure.npy]   (default: a generated structure)
"""

import sys

import mcrgpu


def main() -> None:
    strategy = mcrgpu.setup_gpus(mcrgpu.GPUConfig())
    if len(sys.argv) > 1:
        original = mcrgpu.load_microstructure(sys.argv[1])
    else:
        original = mcrgpu.gaussian_random_structure((64, 64), seed=1)
    descriptors = ["Correlations", "VolumeFractions"]
    target = mcrgpu.characterize(original, descriptors, limit_to=8, strategy=strategy)
    history, result = mcrgpu.DMCR(descriptors, max_iter=300, seed=0, strategy=strategy,
                                  progress=True).reconstruct(target, original.shape)
    judged = mcrgpu.compare(original, result)["results"][0]  # S2 error: see mcrgpu.mcr.two_point.s2_error
    print(f"{history.n_evaluations} evaluations, best loss {history.best_loss:.3g}, "
          f"volume fractions {original.volume_fractions().round(3)} -> {result.volume_fractions().round(3)}, "
          f"S2 error {judged['s2_error_summary']:.3f}, copy check IoU {judged['copy']['iou']:.2f}")


if __name__ == "__main__":
    main()
