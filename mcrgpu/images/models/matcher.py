"""The built-in image-pair matcher: weight-free keypoints, descriptors and mutual nearest neighbours in TensorFlow."""

from __future__ import annotations

import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.models.features import pyramid_features, to_grey

__all__ = ["build_matcher", "PairMatcher", "match_descriptors", "COMPUTE_DTYPES"]

COMPUTE_DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}
LEVELS = 4
SCALE_STEP = 2.0 ** 0.5
MAX_RATIO = 0.7  # 0.8 (Lowe) lets through ~3 % more wrong stereo matches


def _level_counts(max_keypoints: int) -> list[int]:
    """Keypoints per pyramid level, proportional to the level's area (as ORB does)."""
    shares = [SCALE_STEP ** (-2 * level) for level in range(LEVELS)]
    counts = [int(max_keypoints * share / sum(shares)) for share in shares]
    counts[0] += max_keypoints - sum(counts)
    return counts


def match_descriptors(descriptors0: tf.Tensor, descriptors1: tf.Tensor, valid0: tf.Tensor, valid1: tf.Tensor,
                      *, max_ratio: float = MAX_RATIO,
                      compute_dtype: tf.DType = tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """Mutual nearest neighbours that pass Lowe's ratio test, from one batched similarity matmul.

    Parameters
    ----------
    descriptors0, descriptors1
        Unit descriptors (B, K0, D) and (B, K1, D).
    valid0, valid1
        (B, K0), (B, K1) booleans: False for padded keypoints, which never match.
    max_ratio
        A match's descriptor distance must be below ``max_ratio`` times the second nearest's.
    compute_dtype
        Dtype of the matmul.

    Returns
    -------
    matches0
        (B, K0) int32 index into the keypoints of image 1, or -1.
    scores0
        (B, K0) float32 cosine similarity of the match, 0 where there is none.
    """
    similarity = tf.cast(tf.matmul(tf.cast(descriptors0, compute_dtype), tf.cast(descriptors1, compute_dtype),
                                   transpose_b=True), tf.float32)
    pair_valid = valid0[:, :, None] & valid1[:, None, :]
    similarity = tf.where(pair_valid, similarity, -1.0)
    best, nearest = tf.math.top_k(similarity, k=tf.minimum(2, tf.shape(similarity)[2]))
    second = tf.concat([best, tf.fill(tf.shape(best[..., :1]), -1.0)], -1)[..., 1]
    best, nearest = best[..., 0], nearest[..., 0]
    backward = tf.argmax(similarity, axis=1, output_type=tf.int32)
    mutual = tf.equal(tf.gather(backward, nearest, batch_dims=1), tf.range(tf.shape(nearest)[1])[None, :])
    distance = tf.sqrt(tf.nn.relu(2.0 - 2.0 * best))
    second_distance = tf.sqrt(tf.nn.relu(2.0 - 2.0 * second))
    matched = mutual & (distance < max_ratio * second_distance) & tf.reduce_any(pair_valid, axis=2)
    matched = matched & tf.gather(valid1, nearest, batch_dims=1)
    return tf.where(matched, nearest, -1), tf.where(matched, tf.clip_by_value(best, 0.0, 1.0), 0.0)


class PairMatcher(tf.Module):
    """A tf.Module whose ``serve`` matches image0 against image1; see :func:`build_matcher`."""

    def __init__(self, *, compute_dtype: str, max_keypoints: int):
        super().__init__(name="matcher")
        self.compute_dtype = compute_dtype
        self.max_keypoints = max_keypoints
        self._features = tf.function(self._image_features,
                                     input_signature=[tf.TensorSpec((None, None, None, None), tf.float32)])

    def _image_features(self, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Keypoints (zero where padded), validity and descriptors of one batch of images; a
        function of its own so that it is traced once for both images of the pair."""
        points, scores, descriptors = pyramid_features(
            to_grey(image), counts=_level_counts(self.max_keypoints), scale_step=SCALE_STEP,
            compute_dtype=COMPUTE_DTYPES[self.compute_dtype])
        valid = scores > 0.0
        return tf.where(valid[..., None], points, 0.0), valid, descriptors

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image0"),
                                  tf.TensorSpec((None, None, None, None), tf.float32, name="image1")])
    def serve(self, image0: tf.Tensor, image1: tf.Tensor) -> dict[str, tf.Tensor]:
        points0, valid0, descriptors0 = self._features(image0)
        points1, valid1, descriptors1 = self._features(image1)
        matches0, scores0 = match_descriptors(descriptors0, descriptors1, valid0, valid1, max_ratio=MAX_RATIO,
                                             compute_dtype=COMPUTE_DTYPES[self.compute_dtype])
        return {"keypoints0": points0, "keypoints1": points1, "matches0": matches0, "match_scores0": scores0}


def build_matcher(*, compute_dtype: str = "float32", max_keypoints: int = 1024) -> tf.Module:
    """The built-in pair matcher as a tf.Module to export as a SavedModel (it has no weights).

    Keypoints are Harris corners on a 4-level pyramid (step sqrt(2)), non-maximum suppression by
    3 x 3 max-pool, the strongest per level in proportion to its area, sub-pixel by a parabola;
    each is oriented by its Gaussian-weighted mean gradient and described, as SIFT, by 4 x 4 cells
    of 8 gradient-orientation bins sampled on a grid rotated with it (so rotations and moderate
    scale changes still match). Matches are mutual nearest neighbours that pass a ratio test of 0.7.

    Parameters
    ----------
    compute_dtype
        "float32", "float16" or "bfloat16": the dtype of the convolutions and of the matching matmul.
        Inputs and outputs stay float32.
    max_keypoints
        K, the fixed number of keypoints per image, padded with score 0 so pairs of any size batch.

    Returns
    -------
    tf.Module
        With a tf.function ``serve(image0, image1)`` taking (B, H, W, C) float32 in [0, 1], C 1 or 3,
        any H and W (the two images may differ), returning ``keypoints0``, ``keypoints1`` (B, K, 2)
        float32 x-y, ``matches0`` (B, K) int32 index into keypoints1 or -1, ``match_scores0``
        (B, K) float32 (cosine similarity of the descriptors, 0 when unmatched).

    Raises
    ------
    InvalidInputError
        For an unknown ``compute_dtype`` or a ``max_keypoints`` below 8.

    Examples
    --------
    >>> module = build_matcher(max_keypoints=256)
    >>> out = module.serve(tf.random.uniform((1, 64, 64, 1)), tf.random.uniform((1, 64, 80, 3)))
    >>> out["matches0"].shape
    TensorShape([1, 256])
    """
    if compute_dtype not in COMPUTE_DTYPES:
        raise InvalidInputError(f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}; received {compute_dtype!r}")
    if isinstance(max_keypoints, bool) or not isinstance(max_keypoints, int) or max_keypoints < 2 * LEVELS:
        raise InvalidInputError(f"max_keypoints must be an integer >= {2 * LEVELS}; received {max_keypoints!r}")
    return PairMatcher(compute_dtype=compute_dtype, max_keypoints=max_keypoints)
