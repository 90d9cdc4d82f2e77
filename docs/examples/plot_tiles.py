"""
Segment a raster tile by tile
=============================

Image tasks run TensorFlow SavedModels under the same strategy as reconstructions. Here the
built-in ``segment_phases`` model (grey level, Gaussian denoising, threshold) is exported as a
SavedModel and run over a generated noisy two-phase micrograph in tiles, as ``mcrgpu images tiles``
does for rasters larger than memory. Each tile is read with a halo of the model's receptive radius,
so the tiled output equals the whole-image output. The labels it writes are what
``characterize`` and ``match`` take.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import mcrgpu
from mcrgpu.images import run_tiles
from mcrgpu.images.models import export_model

strategy = mcrgpu.setup_gpus(mcrgpu.GPUConfig())
workdir = tempfile.TemporaryDirectory()
folder = Path(workdir.name)
y, x = np.mgrid[0:384, 0:512]
field = np.sin(x / 37) * np.sin(y / 53) + 0.5 * np.sin((x + y) / 91)
noisy = np.where(field > 0, 180, 80) + np.random.default_rng(0).normal(0, 30, field.shape)
np.save(folder / "micrograph.npy", np.clip(noisy, 0, 255).astype(np.uint8))

# %%
# Export the model once, then run it: tiles of 128 pixels, batched over the replicas.
model = export_model("segment_phases", folder / "segment_phases")
summary = run_tiles(folder / "micrograph.npy", folder / "phases.npy", model, strategy=strategy,
                    tile_size=128, progress=False)
print(f"{summary.done} bands of {summary.tiles} tiles done, {summary.failed} failed, "
      f"exit code {summary.exit_code}")
phases = np.load(folder / "phases.npy")
fractions = mcrgpu.characterize(phases, ["VolumeFractions"], strategy=strategy)
fractions = fractions.descriptors["VolumeFractions"]
print(f"labels {sorted(np.unique(phases).tolist())}, phase fractions {np.round(fractions, 3)}")

figure, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
axes[0].imshow(np.load(folder / "micrograph.npy"), cmap="gray")
axes[0].set_title("noisy micrograph (input)")
axes[1].imshow(phases, cmap="gray", interpolation="nearest")
axes[1].set_title("phase labels (output, 128 px tiles)")
for ax in axes:
    ax.axis("off")
plt.show()
workdir.cleanup()
