"""Tiny stand-ins for the OCR SavedModels (same signatures), so the task's mechanics test in milliseconds."""

from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

CHARACTERS = ["", "a", "b", " "]


class InkDetector(tf.Module):
    """``probability``: how dark each pixel is (1 on black, 0 on white), as a detector of ink."""

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
    def serve(self, image):
        return {"probability": 1.0 - tf.reduce_mean(image, axis=-1) / 255.0}


class InkReader(tf.Module):
    """``probabilities`` (B, W/8, 4): per 8-column block, "a" where the middle rows of a block are black, else blank;
    the ``characters`` signature lists "" (blank), "a", "b", " "."""

    @tf.function(input_signature=[tf.TensorSpec((None, 48, None, 3), tf.float32, name="image")])
    def serve(self, image):
        dark = 1.0 - tf.reduce_mean(image[:, 20:28], axis=[1, 3]) / 255.0  # (B, W): the middle rows
        steps = tf.shape(dark)[1] // 8
        blocks = tf.reduce_mean(tf.reshape(dark[:, : steps * 8], [tf.shape(dark)[0], steps, 8]), axis=-1)
        is_a = tf.cast(blocks > 0.75, tf.float32)
        probabilities = tf.stack([0.9 - 0.8 * is_a, 0.1 + 0.8 * is_a, tf.zeros_like(is_a), tf.zeros_like(is_a)],
                                 axis=-1)
        return {"probabilities": probabilities}

    @tf.function(input_signature=[])
    def characters(self):
        return {"characters": tf.constant(CHARACTERS)}


def export_fakes(folder: Path) -> tuple[Path, Path]:
    detector, reader = InkDetector(), InkReader()
    tf.saved_model.save(detector, str(folder / "detector"), signatures={"serving_default": detector.serve})
    tf.saved_model.save(reader, str(folder / "reader"),
                        signatures={"serving_default": reader.serve, "characters": reader.characters})
    return folder / "detector", folder / "reader"


def ink_page(lines: int, *, height: int = 120, width: int = 200) -> np.ndarray:
    """A white uint8 page with ``lines`` black bars of 10 x 120 pixels, 30 pixels apart, from (20, 15)."""
    page = np.full((height, width, 3), 255, np.uint8)
    for k in range(lines):
        page[15 + 30 * k: 25 + 30 * k, 20:140] = 0
    return page


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        Image.fromarray(array).save(path)
    return path
