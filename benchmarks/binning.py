"""Binning: images/s of ``bin_images`` with three built-in models on 1 vs 2 logical CPU devices, a subprocess per run.

    python benchmarks/binning.py [--devices 1 2] [--repeats 3] [--size 256] [--copies 4] [--batch_size 2]

The images are scikit-image's astronaut, coffee, chelsea and camera, resized to SIZE x SIZE, each
in COPIES variants (mirrored and rotated), binned by faces (MTCNN), image_statistics and
microstructure_descriptors with the rules below. Each run is its own process (logical devices are
fixed when TensorFlow starts), bins once to trace, then is timed with ``overwrite=True`` (every
model scores every image again; CSV written); device counts alternate run by run and the median
is reported, with each model's own images/s. Nothing is downloaded.
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

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
MODELS = ("faces", "image_statistics", "microstructure_descriptors")
RULES = """default = "other"
[models.faces]
path = "faces"
[models.stats]
path = "image_statistics"
[models.micro]
path = "microstructure_descriptors"
[[bins]]
name = "faces"
when = ["faces.face_count >= 1", "faces.max_confidence > 0.95"]
[[bins]]
name = "sharp"
when = ["stats.sharpness > 500"]
ratio = 0.25
rank_by = "stats.sharpness"
[[bins]]
name = "coarse"
when = ["micro.correlation_length between 8 and 15"]
"""


def prepare(work: Path, size: int, copies: int) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    from mcrgpu.images.models import export_model

    (work / "photos").mkdir(parents=True)
    for name in PHOTOS:
        array = np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.BILINEAR))
        for k in range(copies):
            variant = np.rot90(array[:, ::-1] if k % 2 else array, k // 2)
            Image.fromarray(np.ascontiguousarray(variant)).save(work / "photos" / f"{name}_{k}.png")
    for model in MODELS:
        export_model(model, work / model)
    (work / "rules.toml").write_text(RULES)


def child(work: Path, devices: int, batch_size: int) -> dict:
    from mcrgpu.gpu_manager import GPUConfig, setup_gpus
    from mcrgpu.images import bin_images

    strategy = setup_gpus(GPUConfig(cpu_devices=devices))
    out = work / f"bins_{devices}.csv"

    def once():
        return bin_images(work / "photos", work / "rules.toml", out=out, strategy=strategy, batch_size=batch_size,
                          overwrite=True, progress=False)

    once()  # loads the models and traces the steps
    begin = time.perf_counter()
    summary = once()
    seconds = time.perf_counter() - begin
    images = sum(summary.bins.values())
    return {"devices": devices, "images": images, "seconds": seconds, "per_second": images / seconds,
            "bins": summary.bins, "models": {name: run.done / run.seconds for name, run in summary.runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="Photos are resized to SIZE x SIZE.")
    parser.add_argument("--copies", type=int, default=4, help="Variants of each photo (16 images by default).")
    parser.add_argument("--batch_size", type=int, default=2, help="Images per device and step.")
    parser.add_argument("--child", nargs=2, metavar=("WORK", "DEVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work, devices = args.child
        print(json.dumps(child(Path(work), int(devices), args.batch_size)))  # noqa: T201
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="mcrgpu-bench-binning-") as scratch:
        work = Path(scratch)
        prepare(work, args.size, args.copies)
        for _ in range(args.repeats):
            for devices in args.devices:
                command = [sys.executable, __file__, "--child", str(work), str(devices),
                           "--batch_size", str(args.batch_size)]
                line = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                                      timeout=1800).stdout.strip().splitlines()[-1]
                result = json.loads(line)
                runs.setdefault(devices, []).append(result)
                print(json.dumps(result), flush=True)  # noqa: T201
        same = len({(work / f"bins_{n}.csv").read_text() for n in args.devices}) == 1
    print(f"\n{len(PHOTOS) * args.copies} images of {args.size}x{args.size}, batch {args.batch_size} per device, "
          f"median of {args.repeats}; CSV identical across device counts: {same}")  # noqa: T201
    print("| | " + " | ".join(f"{n} device(s)" for n in args.devices) + " |")  # noqa: T201
    print("|---|" + "---|" * len(args.devices))  # noqa: T201
    cells = [f"{statistics.median(r['per_second'] for r in runs[n]):.2f}" for n in args.devices]
    print("| binning, images/s (3 models + CSV) | " + " | ".join(cells) + " |")  # noqa: T201
    for model in runs[args.devices[0]][0]["models"]:
        cells = [f"{statistics.median(r['models'][model] for r in runs[n]):.2f}" for n in args.devices]
        print(f"| {model}, images/s | " + " | ".join(cells) + " |")  # noqa: T201


if __name__ == "__main__":
    main()
