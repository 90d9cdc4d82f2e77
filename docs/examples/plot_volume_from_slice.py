"""
A 3D volume from one 2D micrograph
==================================

A volume is reconstructed so that its slices along all three axes have the descriptors of one 2D
structure. The slices of the volume are dealt to the strategy's replicas, so the same code runs on
one device, several GPUs or a cluster. Kept small here (24^3, 60 evaluations); the command line
equivalent is ``mcrgpu match micrograph.npy --add_dimension 24``.
"""

import matplotlib.pyplot as plt

import mcrgpu

strategy = mcrgpu.setup_gpus(mcrgpu.GPUConfig())
micrograph = mcrgpu.gaussian_random_structure((24, 24), seed=2)
descriptors = ["FFTCorrelations", "VolumeFractions"]
target = mcrgpu.characterize(micrograph, descriptors, limit_to=6, strategy=strategy)
dmcr = mcrgpu.DMCR(descriptors, max_iter=60, seed=0, strategy=strategy, progress=False)
history, volume = dmcr.reconstruct(target, (24, 24, 24))

# %%
# The comparison of a volume with a 2D original is taken per axis over all slices.
report = mcrgpu.compare(micrograph, volume, limit=6)["results"][0]
print(f"volume {volume.shape}, phase fractions {volume.volume_fractions().round(3)} "
      f"(micrograph {micrograph.volume_fractions().round(3)}), "
      f"S2 error {report['s2_error_summary']:.4f}")

figure, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
axes[0].imshow(micrograph.labels, cmap="gray", interpolation="nearest")
axes[0].set_title("2D micrograph")
middle = volume.shape[0] // 2
for axis, ax in enumerate(axes[1:]):
    ax.imshow(volume.labels.take(middle, axis=axis), cmap="gray", interpolation="nearest")
    ax.set_title(f"volume, slice across axis {axis}")
for ax in axes:
    ax.axis("off")
plt.show()
