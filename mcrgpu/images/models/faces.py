"""A pretrained face detector (MTCNN, weights from the mtcnn package) as one SavedModel signature for binning.

The whole MTCNN cascade runs in TensorFlow ops inside one ``serve`` function: the image pyramid
(a ``tf.while_loop`` over the scales, as many as the image size asks for), the proposal network
(PNet) on each scale, the box decoding, the non-maximum suppressions, the refine (RNet) and output
(ONet) networks on the proposals cut out with ``tf.image.crop_and_resize``, and the final count.
It follows mtcnn 1.0.0's ``MTCNN.detect_faces`` step by step (same scales, thresholds 0.6 / 0.7 /
0.8, its matrix NMS, square boxes, clipping to the image); only the weights are taken from the
package, once, when the model is built: its networks are Keras 3 models that ``tf.Module``
does not track, so their kernels, biases and PReLU slopes are copied into plain ``tf.Variable``
objects and the three networks are written again as ``tf.nn`` calls. The SavedModel therefore
needs neither Keras nor mtcnn to load, and nothing is downloaded (the weights ship inside the
mtcnn wheel; mtcnn reads them with joblib, at build time only).

One deliberate difference: at most ``max_proposals`` PNet proposals per scale (the best ones)
enter the per-scale NMS, whose IoU matrix is quadratic in their number; mtcnn keeps all of them,
which on a multi-megapixel photograph takes gigabytes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError

__all__ = ["build_face_detector", "FACE_OUTPUTS"]

FACE_OUTPUTS = ("face_count", "max_confidence", "largest_face_fraction")

_MIN_SIZE, _MIN_FACE_SIZE, _SCALE_FACTOR = 12, 20, 0.709  # mtcnn's StagePNet defaults


def _weights(network, names: list[str]) -> dict[str, list[tf.Variable]]:
    """The weights of the named layers of an mtcnn Keras network, as plain variables."""
    return {name: [tf.Variable(np.asarray(w), trainable=False, name=f"{name}_{i}")
                   for i, w in enumerate(getattr(network, name).get_weights())] for name in names}


def _prelu(x: tf.Tensor, alpha: tf.Variable) -> tf.Tensor:
    return tf.nn.relu(x) - alpha * tf.nn.relu(-x)


def _conv(x: tf.Tensor, layer: list[tf.Variable]) -> tf.Tensor:
    return tf.nn.conv2d(x, layer[0], 1, "VALID") + layer[1]


def _dense(x: tf.Tensor, layer: list[tf.Variable]) -> tf.Tensor:
    return tf.matmul(x, layer[0]) + layer[1]


def _flatten_transposed(x: tf.Tensor) -> tf.Tensor:
    """Keras ``Permute((2, 1, 3))`` then ``Flatten``: the networks were trained on W x H layouts."""
    x = tf.transpose(x, [0, 2, 1, 3])
    return tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]])


def _iou_matrix(boxes: tf.Tensor, method: str) -> tf.Tensor:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    low = tf.maximum(boxes[None, :, :2], boxes[:, None, :2])
    high = tf.minimum(boxes[None, :, 2:], boxes[:, None, 2:])
    inter = tf.reduce_prod(tf.maximum(high - low, 0.0), axis=-1)
    if method == "union":
        return inter / (area[:, None] + area[None, :] - inter)
    return inter / tf.minimum(area[:, None], area[None, :])


def _nms(rows: tf.Tensor, threshold: float, method: str, *, sort: bool) -> tf.Tensor:
    """mtcnn's NMS: rows [x1, y1, x2, y2, score, ...] sorted by score; a row goes if any earlier row overlaps it."""
    if sort:
        rows = tf.gather(rows, tf.argsort(rows[:, 4], direction="DESCENDING", stable=True))
    overlap = _iou_matrix(rows[:, :4], method) > threshold
    earlier = tf.linalg.band_part(tf.ones_like(overlap, tf.int32), 0, -1) - tf.linalg.band_part(
        tf.ones_like(overlap, tf.int32), 0, 0)  # strictly upper triangle: i < j
    suppressed = tf.reduce_any(tf.logical_and(overlap, earlier > 0), axis=0)
    return tf.boolean_mask(rows, tf.logical_not(suppressed))


def _square(rows: tf.Tensor) -> tf.Tensor:
    width, height = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    side = tf.maximum(width, height)
    x1, y1 = rows[:, 0] + 0.5 * width - 0.5 * side, rows[:, 1] + 0.5 * height - 0.5 * side
    return tf.concat([tf.stack([x1, y1, x1 + side, y1 + side], axis=1), rows[:, 4:]], axis=1)


def _refine(rows: tf.Tensor, offsets: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
    width, height = rows[:, 2] - rows[:, 0] + 1.0, rows[:, 3] - rows[:, 1] + 1.0
    boxes = rows[:, :4] + offsets * tf.stack([width, height, width, height], axis=1)
    return tf.concat([boxes, scores[:, None]], axis=1)


class _FaceDetector(tf.Module):
    """``serve(image)`` -> ``face_count`` (B,) int32, ``max_confidence`` (B,) and ``largest_face_fraction`` (B,)."""

    def __init__(self, *, thresholds: tuple[float, float, float], max_proposals: int) -> None:
        super().__init__(name="faces")
        from mtcnn.stages import StageONet, StagePNet, StageRNet  # reads the weights shipped in the wheel

        self.pnet = _weights(StagePNet().model, ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3",
                                                 "conv4_1", "conv4_2"])
        self.rnet = _weights(StageRNet().model, ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3",
                                                 "fc4", "prelu4", "fc5_1", "fc5_2"])
        self.onet = _weights(StageONet().model, ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3",
                                                 "conv4", "prelu4", "fc5", "prelu5", "fc6_1", "fc6_3"])
        self.thresholds = thresholds
        self.max_proposals = max_proposals

    def _pnet(self, x):
        w = self.pnet
        x = tf.nn.max_pool2d(_prelu(_conv(x, w["conv1"]), w["prelu1"][0]), 2, 2, "SAME")
        x = _prelu(_conv(x, w["conv2"]), w["prelu2"][0])
        x = _prelu(_conv(x, w["conv3"]), w["prelu3"][0])
        return _conv(x, w["conv4_1"]), tf.nn.softmax(_conv(x, w["conv4_2"]))

    def _rnet(self, x):
        w = self.rnet
        x = tf.nn.max_pool2d(_prelu(_conv(x, w["conv1"]), w["prelu1"][0]), 3, 2, "SAME")
        x = tf.nn.max_pool2d(_prelu(_conv(x, w["conv2"]), w["prelu2"][0]), 3, 2, "VALID")
        x = _prelu(_conv(x, w["conv3"]), w["prelu3"][0])
        x = _prelu(_dense(_flatten_transposed(x), w["fc4"]), w["prelu4"][0])
        return _dense(x, w["fc5_1"]), tf.nn.softmax(_dense(x, w["fc5_2"]))[:, 1]

    def _onet(self, x):
        w = self.onet
        x = tf.nn.max_pool2d(_prelu(_conv(x, w["conv1"]), w["prelu1"][0]), 3, 2, "SAME")
        x = tf.nn.max_pool2d(_prelu(_conv(x, w["conv2"]), w["prelu2"][0]), 3, 2, "VALID")
        x = tf.nn.max_pool2d(_prelu(_conv(x, w["conv3"]), w["prelu3"][0]), 2, 2, "SAME")
        x = _prelu(_conv(x, w["conv4"]), w["prelu4"][0])
        x = _prelu(_dense(_flatten_transposed(x), w["fc5"]), w["prelu5"][0])
        return _dense(x, w["fc6_1"]), tf.nn.softmax(_dense(x, w["fc6_3"]))[:, 1]

    def _proposals(self, image):
        """PNet over the pyramid: rows [x1, y1, x2, y2, score] in image pixels, NMS'd per scale and across."""
        size = tf.cast(tf.shape(image)[1:3], tf.float64)
        steps = tf.math.log(tf.reduce_min(size) / _MIN_SIZE) / np.log(_SCALE_FACTOR)
        count = tf.maximum(tf.cast(tf.round(-(steps + 1.0)), tf.int32), 0)

        def body(k, rows):
            factor = tf.constant(_SCALE_FACTOR, tf.float64)
            scale = (_MIN_SIZE / _MIN_FACE_SIZE) * tf.pow(factor, tf.cast(k, tf.float64))
            scaled = tf.image.resize(image, tf.cast(size * scale, tf.int32), method="area")
            regression, probability = self._pnet(scaled)
            score = probability[0, :, :, 1]
            where = tf.where(score > self.thresholds[0])
            found = tf.gather_nd(score, where)
            best = tf.math.top_k(found, tf.minimum(tf.size(found), self.max_proposals))  # sorted, descending
            where, found = tf.gather(where, best.indices), best.values
            offsets = tf.gather_nd(regression[0], where)
            yx = tf.cast(where, tf.float32) * 2.0
            corners = tf.stack([yx[:, 1] + 1.0, yx[:, 0] + 1.0, yx[:, 1] + 12.0, yx[:, 0] + 12.0], axis=1)
            boxes = (corners + offsets * 11.0) / tf.cast(scale, tf.float32)
            return k + 1, tf.concat([rows, _nms(tf.concat([boxes, found[:, None]], axis=1), 0.5, "union",
                                                sort=False)], axis=0)

        _, rows = tf.while_loop(lambda k, rows: k < count, body, [0, tf.zeros([0, 5])],
                                shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 5])])
        return _square(_nms(rows, 0.7, "union", sort=True))

    def _stage(self, image, rows, network, size, threshold, method, square):
        def run():
            shape = tf.cast(tf.shape(image)[1:3], tf.float32)
            crops = tf.stack([rows[:, 1] / shape[0], rows[:, 0] / shape[1], rows[:, 3] / shape[0],
                              rows[:, 2] / shape[1]], axis=1)
            patches = tf.image.crop_and_resize(image, crops, tf.zeros(tf.shape(rows)[:1], tf.int32), [size, size])
            refined = _refine(rows, *network(patches))
            kept = _nms(tf.boolean_mask(refined, refined[:, 4] > threshold), 0.7, method, sort=True)
            return _square(kept) if square else kept
        # an empty batch must not reach the convolutions (oneDNN returns the wrong channel count for it)
        return tf.cond(tf.shape(rows)[0] > 0, run, lambda: tf.zeros([0, 5]))

    def _detect(self, image):
        """(H, W, 3) in [0, 1] -> count, best confidence, largest face area / image area."""
        normalized = (image[None] * 255.0 - 127.5) / 128.0
        rows = self._proposals(normalized)
        rows = self._stage(normalized, rows, self._rnet, 24, self.thresholds[1], "union", square=True)
        rows = self._stage(normalized, rows, self._onet, 48, self.thresholds[2], "min", square=False)
        height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
        x = tf.clip_by_value(tf.stack([rows[:, 0], rows[:, 2]], axis=1), 0.0, width - 1.0)
        y = tf.clip_by_value(tf.stack([rows[:, 1], rows[:, 3]], axis=1), 0.0, height - 1.0)
        areas = (x[:, 1] - x[:, 0]) * (y[:, 1] - y[:, 0]) / (height * width)
        return (tf.shape(rows)[0], tf.reduce_max(tf.concat([rows[:, 4], [0.0]], axis=0)),
                tf.reduce_max(tf.concat([areas, [0.0]], axis=0)))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
    def serve(self, image):
        count, confidence, fraction = tf.map_fn(self._detect, image,
                                                fn_output_signature=(tf.int32, tf.float32, tf.float32))
        return {"face_count": count, "max_confidence": confidence, "largest_face_fraction": fraction}


def build_face_detector(*, compute_dtype: str = "float32", thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
                        max_proposals: int = 4096) -> tf.Module:
    """Build the MTCNN face detector with mtcnn 1.0.0's pretrained weights (needs the ``[faces]`` extra).

    Parameters
    ----------
    compute_dtype : {"float32"}
        The detector computes in float32 only: its thresholds were set on float32 scores.
    thresholds : (float, float, float)
        Face-score thresholds of PNet, RNet and ONet (mtcnn's defaults).
    max_proposals : int
        PNet proposals kept per pyramid scale, best first, before that scale's NMS.

    Returns
    -------
    tf.Module
        With ``serve(image)``: RGB images (B, H, W, 3) float32 in [0, 1]; returns ``face_count``
        (B,) int32, ``max_confidence`` (B,) float32 (0 without a face) and
        ``largest_face_fraction`` (B,) float32 (the largest face box's share of the image area).

    Raises
    ------
    InvalidInputError
        ``compute_dtype`` is not float32, or mtcnn is not installed.

    References
    ----------
    K. Zhang, Z. Zhang, Z. Li, Y. Qiao, "Joint face detection and alignment using multitask cascaded
    convolutional networks", IEEE Signal Processing Letters 23(10), 1499-1503 (2016).
    """
    if compute_dtype != "float32":
        raise InvalidInputError(f"the faces model computes in float32 only; received precision {compute_dtype!r}: "
                                "export it with --precision float32")
    try:
        import mtcnn  # noqa: F401
    except ImportError:
        raise InvalidInputError("the faces model needs the mtcnn package: pip install 'mcrgpu[faces]'") from None
    return _FaceDetector(thresholds=tuple(thresholds), max_proposals=int(max_proposals))
