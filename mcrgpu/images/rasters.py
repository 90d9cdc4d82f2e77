"""Rasters read and written by bands of rows: memory-mapped or segment-wise TIFF, .npy memmaps, whole PNG/JPEG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.images.decode import read_image, short_reason

__all__ = ["GEO_TAGS", "RASTER_SUFFIXES", "RasterReader", "RasterWriter", "open_raster"]

GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
"""GeoTIFF georeferencing tags copied to the output: ModelPixelScale, ModelTiepoint, ModelTransformation,
GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams, GDAL_METADATA, GDAL_NODATA."""

RASTER_SUFFIXES = (".tif", ".tiff", ".npy", ".png", ".jpg", ".jpeg", ".bmp")
_TIFF = (".tif", ".tiff")
_OUTPUT_TILE = 256  # tile edge of the TIFF files written (a multiple of 16, as TIFF requires)


class RasterReader:
    """Rows of a 2D raster, (H, W, C), read on demand; rows outside the raster read as zeros.

    Uncompressed contiguous TIFF and ``.npy`` files are memory-mapped; other TIFF files are read
    segment by segment (tiles or strips, each decoded by tifffile) so that a band of rows never
    needs the whole image; PNG, JPEG and BMP are decoded whole.
    """

    def __init__(self, path: Path, array: Any, *, tiff: Any = None, page: Any = None,
                 geotags: tuple = ()) -> None:
        self.path, self._array, self._tiff, self._page = path, array, tiff, page
        self.geotags = geotags
        if page is not None:
            self.shape = (int(page.imagelength), int(page.imagewidth), int(page.samplesperpixel))
            self.dtype = np.dtype(page.dtype)
        else:
            self.shape, self.dtype = tuple(array.shape), array.dtype

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (may reach beyond the raster: zeros there), (stop - start, W, C)."""
        height, width, channels = self.shape
        out = np.zeros((stop - start, width, channels), self.dtype)
        low, high = max(start, 0), min(stop, height)
        if low >= high:
            return out
        if self._page is None:
            out[low - start:high - start] = self._array[low:high]
        else:
            self._read_segments(out, start, low, high)
        return out

    def _read_segments(self, out: np.ndarray, start: int, low: int, high: int) -> None:
        page, handle = self._page, self._tiff.filehandle
        height, width, channels = self.shape
        if page.is_tiled:
            seg_rows, seg_cols = int(page.tilelength), int(page.tilewidth)
        else:
            seg_rows, seg_cols = int(page.rowsperstrip) or height, width
        across = -(-width // seg_cols)
        down = -(-height // seg_rows)
        planes = channels if page.planarconfig == 2 else 1
        for plane in range(planes):
            for row in range(low // seg_rows, (high - 1) // seg_rows + 1):
                for column in range(across):
                    index = (plane * down + row) * across + column
                    handle.seek(page.dataoffsets[index])
                    try:
                        segment, where, _ = page.decode(handle.read(page.databytecounts[index]), index)
                    except Exception as error:  # tifffile raises many kinds for corrupt or unsupported data
                        raise FileFormatError(f"{self.path}: segment {index} not readable "
                                              f"({short_reason(error)})") from None
                    segment = segment[0]  # (rows, cols, samples) of this tile or strip
                    y, x = where[2], where[3]
                    rows = slice(max(low, y), min(high, y + segment.shape[0], height))
                    cols = min(width, x + segment.shape[1]) - x
                    target = out[rows.start - start:rows.stop - start, x:x + cols]
                    values = segment[rows.start - y:rows.stop - y, :cols]
                    if planes > 1:
                        target[..., plane] = values[..., 0]
                    else:
                        target[...] = values

    def close(self) -> None:
        if self._tiff is not None:
            self._tiff.close()

    def __enter__(self) -> "RasterReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_raster(path: str | Path) -> RasterReader:
    """Open a raster for band reading; the caller closes it.

    Raises
    ------
    FileFormatError
        Missing file, unknown kind, unreadable file, or not a 2D raster with at most 4 channels.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        raise FileFormatError(f"{path}: unknown raster kind {suffix!r}; expected one of {', '.join(RASTER_SUFFIXES)}")
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    if suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise FileFormatError(f"{path}: not a readable .npy array ({short_reason(error)})") from None
        if array.ndim == 2:
            array = array[..., np.newaxis]
        _check_raster(path, array.shape)
        return RasterReader(path, array)
    if suffix in _TIFF:
        return _open_tiff(path)
    return RasterReader(path, read_image(path))


def _check_raster(path: Path, shape: tuple) -> None:
    if len(shape) != 3 or shape[-1] > 4 or min(shape) == 0:
        raise FileFormatError(f"{path}: shape {tuple(shape)} is not a raster (H, W) or (H, W, C) with C <= 4")


def _open_tiff(path: Path) -> RasterReader:
    import tifffile

    try:
        tiff = tifffile.TiffFile(path)
        page = tiff.pages.first
    except Exception as error:  # tifffile raises many kinds for corrupt files
        raise FileFormatError(f"{path}: not a readable TIFF file ({short_reason(error)})") from None
    geotags = tuple(_extratag(tag) for tag in page.tags.values() if tag.code in GEO_TAGS)
    series_shape = tuple(tiff.series[0].shape) if tiff.series else page.shape
    if int(page.imagedepth) != 1 or np.prod(series_shape) != np.prod(page.shape):
        tiff.close()
        raise FileFormatError(f"{path}: a stack of shape {series_shape} is no 2D raster; give one image (H, W[, C]) "
                              "(tifffile writes (H, W, C) as one image with planarconfig='contig')")
    _check_raster(path, (int(page.imagelength), int(page.imagewidth), int(page.samplesperpixel)))
    if page.is_memmappable and page.planarconfig != 2:
        array = tifffile.memmap(path, page=0, mode="r").reshape(
            int(page.imagelength), int(page.imagewidth), int(page.samplesperpixel))
        return RasterReader(path, array, tiff=tiff, geotags=geotags)
    return RasterReader(path, None, tiff=tiff, page=page, geotags=geotags)


def _extratag(tag: Any) -> tuple:
    """A tag as tifffile's ``extratags`` entry (code, dtype, count, value, write once)."""
    count = 0 if int(tag.dtype) == 2 else tag.count  # ASCII: tifffile counts the bytes itself
    return int(tag.code), int(tag.dtype), count, tag.value, True


class RasterWriter:
    """An output raster written in place by bands of rows: a tiled (Big)TIFF or a ``.npy`` memmap.

    The file is created once at its full shape; :meth:`write_rows` puts each band where it
    belongs (TIFF: the band's rows of every tile it crosses, one contiguous write per tile), and
    :meth:`flush` makes what was written durable. Reopening an existing file of the same shape and
    dtype resumes it.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, *, geotags: tuple = (),
                 resume: bool = False) -> None:
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)
        self._npy = path.suffix.lower() == ".npy"
        if self._npy:
            self._open_npy(resume)
        else:
            self._open_tiff(geotags, resume)

    def _open_npy(self, resume: bool) -> None:
        if resume:
            self._array = np.load(self.path, mmap_mode="r+", allow_pickle=False)
            self._check(self._array.shape, self._array.dtype)
        else:
            self._array = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)

    def _open_tiff(self, geotags: tuple, resume: bool) -> None:
        import tifffile

        height, width = self.shape[:2]
        if not resume:
            tile = min(_OUTPUT_TILE, 16 * -(-max(height, width) // 16))
            bigtiff = np.prod(self.shape, dtype=np.int64) * self.dtype.itemsize > 2**32 - 2**25
            tifffile.imwrite(self.path, shape=self.shape, dtype=self.dtype, tile=(tile, tile), bigtiff=bigtiff,
                             photometric="minisblack", planarconfig="contig" if len(self.shape) == 3 else None,
                             extratags=list(geotags), metadata=None)
        with tifffile.TiffFile(self.path) as tiff:
            page = tiff.pages.first
            shape = (int(page.imagelength), int(page.imagewidth)) + \
                ((int(page.samplesperpixel),) if len(self.shape) == 3 else ())
            self._check(shape, page.dtype)
            if not page.is_tiled or page.compression != 1:
                raise FileFormatError(f"{self.path}: not an uncompressed tiled TIFF written by mcrgpu; "
                                      "rerun with overwrite to start it afresh")
            self._tile = (int(page.tilelength), int(page.tilewidth))
            self._offsets = np.asarray(page.dataoffsets, np.int64)
        self._fd = os.open(self.path, os.O_RDWR)

    def _check(self, shape: tuple, dtype: Any) -> None:
        if tuple(shape) != self.shape or np.dtype(dtype) != self.dtype:
            raise InvalidInputError(f"{self.path} holds a {np.dtype(dtype)} raster of shape {tuple(shape)}, not the "
                                    f"{self.dtype} {self.shape} this run writes; use overwrite to start afresh")

    def write_rows(self, start: int, values: np.ndarray) -> None:
        """Write ``values`` (rows, W[, C]) as rows ``start`` to ``start + rows`` of the raster."""
        if self._npy:
            self._array[start:start + len(values)] = values
            return
        tile_rows, tile_cols = self._tile
        width = self.shape[1]
        across = -(-width // tile_cols)
        pixel = self.dtype.itemsize * (self.shape[2] if len(self.shape) == 3 else 1)
        stop = start + len(values)
        for row in range(start // tile_rows, (stop - 1) // tile_rows + 1):
            top, bottom = max(start, row * tile_rows), min(stop, (row + 1) * tile_rows)
            block = np.zeros((bottom - top, tile_cols) + values.shape[2:], self.dtype)
            for column in range(across):
                cols = slice(column * tile_cols, min(width, (column + 1) * tile_cols))
                block[:, :cols.stop - cols.start] = values[top - start:bottom - start, cols]
                offset = self._offsets[row * across + column] + (top - row * tile_rows) * tile_cols * pixel
                os.pwrite(self._fd, block.tobytes(), int(offset))

    def flush(self) -> None:
        if self._npy:
            self._array.flush()
        else:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._npy:
            self._array.flush()
            del self._array
        else:
            os.close(self._fd)
