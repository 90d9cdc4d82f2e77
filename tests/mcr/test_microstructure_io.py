"""Tests for mcrgpu.mcr.microstructure_io: reading and writing phase-label files."""

import pickle

import numpy as np
import pytest
import tifffile
from PIL import Image

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.microstructure_io import SUPPORTED_SUFFIXES, load_microstructure, save_microstructure



@pytest.fixture
def rng():
    return np.random.default_rng(1)


def _three_phase(rng, shape, values=(1, 2, 5)):
    labels = rng.choice(values, size=shape)
    labels.flat[: len(values)] = values
    return Microstructure(labels)


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".tiff"])
@pytest.mark.parametrize("shape", [(8, 9), (3, 8, 9)])
def test_round_trip_keeps_labels_and_phase_values(tmp_path, rng, suffix, shape):
    ms = _three_phase(rng, shape)
    path = save_microstructure(tmp_path / f"ms{suffix}", ms)
    assert path == tmp_path / f"ms{suffix}"
    back = load_microstructure(path)
    assert back.shape == shape
    assert back.phase_values == (1, 2, 5)
    np.testing.assert_array_equal(back.labels, ms.labels)


def test_round_trip_indices_only(tmp_path, rng):
    ms = _three_phase(rng, (6, 6))
    back = load_microstructure(save_microstructure(tmp_path / "ms.npy", ms, original_labels=False))
    assert back.phase_values == (0, 1, 2)
    np.testing.assert_array_equal(back.labels, ms.labels)


def test_tif_stack_of_three_frames_is_a_volume_not_rgb(tmp_path, rng):
    ms = Microstructure(rng.integers(0, 2, size=(4, 5, 3)))
    back = load_microstructure(save_microstructure(tmp_path / "v.tif", ms))
    assert back.shape == (4, 5, 3)
    np.testing.assert_array_equal(back.labels, ms.labels)


@pytest.mark.parametrize("suffix", [".png", ".bmp"])
def test_image_round_trip_spreads_grey_values(tmp_path, rng, suffix):
    ms = _three_phase(rng, (7, 10))
    path = save_microstructure(tmp_path / f"ms{suffix}", ms)
    with Image.open(path) as image:
        assert np.unique(np.array(image.convert("L"))).tolist() == [0, 128, 255]
    back = load_microstructure(path)
    assert back.phase_values == (0, 128, 255)
    np.testing.assert_array_equal(back.labels, ms.labels)


def test_rgb_png_converted_to_grey(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[:2] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    ms = load_microstructure(tmp_path / "rgb.png")
    assert ms.phase_values == (0, 255)
    np.testing.assert_allclose(ms.volume_fractions(), [0.5, 0.5])


def test_image_volume_refused(tmp_path, rng):
    ms = Microstructure(rng.integers(0, 2, size=(2, 3, 4)))
    with pytest.raises(InvalidInputError, match=r"2D images only.*use .tif or .npy"):
        save_microstructure(tmp_path / "v.png", ms)
    assert not list(tmp_path.iterdir())


def test_grey_gradient_png_needs_threshold(tmp_path):
    gradient = np.tile(np.arange(256, dtype=np.uint8), (4, 1))  # 4 x 256, grey 0..255
    path = tmp_path / "grey.png"
    Image.fromarray(gradient).save(path)
    with pytest.raises(FileFormatError, match=r"256 distinct grey values.*not segmented.*threshold="):
        load_microstructure(path)
    fraction = load_microstructure(path, threshold=0.5)
    np.testing.assert_array_equal(fraction.labels, gradient >= 127.5)
    raw = load_microstructure(path, threshold=200)
    np.testing.assert_array_equal(raw.labels, gradient >= 200)
    np.testing.assert_allclose(raw.volume_fractions()[1], 56 / 256)
    with pytest.raises(InvalidInputError, match="threshold=300.0 puts every voxel"):
        load_microstructure(path, threshold=300)
    with pytest.raises(InvalidInputError, match="threshold must be a finite number"):
        load_microstructure(path, threshold=float("nan"))


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match=r"nope\.npy does not exist"):
        load_microstructure(tmp_path / "nope.npy")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "ms.jpg"
    path.write_bytes(b"x")
    with pytest.raises(FileFormatError, match=r"unsupported file type '.jpg'; supported: .npy, .tif"):
        load_microstructure(path)
    with pytest.raises(FileFormatError, match="unsupported file type"):
        save_microstructure(tmp_path / "ms.vtk", Microstructure(np.eye(3, dtype=int)))
    assert SUPPORTED_SUFFIXES == (".npy", ".tif", ".tiff", ".png", ".bmp")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("x.npy", "not a valid .npy file"), ("x.tif", "not a readable TIFF"), ("x.png", "not a readable image")],
)
def test_corrupt_file(tmp_path, name, fragment):
    path = tmp_path / name
    path.write_bytes(b"\x00garbage, not a file of this kind\xff" * 8)
    with pytest.raises(FileFormatError, match=fragment) as info:
        load_microstructure(path)
    assert name in str(info.value)


def test_truncated_npy(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, np.arange(100).reshape(10, 10) % 2)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(FileFormatError, match=r"cut\.npy: not a valid .npy file"):
        load_microstructure(path)


def test_pickled_object_array_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([[0, 1], [1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="object \\(pickled\\) array, which mcrgpu never loads"):
        load_microstructure(path)
    raw_pickle = tmp_path / "raw.npy"
    raw_pickle.write_bytes(pickle.dumps(np.eye(2)))
    with pytest.raises(FileFormatError, match="not a valid .npy file"):
        load_microstructure(raw_pickle)


def test_file_content_errors_name_the_file(tmp_path):
    one_phase = tmp_path / "flat.npy"
    np.save(one_phase, np.zeros((4, 4), dtype=int))
    with pytest.raises(FileFormatError, match=r"flat\.npy: labels has a single phase"):
        load_microstructure(one_phase)
    fractional = tmp_path / "soft.tif"
    tifffile.imwrite(fractional, np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    fragment = r"soft\.tif: has non-integral values.*not segmented; pass threshold="
    with pytest.raises(FileFormatError, match=fragment):
        load_microstructure(fractional)
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, np.arange(64, dtype=np.uint8).reshape(8, 8))
    with pytest.raises(FileFormatError, match=r"grey\.tif: has 64 distinct grey values"):
        load_microstructure(grey)
    assert load_microstructure(fractional, threshold=0.5).volume_fractions()[1] == 0.5


def test_real_pymks_microstructure(data_dir):
    path = data_dir / "pymks_ms_64x64_2.npy"
    ms = load_microstructure(path)
    assert ms.shape == (64, 64)
    assert ms.n_phases == 2 and ms.phase_values == (0, 1)
    np.testing.assert_allclose(ms.volume_fractions().sum(), 1.0)
    np.testing.assert_array_equal(ms.labels, np.load(path))


@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7)])
def test_vti_file_reads_back_in_vtk_with_the_labels_as_cell_data(tmp_path, rng, shape):
    """Kitware's reader (the one ParaView uses) sees one cell per pixel, array axis 0 as x, and
    the original phase values."""
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    labels = rng.integers(0, 3, size=shape)
    ms = Microstructure(labels * 100 + 7)  # phase values 7, 107, 207
    path = save_microstructure(tmp_path / "ms.vti", ms)
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    cells = shape + (1,) * (3 - len(shape))
    assert tuple(image.GetDimensions()) == tuple(n + 1 for n in cells)  # points: one more than cells
    values = vtk_to_numpy(image.GetCellData().GetArray("phase"))
    np.testing.assert_array_equal(values.reshape(cells, order="F").reshape(shape), labels * 100 + 7)


def test_vti_is_written_not_read(tmp_path, rng):
    path = save_microstructure(tmp_path / "ms.vti", Microstructure(rng.integers(0, 2, size=(4, 4))))
    with pytest.raises(FileFormatError, match="unsupported file type '.vti'"):
        load_microstructure(path)
