"""A small ONNX interpreter: an ONNX graph (opset 11-12) rebuilt as TensorFlow ops in a tf.Module.

It covers exactly the operators of PaddleOCR PP-OCRv4's text detector and recognizer
(:data:`SUPPORTED_OPS`); any other operator, attribute value or opset is an error naming it.
The graph is compiled once, when the module is built: nodes whose inputs are all constants are
evaluated then (shape arithmetic, casts of constants), weights become ``tf.Variable`` objects the
module tracks (convolution kernels already in TensorFlow's layout, batch normalisations folded into
a scale and a shift), and every other node becomes one step of TensorFlow ops.

Layout: ONNX images are NCHW, TensorFlow's CPU convolutions want NHWC. A rank-4 value is kept
channels-last from the input through every convolution, pooling, resize, concatenation along
channels and elementwise op (constants are transposed to match when the graph is compiled); an
operator whose meaning depends on the axis order (Reshape, Transpose, Slice, MatMul, ...) first
gets its input back in ONNX's order. So values are transposed only where the network leaves the
image layout, and the result is the ONNX graph's, value for value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mcrgpu.errors import FileFormatError

__all__ = ["OnnxGraph", "SUPPORTED_OPS"]

_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
_ELEMENTWISE = {"Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "Div": tf.divide, "Pow": tf.pow}
_UNARY = {"Relu": tf.nn.relu, "Sigmoid": tf.sigmoid, "Sqrt": tf.sqrt}


@dataclass
class _Value:
    """A value of the graph as it is compiled: its ONNX rank, whether a rank-4 tensor is kept
    channels-last (``nhwc``), its elements if it is a constant, its length if it is a vector of known size."""

    rank: int
    nhwc: bool = False
    constant: np.ndarray | None = None
    length: int | None = None


class OnnxGraph(tf.Module):
    """An ONNX graph as TensorFlow ops: ``graph(*inputs)`` returns its outputs in ONNX's layout.

    Parameters
    ----------
    model : onnx.ModelProto
        The loaded ONNX model (``onnx.load``).
    name : str
        The module's name.

    Raises
    ------
    FileFormatError
        An operator outside :data:`SUPPORTED_OPS`, an attribute value it does not cover, or an
        opset other than 11 or 12.

    Notes
    -----
    Rank-4 inputs are given channels-last (N, H, W, C), the layout images come in; outputs are
    returned in the ONNX graph's own layout.
    """

    def __init__(self, model, *, name: str = "onnx_graph") -> None:
        super().__init__(name=name)
        from onnx import numpy_helper

        opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
        if set(opsets) != {"ai.onnx"} or not 11 <= opsets["ai.onnx"] <= 12:
            raise FileFormatError(f"the ONNX model's opsets are {opsets}; this interpreter reads the default "
                                  "domain (ai.onnx) at opset 11 or 12 only")
        self.weights: list[tf.Variable] = []
        self._folding = False
        self._values: dict[str, _Value] = {}
        for tensor in model.graph.initializer:
            self._set_constant(tensor.name, numpy_helper.to_array(tensor))
        inputs = [entry for entry in model.graph.input if entry.name not in self._values]
        for entry in inputs:
            rank = len(entry.type.tensor_type.shape.dim)
            self._values[entry.name] = _Value(rank, nhwc=rank == 4)  # images come channels-last
        self._inputs = [entry.name for entry in inputs]
        self._outputs = [entry.name for entry in model.graph.output]
        self._steps: list[tuple[Callable, list[str], list[str]]] = []
        for node in model.graph.node:
            self._compile(node, numpy_helper)
        self._values = {name: self._values[name] for name in self._outputs}  # the constants are compiled in

    def __call__(self, *inputs: tf.Tensor) -> list[tf.Tensor]:
        """Run the graph on ``inputs`` (in the order of the ONNX graph's inputs); returns its outputs."""
        tensors = dict(zip(self._inputs, inputs))
        for run, names, outputs in self._steps:
            tensors.update(zip(outputs, run(*[tensors.get(name) for name in names])))
        return [self._in_onnx_layout(name, tensors) for name in self._outputs]

    def _set_constant(self, name: str, array) -> None:
        array = np.asarray(array)
        self._values[name] = _Value(array.ndim, constant=array, length=array.size if array.ndim == 1 else None)

    def _weight(self, array: np.ndarray) -> tf.Variable | tf.Tensor:
        """A weight of the network: a variable the module tracks (a constant while folding constants)."""
        if self._folding:
            return tf.constant(array)
        variable = tf.Variable(np.ascontiguousarray(array), trainable=False, name=f"w{len(self.weights)}")
        self.weights.append(variable)
        return variable

    def _compile(self, node, numpy_helper) -> None:
        if node.op_type not in SUPPORTED_OPS:
            raise FileFormatError(f"ONNX operator {node.op_type!r} (node {node.name or node.output[0]!r}) is not "
                                  f"supported; supported operators: {', '.join(sorted(SUPPORTED_OPS))}")
        attributes = {entry.name: _attribute(entry, numpy_helper) for entry in node.attribute}
        if node.op_type == "Constant":
            if "value" not in attributes:
                raise _unsupported("Constant", "attribute", sorted(attributes), "value")
            self._set_constant(node.output[0], attributes["value"])
            return
        inputs = [self._values[name] if name else None for name in node.input]
        self._folding = all(value is None or value.constant is not None for value in inputs)
        run, outputs = SUPPORTED_OPS[node.op_type](self, attributes, inputs)
        if self._folding:  # every input is known: evaluate the node now
            self._folding = False
            for name, result in zip(node.output, run(*[None] * len(inputs))):
                self._set_constant(name, result.numpy())
            return
        self._values.update(zip(node.output, outputs))
        self._steps.append((run, list(node.input), list(node.output)))

    def _in_onnx_layout(self, name: str, tensors: dict) -> tf.Tensor:
        value = self._values[name]
        if value.constant is not None:
            return tf.constant(value.constant)
        return tf.transpose(tensors[name], _TO_NCHW) if value.nhwc else tensors[name]


def _attribute(entry, numpy_helper):
    from onnx import helper

    value = helper.get_attribute_value(entry)
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "dims"):  # a TensorProto
        return numpy_helper.to_array(value)
    return value


def _unsupported(op: str, attribute: str, value, supported: str) -> FileFormatError:
    return FileFormatError(f"ONNX {op} with {attribute}={value!r} is not supported; supported: {supported}")


# Operand readers: a compiled step receives the tensors of its computed inputs (None where an input
# is a constant); these turn that argument into the tensor the TensorFlow op takes.

def _operand(value: _Value | None) -> Callable:
    """The input as it comes (channels-last kept), or the constant (captured once)."""
    if value is None or value.constant is None:
        return lambda x: x
    constant = tf.constant(value.constant)
    return lambda x: constant


def _nchw(value: _Value) -> Callable:
    """The input in ONNX's axis order."""
    if value.constant is not None:
        return _operand(value)
    return (lambda x: tf.transpose(x, _TO_NCHW)) if value.nhwc else (lambda x: x)


def _nhwc(value: _Value) -> Callable:
    """A rank-4 input channels-last."""
    if value.rank != 4 or value.constant is not None:
        raise FileFormatError(f"an ONNX image operator received a rank-{value.rank} "
                              f"{'constant' if value.constant is not None else 'tensor'}; it takes rank-4 tensors")
    return (lambda x: x) if value.nhwc else (lambda x: tf.transpose(x, _TO_NHWC))


def _image() -> list[_Value]:
    return [_Value(4, nhwc=True)]


def _same(value: _Value) -> list[_Value]:
    return [_Value(value.rank, nhwc=value.nhwc, length=value.length)]


# Operators: each compiles a node from (graph, attributes, input values) into
# (run(*tensors) -> list of tensors, [output values]).

def _elementwise(op: str) -> Callable:
    def compile_op(graph, attributes, inputs):
        rank = max(value.rank for value in inputs)
        nhwc = rank == 4 and any(value.nhwc for value in inputs)
        readers = []
        for value in inputs:
            if value.constant is not None:
                array = value.constant
                if nhwc:  # broadcast as ONNX would (align trailing axes), then channels-last
                    array = array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(_TO_NHWC)
                weight = graph._weight(array) if array.size > 1 and array.dtype.kind == "f" else tf.constant(array)
                readers.append(lambda x, w=weight: w)
            elif nhwc and not value.nhwc:
                readers.append(lambda x, r=value.rank: tf.transpose(tf.reshape(
                    x, tf.concat([tf.ones([4 - r], tf.int32), tf.shape(x)], 0)), _TO_NHWC))
            else:  # same layout as the output, or back to ONNX's order beside a higher-rank operand
                readers.append(_nchw(value) if not nhwc else lambda x: x)
        function = _ELEMENTWISE[op]
        lengths = [value.length for value in inputs if value.rank == 1]
        length = max(lengths) if rank == 1 and None not in lengths else None
        return (lambda a, b: [function(readers[0](a), readers[1](b))]), [_Value(rank, nhwc=nhwc, length=length)]
    return compile_op


def _unary(op: str) -> Callable:
    def compile_op(graph, attributes, inputs):
        read = _operand(inputs[0])
        return (lambda x: [_UNARY[op](read(x))]), _same(inputs[0])
    return compile_op


def _hard_sigmoid(graph, attributes, inputs):
    alpha, beta = attributes.get("alpha", 0.2), attributes.get("beta", 0.5)
    read = _operand(inputs[0])
    return (lambda x: [tf.clip_by_value(alpha * read(x) + beta, 0.0, 1.0)]), _same(inputs[0])


def _clip(graph, attributes, inputs):
    bounds = list(inputs[1:]) + [None] * (3 - len(inputs))
    if any(value is not None and value.constant is None for value in bounds):
        raise FileFormatError("ONNX Clip with computed (non-constant) bounds is not supported")
    low, high = (None if value is None else float(value.constant) for value in bounds)
    read = _operand(inputs[0])

    def run(x, *_):
        x = read(x)
        if low is not None:
            x = tf.maximum(x, low)
        return [x if high is None else tf.minimum(x, high)]
    return run, _same(inputs[0])


def _cast(graph, attributes, inputs):
    from onnx import helper

    dtype = tf.as_dtype(helper.tensor_dtype_to_np_dtype(attributes["to"]))
    read = _operand(inputs[0])
    return (lambda x: [tf.cast(read(x), dtype)]), _same(inputs[0])


def _conv(graph, attributes, inputs):
    kernel = inputs[1].constant
    if kernel is None:
        raise FileFormatError("ONNX Conv with a computed (non-constant) kernel is not supported")
    for key, default in (("dilations", [1, 1]), ("auto_pad", "NOTSET")):
        if attributes.get(key, default) != default:
            raise _unsupported("Conv", key, attributes[key], f"{default}")
    groups, (out_channels, in_per_group) = attributes.get("group", 1), kernel.shape[:2]
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    stride_h, stride_w = attributes.get("strides", [1, 1])
    paddings = [[0, 0], [top, bottom], [left, right], [0, 0]]
    bias = graph._weight(inputs[2].constant) if len(inputs) > 2 and inputs[2] is not None else None
    read = _nhwc(inputs[0])
    if groups == 1:
        weight = graph._weight(kernel.transpose(2, 3, 1, 0))  # (O, I, kh, kw) -> (kh, kw, I, O)

        def convolve(x):
            return tf.nn.conv2d(x, weight, [1, stride_h, stride_w, 1], paddings)
    elif in_per_group == 1 and out_channels == groups:  # depthwise
        weight = graph._weight(kernel.transpose(2, 3, 0, 1))  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        step = min(stride_h, stride_w)  # TensorFlow's depthwise convolution takes equal strides only
        if stride_h % step or stride_w % step:
            raise _unsupported("Conv", "strides", (stride_h, stride_w), "depthwise strides that divide each other")

        def convolve(x):  # padded first: explicit paddings crash Grappler's shape inference (TF 2.21)
            y = tf.nn.depthwise_conv2d(tf.pad(x, paddings), weight, [1, step, step, 1], "VALID")
            return y[:, ::stride_h // step, ::stride_w // step, :] if stride_h != stride_w else y
    else:
        raise _unsupported("Conv", "group", groups, "1 or depthwise (group = channels)")

    def run(x, *_):
        y = convolve(read(x))
        return [y if bias is None else y + bias]
    return run, _image()


def _conv_transpose(graph, attributes, inputs):
    kernel = inputs[1].constant
    for key, default in (("group", 1), ("dilations", [1, 1]), ("output_padding", [0, 0]), ("auto_pad", "NOTSET")):
        if attributes.get(key, default) != default:
            raise _unsupported("ConvTranspose", key, attributes[key], f"{default}")
    if kernel is None or "output_shape" in attributes:
        raise FileFormatError("ONNX ConvTranspose needs a constant kernel and no output_shape attribute")
    weight = graph._weight(kernel.transpose(2, 3, 1, 0))  # (I, O, kh, kw) -> (kh, kw, O, I)
    bias = graph._weight(inputs[2].constant) if len(inputs) > 2 and inputs[2] is not None else None
    (kernel_h, kernel_w), (stride_h, stride_w) = kernel.shape[2:], attributes.get("strides", [1, 1])
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    read = _nhwc(inputs[0])

    def run(x, *_):
        x = read(x)
        shape = tf.shape(x)
        full_h, full_w = stride_h * (shape[1] - 1) + kernel_h, stride_w * (shape[2] - 1) + kernel_w
        y = tf.nn.conv2d_transpose(x, weight, tf.stack([shape[0], full_h, full_w, kernel.shape[1]]),
                                   [1, stride_h, stride_w, 1], "VALID")
        y = y[:, top:full_h - bottom, left:full_w - right, :]  # ONNX pads crop the full output
        return [y if bias is None else y + bias]
    return run, _image()


def _batch_normalization(graph, attributes, inputs):
    value, statistics = inputs[0], [entry.constant for entry in inputs[1:5]]
    if any(part is None for part in statistics):
        raise FileFormatError("ONNX BatchNormalization needs constant statistics (an inference graph)")
    scale, shift, mean, variance = statistics
    factor = scale / np.sqrt(variance + attributes.get("epsilon", 1e-5))
    shape = (-1,) if value.nhwc else (-1,) + (1,) * (value.rank - 2)  # the channel axis: last or 1
    multiplier = graph._weight(factor.reshape(shape).astype(np.float32))
    offset = graph._weight((shift - mean * factor).reshape(shape).astype(np.float32))
    read = _operand(value)
    return (lambda x, *_: [read(x) * multiplier + offset]), _same(value)


def _global_average_pool(graph, attributes, inputs):
    read = _nhwc(inputs[0])
    return (lambda x: [tf.reduce_mean(read(x), axis=[1, 2], keepdims=True)]), _image()


def _average_pool(graph, attributes, inputs):
    for key, default in (("pads", [0, 0, 0, 0]), ("ceil_mode", 0), ("auto_pad", "NOTSET")):
        if attributes.get(key, default) != default:
            raise _unsupported("AveragePool", key, attributes[key], f"{default}")
    kernel, strides = list(attributes["kernel_shape"]), list(attributes.get("strides", [1, 1]))
    read = _nhwc(inputs[0])
    return (lambda x: [tf.nn.avg_pool2d(read(x), kernel, strides, "VALID")]), _image()


def _resize(graph, attributes, inputs):
    for key, value in (("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"),
                       ("nearest_mode", "floor")):
        if attributes.get(key, value) != value:
            raise _unsupported("Resize", key, attributes.get(key), value)
    scales = inputs[2].constant if len(inputs) > 2 and inputs[2] is not None else None
    if scales is None or scales.size != 4 or list(scales[:2]) != [1, 1] or np.any(scales[2:] % 1) or \
            (len(inputs) > 3 and inputs[3] is not None and inputs[3].constant.size):
        raise _unsupported("Resize", "scales", scales, "constant whole-number scales of H and W, no sizes")
    factor_h, factor_w = int(scales[2]), int(scales[3])
    read = _nhwc(inputs[0])
    # nearest, asymmetric, floor at a whole scale k: output pixel i reads input pixel floor(i / k)
    return (lambda x, *_: [tf.repeat(tf.repeat(read(x), factor_h, axis=1), factor_w, axis=2)]), _image()


def _concat(graph, attributes, inputs):
    rank = inputs[0].rank
    axis = attributes["axis"] % rank
    if rank == 4 and any(value.nhwc for value in inputs):
        readers, axis = [_nhwc(value) for value in inputs], _TO_NHWC.index(axis)
        outputs = _image()
    else:
        readers = [_nchw(value) for value in inputs]
        lengths = [value.length for value in inputs]
        outputs = [_Value(rank, length=sum(lengths) if rank == 1 and None not in lengths else None)]
    return (lambda *xs: [tf.concat([read(x) for read, x in zip(readers, xs)], axis)]), outputs


def _shape(graph, attributes, inputs):
    value = inputs[0]
    order = list(_TO_NCHW) if value.nhwc else list(range(value.rank))
    return (lambda x: [tf.gather(tf.shape(x, out_type=tf.int64), order)]), [_Value(1, length=value.rank)]


def _reshape(graph, attributes, inputs):
    rank = inputs[1].length
    if rank is None:
        raise FileFormatError("ONNX Reshape needs a target shape of known length")
    read, read_shape = _nchw(inputs[0]), _operand(inputs[1])

    def run(x, shape):
        x, shape = read(x), tf.cast(read_shape(shape), tf.int64)
        sizes = tf.concat([tf.shape(x, out_type=tf.int64), tf.ones([rank], tf.int64)], 0)[:rank]
        return [tf.reshape(x, tf.where(tf.equal(shape, 0), sizes, shape))]  # 0 keeps the input's size
    return run, [_Value(rank)]


def _transpose(graph, attributes, inputs):
    value = inputs[0]
    perm = list(attributes.get("perm", range(value.rank - 1, -1, -1)))
    if value.nhwc:  # read the channels-last tensor directly: one transpose
        perm = [_TO_NCHW[axis] for axis in perm]
    read = _operand(value)
    return (lambda x: [tf.transpose(read(x), perm)]), [_Value(value.rank)]


def _slice(graph, attributes, inputs):
    value, parts = inputs[0], [entry.constant if entry is not None else None for entry in inputs[1:]]
    parts += [None] * (4 - len(parts))
    starts, ends, axes, steps = parts
    if starts is None or ends is None or any(entry is not None and entry.constant is None for entry in inputs[1:]):
        raise FileFormatError("ONNX Slice needs constant starts, ends, axes and steps")
    axes = np.arange(len(starts)) if axes is None else axes
    steps = np.ones(len(starts), np.int64) if steps is None else steps
    index = [slice(None)] * value.rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis) % value.rank] = slice(int(start), int(end), int(step))
    length = len(range(*index[0].indices(value.length))) if value.rank == 1 and value.length is not None else None
    read = _nchw(value)
    return (lambda x, *_: [read(x)[tuple(index)]]), [_Value(value.rank, length=length)]


def _squeeze(graph, attributes, inputs):
    value = inputs[0]
    if "axes" not in attributes:
        raise _unsupported("Squeeze", "axes", None, "explicit axes")
    axes = [axis % value.rank for axis in attributes["axes"]]
    read = _nchw(value)
    return (lambda x: [tf.squeeze(read(x), axes)]), [_Value(value.rank - len(axes))]


def _reduce_mean(graph, attributes, inputs):
    value = inputs[0]
    axes = sorted(axis % value.rank for axis in attributes.get("axes", range(value.rank)))
    keep = bool(attributes.get("keepdims", 1))
    read = _nchw(value)
    return (lambda x: [tf.reduce_mean(read(x), axes, keepdims=keep)]), [_Value(value.rank if keep else
                                                                             value.rank - len(axes))]


def _softmax(graph, attributes, inputs):
    """Opset 11/12 Softmax: over every axis from ``axis`` on (the input taken as 2D there)."""
    value = inputs[0]
    axes = list(range(attributes.get("axis", 1) % value.rank, value.rank))
    read = _nchw(value)

    def run(x):
        x = read(x)
        exponential = tf.exp(x - tf.reduce_max(x, axes, keepdims=True))
        return [exponential / tf.reduce_sum(exponential, axes, keepdims=True)]
    return run, [_Value(value.rank)]


def _matmul(graph, attributes, inputs):
    if min(value.rank for value in inputs) < 2:
        raise FileFormatError("ONNX MatMul of a vector is not supported (both operands need rank >= 2)")
    readers = []
    for value in inputs:
        if value.constant is not None:
            weight = graph._weight(value.constant)
            readers.append(lambda x, w=weight: w)
        else:
            readers.append(_nchw(value))
    return (lambda a, b: [tf.matmul(readers[0](a), readers[1](b))]), [_Value(max(v.rank for v in inputs))]


SUPPORTED_OPS: dict[str, Callable | None] = {
    "Add": _elementwise("Add"), "Sub": _elementwise("Sub"), "Mul": _elementwise("Mul"),
    "Div": _elementwise("Div"), "Pow": _elementwise("Pow"),
    "Relu": _unary("Relu"), "Sigmoid": _unary("Sigmoid"), "Sqrt": _unary("Sqrt"),
    "HardSigmoid": _hard_sigmoid, "Clip": _clip, "Cast": _cast,
    "Conv": _conv, "ConvTranspose": _conv_transpose, "BatchNormalization": _batch_normalization,
    "GlobalAveragePool": _global_average_pool, "AveragePool": _average_pool, "Resize": _resize,
    "Concat": _concat, "Shape": _shape, "Reshape": _reshape, "Transpose": _transpose, "Slice": _slice,
    "Squeeze": _squeeze, "ReduceMean": _reduce_mean, "Softmax": _softmax, "MatMul": _matmul,
    "Constant": None,  # read by the compiler itself: its value becomes a constant
}
"""ONNX operator -> its compiler: exactly the operators of PP-OCRv4's text detector and recognizer."""
