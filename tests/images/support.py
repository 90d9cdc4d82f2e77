"""Small SavedModels with the pair and grid signatures, and photographs from scikit-image, for the tests."""

from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

KEYPOINTS = 8


def write_photos(folder: Path) -> dict[str, Path]:
    """Small crops of scikit-image's bundled photographs as PNG (two sizes, grey and colour)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    photos = {"astronaut": data.astronaut()[::8, ::8], "coffee": data.coffee()[::8, ::8][:, :64],
              "chelsea": data.chelsea()[::8, ::8][:, :64], "camera": data.camera()[::8, ::8][:48]}
    paths = {}
    for name, array in photos.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(array)).save(paths[name])
    return paths


def _brightest(image):
    """The KEYPOINTS brightest pixels of the grey image: (x, y) positions and values."""
    grey = tf.reduce_mean(image, axis=-1)
    batch, width = tf.shape(grey)[0], tf.shape(grey)[2]
    values, index = tf.math.top_k(tf.reshape(grey, [batch, -1]), KEYPOINTS)
    return tf.cast(tf.stack([index % width, index // width], axis=-1), tf.float32), values


class PairModel(tf.Module):
    """Keypoints: brightest pixels; a keypoint matches the keypoint of the closest grey value (or -1)."""

    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(2.0)  # a variable, to be mirrored over the replicas

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image0"),
                                  tf.TensorSpec((None, None, None, None), tf.float32, name="image1")])
    def serve(self, image0, image1):
        keypoints0, values0 = _brightest(image0)
        keypoints1, values1 = _brightest(image1)
        distance = tf.abs(values0[:, :, None] - values1[:, None, :])
        matches0 = tf.where(tf.reduce_min(distance, axis=2) < 0.05,
                            tf.argmin(distance, axis=2, output_type=tf.int32), -1)
        return {"keypoints0": keypoints0, "keypoints1": keypoints1, "matches0": matches0,
                "match_scores0": self.scale * values0}


class GridModel(tf.Module):
    """Float output: the image, half towards the reference's mean, plus a seeded offset; optionally slow."""

    def __init__(self, busy_iterations: int = 0):
        super().__init__()
        self.busy_iterations = busy_iterations

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image"),
                                  tf.TensorSpec((None, None, None, None), tf.float32, name="reference"),
                                  tf.TensorSpec((None,), tf.int64, name="seed")])
    def serve(self, image, reference, seed):
        offset = tf.map_fn(lambda s: tf.random.stateless_uniform([], seed=tf.stack([s, tf.constant(0, tf.int64)])),
                           seed, fn_output_signature=tf.float32)
        result = 0.5 * image + 0.5 * tf.reduce_mean(reference, axis=[1, 2, 3], keepdims=True) \
            + offset[:, None, None, None]
        busy = tf.fill([96, 96], 0.01)
        for _ in tf.range(self.busy_iterations):
            busy = tf.tanh(busy @ busy)
        return {"image": result + 0.0 * tf.reduce_sum(busy), "offset": offset}


def export(module: tf.Module, directory: Path) -> Path:
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def interrupted(run_items):
    """``run_items`` whose summaries say a stop signal came (the items it ran are kept), as after Ctrl+C."""
    def run(*args, **kwargs):
        summary = run_items(*args, **kwargs)
        return summary.__class__(summary.done, summary.skipped, summary.failed, True, summary.seconds,
                                 summary.manifest)
    return run
