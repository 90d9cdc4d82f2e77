"""
Two-point correlations of three structures
==========================================

The two-point correlation S2(r) is the probability that two pixels a shift r apart both lie in
phase 1. At r = 0 it equals the phase fraction, and for large shifts it tends to the square of the
fraction; how fast it gets there is the feature size. Here three generated structures with the same
phase fractions but different feature sizes are characterized with ``FFTCorrelations`` (periodic
S2 by FFT over the window of shifts ``|dy|, |dx| < limit_to``).
"""

import matplotlib.pyplot as plt
import numpy as np

import mcrgpu

strategy = mcrgpu.setup_gpus(mcrgpu.GPUConfig())  # once, before other TensorFlow work
limit = 12
structures = {length: mcrgpu.gaussian_random_structure((96, 96), volume_fractions=(0.7, 0.3),
                                                        correlation_length=length, seed=3)
              for length in (1.5, 3.0, 6.0)}

# %%
# ``characterize`` returns a :class:`~mcrgpu.Characterization`; its ``descriptors`` map each
# descriptor name to its values, one row per phase. ``FFTCorrelations`` holds the S2 map of each
# phase as a (2 limit_to - 1) x (2 limit_to - 1) window, zero shift in the centre.
figure, axes = plt.subplots(2, 3, figsize=(9, 6), layout="constrained")
for column, (length, structure) in enumerate(structures.items()):
    target = mcrgpu.characterize(structure, ["FFTCorrelations"], limit_to=limit, strategy=strategy)
    s2 = np.asarray(target.descriptors["FFTCorrelations"])[1].reshape(2 * limit - 1, 2 * limit - 1)
    fraction = structure.volume_fractions()[1]
    print(f"correlation length {length}: S2(0) = {s2[limit - 1, limit - 1]:.3f}, "
          f"phase-1 fraction {fraction:.3f}")
    axes[0, column].imshow(structure.labels, cmap="gray", interpolation="nearest")
    axes[0, column].set_title(f"correlation length {length}")
    axes[0, column].axis("off")
    axes[1, column].plot(np.arange(limit), s2[limit - 1, limit - 1:], "o-", label="S2 along x")
    axes[1, column].axhline(fraction ** 2, color="gray", linestyle="--", label="fraction squared")
    axes[1, column].set_xlabel("shift (pixels)")
    axes[1, column].set_ylim(0, 0.32)
axes[1, 0].set_ylabel("S2")
axes[1, 0].legend()
plt.show()
