"""The built-in binning models: image statistics against NumPy/scikit-image, micrograph descriptors, the face detector."""

import csv

import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf
from PIL import Image

from mcrgpu.errors import InvalidInputError
from mcrgpu.images import bin_images
from mcrgpu.images.models import build_model, export_model, known_models

from .binning_support import write_rules

LUMA = np.array([0.299, 0.587, 0.114])


def photo(name, step=1):
    from skimage import data

    image = getattr(data, name)()[::step, ::step]
    return np.ascontiguousarray(image)


def run(model, image):
    x = image.astype(np.float32) / 255.0
    x = x if x.ndim == 3 else x[..., None]
    return {name: value.numpy()[0] for name, value in model.serve(tf.constant(x[None])).items()}


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_image_statistics_equal_their_numpy_definitions(name):
    from skimage.measure import shannon_entropy

    image = photo(name, 2)
    stats = run(build_model("image_statistics"), image)
    grey = (image / 255.0 @ LUMA if image.ndim == 3 else image / 255.0) * 255.0
    laplacian = ndi.convolve(grey, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])[1:-1, 1:-1]
    np.testing.assert_allclose(stats["sharpness"], laplacian.var(), rtol=1e-4)
    assert stats["entropy"] == pytest.approx(shannon_entropy(np.round(grey).astype(np.uint8)), abs=1e-4)
    assert stats["mean_intensity"] == pytest.approx(grey.mean() / 255.0, abs=1e-5)
    if image.ndim == 3:
        rgb = image.astype(np.float64)
        rg, yb = rgb[..., 0] - rgb[..., 1], 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
        expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
        assert stats["colourfulness"] == pytest.approx(expected, rel=1e-4)
    else:
        assert stats["colourfulness"] == 0.0
    assert 0.05 < stats["edge_density"] < 0.5


def test_blur_lowers_sharpness_and_edges_a_flat_image_has_none():
    model = build_model("image_statistics")
    image = photo("camera", 2).astype(np.float64)
    sharp, blurred = run(model, image), run(model, ndi.gaussian_filter(image, 3))
    assert blurred["sharpness"] < 0.1 * sharp["sharpness"] and blurred["edge_density"] < sharp["edge_density"]
    flat = run(model, np.full((20, 30), 128.0))
    assert (flat["sharpness"], flat["edge_density"], flat["entropy"]) == (0.0, 0.0, 0.0)


def blobs(sigma, fraction=0.3, shape=(192, 160), seed=0):
    field = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return (field > np.quantile(field, 1 - fraction)).astype(np.float64) * 255.0


@pytest.mark.slow
def test_microstructure_descriptors_phase_fraction_interface_and_correlation_length():
    model = build_model("microstructure_descriptors")
    small, large = run(model, blobs(2)), run(model, blobs(6))
    assert small["phase_fraction"] == pytest.approx(0.3, abs=1e-6)
    assert large["phase_fraction"] == pytest.approx(0.3, abs=1e-6)
    assert 2.5 * small["correlation_length"] < large["correlation_length"] < 3.5 * small["correlation_length"]
    for sigma, values in ((2, small), (6, large)):  # s = pi/4 x unlike axis neighbours per pixel (Torquato)
        field = blobs(sigma) > 0
        unlike = (np.diff(field, axis=0).sum() + np.diff(field, axis=1).sum()) / field.size
        assert values["interface_density"] == pytest.approx(np.pi / 4 * unlike, rel=0.05)
    grey = blobs(4) * 0.5 + 60.0  # a grey-level micrograph: levels 60 and 187, split by Otsu's threshold
    assert run(model, grey)["phase_fraction"] == pytest.approx(0.3, abs=1e-6)
    single = run(model, np.zeros((64, 64)))
    assert (single["phase_fraction"], single["correlation_length"]) == (0.0, 0.0)


def test_microstructure_descriptors_reject_images_smaller_than_the_window():
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than the 64x64 window"):
        run(build_model("microstructure_descriptors"), np.zeros((40, 80)))


@pytest.mark.parametrize("name", ["image_statistics", "microstructure_descriptors", "faces"])
def test_binning_models_compute_in_float32_only(name):
    assert name in known_models()
    with pytest.raises(InvalidInputError, match="float32 only"):
        build_model(name, precision="mixed_bfloat16")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("binning_models")
    return {name: export_model(name, folder / name) for name in ("faces", "image_statistics")}


@pytest.mark.slow
def test_face_detector_builds_without_the_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the face detector tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = build_model("faces")
    assert len(model.variables) == 48  # PNet 13, RNet 16, ONet 19 arrays (not its landmark layer) from the wheel


@pytest.mark.slow
def test_face_detector_finds_the_astronaut_and_no_face_in_coffee_or_chelsea(exported):
    serve = tf.saved_model.load(str(exported["faces"])).signatures["serving_default"]
    results = {}
    for name in ("astronaut", "coffee", "chelsea"):
        image = tf.constant(photo(name, 2)[None].astype(np.float32) / 255.0)
        results[name] = {key: value.numpy()[0] for key, value in serve(image=image).items()}
    assert results["astronaut"]["face_count"] == 1 and results["astronaut"]["max_confidence"] > 0.99
    assert 0.02 < results["astronaut"]["largest_face_fraction"] < 0.06
    for name in ("coffee", "chelsea"):
        assert results[name]["face_count"] == 0 and results[name]["max_confidence"] == 0.0


@pytest.mark.slow
def test_face_detector_gives_what_the_mtcnn_package_gives(exported):
    from mtcnn import MTCNN

    serve = tf.saved_model.load(str(exported["faces"])).signatures["serving_default"]
    package = MTCNN(stages="face_and_landmarks_detection")
    for name in ("astronaut", "camera", "coffee"):
        image = photo(name, 2)
        image = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
        ours = serve(image=tf.constant(image[None].astype(np.float32) / 255.0))
        theirs = package.detect_faces(image)
        assert int(ours["face_count"][0]) == len(theirs)
        best = max((face["confidence"] for face in theirs), default=0.0)
        assert float(ours["max_confidence"][0]) == pytest.approx(best, abs=1e-4)


PHOTO_RULES = """
default = "other"
[models.faces]
path = "{faces}"
[models.stats]
path = "{stats}"
[[bins]]
name = "grey"
when = ["stats.colourfulness < 1"]
[[bins]]
name = "faces"
when = ["faces.face_count >= 1", "faces.max_confidence > 0.95"]
[[bins]]
name = "colourful"
when = ["stats.colourfulness > 50"]
"""


@pytest.mark.slow
def test_photographs_binned_by_the_face_detector_and_image_statistics(tmp_path, exported):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        Image.fromarray(photo(name, 2)).save(folder / f"{name}.png")
    rules = write_rules(tmp_path / "rules.toml", PHOTO_RULES.format(faces=exported["faces"],
                                                                     stats=exported["image_statistics"]))
    summary = bin_images(folder, rules, out=tmp_path / "bins.csv", progress=False)
    with open(tmp_path / "bins.csv", newline="") as handle:
        rows = {row["image"].rsplit("/", 1)[-1]: row for row in csv.DictReader(handle)}
    assert {name: row["bin"] for name, row in rows.items()} == {
        "astronaut.png": "faces", "camera.png": "grey", "chelsea.png": "other", "coffee.png": "colourful"}
    # the cameraman has a face too: the grey bin comes first, so precedence keeps it out of "faces"
    assert int(rows["camera.png"]["faces.face_count"]) == 1
    assert summary.bins == {"grey": 1, "faces": 1, "colourful": 1, "other": 1} and summary.exit_code == 0
