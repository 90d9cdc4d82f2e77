"""Image tasks: grid items/s (colour_transfer) and pairs/s on 1 vs 2 logical CPU devices, a subprocess per run.

    python benchmarks/images.py [--devices 1 2] [--repeats 3] [--size 256] [--pair_model simple|matcher]

Each run is its own process (logical devices are fixed when TensorFlow starts), runs once to
trace, then is timed with ``overwrite=True``; device counts alternate run by run and the median
is reported. Photographs are scikit-image's bundled ones; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")


def simple_pair_model(keypoints: int = 256):
    """A small matcher in TensorFlow ops with the pair signature: gradient-magnitude peaks (max-pool
    non-maximum suppression, top-K), 9x9 normalised patches as descriptors, mutual nearest neighbours."""
    import tensorflow as tf

    def detect(image):
        grey = tf.reduce_mean(image, axis=-1, keepdims=True)
        dy, dx = tf.image.image_gradients(grey)
        response = tf.nn.avg_pool2d(dx * dx + dy * dy, 5, 1, "SAME")
        peaks = tf.where(response == tf.nn.max_pool2d(response, 7, 1, "SAME"), response, 0.0)
        batch, width = tf.shape(grey)[0], tf.shape(grey)[2]
        score, index = tf.math.top_k(tf.reshape(peaks, [batch, -1]), keypoints)
        patches = tf.image.extract_patches(grey, [1, 9, 9, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
        descriptors = tf.gather(tf.reshape(patches, [batch, -1, 81]), index, batch_dims=1)
        descriptors -= tf.reduce_mean(descriptors, axis=-1, keepdims=True)
        descriptors = tf.math.l2_normalize(descriptors, axis=-1)
        xy = tf.cast(tf.stack([index % width, index // width], axis=-1), tf.float32)
        return xy, descriptors, score

    class Simple(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32, name="image0"),
                                      tf.TensorSpec((None, None, None, None), tf.float32, name="image1")])
        def serve(self, image0, image1):
            xy0, d0, _ = detect(image0)
            xy1, d1, _ = detect(image1)
            similarity = tf.matmul(d0, d1, transpose_b=True)
            best0 = tf.argmax(similarity, axis=2, output_type=tf.int32)
            best1 = tf.argmax(similarity, axis=1, output_type=tf.int32)
            mutual = tf.gather(best1, best0, batch_dims=1) == tf.range(keypoints)[None]
            return {"keypoints0": xy0, "keypoints1": xy1, "matches0": tf.where(mutual, best0, -1),
                    "match_scores0": tf.where(mutual, tf.reduce_max(similarity, axis=2), 0.0)}

    return Simple()


def prepare(work: Path, size: int, pair_model: str) -> None:
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    from skimage import data

    from mcrgpu.images.models import export_model

    (work / "photos").mkdir(parents=True)
    for name in PHOTOS:
        array = np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.BILINEAR))
        Image.fromarray(array).save(work / "photos" / f"{name}.png")
    export_model("colour_transfer", work / "colour_transfer")
    if pair_model == "matcher":
        export_model("matcher", work / "pair_model")
    else:
        module = simple_pair_model()
        tf.saved_model.save(module, str(work / "pair_model"), signatures={"serving_default": module.serve})


def child(work: Path, task: str, devices: int, batch_size: int, samples: int) -> dict:
    from mcrgpu.gpu_manager import GPUConfig, setup_gpus
    from mcrgpu.images import match_pairs, run_grid

    strategy = setup_gpus(GPUConfig(cpu_devices=devices))
    photos = sorted((work / "photos").glob("*.png"))
    out = work / f"out_{task}_{devices}"
    if task == "grid":
        def once():
            return run_grid(photos, photos, work / "colour_transfer", output_folder=out, samples=samples,
                            strategy=strategy, batch_size=batch_size, overwrite=True, progress=False)
    else:
        pairs = [(a, b) for a in photos for b in photos]
        def once():
            return match_pairs(pairs, work / "pair_model", output_folder=out, strategy=strategy,
                               batch_size=batch_size, overwrite=True, progress=False)
    once()  # traces the step
    summary = once()
    return {"task": task, "devices": devices, "items": summary.done, "seconds": summary.seconds,
            "per_second": summary.done / summary.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="Photos are resized to SIZE x SIZE.")
    parser.add_argument("--samples", type=int, default=4, help="Grid samples per image and reference.")
    parser.add_argument("--batch_size", type=int, default=2, help="Items per device and step.")
    parser.add_argument("--pair_model", choices=["simple", "matcher"], default="simple")
    parser.add_argument("--child", nargs=3, metavar=("WORK", "TASK", "DEVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work, task, devices = args.child
        print(json.dumps(child(Path(work), task, int(devices), args.batch_size, args.samples)))  # noqa: T201
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mcrgpu-bench-images-") as scratch:
        work = Path(scratch)
        prepare(work, args.size, args.pair_model)
        for _ in range(args.repeats):
            for task in ("grid", "pairs"):
                for devices in args.devices:
                    command = [sys.executable, __file__, "--child", str(work), task, str(devices),
                               "--batch_size", str(args.batch_size), "--samples", str(args.samples)]
                    line = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                                          timeout=1800).stdout.strip().splitlines()[-1]
                    result = json.loads(line)
                    runs.setdefault((task, devices), []).append(result["per_second"])
                    print(json.dumps(result), flush=True)  # noqa: T201
    unit = {"grid": "items/s", "pairs": "pairs/s"}
    print(f"\n{args.size}x{args.size} photos, batch {args.batch_size} per device, pair model {args.pair_model}; "
          f"median of {args.repeats}")  # noqa: T201
    print("| task | " + " | ".join(f"{n} device(s)" for n in args.devices) + " |")  # noqa: T201
    print("|---|" + "---|" * len(args.devices))  # noqa: T201
    for task in ("grid", "pairs"):
        cells = [f"{statistics.median(runs[(task, n)]):.2f} {unit[task]}" for n in args.devices]
        print(f"| {task} | " + " | ".join(cells) + " |")  # noqa: T201


if __name__ == "__main__":
    main()
