#!/usr/bin/env python
"""Benchmark the built-in pair matcher against scikit-image's ORB (and SIFT) on full-size photographs.

    python benchmarks/pairs.py [--reps 3] [--rounds 3] [--sift] [--out benchmarks/results]

Accuracy: the motorcycle stereo pair (ground-truth disparity: left (y, x) matches right
(y, x - d), inf unknown) and the astronaut against a copy rotated 10 degrees, scaled 0.9 and
shifted (40, -30) px; grey images, matches within 2 px of the ground truth are correct.
Speed: pairs/s of mcrgpu under ``setup_gpus(GPUConfig(cpu_devices=N))`` for N = 1 and 2 (each
in its own subprocess, since logical devices are fixed per process; the global batch holds one
copy of the pair per replica) and of the ORB loop (detect, extract and match, pair after pair), run
interleaved ``--reps`` times; medians are reported. Writes ``pairs.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOLERANCE = 2.0
ORB_KEYPOINTS = 1000
MAX_RATIO = 0.8


def load_pairs() -> dict:
    """name -> (grey image0, grey image1, scorer(points0, points1) -> (valid, correct)), x-y points."""
    from skimage import color, data, transform

    left, right, disparity = data.stereo_motorcycle()

    def stereo_score(points0, points1):
        index = np.clip(np.round(points0).astype(int), 0, np.array(disparity.shape[::-1]) - 1)
        shift = disparity[index[:, 1], index[:, 0]]
        valid = np.isfinite(shift)
        error = np.hypot(points1[:, 0] - (points0[:, 0] - shift), points1[:, 1] - points0[:, 1])
        return int(valid.sum()), int((error[valid] <= TOLERANCE).sum())

    astronaut = color.rgb2gray(data.astronaut())
    similarity = transform.SimilarityTransform(scale=0.9, rotation=np.deg2rad(10), translation=(40, -30))

    def astronaut_score(points0, points1):
        error = np.linalg.norm(similarity(points0) - points1, axis=1)
        return len(points0), int((error <= TOLERANCE).sum())

    return {"stereo": (color.rgb2gray(left), color.rgb2gray(right), stereo_score),
            "astronaut": (astronaut, transform.warp(astronaut, similarity.inverse), astronaut_score)}


def skimage_matches(tool: str, image0: np.ndarray, image1: np.ndarray):
    """ORB (1000 keypoints) or SIFT, cross-checked with ratio 0.8: matched points (N, 2) x-y."""
    from skimage import feature

    keypoints, descriptors = [], []
    for image in (image0, image1):
        extractor = feature.ORB(n_keypoints=ORB_KEYPOINTS) if tool == "orb" else feature.SIFT()
        extractor.detect_and_extract(image)
        keypoints.append(extractor.keypoints[:, ::-1])
        descriptors.append(extractor.descriptors)
    pairs = feature.match_descriptors(*descriptors, cross_check=True, max_ratio=MAX_RATIO)
    return keypoints[0][pairs[:, 0]], keypoints[1][pairs[:, 1]]


def mcrgpu_matches(module, image0: np.ndarray, image1: np.ndarray):
    import tensorflow as tf

    outputs = module.serve(tf.constant(image0[None, ..., None], tf.float32),
                           tf.constant(image1[None, ..., None], tf.float32))
    matches = outputs["matches0"].numpy()[0]
    index = np.flatnonzero(matches >= 0)
    return outputs["keypoints0"].numpy()[0][index], outputs["keypoints1"].numpy()[0][matches[index]]


def worker_accuracy(tool: str) -> dict:
    """Matches and correct matches of one tool on both pairs (in this process)."""
    pairs = load_pairs()
    if tool.startswith("mcrgpu"):
        from mcrgpu.images.models.matcher import build_matcher

        module = build_matcher(compute_dtype=tool.split("-")[1])
        match = lambda a, b: mcrgpu_matches(module, a, b)  # noqa: E731
    else:
        match = lambda a, b: skimage_matches(tool, a, b)  # noqa: E731
    result = {}
    for name, (image0, image1, score) in pairs.items():
        found, correct = score(*match(image0, image1))
        result[name] = {"matches": found, "correct": correct}
    return result


def worker_speed(tool: str, devices: int, rounds: int) -> dict:
    """pairs/s over ``rounds`` passes of both pairs, after one warm-up pass."""
    pairs = load_pairs()
    if tool == "orb":
        def one_pass():
            for image0, image1, _ in pairs.values():
                skimage_matches("orb", image0, image1)
            return len(pairs)
    else:
        import tensorflow as tf

        from mcrgpu.gpu_manager import GPUConfig, setup_gpus
        from mcrgpu.images.models.matcher import build_matcher

        strategy = setup_gpus(GPUConfig(cpu_devices=devices))
        with strategy.scope():
            module = build_matcher(compute_dtype=tool.split("-")[1])
        replicas = strategy.num_replicas_in_sync
        step = tf.function(lambda first, second: strategy.run(lambda a, b: module.serve(a, b), args=(first, second)))
        batches = [[strategy.experimental_distribute_values_from_function(
            lambda _, image=image: tf.constant(image[None, ..., None], tf.float32)) for image in pair[:2]]
            for pair in pairs.values()]

        def one_pass():
            for image0, image1 in batches:
                outputs = step(image0, image1)
                for value in strategy.experimental_local_results(outputs["matches0"]):
                    value.numpy()
            return len(batches) * replicas
    one_pass()
    start = time.perf_counter()
    count = sum(one_pass() for _ in range(rounds))
    return {"pairs_per_s": count / (time.perf_counter() - start)}


def run_worker(*args: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", *args],
                          check=True, capture_output=True, text=True, env=env, timeout=3600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def render(accuracy: dict, speed: dict, reps: int) -> str:
    command = " ".join(["python benchmarks/pairs.py", *sys.argv[1:]])
    lines = ["# Pair matching: mcrgpu's built-in matcher vs scikit-image", "",
             f"`{command}`; {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores shared with other jobs (timings are noisy; medians of {reps} interleaved runs).",
             "", "Full-size grey pairs; correct = within 2 px of the ground truth; stereo counts only matches "
             "whose left pixel has a known disparity.", "",
             "| tool | stereo matches | stereo correct | stereo precision | astronaut matches | astronaut correct "
             "| astronaut precision |", "|---|---|---|---|---|---|---|"]
    for tool, result in accuracy.items():
        cells = []
        for name in ("stereo", "astronaut"):
            found, correct = result[name]["matches"], result[name]["correct"]
            cells += [str(found), str(correct), f"{100.0 * correct / max(found, 1):.1f} %"]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    lines += ["", "| tool | devices | pairs/s (median) | runs |", "|---|---|---|---|"]
    for (tool, devices), values in speed.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {tool} | {devices} | {statistics.median(values):.2f} | {runs} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="interleaved speed runs per tool (median reported)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over both pairs per speed run")
    parser.add_argument("--sift", action="store_true", help="also scikit-image SIFT in the accuracy table")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, tool, *rest = args.worker
        result = worker_accuracy(tool) if kind == "accuracy" else worker_speed(tool, int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return
    from mcrgpu.io import atomic_write_text

    tools = ["mcrgpu-float32", "mcrgpu-bfloat16", "orb"] + (["sift"] if args.sift else [])
    accuracy = {tool: run_worker("accuracy", tool) for tool in tools}
    cases = [("mcrgpu-float32", 1), ("mcrgpu-float32", 2), ("mcrgpu-bfloat16", 1), ("orb", 1)]
    speed = {case: [] for case in cases}
    for _ in range(args.reps):
        for tool, devices in cases:
            speed[(tool, devices)].append(run_worker("speed", tool, str(devices), str(args.rounds))["pairs_per_s"])
    args.out.mkdir(parents=True, exist_ok=True)
    text = render(accuracy, speed, args.reps)
    atomic_write_text(args.out / "pairs.md", text)
    print(text)


if __name__ == "__main__":
    main()
