"""Band reading of every raster kind (memmap, tiles, strips, planes, PNG) and in-place band writing."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from mcrgpu.errors import FileFormatError
from mcrgpu.images.rasters import RasterWriter, open_raster


def write(path, image):
    kinds = {"contiguous.tif": {"planarconfig": "contig"},
             "tiled.tif": {"tile": (16, 16), "compression": "zlib", "planarconfig": "contig"},
             "strips.tif": {"rowsperstrip": 5, "compression": "zlib", "planarconfig": "contig"},
             "planar.tif": {"tile": (16, 16), "planarconfig": "separate"}}
    if path.suffix == ".npy":
        np.save(path, image)
    elif path.suffix == ".png":
        Image.fromarray(image).save(path)
    else:
        data = np.moveaxis(image, -1, 0) if "planar" in path.name else image
        tifffile.imwrite(path, data, photometric="minisblack", **kinds[path.name])


@pytest.mark.parametrize("name", ["contiguous.tif", "tiled.tif", "strips.tif", "planar.tif", "raster.npy",
                                  "raster.png"])
def test_rows_read_equal_the_image_with_zeros_beyond(tmp_path, name):
    image = np.random.default_rng(0).integers(0, 255, (45, 38, 3), dtype=np.uint8)
    write(tmp_path / name, image)
    with open_raster(tmp_path / name) as reader:
        assert reader.shape == (45, 38, 3)
        assert np.array_equal(reader.read_rows(10, 27), image[10:27])
        padded = reader.read_rows(-4, 50)
        assert np.array_equal(padded[4:49], image) and not padded[:4].any() and not padded[49:].any()
        if name == "contiguous.tif":
            assert isinstance(reader._array, np.memmap)


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_bands_written_in_place_and_resumed(tmp_path, suffix):
    image = np.random.default_rng(1).random((300, 270, 2)).astype(np.float32)
    path = tmp_path / f"out{suffix}"
    writer = RasterWriter(path, image.shape, image.dtype)
    writer.write_rows(0, image[:100])
    writer.close()
    writer = RasterWriter(path, image.shape, image.dtype, resume=True)
    writer.write_rows(100, image[100:300])
    writer.close()
    result = tifffile.imread(path) if suffix == ".tif" else np.load(path)
    assert np.array_equal(result, image)


def test_unreadable_rasters(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((6, 10, 12), np.uint8), photometric="minisblack")
    with pytest.raises(FileFormatError, match="a stack of shape"):
        open_raster(tmp_path / "stack.tif")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(FileFormatError, match="not a readable TIFF"):
        open_raster(tmp_path / "bad.tif")
    with pytest.raises(FileFormatError, match="unknown raster kind"):
        open_raster(tmp_path / "raster.gif")
