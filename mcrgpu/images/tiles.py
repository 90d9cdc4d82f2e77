"""Tiled inference over rasters larger than memory: halo-and-crop or blended tiles, written band by band."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.images.decode import short_reason, to_model_input
from mcrgpu.images.inputs import pick_output, refuse_input_as_output
from mcrgpu.images.manifest import Manifest, finished_items
from mcrgpu.images.provenance import check_and_record, identity
from mcrgpu.images.rasters import RASTER_SUFFIXES, RasterWriter, open_raster
from mcrgpu.images.runner import ReplicaPredictor, RunSummary, SavedModelSignature, load_signature
from mcrgpu.images.writer import ITEM_ERRORS
from mcrgpu.interrupts import StopRequest, request_stop_on_signals
from mcrgpu.progress import progress_bar

__all__ = ["STITCH_MODES", "TileSummary", "declare_tiling", "model_tiling", "run_tiles"]

logger = logging.getLogger(__name__)

STITCH_MODES = ("crop", "blend")
_OUTPUT_SUFFIXES = (".tif", ".tiff", ".npy")


def declare_tiling(module: tf.Module, *, receptive_radius: int, output_scale: float = 1.0) -> tf.Module:
    """Record in ``module`` (saved with it) how far an output pixel sees and the output's size.

    ``receptive_radius``: an output pixel depends on input pixels at most this many pixels away
    (in each axis); ``output_scale``: output size / input size, 1, an integer (upsampling) or 1/k
    (downsampling by k, output pixel j covering input pixels k*j to k*j + k - 1). Both become
    non-trainable variables that :func:`model_tiling` reads back from the SavedModel.
    """
    module.receptive_radius = tf.Variable(int(receptive_radius), dtype=tf.int64, trainable=False,
                                          name="receptive_radius")
    module.output_scale = tf.Variable(float(output_scale), dtype=tf.float64, trainable=False, name="output_scale")
    return module


def model_tiling(model: SavedModelSignature) -> tuple[int | None, int, int]:
    """The declared receptive radius (None when undeclared) and the output scale as (up, down) factors."""
    module = model.module
    radius = getattr(module, "receptive_radius", None)
    radius = int(radius.numpy()) if radius is not None else None
    scale = getattr(module, "output_scale", None)
    scale = float(scale.numpy()) if scale is not None else 1.0
    up, down = (round(scale), 1) if scale >= 1 else (1, round(1 / scale))
    if scale <= 0 or not np.isclose(up / down, scale):
        raise InvalidInputError(f"{model.path} declares output_scale {scale}; it must be 1, an integer or 1/integer")
    if radius is not None and radius < 0:
        raise InvalidInputError(f"{model.path} declares receptive_radius {radius}; it must be >= 0")
    return radius, up, down


@dataclass(frozen=True)
class TileSummary(RunSummary):
    """A tiled run: ``done``/``skipped``/``failed`` count bands of tile rows; ``tiles`` the tiles computed."""

    tiles: int = 0
    output: Path | None = None

    def __str__(self) -> str:
        rate = self.tiles / self.seconds if self.seconds > 0 else 0.0
        text = (f"{self.done} bands done, {self.skipped} skipped, {self.failed} failed; {self.tiles} tiles in "
                f"{self.seconds:.1f} s ({rate:.2f} tiles/s); output {self.output}; manifest {self.manifest}")
        return text + (" (interrupted: rerun to finish)" if self.interrupted else "")


@dataclass(frozen=True)
class _Grid:
    """Tile geometry in input pixels: core ``tile`` and ``margin`` on every side; output scaled by up/down."""

    height: int
    width: int
    tile: int
    margin: int
    up: int
    down: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def columns(self) -> int:
        return -(-self.width // self.tile)

    def out(self, pixels: int) -> int:
        return pixels * self.up // self.down

    def band_rows(self, band: int) -> tuple[int, int]:
        """Output rows of band ``band`` (the outputs of tile row ``band``'s cores)."""
        return self.out(band * self.tile), self.out(min(self.height, (band + 1) * self.tile))


def run_tiles(source: str | Path, output: str | Path, model: str | Path | SavedModelSignature, *,
              strategy: tf.distribute.Strategy | None = None, signature: str = "serving_default",
              output_name: str | None = None, tile_size: int = 512, stitch: str = "crop", overlap: float = 0.25,
              halo: int | None = None, batch_size: int = 1, overwrite: bool = False,
              progress: bool = True) -> TileSummary:
    """Run a one-image model over a raster tile by tile and write its output raster band by band.

    Tiles of ``tile_size`` x ``tile_size`` input pixels are read with a margin on every side
    (zeros beyond the raster, as a 'SAME'-padded convolution sees them) and batched over all
    replicas. ``stitch="crop"`` keeps only each tile's core; with a margin (``halo``) of at least
    the model's receptive radius the output equals the whole-image output. ``stitch="blend"``
    reads a margin of ``overlap * tile_size / 2`` and averages the overlapping tile outputs with
    raised-cosine weights, for models whose receptive field is unknown or too large. Each band
    (the outputs of one row of tiles) is written in place into ``.STEM.partial.SUFFIX`` and recorded in
    ``OUT.manifest.jsonl``; the file is renamed to ``output`` when complete. A rerun resumes at
    the first band not recorded. At most a few bands are held in memory.

    Parameters
    ----------
    source : str or Path
        TIFF/BigTIFF/GeoTIFF (memory-mapped if uncompressed and contiguous, else read tile- or
        strip-wise), ``.npy`` (memory-mapped), or PNG/JPEG/BMP (decoded whole); (H, W[, C]).
    output : str or Path
        ``.tif``/``.tiff`` (tiled, uncompressed, BigTIFF above 4 GB, GeoTIFF tags of a TIFF source
        copied, pixel scale adjusted for a scaled output) or ``.npy``; shape (H', W'[, C'])
        with H' = H * output scale.
    model : str, Path or SavedModelSignature
        One image input (B, H, W, C) with None spatial dimensions; see :func:`declare_tiling`.
    strategy, signature, batch_size, progress
        As in :func:`~mcrgpu.images.runner.run_items`; ``batch_size`` is tiles per replica.
    output_name : str, optional
        The output to write (default: the only one).
    tile_size : int
        Core edge of a tile in input pixels (a multiple of the down factor).
    stitch : {"crop", "blend"}
    overlap : float
        ``blend`` only: neighbouring tiles share ``overlap * tile_size`` pixels, in (0, 1].
    halo : int, optional
        ``crop`` only: margin in input pixels; default the model's receptive radius; smaller is refused.
    overwrite : bool
        Start afresh even if a run was interrupted.

    Returns
    -------
    TileSummary
        ``exit_code`` 0, 3 (a band failed; the run stopped there) or 130 (interrupted).

    Raises
    ------
    InvalidInputError, FileFormatError
        Bad arguments, a model without one image input, an unreadable source.

    Examples
    --------
    >>> run_tiles("slide.tif", "phases.tif", "models/segment_phases", tile_size=1024)  # doctest: +SKIP
    """
    output = Path(output)
    if output.suffix.lower() not in _OUTPUT_SUFFIXES:
        raise InvalidInputError(f"output {str(output)!r} must end in {', '.join(_OUTPUT_SUFFIXES)}")
    if stitch not in STITCH_MODES:
        raise InvalidInputError(f"stitch must be one of {', '.join(STITCH_MODES)}; received {stitch!r}")
    for name, value in (("tile_size", tile_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be an integer >= 1; received {value!r}")
    if Path(source).suffix.lower() not in RASTER_SUFFIXES:
        raise InvalidInputError(f"source {str(source)!r} is no raster; expected one of {', '.join(RASTER_SUFFIXES)}")
    refuse_input_as_output([output], [source])
    strategy = strategy or tf.distribute.get_strategy()
    with open_raster(source) as reader:
        if not isinstance(model, SavedModelSignature):
            model = load_signature(model, strategy=strategy, signature=signature)
        input_name, name = _one_image_input(model), pick_output(model, output_name)
        radius, up, down = model_tiling(model)
        margin = _margin(model, radius, stitch=stitch, overlap=overlap, halo=halo, tile_size=tile_size)
        margin = -(-margin // down) * down
        if tile_size % down:
            raise InvalidInputError(f"tile_size {tile_size} must be a multiple of the model's down factor {down}")
        height, width, _ = reader.shape
        if height % down or width % down:
            raise InvalidInputError(f"{source}: {height}x{width} is not a multiple of the model's down factor {down}")
        grid = _Grid(height, width, tile_size, margin, up, down)
        run = _TileRun(model, strategy, reader, grid, input_name, name, stitch, batch_size)
        options = {"source": identity(source), "signature": model.name, "output_name": name, "tile_size": tile_size,
                   "halo": margin, "stitch": stitch, "overlap": overlap if stitch == "blend" else None}
        return run.execute(output, options=options, overwrite=overwrite, progress=progress)


def _one_image_input(model: SavedModelSignature) -> str:
    if len(model.inputs) != 1 or next(iter(model.inputs.values())).shape.rank != 4:
        raise InvalidInputError(f"a tile model takes one image input (B, H, W, C); {model.path} takes "
                                f"{ {k: str(v.shape) for k, v in model.inputs.items()} }")
    return next(iter(model.inputs))


def _margin(model: SavedModelSignature, radius: int | None, *, stitch: str, overlap: float, halo: int | None,
            tile_size: int) -> int:
    if stitch == "blend":
        if halo is not None:
            raise InvalidInputError("halo applies to --stitch crop; --stitch blend takes --overlap")
        if not 0 < overlap <= 1:
            raise InvalidInputError(f"overlap must be in (0, 1]; received {overlap!r}")
        return max(1, int(np.ceil(overlap * tile_size / 2)))
    if halo is None:
        if radius is None:
            raise InvalidInputError(f"{model.path} declares no receptive_radius; give --halo (at least the "
                                    "receptive radius in input pixels) or use --stitch blend")
        return radius
    if isinstance(halo, bool) or not isinstance(halo, int) or halo < 0:
        raise InvalidInputError(f"halo must be an integer >= 0; received {halo!r}")
    if radius is not None and halo < radius:
        raise InvalidInputError(f"halo {halo} is below the receptive radius {radius} that {model.path} declares: "
                                f"tiles would differ from the whole-image output; give --halo {radius} or more")
    return halo


def _raised_cosine(length: int) -> np.ndarray:
    """Weights sin^2(pi (i + 1/2) / length): positive, highest at the centre, near 0 at the window's edges."""
    return np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 2


class _TileRun:
    """One raster through one model: reads tile rows ahead, predicts over the replicas, stitches and writes bands."""

    def __init__(self, model, strategy, reader, grid: _Grid, input_name: str, output_name: str, stitch: str,
                 batch_size: int) -> None:
        self.model, self.reader, self.grid = model, reader, grid
        self.input_name, self.output_name, self.stitch = input_name, output_name, stitch
        self.predict = ReplicaPredictor(model, strategy, batch_size=batch_size)
        self.spec = model.inputs[input_name]
        self.out_spec = model.outputs[output_name]
        if stitch == "blend" and not self.out_spec.dtype.is_floating:
            raise InvalidInputError(f"--stitch blend averages outputs; {output_name!r} of {model.path} is "
                                    f"{self.out_spec.dtype.name}: use --stitch crop")
        window = grid.tile + 2 * grid.margin
        fixed = tuple(self.spec.shape[1:3])
        if any(n is not None and n != window for n in fixed):
            raise InvalidInputError(f"{model.path} takes {fixed[0]}x{fixed[1]} images; tile_size + 2 x margin "
                                    f"is {window}: choose them to match")
        self.tiles = 0

    def execute(self, output: Path, *, options: dict, overwrite: bool, progress: bool) -> TileSummary:
        """Resume or start the output (``options``, with ``source`` a path, say what makes it: see
        :func:`~mcrgpu.images.provenance.check_and_record`), write the bands not done, rename when complete."""
        grid = self.grid
        key = f"tile {grid.tile}, margin {grid.margin}, {self.stitch}"
        partial = output.with_name(f".{output.stem}.partial{output.suffix}")
        manifest_path = output.with_name(output.name + ".manifest.jsonl")
        finished = set() if overwrite else finished_items(manifest_path, output.parent)
        complete_before = f"raster ({key})" in finished and output.is_file()
        check_and_record(manifest_path, model=self.model.path, options=options, items={output.name: {}},
                         finished=finished, fresh=overwrite, what=str(output),
                         unrecorded={output.name: output} if output.exists() and not complete_before else None)
        start = time.perf_counter()
        if complete_before:
            return TileSummary(0, grid.rows, 0, False, 0.0, manifest_path, output=output)
        done_before = {b for b in range(grid.rows) if self._item(b, key) in finished} if partial.is_file() else set()
        todo = [b for b in range(grid.rows) if b not in done_before]
        stop, written, failed = StopRequest(), 0, 0
        with Manifest(manifest_path, fresh=overwrite) as manifest, request_stop_on_signals(stop), \
                progress_bar(len(self._tile_rows(todo)) * grid.columns, unit="tile", desc="tiles",
                             enabled=progress) as bar:
            writer = None
            try:
                for band, values in self._bands(todo, stop, bar):
                    begin = time.perf_counter()
                    if writer is None:
                        shape = (grid.out(grid.height), grid.out(grid.width)) + values.shape[2:]
                        writer = RasterWriter(partial, shape, values.dtype, geotags=self._geotags(),
                                              resume=bool(done_before))
                    writer.write_rows(grid.band_rows(band)[0], values)
                    writer.flush()
                    manifest.record(self._item(band, key), "ok", output=partial.name,
                                    seconds=time.perf_counter() - begin, reason=None)
                    manifest.sync()
                    written += 1
            except _BandFailed as error:
                failed = 1
                manifest.record(self._item(error.band, key), "failed", output=None, seconds=0.0, reason=error.reason)
                logger.warning("band %d (output rows %s) failed: %s", error.band, grid.band_rows(error.band),
                               error.reason)
            finally:
                if writer is not None:
                    writer.close()
            complete = written == len(todo) and partial.is_file()
            if complete:
                os.replace(partial, output)
                manifest.record(f"raster ({key})", "ok", output=output.name, seconds=0.0, reason=None)
        return TileSummary(written, len(done_before), failed, stop.is_set() and not complete,
                           time.perf_counter() - start, manifest_path, stop.signal_name, tiles=self.tiles,
                           output=output if complete else partial)

    @staticmethod
    def _item(band: int, key: str) -> str:
        return f"band {band} ({key})"

    def _geotags(self) -> list[tuple]:
        """The source's GeoTIFF tags, pixel size adjusted to the output's scale."""
        tags, scale = [], self.grid.up / self.grid.down
        for code, dtype, count, value, once in self.reader.geotags:
            if code == 33550 and scale != 1:  # ModelPixelScale: ground size of an output pixel
                value = (value[0] / scale, value[1] / scale) + tuple(value[2:])
            elif code == 34264 and scale != 1:  # ModelTransformation, 4x4 row-major: scale the x and y columns
                value = tuple(v / scale if i % 4 in (0, 1) else v for i, v in enumerate(value))
            tags.append((code, dtype, count, value, once))
        return tags

    def _bands(self, todo: list[int], stop: StopRequest, bar) -> Iterator[tuple[int, np.ndarray]]:
        """Finished bands in order, from tile rows computed in order while the next tile row is read."""
        grid, rows, pending = self.grid, self._tile_rows(todo), set(todo)
        sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcrgpu-tiles-reader") as reader:
            ahead = reader.submit(self._windows, rows[0]) if rows else None
            for index, row in enumerate(rows):
                windows = ahead.result()
                if stop.is_set():
                    return
                ahead = reader.submit(self._windows, rows[index + 1]) if index + 1 < len(rows) else None
                band = min(b for b in pending if abs(b - row) <= (0 if self.stitch == "crop" else 1))
                outputs = self._outputs(windows, band)
                bar.update(len(windows))
                if self.stitch == "crop":
                    pending.discard(row)
                    yield row, self._cropped(row, outputs)
                    continue
                self._accumulate(row, outputs, pending, sums)
                for band in sorted(sums):
                    if min(band + 1, grid.rows - 1) <= row:
                        total, weight = sums.pop(band)
                        pending.discard(band)
                        values = total / (weight[..., None] if total.ndim == 3 else weight)
                        yield band, values.astype(self.out_spec.dtype.as_numpy_dtype)

    def _tile_rows(self, todo: list[int]) -> list[int]:
        """The tile rows the bands ``todo`` need: their own, and with blending their neighbours too."""
        if self.stitch == "crop":
            return todo
        return sorted({r for b in todo for r in (b - 1, b, b + 1) if 0 <= r < self.grid.rows})

    def _windows(self, row: int) -> list[np.ndarray]:
        """Tile row ``row`` as windows of tile + 2 margin (views of one strip as stored), zeros beyond the raster.

        Raises InvalidInputError if the strip holds NaN or infinite values: a model would spread
        them (or turn them into a valid-looking class) over its receptive field, silently.
        """
        grid, margin, tile = self.grid, self.grid.margin, self.grid.tile
        strip = self.reader.read_rows(row * tile - margin, (row + 1) * tile + margin)
        if strip.dtype.kind == "f" and not np.isfinite(strip).all():
            rows, columns, _ = np.nonzero(~np.isfinite(strip))
            top = row * tile - margin  # the raster row of the strip's first row
            raise InvalidInputError(
                f"{self.reader.path} holds NaN or infinite values ({rows.size} in rows {max(top, 0)}-"
                f"{min(top + len(strip), grid.height) - 1}, the first at row {top + int(rows.min())}, column "
                f"{int(columns[rows == rows.min()].min())}); a model "
                "would smear them over its receptive field: fill them first (e.g. numpy.nan_to_num or a mask value) "
                "and rerun (with --overwrite if bands were written)")
        strip = np.pad(strip, ((0, 0), (margin, grid.columns * tile - grid.width + margin), (0, 0)))
        size = tile + 2 * margin
        return [strip[:, column * tile:column * tile + size] for column in range(grid.columns)]

    def _outputs(self, windows: list[np.ndarray], band: int) -> list[np.ndarray]:
        """The chosen output of every window, computed one global batch at a time over the replicas."""
        outputs, step = [], self.predict.global_batch
        for first in range(0, len(windows), step):
            try:
                rows = self.predict([{self.input_name: to_model_input(window, self.spec)}
                                     for window in windows[first:first + step]])
            except ITEM_ERRORS as error:
                raise _BandFailed(band, f"model failed: {short_reason(error)}") from None
            outputs.extend(row[self.output_name] for row in rows)
        expected = self.grid.out(self.grid.tile + 2 * self.grid.margin)
        if outputs[0].ndim not in (2, 3) or outputs[0].shape[:2] != (expected, expected):
            raise InvalidInputError(
                f"output {self.output_name!r} of {self.model.path} is {outputs[0].shape} for a window of "
                f"{windows[0].shape[:2]}; with its output scale {self.grid.up}/{self.grid.down} it should be "
                f"({expected}, {expected}[, C]): declare the scale with mcrgpu.images.declare_tiling")
        self.tiles += len(windows)
        return outputs

    def _cropped(self, row: int, outputs: list[np.ndarray]) -> np.ndarray:
        grid = self.grid
        top, bottom = grid.band_rows(row)
        width, margin, tile = grid.out(grid.width), grid.out(grid.margin), grid.out(grid.tile)
        band = np.empty((bottom - top, width) + outputs[0].shape[2:], outputs[0].dtype)
        for column, values in enumerate(outputs):
            left = column * tile
            right = min(width, left + tile)
            band[:, left:right] = values[margin:margin + bottom - top, margin:margin + right - left]
        return band

    def _accumulate(self, row: int, outputs: list[np.ndarray], pending: set[int],
                    sums: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        """Add tile row ``row``'s outputs, weighted, to the sums of the pending bands they overlap."""
        grid = self.grid
        size, margin, tile = outputs[0].shape[0], grid.out(grid.margin), grid.out(grid.tile)
        width = grid.out(grid.width)
        weights = np.outer(_raised_cosine(size), _raised_cosine(size))
        extra = outputs[0].shape[2:]
        total = np.zeros((size, grid.columns * tile + 2 * margin) + extra)
        weight = np.zeros(total.shape[:2])
        for column, values in enumerate(outputs):
            cols = slice(column * tile, column * tile + size)
            total[:, cols] += values * (weights[..., None] if extra else weights)
            weight[:, cols] += weights
        top = grid.out(row * grid.tile) - margin  # output row of the canvas's first row
        for band in (row - 1, row, row + 1):
            if band not in pending:
                continue
            first, last = grid.band_rows(band)
            low, high = max(first, top), min(last, top + size)
            if low >= high:
                continue
            if band not in sums:
                sums[band] = (np.zeros((last - first, width) + extra), np.zeros((last - first, width)))
            band_total, band_weight = sums[band]
            band_total[low - first:high - first] += total[low - top:high - top, margin:margin + width]
            band_weight[low - first:high - first] += weight[low - top:high - top, margin:margin + width]


class _BandFailed(Exception):
    def __init__(self, band: int, reason: str) -> None:
        super().__init__(reason)
        self.band, self.reason = band, reason
