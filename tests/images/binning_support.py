"""Small scoring SavedModels for the binning tests, and a rules file writer."""

from pathlib import Path

import tensorflow as tf


class ScoreModel(tf.Module):
    """Per image: ``mean`` and ``red`` (float), ``height`` (int), ``histogram`` (B, 4, not scalar).

    With ``fail_above``, an image whose mean exceeds it makes the model fail (an assertion).
    """

    def __init__(self, fail_above: float | None = None):
        super().__init__()
        self.fail_above = fail_above

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
    def serve(self, image):
        mean = tf.reduce_mean(image, axis=[1, 2, 3])
        if self.fail_above is not None:
            tf.debugging.assert_less_equal(mean, self.fail_above, message="image too bright for this model")
        histogram = tf.stack([tf.reduce_mean(tf.cast(image < t, tf.float32), axis=[1, 2, 3])
                              for t in (0.25, 0.5, 0.75, 1.01)], axis=1)
        height = tf.fill(tf.shape(image)[:1], tf.shape(image)[1])
        return {"mean": mean, "red": tf.reduce_mean(image[..., 0], axis=[1, 2]), "height": height,
                "histogram": histogram}


def export(module: tf.Module, directory: Path) -> Path:
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def write_rules(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
