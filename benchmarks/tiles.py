"""Tiled inference: a large GeoTIFF through segment_phases (peak memory, tiles/s on 1 vs 2 devices), seam errors.

    python benchmarks/tiles.py [--size 20000] [--tile_size 1024] [--devices 1 2] [--repeats 1] [--seams]

The raster (uint8, SIZE x SIZE, tiled 512 x 512, uncompressed, GeoTIFF tags) is written once by
this script, tile by tile, into a scratch folder. Each run is its own process (logical devices are
fixed when TensorFlow starts) that exports nothing, loads the model, runs ``run_tiles`` into a
tiled TIFF and reports its wall time, tiles/s and peak resident memory (``ru_maxrss``); device
counts alternate run by run. ``--seams`` measures the error of naive tiles, blending and
halo-and-crop against the whole-image output of a zero-padded 13x13 convolution + tanh on a
1000 x 1300 image with 128 px tiles.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GEO = [(33550, 12, 3, (0.25, 0.25, 0.0)), (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0)),
       (34735, 3, 8, (1, 1, 0, 1, 1024, 0, 1, 1)), (34737, 2, 0, "WGS 84|"), (42113, 2, 0, "0")]


def write_raster(path: Path, size: int) -> None:
    """A two-phase micrograph (smooth blobs at grey 80 / 180, noise sd 30), written tile by tile."""
    import numpy as np
    import tifffile

    tile = 512

    def tiles():
        rng = np.random.default_rng(0)
        for top in range(0, size, tile):
            for left in range(0, size, tile):
                y, x = np.mgrid[top:top + tile, left:left + tile].astype(np.float32)
                field = np.sin(x / 37) * np.sin(y / 53) + 0.5 * np.sin((x + y) / 91)
                grey = np.where(field > 0, 180, 80) + rng.normal(0, 30, field.shape)
                yield np.clip(grey, 0, 255).astype(np.uint8)

    tifffile.imwrite(path, tiles(), shape=(size, size), dtype="uint8", tile=(tile, tile), photometric="minisblack",
                     extratags=[(*tag, True) for tag in GEO])


def child(work: Path, devices: int, tile_size: int, batch_size: int) -> dict:
    import resource

    from mcrgpu.gpu_manager import GPUConfig, setup_gpus
    from mcrgpu.images import run_tiles

    strategy = setup_gpus(GPUConfig(cpu_devices=devices))
    output = work / f"labels_{devices}.tif"
    begin = time.perf_counter()
    summary = run_tiles(work / "raster.tif", output, work / "segment_phases", strategy=strategy, tile_size=tile_size,
                        batch_size=batch_size, overwrite=True, progress=False)
    seconds = time.perf_counter() - begin
    import tifffile

    with tifffile.TiffFile(output) as tiff:
        page = tiff.pages.first
        tags_kept = all(page.tags[code].value == value for code, _, _, value in GEO)
        shape = page.shape
    output.unlink()
    return {"devices": devices, "tiles": summary.tiles, "seconds": seconds, "tiles_per_second": summary.tiles / seconds,
            "megapixels_per_second": shape[0] * shape[1] / seconds / 1e6, "exit_code": summary.exit_code,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tags_kept": tags_kept,
            "shape": list(shape)}


def seams(work: Path) -> list[dict]:
    """Mean and max abs error against the whole image for naive tiles, blend and crop (issue 12's case)."""
    import numpy as np
    import tensorflow as tf

    from mcrgpu.images import declare_tiling, run_tiles

    class ConvTanh(tf.Module):
        def __init__(self, declare: bool):
            super().__init__()
            self.kernel = tf.constant(np.random.default_rng(13).normal(size=(13, 13, 1, 1)) / 13, tf.float32)
            if declare:
                declare_tiling(self, receptive_radius=6)

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image")])
        def serve(self, image):
            return {"result": tf.tanh(tf.nn.conv2d(image, self.kernel, 1, "SAME"))[..., 0]}

    image = np.random.default_rng(1).random((1000, 1300)).astype(np.float32)
    np.save(work / "seam_input.npy", image)
    module = ConvTanh(declare=False)
    tf.saved_model.save(module, str(work / "conv_tanh"), signatures={"serving_default": module.serve})
    whole = module.serve(tf.constant(image[None, ..., None]))["result"][0].numpy()
    rows = []
    cases = [("naive tiles (no halo)", {"halo": 0}), ("blend, overlap 0.25", {"stitch": "blend", "overlap": 0.25}),
             ("blend, overlap 0.5", {"stitch": "blend", "overlap": 0.5}), ("crop, halo 6", {"halo": 6})]
    for name, options in cases:
        out = work / "seam_output.npy"
        run_tiles(work / "seam_input.npy", out, work / "conv_tanh", tile_size=128, overwrite=True, progress=False,
                  **options)
        error = np.abs(np.load(out) - whole)
        rows.append({"case": name, "mean": float(error.mean()), "max": float(error.max())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000, help="Raster edge in pixels.")
    parser.add_argument("--tile_size", type=int, default=1024)
    parser.add_argument("--batch_size", type=int, default=1, help="Tiles per device and step.")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seams", action="store_true", help="Also measure seam errors (issue 12's case).")
    parser.add_argument("--child", nargs=2, metavar=("WORK", "DEVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(Path(args.child[0]), int(args.child[1]), args.tile_size, args.batch_size)
        print(json.dumps(result))  # noqa: T201
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs: dict[int, list[dict]] = {}
    scratch_parent = os.environ.get("MCRGPU_BENCH_SCRATCH")
    with tempfile.TemporaryDirectory(prefix="mcrgpu-bench-tiles-", dir=scratch_parent) as scratch:
        work = Path(scratch)
        begin = time.perf_counter()
        write_raster(work / "raster.tif", args.size)
        print(f"raster {args.size}x{args.size} uint8 written in {time.perf_counter() - begin:.1f} s "  # noqa: T201
              f"({(work / 'raster.tif').stat().st_size / 1e6:.0f} MB)", flush=True)
        from mcrgpu.images.models import export_model

        export_model("segment_phases", work / "segment_phases")
        for _ in range(args.repeats):
            for devices in args.devices:
                command = [sys.executable, __file__, "--child", str(work), str(devices),
                           "--tile_size", str(args.tile_size), "--batch_size", str(args.batch_size)]
                line = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                                      timeout=7200).stdout.strip().splitlines()[-1]
                runs.setdefault(devices, []).append(json.loads(line))
                print(line, flush=True)  # noqa: T201
        seam_rows = seams(work) if args.seams else []
    print(f"\n{args.size}x{args.size} uint8 GeoTIFF -> segment_phases labels, "  # noqa: T201
          f"tile {args.tile_size}, batch {args.batch_size} per device; median of {args.repeats}")
    print("| devices | tiles/s | Mpixel/s | wall s | peak RSS MB | GeoTIFF tags kept |")  # noqa: T201
    print("|---|---|---|---|---|---|")  # noqa: T201
    for devices, results in runs.items():
        median = {key: statistics.median(r[key] for r in results)
                  for key in ("tiles_per_second", "megapixels_per_second", "seconds", "peak_rss_mb")}
        print(f"| {devices} | {median['tiles_per_second']:.2f} | {median['megapixels_per_second']:.1f} | "  # noqa: T201
              f"{median['seconds']:.1f} | {median['peak_rss_mb']:.0f} | {all(r['tags_kept'] for r in results)} |")
    if seam_rows:
        print("\n| stitching (1000x1300, 13x13 conv + tanh, 128 px tiles) | mean abs error "  # noqa: T201
              "| max abs error |")
        print("|---|---|---|")  # noqa: T201
        for row in seam_rows:
            print(f"| {row['case']} | {row['mean']:.2e} | {row['max']:.2e} |")  # noqa: T201


if __name__ == "__main__":
    main()
