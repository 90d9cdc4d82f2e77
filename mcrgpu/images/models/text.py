"""PaddleOCR PP-OCRv4's text detector and recognizer, rebuilt as TensorFlow ops from rapidocr's ONNX files.

The networks and their weights come from the ONNX files the ``rapidocr-onnxruntime`` 1.4.4 wheel
ships (Apache-2.0; nothing is downloaded): :class:`~mcrgpu.images.models.onnx_graph.OnnxGraph`
rebuilds each graph as TensorFlow ops, and the models add rapidocr's input normalisation, so
a SavedModel takes RGB images in 0..255 as read. An export is checked: the SavedModel, reloaded,
must agree with onnxruntime on sample images within :data:`TOLERANCE`, or nothing is written.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import tensorflow as tf

from mcrgpu.errors import FileFormatError, InvalidInputError

__all__ = ["build_text_detector", "build_text_recognizer", "TOLERANCE", "onnx_model_path", "max_difference",
           "onnxruntime_outputs"]

TOLERANCE = 1e-3
"""Largest absolute difference from onnxruntime an exported model may show on the check images."""

_FILES = {"text_detector": "ch_PP-OCRv4_det_infer.onnx", "text_recognizer": "ch_PP-OCRv4_rec_infer.onnx"}
_CLASSES = 6625
_NOTICE = """\
PaddleOCR PP-OCRv4 text detection and recognition models (ch_PP-OCRv4_det_infer, ch_PP-OCRv4_rec_infer)
Copyright (c) 2020 PaddlePaddle Authors. All Rights Reserved.
Converted to ONNX and distributed in rapidocr-onnxruntime 1.4.4 by RapidAI (https://github.com/RapidAI/RapidOCR).
Rebuilt as a TensorFlow SavedModel by mcrgpu from those ONNX files, weights unchanged.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use these files except in
compliance with the License. You may obtain a copy of the License at

    https://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and limitations under the License.
"""
_NOTICE_NAME = "LICENSE-PP-OCRv4.txt"


def onnx_model_path(name: str) -> Path:
    """The ONNX file of ``name`` ("text_detector" or "text_recognizer") inside the installed rapidocr wheel.

    Raises
    ------
    InvalidInputError
        rapidocr-onnxruntime, onnx or onnxruntime is not installed (the ``[ocr]`` extra).
    """
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None or not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):
        raise InvalidInputError(f"the {name} model needs rapidocr-onnxruntime, onnx and onnxruntime: "
                                'pip install "mcrgpu[ocr]"')
    path = Path(spec.origin).parent / "models" / _FILES[name]
    if not path.is_file():
        raise InvalidInputError(f"{path} is missing from the installed rapidocr-onnxruntime; reinstall it: "
                                'pip install --force-reinstall "mcrgpu[ocr]"')
    return path


def _normalized(image: tf.Tensor) -> tf.Tensor:
    """RGB 0..255 -> what PP-OCR's networks take: BGR (rapidocr reads with OpenCV), (x / 255 - 0.5) / 0.5."""
    return tf.reverse(image, [-1]) / 127.5 - 1.0


class _TextModel(tf.Module):
    """One PP-OCRv4 network: the rebuilt ONNX graph, its export check and licence notice."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        import onnx

        from mcrgpu.images.models.onnx_graph import OnnxGraph

        self._path = onnx_model_path(name)
        model = onnx.load(self._path)
        self.graph = OnnxGraph(model, name=f"{name}_graph")
        self._metadata = {entry.key: entry.value for entry in model.metadata_props}

    def signatures(self) -> dict:
        """The SavedModel signatures by name."""
        return {"serving_default": self.serve}

    def finish_export(self, directory: Path) -> None:
        """Add the licence notice to the written SavedModel and check it against onnxruntime.

        Raises
        ------
        FileFormatError
            The reloaded SavedModel differs from onnxruntime by more than :data:`TOLERANCE`.
        """
        (directory / "assets").mkdir(exist_ok=True)
        (directory / "assets" / _NOTICE_NAME).write_text(_NOTICE, encoding="utf-8")
        difference = max_difference(self.name, directory, self._check_images())
        if not difference <= TOLERANCE:
            raise FileFormatError(f"the exported {self.name} differs from onnxruntime by {difference:.3g} "
                                  f"(more than {TOLERANCE:g}) on the check images; the model was not written")


class _TextDetector(_TextModel):
    """``serve(image)`` -> ``probability``: PP-OCRv4's DB text-probability map."""

    def __init__(self) -> None:
        super().__init__("text_detector")

    @tf.function(autograph=False, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
    def serve(self, image):
        return {"probability": self.graph(_normalized(image))[0][:, 0]}

    def _check_images(self) -> list[np.ndarray]:
        page = _text_page(192, 320)
        return [page[None], np.stack([page, _noise(192, 320, seed=1)]), _noise(96, 64, seed=2)[None]]


class _TextRecognizer(_TextModel):
    """``serve(image)`` -> ``probabilities`` over the 6625 classes; ``characters()`` -> their strings."""

    def __init__(self) -> None:
        super().__init__("text_recognizer")
        if "character" not in self._metadata:
            raise FileFormatError(f"{self._path} holds no character list (metadata key 'character')")
        # rapidocr's CTCLabelDecode: the metadata's lines, " " appended, the CTC blank first
        characters = [""] + self._metadata["character"].splitlines() + [" "]
        if len(characters) != _CLASSES:
            raise FileFormatError(f"{self._path} lists {len(characters) - 2} characters; PP-OCRv4's recognizer "
                                  f"has {_CLASSES - 2} (plus the blank and the space)")
        self._characters = tf.constant(characters)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec((None, 48, None, 3), tf.float32, name="image")])
    def serve(self, image):
        return {"probabilities": self.graph(_normalized(image))[0]}

    @tf.function(autograph=False, input_signature=[])
    def characters(self):
        return {"characters": self._characters}

    def signatures(self) -> dict:
        return {"serving_default": self.serve, "characters": self.characters}

    def _check_images(self) -> list[np.ndarray]:
        page = _text_page(48 * 3, 960)
        lines = [page[48 * row:48 * (row + 1)] for row in range(3)]
        return [np.stack(lines), lines[0][None, :, :320], _noise(48, 1024, seed=3)[None]]


def onnxruntime_outputs(name: str, images: list[np.ndarray]) -> list[np.ndarray]:
    """What onnxruntime gives for ``images`` from the ONNX file of ``name``, in the SavedModel's layout.

    The reference of the export check: rapidocr's preprocessing (BGR, ``(x / 255 - 0.5) / 0.5``,
    NCHW) and the ONNX graph on onnxruntime's CPU provider.

    Parameters
    ----------
    name : {"text_detector", "text_recognizer"}
        The model.
    images : list of ndarray
        Batches (B, H, W, 3) of RGB images in 0..255.

    Returns
    -------
    list of ndarray
        Per batch: the detector's ``probability`` (B, H, W) or the recognizer's ``probabilities`` (B, T, 6625).
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_model_path(name)), providers=["CPUExecutionProvider"])
    outputs = []
    for batch in images:
        x = (np.asarray(batch, np.float32)[..., ::-1] / 127.5 - 1.0).transpose(0, 3, 1, 2)
        (output,) = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})
        outputs.append(output[:, 0] if name == "text_detector" else output)
    return outputs


def max_difference(name: str, directory: str | Path, images: list[np.ndarray]) -> float:
    """Largest absolute difference between the SavedModel in ``directory`` and onnxruntime over ``images``.

    Parameters
    ----------
    name : {"text_detector", "text_recognizer"}
        The model the SavedModel holds.
    directory : str or Path
        The SavedModel.
    images : list of ndarray
        Batches (B, H, W, 3) of RGB images in 0..255, each fed to both.

    Returns
    -------
    float
        The difference; infinite if an output's shape differs from onnxruntime's.
    """
    signature = tf.saved_model.load(str(directory)).signatures["serving_default"]
    difference = 0.0
    for batch, reference in zip(images, onnxruntime_outputs(name, images)):
        output = next(iter(signature(image=tf.constant(batch, tf.float32)).values())).numpy()
        if output.shape != reference.shape:
            return float("inf")
        difference = max(difference, float(np.max(np.abs(output - reference))))
    return difference


def _text_page(height: int, width: int) -> np.ndarray:
    """Dark lines of text on a light background, RGB float32 0..255: Pillow's bitmap font drawn at a
    third of the size (rows 16 pixels apart), enlarged 3 times."""
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (width // 3, height // 3), (236, 232, 224))
    draw = ImageDraw.Draw(page)
    for row, text in enumerate(["Microstructure 2026 MCR", "reconstruction on GPUs", "PP-OCRv4 text 0123 4567"]):
        draw.text((3 + 5 * row, 3 + 16 * row), text, fill=(20, 24, 40))
    return np.asarray(page.resize((width, height), Image.BILINEAR), np.float32)


def _noise(height: int, width: int, *, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)


def _build(cls, compute_dtype: str) -> tf.Module:
    if compute_dtype != "float32":
        raise InvalidInputError(f"the text models compute in float32 only; received precision {compute_dtype!r}: "
                                "export them with --precision float32")
    return cls()


def build_text_detector(*, compute_dtype: str = "float32") -> tf.Module:
    """Build PP-OCRv4's text detector from rapidocr-onnxruntime's ONNX file (needs the ``[ocr]`` extra).

    Parameters
    ----------
    compute_dtype : {"float32"}
        The model computes in float32 only (its export is checked against onnxruntime's float32).

    Returns
    -------
    tf.Module
        With ``serve(image)``: RGB images (B, H, W, 3) float32 in 0..255, H and W multiples of 32;
        returns ``probability`` (B, H, W) float32, the DB text-probability map.

    Raises
    ------
    InvalidInputError
        ``compute_dtype`` is not float32, or the ``[ocr]`` extra is not installed.

    References
    ----------
    M. Liao, Z. Wan, C. Yao, K. Chen, X. Bai, "Real-time scene text detection with differentiable
    binarization", AAAI 2020. PaddleOCR PP-OCRv4, https://github.com/PaddlePaddle/PaddleOCR.
    """
    return _build(_TextDetector, compute_dtype)


def build_text_recognizer(*, compute_dtype: str = "float32") -> tf.Module:
    """Build PP-OCRv4's text recognizer from rapidocr-onnxruntime's ONNX file (needs the ``[ocr]`` extra).

    ``compute_dtype`` and the errors are those of :func:`build_text_detector`.

    Returns
    -------
    tf.Module
        With ``serve(image)``: RGB text-line images (B, 48, W, 3) float32 in 0..255, W >= 8; returns
        ``probabilities`` (B, T, 6625) float32 (T = W / 8 for W a multiple of 8), a softmax per
        column for CTC decoding; and ``characters()``: ``characters`` (6625,) string, class 0 the
        CTC blank (""), then rapidocr's character list and " ".

    References
    ----------
    A. Graves, S. Fernandez, F. Gomez, J. Schmidhuber, "Connectionist temporal classification",
    ICML 2006. Y. Du et al., "SVTR: Scene text recognition with a single visual model", IJCAI 2022.
    """
    return _build(_TextRecognizer, compute_dtype)
