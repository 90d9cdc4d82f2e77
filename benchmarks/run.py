#!/usr/bin/env python
"""Benchmark mcrgpu, optionally against MCRpy 0.2.0 (the "peer"), on the same cases.

    python benchmarks/run.py --suite quick|full [--peer] [--out benchmarks/results]

Writes ``results.md`` (a Markdown table) and ``results.json`` (every run's raw figures) to
``--out``. See benchmarks/README.md for the cases, the figures and how they are measured.

Every run is a subprocess of this script, so that its wall time and peak resident memory
(``os.wait4``'s ``ru_maxrss`` of that child) are its own. mcrgpu runs in the interpreter that
runs this script (``python -m`` re-entry as ``--worker mcrgpu``); MCRpy runs in its own virtual
environment through its command line (``python -m mcrpy.match`` / ``mcrpy.characterize``).
Only the standard library and NumPy are imported at module level, so that the peer
interpreter can run the small ``--worker read-mcrpy`` reader of MCRpy's pickles.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MCRGPU_BENCH_DATA", "/work/shared/data/microstructures"))
LIMIT_TO = 8
WARMUP = 2  # k: s/iter of mcrgpu = (t[-1] - t[k]) / (n - 1 - k), k at least the first chunk's end
DEVICE_CHUNK = 10  # evaluations per call of the device L-BFGS: convergence_data_steps' default
OPTIMIZERS = ["LBFGSB", "LBFGSB_SCIPY"]  # mcrgpu's device L-BFGS and SciPy's L-BFGS-B (MCRpy's)
PEER_PACKAGES = ["mcrpy==0.2.0", "numpy<2", "tensorflow-cpu==2.21.0"]
RUN_TIMEOUT = 3600  # seconds, per subprocess

# -- cases -------------------------------------------------------------------------------------
# kind "match": characterize `file` (cropped to `crop`), reconstruct `shape` with L-BFGS-B for
# `max_iter` evaluations. kind "characterize": characterize `file` only.
CORR_VAR = {"descriptors": ["Correlations", "Variation"], "weights": [1.0, 100.0]}
FFT_VAR = {"descriptors": ["FFTCorrelations", "Variation"], "weights": [1.0, 100.0]}


def suite_cases(suite: str) -> list[dict]:
    quick = suite == "quick"

    def it(q, f):
        return q if quick else f

    cases = [
        dict(name="2d64_corr", kind="match", file="pymks_ms_64x64_2.npy", shape=[64, 64],
             descriptors=["Correlations"], weights=[1.0], max_iter=it(200, 500), peer_short=it(50, 100)),
        dict(name="2d64_fft", kind="match", file="pymks_ms_64x64_2.npy", shape=[64, 64],
             descriptors=["FFTCorrelations"], weights=[1.0], max_iter=it(200, 500), peer_short=it(50, 100)),
        dict(name="2d128_corr", kind="match", file="pymks_ms_128x128_1.npy", shape=[128, 128],
             descriptors=["Correlations"], weights=[1.0], max_iter=it(100, 300), peer_short=it(25, 60)),
        dict(name="3d32_corr_var", kind="match", file="pymks_ms_64x64_2.npy", crop=32,
             shape=[32, 32, 32], max_iter=it(20, 40), peer_short=it(6, 10), **CORR_VAR),
        dict(name="3d64_corr_var", kind="match", file="pymks_ms_64x64_2.npy", shape=[64, 64, 64],
             max_iter=it(20, 30), peer_short=it(6, 10), **CORR_VAR),
        dict(name="3d64_fft_var", kind="match", file="pymks_ms_64x64_2.npy", shape=[64, 64, 64],
             max_iter=it(20, 40), peer_short=it(6, 10), **FFT_VAR),
        dict(name="3d48_fft_var", kind="match", file="pymks_ms_64x64_2.npy", crop=48, shape=[48, 48, 48],
             max_iter=it(20, 40), peer_short=it(6, 10), **FFT_VAR),
        dict(name="char256_corr_var", kind="characterize", file="copolymer_resized.npy", **CORR_VAR),
        dict(name="3d128_corr_var", kind="match", file="pymks_ms_128x128_1.npy", shape=[128, 128, 128],
             max_iter=it(20, 30), peer=False, reps=1, optimizers=["LBFGSB"], **CORR_VAR),
    ]
    if not quick:
        cases.append(dict(name="3d256_corr_var_greedy", kind="match", file="copolymer_resized.npy",
                          shape=[256, 256, 256], max_iter=20, greedy=True, batch_size=8,
                          slice_batch_size=8, peer=False, reps=1, optimizers=["LBFGSB"], **CORR_VAR))
    for n in (1, 2, 4):
        cases.append(dict(name="3d64_corr_var_replicas", kind="match", file="pymks_ms_64x64_2.npy",
                          shape=[64, 64, 64], max_iter=it(20, 30), logical_devices=n, peer=False,
                          reps=it(1, 3), optimizers=["LBFGSB"], **CORR_VAR))
    return cases


# -- shared measurements --------------------------------------------------------------------------
def load_image(case: dict) -> np.ndarray:
    image = np.load(DATA / case["file"])
    if case.get("crop"):
        image = image[: case["crop"], : case["crop"]]
    return np.ascontiguousarray(image)


def s2_error(result_labels: np.ndarray, original_labels: np.ndarray) -> float:
    """The S2 error of a result (:func:`mcrgpu.mcr.two_point.structure_s2_error`, |dy|, |dx| < 8);
    imported here, as the peer's interpreter that imports this module has no mcrgpu."""
    from mcrgpu.mcr.two_point import structure_s2_error

    return structure_s2_error(result_labels, original_labels)


def flops_per_evaluation(case: dict) -> float:
    """Counted floating-point operations of one loss + gradient evaluation (forward only for a
    characterization). The model is documented in benchmarks/README.md."""
    limit, k = LIMIT_TO, LIMIT_TO**2 + (LIMIT_TO - 1) ** 2
    if case["kind"] == "characterize":
        image = load_image(case)
        slices = [(1, *image.shape)]
        channels = len(np.unique(image))  # multiphase characterization: one channel per phase
        passes = 1.0
    else:
        shape = case["shape"]
        channels = 1
        passes = 3.0  # forward + backward (~2x forward)
        if len(shape) == 2:
            slices = [(1, *shape)]
        else:
            slices = []
            for axis in range(3):
                h, w = [s for i, s in enumerate(shape) if i != axis]
                count = case.get("batch_size", 1) if case.get("greedy") else shape[axis]
                slices.append((count, h, w))
    total = 0.0
    for count, h, w in slices:
        per_slice = 0.0
        for name in case["descriptors"]:
            if name == "Correlations":
                levels = max(1, int(math.floor(math.log2(min(h, w) / limit))))
                for n in range(levels):
                    pixels = (h // 2**n) * (w // 2**n)
                    per_slice += pixels * (20 * k + 2 * k * k) + (h * w if n else 0)  # maps, Gram, pooling
            elif name == "FFTCorrelations":
                pixels = h * w
                per_slice += 2 * 5 * pixels * math.log2(pixels) + 6 * pixels  # FFT, inverse, |F|^2
            elif name == "Variation":
                per_slice += 6 * h * w
        per_slice += 5 * h * w  # out-of-range penalty and loss reduction
        total += count * channels * per_slice
    return passes * total


def mcrgpu_s_per_iter(seconds: list[float], optimizer: str) -> tuple[int, float | None]:
    """(k, s/iter) of an mcrgpu run: (t[-1] - t[k]) / (n - 1 - k). The device optimiser records a
    chunk's evaluations when the chunk returns (chunks of DEVICE_CHUNK evaluations), so its warm-up
    is the whole first chunk (tracing included); SciPy's records each evaluation as it happens."""
    k = max(WARMUP, DEVICE_CHUNK - 1) if optimizer == "LBFGSB" else WARMUP
    n = len(seconds)
    return k, ((seconds[-1] - seconds[k]) / (n - 1 - k) if n > k + 1 else None)


# -- workers (run in subprocesses) --------------------------------------------------------------------
def worker_matmul(out: Path) -> None:
    import tensorflow as tf

    n = 2048
    a = tf.random.normal((n, n), dtype=tf.float32, seed=1)
    b = tf.random.normal((n, n), dtype=tf.float32, seed=2)
    tf.matmul(a, b).numpy()  # warm-up
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    out.write_text(json.dumps({"gflops": 2 * n**3 / best / 1e9, "seconds": best, "n": n}))


def worker_mcrgpu(spec: dict, out: Path) -> None:
    import tensorflow as tf

    strategy = None
    n_devices = spec.get("logical_devices")
    if n_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n_devices)])
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.dmcr import DMCR

    image = load_image(spec)
    record: dict = {}
    if spec["kind"] == "characterize":
        c = characterize(image, spec["descriptors"], limit_to=LIMIT_TO)
        record.update(characterize_seconds=c.seconds,
                      shapes={k: list(v.shape) for k, v in c.descriptors.items()})
    else:
        c = characterize(image, spec["descriptors"], limit_to=LIMIT_TO, use_multiphase=False)
        options = {key: spec[key] for key in ("greedy", "batch_size", "slice_batch_size") if key in spec}
        # the optimisation is what is timed and compared: labels without the two-point polish (a host
        # post-processing step after the last evaluation, see README "For MCRpy users"), at full
        # resolution only, as MCRpy runs without --use_multigrid_reconstruction
        dmcr = DMCR(spec["descriptors"], spec["weights"], max_iter=spec["max_iter"], seed=spec.get("seed", 0),
                    strategy=strategy, optimizer_type=spec.get("optimizer", "LBFGSB"), two_point_polish=False,
                    use_multigrid_reconstruction=False, **options)
        history, result = dmcr.reconstruct(c, tuple(spec["shape"]))
        np.save(spec["result_file"], result.original_labels())
        record.update(seconds=list(history.seconds), losses=list(history.losses),
                      n_evaluations=history.n_evaluations, best_loss=history.best_loss,
                      characterize_seconds=c.seconds)
        if n_devices:
            record["replicas"] = strategy.num_replicas_in_sync
    out.write_text(json.dumps(record))


class _InertObject:
    """Stands in for every class of MCRpy's pickle that is not a NumPy array: stores nothing,
    runs nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):  # a reduce may call what an earlier reduce returned
        return _InertObject()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _load_arrays_only(handle):
    """Unpickle MCRpy's convergence data building only NumPy arrays and plain containers; any
    other class (MCRpy's Microstructure, settings, ...) becomes an inert placeholder, so no code
    from the file runs."""
    import pickle

    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    class ArraysOnly(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed:
                return super().find_class(module, name)
            return _InertObject

    return ArraysOnly(handle).load()


def worker_read_mcrpy(path: Path, out: Path) -> None:
    """Run by the peer interpreter: evaluations and losses from MCRpy's convergence_data pickle."""
    with open(path, "rb") as handle:
        data = _load_arrays_only(handle)
    line = np.asarray(data["line_data"], dtype=np.float64)
    # MCRpy appends one forced entry after the last evaluation (numbered last + 1).
    out.write_text(json.dumps({"line_rows": int(line.shape[0]), "n_evaluations": int(line.shape[0] - 1),
                               "last_iteration": float(line[-1, 0]), "final_loss": float(line[-1, 1]),
                               "first_loss": float(line[0, 1])}))


# -- running subprocesses -----------------------------------------------------------------------
def run_measured(command: list[str], log: Path, cwd: Path | None = None, env: dict | None = None,
                 timeout: float = RUN_TIMEOUT) -> dict:
    """Run ``command``, killed after ``timeout`` seconds; return its wall time, peak RSS (MB, of this
    child), exit status and whether it timed out."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    start = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=environment)
        deadline = start + timeout
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0, "returncode": process.returncode,
            "timed_out": timed_out}


def log_tail(log: Path, chars: int = 1500) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Runner:
    def __init__(self, args, scratch: Path) -> None:
        self.args = args
        self.scratch = scratch
        self.peer_python = Path(args.peer_venv) / "bin" / "python"
        self.counter = 0

    def _dir(self, label: str) -> Path:
        self.counter += 1
        path = self.scratch / f"{self.counter:03d}_{label}"
        path.mkdir(parents=True)
        return path

    def input_file(self, case: dict) -> Path:
        """The structure as MCRpy reads it: the data file in place, or a cropped copy."""
        if not case.get("crop"):
            return DATA / case["file"]
        path = self.scratch / f"{Path(case['file']).stem}_crop{case['crop']}.npy"
        if not path.exists():
            np.save(path, load_image(case))
        return path

    def mcrgpu(self, case: dict, rep: int, optimizer: str = "LBFGSB") -> dict:
        work = self._dir(f"{case['name']}_mcrgpu_{optimizer}")
        spec = {**case, "seed": rep, "optimizer": optimizer, "result_file": str(work / "result.npy")}
        out = work / "record.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "mcrgpu",
                   "--spec", json.dumps(spec), "--worker-out", str(out)]
        run = run_measured(command, work / "log.txt")
        if run["returncode"] != 0 or not out.exists():
            return {**run, "error": log_tail(work / "log.txt")}
        record = {**run, **json.loads(out.read_text())}
        if case["kind"] == "match":
            t = record["seconds"]
            n = len(t)
            record["startup_s"] = t[0]
            record["warmup_k"], record["s_per_iter"] = mcrgpu_s_per_iter(t, optimizer)
            record["final_loss"] = record["best_loss"]
            record["s2_error"] = s2_error(np.load(work / "result.npy"), load_image(case))
        return record

    def mcrpy(self, case: dict, max_iter: int | None) -> dict:
        work = self._dir(f"{case['name']}_mcrpy")
        data_folder = work / "data"
        source = self.input_file(case)
        py = str(self.peer_python)
        if case["kind"] == "characterize":
            command = [py, "-m", "mcrpy.characterize", "--microstructure_filenames", str(source),
                       "--descriptor_types", *case["descriptors"], "--limit_to", str(LIMIT_TO),
                       "--data_folder", str(data_folder)]
        else:
            command = [py, "-m", "mcrpy.match", "--microstructure_filenames", str(source),
                       "--descriptor_types", *case["descriptors"],
                       "--descriptor_weights", *[str(w) for w in case["weights"]],
                       "--limit_to", str(LIMIT_TO), "--optimizer_type", "LBFGSB",
                       "--max_iter", str(max_iter), "--data_folder", str(data_folder)]
            if len(case["shape"]) == 3:
                command += ["--add_dimension", str(case["shape"][0])]
        run = run_measured(command, work / "log.txt", cwd=work)
        if run["returncode"] != 0:
            return {**run, "error": log_tail(work / "log.txt")}
        record = {**run, "max_iter": max_iter}
        if case["kind"] == "match":
            out = work / "convergence.json"
            reader = run_measured([py, str(Path(__file__).resolve()), "--worker", "read-mcrpy", "--spec",
                                   str(data_folder / "convergence_data.pickle"), "--worker-out", str(out)],
                                  work / "reader_log.txt")
            if reader["returncode"] != 0:
                return {**run, "error": log_tail(work / "reader_log.txt")}
            record.update(json.loads(out.read_text()))
            printed = [line for line in (work / "log.txt").read_text(errors="replace").splitlines()
                       if line.lstrip().startswith("Iteration")]
            record["printed_iteration_lines"] = len(printed)
            record["s2_error"] = s2_error(np.load(data_folder / "last_frame.npy"), load_image(case))
        shutil.rmtree(data_folder, ignore_errors=True)  # the 3D convergence pickles are large
        return record


def ensure_peer_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if python.exists():
        check = subprocess.run([str(python), "-c", "import mcrpy, tensorflow, numpy"], capture_output=True)
        if check.returncode == 0:
            return python
    print(f"Creating the MCRpy venv {path} (pip install {' '.join(PEER_PACKAGES)}) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


# -- summarising ----------------------------------------------------------------------------------
def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def summarise_mcrgpu(case: dict, runs: list[dict], rate_gflops: float, optimizer: str = "LBFGSB") -> dict:
    ok = [r for r in runs if "error" not in r]
    row = {"case": case_label(case), "tool": f"mcrgpu {optimizer}", "optimizer": optimizer, "runs": len(ok),
           "failed": len(runs) - len(ok)}
    if not ok:
        return row
    floor = flops_per_evaluation(case) / (rate_gflops * 1e9)
    if case["kind"] == "characterize":
        row.update(s_per_iter=median(r["characterize_seconds"] for r in ok), startup_s=None)
    else:
        row.update(s_per_iter=median(r["s_per_iter"] for r in ok), startup_s=median(r["startup_s"] for r in ok),
                   final_loss=median(r["final_loss"] for r in ok), s2_error=median(r["s2_error"] for r in ok),
                   n_evaluations=median(r["n_evaluations"] for r in ok))
    row.update(wall_s=median(r["wall_s"] for r in ok), peak_rss_mb=median(r["peak_rss_mb"] for r in ok),
               flops_per_iter=flops_per_evaluation(case), floor_s_per_iter=floor)
    if row.get("s_per_iter"):
        row["measured_over_floor"] = row["s_per_iter"] / floor
    return row


def summarise_mcrpy(case: dict, pairs: list[dict]) -> dict:
    row = {"case": case_label(case), "tool": "MCRpy 0.2.0"}
    if case["kind"] == "characterize":
        ok = [p["long"] for p in pairs if "error" not in p["long"]]
        row.update(runs=len(ok), failed=len(pairs) - len(ok))
        if ok:
            row.update(wall_s=median(r["wall_s"] for r in ok), peak_rss_mb=median(r["peak_rss_mb"] for r in ok))
        return row
    ok = [p for p in pairs if "error" not in p["short"] and "error" not in p["long"]]
    row.update(runs=len(ok), failed=len(pairs) - len(ok))
    if not ok:
        return row
    per_iter, startup = [], []
    for p in ok:
        extra = p["long"]["n_evaluations"] - p["short"]["n_evaluations"]
        if extra > 0:
            s = (p["long"]["wall_s"] - p["short"]["wall_s"]) / extra
            per_iter.append(s)
            startup.append(p["long"]["wall_s"] - p["long"]["n_evaluations"] * s)
    longs = [p["long"] for p in ok]
    row.update(s_per_iter=median(per_iter), startup_s=median(startup), wall_s=median(r["wall_s"] for r in longs),
               peak_rss_mb=median(r["peak_rss_mb"] for r in longs),
               final_loss=median(r["final_loss"] for r in longs), s2_error=median(r["s2_error"] for r in longs),
               n_evaluations=median(r["n_evaluations"] for r in longs))
    return row


def build_rows(raw: dict, rate_gflops: float) -> list[dict]:
    """Table rows from the raw runs of every case so far: one per mcrgpu optimiser, then MCRpy."""
    rows, one_device = [], None
    for entry in raw.values():
        case, mine, theirs = entry["case"], entry["mcrgpu"], entry["mcrpy"]
        peer_row = summarise_mcrpy(case, theirs) if entry.get("with_peer", bool(theirs)) else None
        for optimizer, runs in mine.items():
            row = summarise_mcrgpu(case, runs, rate_gflops, optimizer)
            if case["kind"] == "characterize":
                row["tool"] = "mcrgpu"
            if case.get("logical_devices"):
                row["logical_devices"] = case["logical_devices"]
                if case["logical_devices"] == 1:
                    one_device = row.get("s_per_iter")
                if one_device and row.get("s_per_iter"):
                    row["replica_ratio"] = row["s_per_iter"] / one_device
            if peer_row is not None:
                if case["kind"] == "characterize":
                    if peer_row.get("wall_s") and row.get("wall_s"):
                        row["speedup"] = peer_row["wall_s"] / row["wall_s"]
                elif peer_row.get("s_per_iter") and row.get("s_per_iter"):
                    row["speedup"] = peer_row["s_per_iter"] / row["s_per_iter"]
            rows.append(row)
        if peer_row is not None:
            rows.append(peer_row)
    return rows


def case_label(case: dict) -> str:
    label = case["name"]
    if case["kind"] == "match":
        label += f" ({'x'.join(map(str, case['shape']))}, {'+'.join(case['descriptors'])}, {case['max_iter']} it"
        if case.get("greedy"):
            label += f", greedy {case['batch_size']}/axis"
        if case.get("logical_devices"):
            label += f", {case['logical_devices']} CPU dev"
        label += ")"
    else:
        label += f" ({case['file']}, {'+'.join(case['descriptors'])})"
    return label


def fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 1e-2:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def fmt_int(value):
    return "–" if value is None else f"{value:.0f}"


def write_results(out: Path, meta: dict, rows: list[dict], raw: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": raw}, indent=1, default=str))
    lines = [f"# mcrgpu benchmark: {meta['suite']} suite", "",
             f"- date: {meta['date']}; host: {meta['host']}; {meta['cpu_count']} CPU cores; "
             f"python {meta['python']}; device: CPU only",
             f"- matmul rate (2048x2048 float32 tf.matmul, best of 5): **{fmt(meta.get('matmul_gflops'))} GFLOP/s**",
             f"- command: `{meta['command']}`; total {fmt_int(meta.get('total_s'))} s",
             f"- the machine was shared with other jobs (1-minute load average {meta.get('load_start', '–')} at the "
             f"start, {meta.get('load_end', '–')} at the end on {meta['cpu_count']} cores): absolute times are noisy; "
             "compare the ratios, measured in this one run with the tools interleaved case by case",
             "- mcrgpu LBFGSB: the device L-BFGS (default); mcrgpu LBFGSB_SCIPY: SciPy's L-BFGS-B on the host, "
             "as MCRpy runs it; both with the same max_iter (loss evaluations) as MCRpy",
             "- s/iter: seconds per loss+gradient evaluation after warm-up (median of runs); start-up: "
             "mcrgpu's first evaluation (tracing), MCRpy's intercept (wall − n·s/iter, includes imports)",
             "- the characterization row's s/iter is mcrgpu's in-process characterize() time; its speed-up "
             "compares wall times", "",
             "| case | tool | s/iter (median) | start-up s | wall s | peak RSS MB | final loss | S2 error | "
             "speed-up (MCRpy/mcrgpu s/iter) | floor s/iter | measured/floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        tool = row["tool"] + (f" ({row['runs']} runs" + (f", {row['failed']} failed" if row.get("failed") else "")
                              + ")")
        lines.append("| " + " | ".join([
            row["case"], tool, fmt(row.get("s_per_iter")), fmt(row.get("startup_s")), fmt(row.get("wall_s")),
            fmt_int(row.get("peak_rss_mb")), fmt(row.get("final_loss")), fmt(row.get("s2_error")),
            fmt(row.get("speedup")), fmt(row.get("floor_s_per_iter")), fmt(row.get("measured_over_floor"))]) + " |")
    replicas = [r for r in rows if "replica_ratio" in r]
    if replicas:
        lines += ["", "## Replica overhead (mcrgpu, MirroredStrategy over logical CPU devices)", "",
                  "| logical CPU devices | s/iter | ratio to 1 device |", "|---|---|---|"]
        for r in replicas:
            lines.append(f"| {r['logical_devices']} | {fmt(r.get('s_per_iter'))} | {fmt(r['replica_ratio'])} |")
    failures = [f"- {name}: {err}" for name, err in meta.get("failures", [])]
    if failures:
        lines += ["", "## Failures", "", *failures]
    (out / "results.md").write_text("\n".join(lines) + "\n")


# -- main -------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=["quick", "full"], default="quick")
    parser.add_argument("--peer", action="store_true", help="also run MCRpy 0.2.0 (creates its venv once)")
    parser.add_argument("--peer-venv", default=str(HERE / ".peer-venv"))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--reps", type=int, default=3, help="runs per case and tool (median); default 3")
    parser.add_argument("--only", nargs="*", help="run only the cases whose name contains one of these")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite results.md from the results.json in --out")
    parser.add_argument("--max-iter-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["mcrgpu", "matmul", "read-mcrpy"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "mcrgpu":
        worker_mcrgpu(json.loads(args.spec), Path(args.worker_out))
        return 0
    if args.worker == "matmul":
        worker_matmul(Path(args.worker_out))
        return 0
    if args.worker == "read-mcrpy":
        worker_read_mcrpy(Path(args.spec), Path(args.worker_out))
        return 0

    started = time.perf_counter()
    out = Path(args.out)
    if args.render:
        saved = json.loads((out / "results.json").read_text())
        for entry in saved["runs"].values():  # recompute the figures from the raw runs
            for optimizer, runs in entry["mcrgpu"].items():
                for run in runs:
                    if "seconds" in run:
                        run["warmup_k"], run["s_per_iter"] = mcrgpu_s_per_iter(run["seconds"], optimizer)
        write_results(out, saved["meta"], build_rows(saved["runs"], saved["meta"]["matmul_gflops"]), saved["runs"])
        return 0
    cases = suite_cases(args.suite)
    if args.only:
        cases = [c for c in cases if any(s in c["name"] for s in args.only)]
    if args.max_iter_scale != 1.0:
        for c in cases:
            if "max_iter" in c:
                c["max_iter"] = max(4, int(round(c["max_iter"] * args.max_iter_scale)))
    if args.peer:
        ensure_peer_venv(Path(args.peer_venv))
    scratch = Path(tempfile.mkdtemp(prefix="mcrgpu_bench_"))
    runner = Runner(args, scratch)
    meta = {"suite": args.suite, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "peer": args.peer,
            "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
            "reps": args.reps, "warmup_k": WARMUP, "failures": [], "load_start": round(os.getloadavg()[0], 1)}
    rate_file = scratch / "matmul.json"
    rate_run = run_measured([sys.executable, str(Path(__file__).resolve()), "--worker", "matmul",
                             "--worker-out", str(rate_file)], scratch / "matmul_log.txt")
    if rate_run["returncode"] != 0:
        raise SystemExit("matmul rate measurement failed:\n" + log_tail(scratch / "matmul_log.txt"))
    meta["matmul_gflops"] = json.loads(rate_file.read_text())["gflops"]
    print(f"matmul rate: {meta['matmul_gflops']:.1f} GFLOP/s", flush=True)

    rows, raw = [], {}
    try:
        for case in cases:
            reps = min(args.reps, case.get("reps", args.reps))
            with_peer = args.peer and case.get("peer", True)
            optimizers = case.get("optimizers", OPTIMIZERS) if case["kind"] == "match" else ["LBFGSB"]
            mine, theirs = {name: [] for name in optimizers}, []
            for rep in range(reps):  # interleaved: A A' B A A' B ...
                for optimizer in optimizers:
                    print(f"[{time.perf_counter() - started:7.0f}s] {case['name']} rep {rep + 1}/{reps}: "
                          f"mcrgpu {optimizer}", flush=True)
                    mine[optimizer].append(runner.mcrgpu(case, rep, optimizer))
                if with_peer:
                    print(f"[{time.perf_counter() - started:7.0f}s] {case['name']} rep {rep + 1}/{reps}: MCRpy",
                          flush=True)
                    if case["kind"] == "match":
                        short = case.get("peer_short", max(1, case["max_iter"] // 2))
                        theirs.append({"short": runner.mcrpy(case, short), "long": runner.mcrpy(case, case["max_iter"])})
                    else:
                        theirs.append({"long": runner.mcrpy(case, None)})
            for run in [r for runs in mine.values() for r in runs] + [r for p in theirs for r in p.values()]:
                if "error" in run:
                    meta["failures"].append((case["name"], run["error"][-300:].replace("\n", " ")))
            key = case["name"] + (f"_x{case['logical_devices']}" if case.get("logical_devices") else "")
            raw[key] = {"case": case, "mcrgpu": mine, "mcrpy": theirs, "with_peer": with_peer}
            rows = build_rows(raw, meta["matmul_gflops"])
            meta["total_s"] = time.perf_counter() - started
            meta["load_end"] = round(os.getloadavg()[0], 1)
            write_results(out, meta, rows, raw)  # after every case, so partial results survive
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
