"""Bad files of every kind: each loader either loads or raises the package's error, never anything else."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from mcrgpu.errors import FileFormatError, McrgpuError
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.characterization_files import load_characterization, save_characterization
from mcrgpu.mcr.microstructure_io import MAX_PHASES, load_microstructure
from mcrgpu.mcr.synthetic import gaussian_random_structure

PROPERTY = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True, scope="module")
def hypothesis_home_in_tmp(tmp_path_factory):
    """Hypothesis keeps caches in ./.hypothesis; keep them out of the working copy."""
    from hypothesis import configuration

    configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


LABELS = np.array([[0, 1, 1], [1, 0, 2], [2, 2, 0]], np.uint8)


@pytest.mark.parametrize("name, content, fragment", [
    ("empty.npy", b"", "not a valid .npy file"),
    ("empty.tif", b"", "not a readable TIFF file"),
    ("empty.png", b"", "not a readable image"),
    ("truncated.npy", npy_bytes(LABELS)[:-4], "not a valid .npy file"),
    ("truncated.png", png_bytes(LABELS * 100)[:40], "not a readable image"),
    ("random.npy", bytes(range(256)) * 4, "not a valid .npy file"),
    ("random.tif", bytes(range(256)) * 4, "not a readable TIFF file"),
    ("text.npy", b"0 1\n1 0\n", "not a valid .npy file"),
    ("float.npy", npy_bytes(np.array([[0.5, 1.0], [0.0, 1.0]])), "non-integral values"),
    ("nan.npy", npy_bytes(np.array([[0.0, np.nan], [1.0, 0.0]])), "NaN or infinite"),
    ("one_phase.npy", npy_bytes(np.ones((4, 4), np.int8)), "single phase"),
    ("line.npy", npy_bytes(np.array([0, 1, 0, 1])), "expected a 2D or 3D array"),
    ("four_d.npy", npy_bytes(np.zeros((2, 2, 2, 2), int)), "expected a 2D or 3D array"),
    ("phases.npy", npy_bytes(np.arange(4096).reshape(64, 64)), f"4096 distinct labels; mcrgpu reads at most {MAX_PHASES}"),
    ("grey.png", png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8)), "distinct grey values"),
    ("strings.npy", npy_bytes(np.array([["a", "b"], ["b", "a"]])), "got dtype <U1"),
])
def test_bad_microstructure_files_raise_file_format_errors(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=fragment.replace("(", r"\(")):
        load_microstructure(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        load_microstructure(tmp_path / "missing.npy")
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(FileFormatError, match="not a regular file"):
        load_microstructure(tmp_path / "folder.npy")


def test_small_negative_and_boundary_labels_load(tmp_path):
    np.save(tmp_path / "neg.npy", np.array([[-1, 0], [2, -1]]))
    assert load_microstructure(tmp_path / "neg.npy").phase_values == (-1, 0, 2)
    labels = np.arange(MAX_PHASES).reshape(8, 8)
    np.save(tmp_path / "limit.npy", labels)
    assert load_microstructure(tmp_path / "limit.npy").n_phases == MAX_PHASES


@pytest.fixture(scope="module")
def characterization_bytes(tmp_path_factory):
    ms = gaussian_random_structure((16, 16), seed=0)
    path = tmp_path_factory.mktemp("characterization") / "ms_characterization.npz"
    save_characterization(path, characterize(ms, ["Correlations", "VolumeFractions"], limit_to=3))
    return path.read_bytes()


def _raw_error(data: bytes) -> BaseException | None:
    """What NumPy itself raises reading every array of ``data`` (an .npz), or None."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            for key in archive.files:
                archive[key]
    except BaseException as error:  # noqa: BLE001 - the test looks at the type
        return error
    return None


def test_byte_flipped_characterizations_load_or_raise_file_format_error(tmp_path, characterization_bytes):
    """Flip one byte at a time (every 7th position): corrupt compressed data must not leak zlib.error."""
    path = tmp_path / "flipped.npz"
    raw_zlib_errors = 0
    for position in range(0, len(characterization_bytes), 7):
        data = bytearray(characterization_bytes)
        data[position] ^= 0xFF
        raw_zlib_errors += isinstance(_raw_error(bytes(data)), zlib.error)
        path.write_bytes(bytes(data))
        try:
            load_characterization(path)
        except FileFormatError:
            pass
    assert raw_zlib_errors > 0  # the case the loader must turn into FileFormatError did occur


@PROPERTY
@given(suffix=st.sampled_from([".npy", ".tif", ".png", ".bmp", ".npz", ".pickle"]),
       content=st.binary(max_size=600))
def test_random_bytes_load_or_raise_mcrgpu_error(tmp_path, suffix, content):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(content)
    loader = load_characterization if suffix in (".npz", ".pickle") else load_microstructure
    try:
        loader(path)
    except McrgpuError:
        pass




@PROPERTY
@given(array=hnp.arrays(dtype=st.sampled_from([np.bool_, np.int8, np.uint8, np.int64, np.float32, np.float64]),
                        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)),
       suffix=st.sampled_from([".npy", ".tif"]))
def test_random_arrays_load_or_raise_mcrgpu_error(tmp_path, array, suffix):
    path = tmp_path / f"array{suffix}"
    try:
        if suffix == ".npy":
            np.save(path, array)
        else:
            import tifffile
            tifffile.imwrite(path, array)
    except Exception:  # noqa: BLE001 - an array tifffile cannot write is no loader case
        return
    try:
        ms = load_microstructure(path)
    except McrgpuError:
        return
    assert 2 <= ms.n_phases <= MAX_PHASES and ms.labels.ndim in (2, 3)


@settings(max_examples=12, deadline=None, database=None)
@given(array=hnp.arrays(dtype=np.int8, shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=7),
                        elements=st.integers(-2, 3)),
       limit_to=st.integers(-1, 5))
def test_random_arrays_characterize_or_raise_mcrgpu_error(array, limit_to):
    try:
        result = characterize(array, ["Correlations", "VolumeFractions"], limit_to=limit_to)
    except McrgpuError:
        return
    assert all(np.all(np.isfinite(value)) for value in result.descriptors.values())
