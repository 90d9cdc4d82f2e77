"""The ONNX interpreter: each operator where conversions go wrong (padding, strides, depthwise,
transposed convolution, nearest resize, pooling, the layout of concatenations, reshapes with 0,
opset-12 softmax) against onnxruntime on small graphs at odd sizes; unknown operators and
attribute values are errors naming them."""

import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from onnx import TensorProto, helper, numpy_helper

from mcrgpu.errors import FileFormatError
from mcrgpu.images.models.onnx_graph import SUPPORTED_OPS, OnnxGraph

RNG = np.random.default_rng(7)


def _model(nodes, constants, *, channels=3, output_rank=4, opset=12):
    """A model with image input ``x`` (N, channels, H, W) and output ``y``; ``constants`` become initializers."""
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * output_rank)],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _max_difference(model, *shapes):
    """Largest |TensorFlow - onnxruntime| over inputs of the given NCHW shapes (one tf.function, dynamic sizes)."""
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    graph = OnnxGraph(model)
    run = tf.function(lambda x: graph(x)[0], autograph=False,
                      input_signature=[tf.TensorSpec([None, None, None, shapes[0][1]], tf.float32)])
    difference = 0.0
    for shape in shapes:
        x = RNG.normal(size=shape).astype(np.float32)
        (expected,) = session.run(None, {"x": x})
        ours = run(x.transpose(0, 2, 3, 1)).numpy()
        assert ours.shape == expected.shape
        difference = max(difference, float(np.abs(ours - expected).max()))
    return difference


def _weights(*shape):
    return RNG.normal(size=shape).astype(np.float32)


ODD_SIZES = [(2, 3, 17, 23), (1, 3, 9, 6)]


@pytest.mark.parametrize("pads, strides", [([1, 1, 1, 1], [2, 2]), ([0, 1, 0, 1], [1, 2]), ([2, 2, 2, 2], [2, 1]),
                                           ([0, 0, 0, 0], [1, 1])])
def test_conv_and_depthwise_conv_match_onnxruntime_at_odd_sizes(pads, strides):
    kernel = [3, 3] if pads != [2, 2, 2, 2] else [5, 5]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=pads, strides=strides, kernel_shape=kernel),
             helper.make_node("Conv", ["a", "w2"], ["y"], pads=pads, strides=strides, kernel_shape=kernel, group=8)]
    constants = {"w1": _weights(8, 3, *kernel), "b1": _weights(8), "w2": _weights(8, 1, *kernel)}
    assert _max_difference(_model(nodes, constants), *ODD_SIZES) < 1e-4


def test_conv_transpose_resize_concat_and_batch_normalization_match_onnxruntime():
    nodes = [helper.make_node("ConvTranspose", ["x", "wt", "bt"], ["up"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Resize", ["x", "roi", "scales"], ["near"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Concat", ["up", "near"], ["both"], axis=1),
             helper.make_node("BatchNormalization", ["both", "g", "beta", "mean", "var"], ["y"], epsilon=1e-5)]
    constants = {"wt": _weights(3, 4, 2, 2), "bt": _weights(4), "roi": np.zeros(0, np.float32),
                 "scales": np.array([1, 1, 2, 2], np.float32), "g": _weights(7), "beta": _weights(7),
                 "mean": _weights(7), "var": RNG.uniform(0.5, 2, 7).astype(np.float32)}
    assert _max_difference(_model(nodes, constants), *ODD_SIZES) < 1e-4


def test_pooling_hard_sigmoid_clip_and_broadcast_constants_match_onnxruntime():
    nodes = [helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[3, 2], strides=[3, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("HardSigmoid", ["g"], ["s"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["p", "s"], ["m"]),
             helper.make_node("Add", ["m", "per_channel"], ["a"]),  # a (C, 1, 1) constant broadcast
             helper.make_node("Clip", ["a", "low", "high"], ["y"])]
    constants = {"per_channel": _weights(3, 1, 1), "low": np.array(-0.5, np.float32),
                 "high": np.array(0.75, np.float32)}
    assert _max_difference(_model(nodes, constants), *ODD_SIZES) < 1e-5


def test_shape_arithmetic_reshape_with_zero_transpose_and_softmax_match_onnxruntime():
    """SVTR's pattern: flatten (N, C, H, W) by a shape computed from the tensor, attend, softmax."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "zero", "two"], ["nc"]),
             helper.make_node("Concat", ["nc", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),  # (N, C, H*W)
             helper.make_node("Transpose", ["flat"], ["t"], perm=[0, 2, 1]),  # (N, H*W, C)
             helper.make_node("MatMul", ["t", "w"], ["proj"]),  # (N, H*W, 5)
             helper.make_node("Reshape", ["proj", "keep"], ["same"]),  # 0 keeps a size
             helper.make_node("ReduceMean", ["same"], ["mean"], axes=[-1]),
             helper.make_node("Sub", ["same", "mean"], ["centred"]),
             helper.make_node("Softmax", ["centred"], ["y"], axis=1)]  # opset 12: over axes 1 and 2
    constants = {"zero": np.array([0]), "two": np.array([2]), "minus_one": np.array([-1]), "w": _weights(3, 5),
                 "keep": np.array([0, -1, 5])}
    assert _max_difference(_model(nodes, constants, output_rank=3), *ODD_SIZES) < 1e-6


def test_channels_last_tensor_beside_a_higher_rank_operand_broadcasts_in_onnx_order():
    nodes = [helper.make_node("Relu", ["x"], ["image"]),  # kept channels-last
             helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Concat", ["one", "shape"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["five"]),  # (1, N, C, H, W)
             helper.make_node("Add", ["image", "five"], ["y"])]
    model = _model(nodes, {"one": np.array([1])}, output_rank=5)
    assert _max_difference(model, *ODD_SIZES) < 1e-6


def test_unknown_operator_is_an_error_naming_it():
    model = _model([helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky")], {})
    with pytest.raises(FileFormatError, match="ONNX operator 'LeakyRelu' \\(node 'leaky'\\) is not supported; "
                                              "supported operators: Add, AveragePool"):
        OnnxGraph(model)
    assert "LeakyRelu" not in SUPPORTED_OPS


def test_unsupported_attribute_value_and_opset_are_errors():
    resize = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="linear")
    constants = {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)}
    with pytest.raises(FileFormatError, match="ONNX Resize with mode='linear' is not supported; supported: nearest"):
        OnnxGraph(_model([resize], constants))
    with pytest.raises(FileFormatError, match="opset 11 or 12 only"):
        OnnxGraph(_model([helper.make_node("Relu", ["x"], ["y"])], {}, opset=13))
