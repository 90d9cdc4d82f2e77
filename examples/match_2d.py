"""Match a 2D structure: characterize it, reconstruct a new one, compare two-point correlations.

Run: python examples/match_2d.py [path/to/structure.npy]   (default: a generated structure)
"""

import sys

import numpy as np

import mcrgpu


def s2_error(original: mcrgpu.Microstructure, result: mcrgpu.Microstructure) -> float:
    """Relative difference of the periodic two-point correlations of phase 1 (shifts < 8)."""
    def s2(ms):
        x = (ms.labels == 1).astype(float)
        f = np.fft.fft2(x)
        corr = np.real(np.fft.ifft2(f * np.conj(f))) / x.size
        return np.concatenate([corr[:8, :8].ravel(), corr[1:8, -7:].ravel()])
    return float(np.linalg.norm(s2(result) - s2(original)) / np.linalg.norm(s2(original)))


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
    print(f"{history.n_evaluations} evaluations, best loss {history.best_loss:.3g}, "
          f"volume fractions {original.volume_fractions().round(3)} -> {result.volume_fractions().round(3)}, "
          f"relative S2 error {s2_error(original, result):.3f}")


if __name__ == "__main__":
    main()
