"""Small tile models for the tests: zero-padded convolutions (+ tanh), optionally upsampled, declaring their tiling."""

import numpy as np
import tensorflow as tf

from mcrgpu.images import tiles
from mcrgpu.images.tiles import declare_tiling


class ConvTanh(tf.Module):
    """tanh of a fixed random ``size`` x ``size`` convolution ('SAME', zeros beyond the image), then optionally
    upsampled by ``up`` (nearest) or averaged over ``down`` x ``down`` blocks; ``out_channels`` None gives
    (B, H, W), else (B, H, W, C')."""

    def __init__(self, *, size=13, in_channels=1, out_channels=None, up=1, down=1, declare=True, limit=None):
        super().__init__()
        rng = np.random.default_rng(size * 10 + in_channels)
        kernel = rng.normal(size=(size, size, in_channels, out_channels or 1)) / size
        self.kernel = tf.constant(kernel, tf.float32)
        self.up, self.down, self.limit, self.squeeze = up, down, limit, out_channels is None
        if declare:
            declare_tiling(self, receptive_radius=size // 2, output_scale=up / down)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image")])
    def serve(self, image):
        if self.limit is not None:  # fails on inputs above the limit, to test a failing tile
            tf.debugging.assert_less_equal(tf.reduce_max(image), self.limit, message="input above the limit")
        result = tf.tanh(tf.nn.conv2d(image, self.kernel, 1, "SAME"))
        if self.down > 1:
            result = tf.nn.avg_pool2d(result, self.down, self.down, "VALID")
        if self.up > 1:
            result = tf.repeat(tf.repeat(result, self.up, axis=1), self.up, axis=2)
        return {"result": result[..., 0] if self.squeeze else result}

    def whole(self, image: np.ndarray) -> np.ndarray:
        """The model on the whole image (H, W, C) in one call."""
        array = image.astype(np.float32)
        if array.ndim == 2:
            array = array[..., None]
        return self.serve(tf.constant(array[None]))["result"][0].numpy()


def export(module: tf.Module, directory) -> str:
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return str(directory)


def crash_on_the_fourth_tile_row(monkeypatch):
    """Make a tile run raise KeyboardInterrupt when it reaches its fourth row of tiles."""
    outputs, calls = tiles._TileRun._outputs, []

    def crash(self, windows, band):
        calls.append(band)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return outputs(self, windows, band)

    monkeypatch.setattr(tiles._TileRun, "_outputs", crash)
