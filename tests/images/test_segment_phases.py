"""The segment_phases model: phase labels of a noisy micrograph, tiled equal to whole, ready for characterize."""

import numpy as np
import tensorflow as tf
import tifffile
from scipy import ndimage

from mcrgpu.images import run_tiles
from mcrgpu.images.models import export_model
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.microstructure_io import load_microstructure

from conftest import cpu_strategy


def micrograph(shape=(230, 310), seed=0):
    """Two phases (smooth random blobs, bright phase 1) as grey levels 0.3 / 0.7 with noise of sd 0.15."""
    rng = np.random.default_rng(seed)
    phases = ndimage.gaussian_filter(rng.normal(size=shape), 6) > 0
    grey = np.where(phases, 0.7, 0.3) + rng.normal(scale=0.15, size=shape)
    return phases, (np.clip(grey, 0, 1) * 255).astype(np.uint8)


def test_segment_phases_tiles_equal_whole_and_recover_the_phases(tmp_path):
    model = export_model("segment_phases", tmp_path / "segment_phases")
    phases, grey = micrograph()
    tifffile.imwrite(tmp_path / "micrograph.tif", grey, tile=(64, 64), compression="zlib")
    summary = run_tiles(tmp_path / "micrograph.tif", tmp_path / "labels.tif", model, strategy=cpu_strategy(2),
                        tile_size=48, progress=False)
    assert summary.exit_code == 0
    labels = tifffile.imread(tmp_path / "labels.tif")
    loaded = tf.saved_model.load(str(model))
    assert int(loaded.receptive_radius.numpy()) == 6 and float(loaded.output_scale.numpy()) == 1.0
    whole = loaded.signatures["serving_default"](image=tf.constant(grey[None, ..., None] / 255, tf.float32))
    assert labels.dtype == np.uint8 and np.array_equal(labels, whole["labels"][0].numpy())
    inner = np.s_[6:-6, 6:-6]  # the border sees the zero padding
    assert (labels[inner] == phases[inner]).mean() > 0.97
    fractions = characterize(load_microstructure(tmp_path / "labels.tif"), ["VolumeFractions"])
    assert abs(fractions.descriptors["VolumeFractions"].ravel()[1] - phases.mean()) < 0.02
