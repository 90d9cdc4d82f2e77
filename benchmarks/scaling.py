#!/usr/bin/env python
"""Scaling of mcrgpu's 3D reconstruction: seconds per evaluation, polish time and peak memory
against the volume size N (N^3) and the number of devices.

    python benchmarks/scaling.py                          # N = 64, 128, 256 on 1 device, both cases
    python benchmarks/scaling.py --devices 1 2 4 8        # on 1, 2, 4 and 8 GPUs
    python benchmarks/scaling.py --sizes 64 128 --devices 1 2 --cpu-devices   # logical CPU devices

Each point (case, N, devices) runs in a fresh subprocess (so that its peak RSS is its own) with a
timeout: a 2D target (the package's synthetic 64x64 two-phase structure, or ``--target FILE``) is
characterized, ``2 * --evals`` evaluations of the default optimiser are run (the first ``--evals``,
which include tracing, are the warm-up; the next ``--evals`` are timed), then the two-point polish
is timed on its own, on labels near the target (another N^3 structure of the synthetic target's
generator; with ``--target``, the reconstruction's labels). Writes ``scaling.md`` (a Markdown table) and ``scaling.json``
(every point's raw figures) to ``--out``, atomically, after every point. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import fmt, fmt_int, log_tail, run_measured  # noqa: E402 - benchmarks/ is not a package

HERE = Path(__file__).resolve().parent
CASES = {
    "fft": {"label": "FFTCorrelations + Variation", "descriptors": ["FFTCorrelations", "Variation"],
            "weights": [1.0, 100.0]},
    "corr": {"label": "Correlations + Variation", "descriptors": ["Correlations", "Variation"],
             "weights": [1.0, 100.0]},
}
LIMIT_TO = 8
JIT_CHOICES = {"default": [None], "on": [True], "off": [False], "both": [False, True]}
JIT_NAMES = {None: "default", True: "on", False: "off"}


# -- the worker (one point, in its own subprocess) ---------------------------------------------------
def worker(spec: dict, out: Path) -> None:
    """Measure one point and write its figures to ``out`` (JSON)."""
    import tensorflow as tf

    from mcrgpu.gpu_manager import GPUConfig, setup_gpus

    devices = spec["devices"]
    gpus = tf.config.list_physical_devices("GPU")  # does not start the runtime
    if spec["cpu_devices"]:
        config = GPUConfig(cpu_devices=devices, allow_tf32=spec["allow_tf32"])
    elif not gpus and devices > 1:
        raise SystemExit(f"{devices} devices asked, but no GPU was found; add --cpu-devices to use logical "
                         "CPU devices")
    else:
        config = GPUConfig(gpu_ids=tuple(range(devices)) if gpus else None, allow_tf32=spec["allow_tf32"])
    strategy = setup_gpus(config)

    from mcrgpu.mcr.characterization import characterize
    from mcrgpu.mcr.dmcr import DMCR
    from mcrgpu.mcr.microstructure_io import load_microstructure
    from mcrgpu.mcr.polish import polish_labels, two_point_targets
    from mcrgpu.mcr.synthetic import gaussian_random_structure

    case = CASES[spec["case"]]
    target = load_microstructure(spec["target"]) if spec["target"] else gaussian_random_structure((64, 64), seed=0)
    desired = characterize(target, case["descriptors"], limit_to=LIMIT_TO, use_multiphase=False, strategy=strategy)
    evals, n = spec["evals"], spec["size"]
    # chunks of `evals` evaluations per device call, so the second chunk is timed apart from the
    # first (tracing); results saved under the point's folder, so that snapshots stay on disk; all
    # of them at N^3 (no coarse stages)
    dmcr = DMCR(case["descriptors"], case["weights"], max_iter=2 * evals, convergence_data_steps=evals, seed=0,
                strategy=strategy, two_point_polish=False, save_to=spec["work"], use_multigrid_reconstruction=False,
                lbfgs_memory=spec["lbfgs_memory"], lbfgs_precision=spec["lbfgs_precision"],
                **({} if spec["jit_compile"] is None else {"jit_compile": spec["jit_compile"]}))
    start = time.perf_counter()
    history, result = dmcr.reconstruct(desired, (n, n, n))
    reconstruct_s = time.perf_counter() - start
    seconds = list(history.seconds)
    record = {"n_evaluations": history.n_evaluations, "seconds": seconds, "reconstruct_s": reconstruct_s,
              "warmup_s": seconds[evals - 1] if len(seconds) >= evals else None,
              "s_per_eval": (seconds[2 * evals - 1] - seconds[evals - 1]) / evals if len(seconds) >= 2 * evals
              else None,
              "replicas": strategy.num_replicas_in_sync, "xla": dmcr.settings.xla_for(n**3),
              "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
              "gpus": [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]}
    out.write_text(json.dumps(record, default=float))  # kept if the polish runs out of time
    if spec["polish"]:
        # labels near the target, as after a converged run: another structure of the target's
        # generator (a file's target has none: then the labels of the 2 * evals evaluations)
        labels = result.labels if spec["target"] else gaussian_random_structure((n, n, n), seed=1).labels
        targets = two_point_targets(desired, case["descriptors"], 3)
        rounds: list[float] = []
        limit = {"max_rounds": spec["polish_rounds"]} if spec["polish_rounds"] else {}
        start = time.perf_counter()
        with strategy.scope():
            polish = polish_labels(labels, targets, on_round=lambda *_: rounds.append(time.perf_counter()), **limit)
        record.update(polish_s=time.perf_counter() - start, polish_rounds_done=len(rounds),
                      pixels_changed=int(polish.pixels_changed), s2_before=float(polish.s2_error_before),
                      s2_after=float(polish.s2_error_after))
    if gpus and not spec["cpu_devices"]:
        record["gpu_peak_mb"] = [tf.config.experimental.get_memory_info(f"GPU:{i}")["peak"] / 2**20
                                 for i in range(devices)]
    out.write_text(json.dumps(record, default=float))


# -- the table ----------------------------------------------------------------------------------------
def render(meta: dict, points: list[dict]) -> str:
    """The Markdown report of ``points`` (each a spec plus its measured figures or an error)."""
    gpus = next((p["gpus"] for p in points if p.get("gpus")), None)
    device = ("logical CPU devices" if meta["cpu_devices"] else
              f"GPUs: {', '.join(gpus)}" if gpus else "CPU only (no GPU found)")
    tf32 = next((p["tf32"] for p in points if "tf32" in p), None)
    lines = [
        "# mcrgpu scaling: seconds per evaluation, polish time and peak memory", "",
        f"- date: {meta['date']}; host: {meta['host']}; {meta['cpu_count']} CPU cores; python {meta['python']}; "
        f"devices: {device}; TensorFloat-32: {'allowed' if tf32 else 'off' if tf32 is not None else '–'}",
        f"- command: `{meta['command']}`; total {fmt_int(meta.get('total_s'))} s; 1-minute load average "
        f"{meta['load_start']} at the start, {meta.get('load_end', '–')} at the end",
        f"- target: {meta['target']}; N^3 reconstructed from it (every slice of the three axes compared with it), "
        f"limit_to {LIMIT_TO}, weights 1 and 100, the default optimiser (device L-BFGS), float32",
        f"- s/eval: seconds per loss+gradient evaluation over evaluations {meta['evals'] + 1}-{2 * meta['evals']} "
        f"(one device call); warm-up: the first {meta['evals']} (tracing included)",
        f"- polish: `polish_labels` timed alone, on {meta['polish_input']}, "
        f"{'at most ' + str(meta['polish_rounds']) + ' rounds' if meta['polish_rounds'] else 'to its end'}; "
        "S2 error before -> after it",
        "- peak RSS: the whole subprocess (`ru_maxrss`: optimisation and polish); GPU peak: "
        "`tf.config.experimental.get_memory_info` per device", "",
        "| case | N | devices | XLA | s/eval | warm-up s | polish s | polish rounds | s/round | "
        "S2 error before -> after polish | peak RSS MB | GPU peak MB | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    failures = []
    for p in points:
        if "error" in p:
            xla = "" if p.get("jit_compile") is None else f", XLA {JIT_NAMES[p['jit_compile']]}"
            failures.append(f"- {CASES[p['case']]['label']}, N={p['size']}, {p['devices']} device(s){xla}: "
                            f"{p['error']}")
        if "s_per_eval" not in p:
            continue
        s2 = f"{p['s2_before']:.4f} -> {p['s2_after']:.4f}" if "s2_before" in p else "–"
        gpu_peak = ", ".join(f"{mb:.0f}" for mb in p["gpu_peak_mb"]) if p.get("gpu_peak_mb") else "–"
        lines.append("| " + " | ".join([
            CASES[p["case"]]["label"], str(p["size"]), str(p["devices"]), _xla(p), fmt(p.get("s_per_eval")),
            fmt(p.get("warmup_s")), fmt(p.get("polish_s")), fmt_int(p.get("polish_rounds_done")),
            fmt(p["polish_s"] / p["polish_rounds_done"]) if p.get("polish_rounds_done") else "–", s2,
            fmt_int(p["peak_rss_mb"]), gpu_peak, fmt(p["wall_s"])]) + " |")
    if failures:
        lines += ["", "## Failures", "", *failures]
    return "\n".join(lines) + "\n"


def _xla(point: dict) -> str:
    """XLA as a point ran it: "on"/"off", "(default)" where the package chose."""
    if "xla" not in point:
        return "–"
    return ("on" if point["xla"] else "off") + (" (default)" if point.get("jit_compile") is None else "")


def write_results(out: Path, meta: dict, points: list[dict]) -> None:
    from mcrgpu.io import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scaling.json", json.dumps({"meta": meta, "points": points}, indent=1, default=str))
    atomic_write_text(out / "scaling.md", render(meta, points))


# -- main -------------------------------------------------------------------------------------------
def measure(spec: dict, scratch: Path, timeout: float) -> dict:
    """Run one point in a fresh subprocess; its spec with the figures, or with an ``error``."""
    work = scratch / f"{spec['case']}_{spec['size']}_{spec['devices']}_xla_{JIT_NAMES[spec['jit_compile']]}"
    work.mkdir(parents=True)
    out = work / "record.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps({**spec, "work": str(work)}),
               "--worker-out", str(out)]
    run = run_measured(command, work / "log.txt", timeout=timeout)
    point = {**spec, **run}
    if out.exists():  # the figures so far (without the polish's if that failed or ran out of time)
        point.update(json.loads(out.read_text()))
    if run["timed_out"]:
        point["error"] = f"timed out after {timeout:.0f} s (--timeout)"
    elif run["returncode"] != 0:
        point["error"] = log_tail(work / "log.txt", 400).strip().replace("\n", " ")
    return point


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="N of N^3 (default 64 128 256)")
    parser.add_argument("--with-512", action="store_true", help="add N = 512 (needs ~14 GB or more)")
    parser.add_argument("--devices", type=int, nargs="+", default=[1],
                        help="device counts: the first k GPUs, or k logical CPU devices with --cpu-devices")
    parser.add_argument("--cpu-devices", action="store_true", help="split the CPU into logical devices")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["fft", "corr"],
                        help="fft: FFTCorrelations + Variation; corr: Correlations + Variation (default both)")
    parser.add_argument("--evals", type=int, default=5, help="timed evaluations per point, after as many warm-up")
    parser.add_argument("--no-polish", action="store_true", help="skip the two-point polish")
    parser.add_argument("--polish-rounds", type=int, default=20,
                        help="stop the polish after this many rounds (default 20; 0: at the polish's own end)")
    parser.add_argument("--target", help="2D structure file (default: the package's synthetic 64x64 two-phase one)")
    parser.add_argument("--lbfgs-memory", type=int, default=10, help="L-BFGS pairs (default 10)")
    parser.add_argument("--lbfgs-precision", choices=["float32", "float16"], default="float32",
                        help="how the L-BFGS pairs are stored (default float32)")
    parser.add_argument("--jit-compile", choices=["default", "on", "off", "both"], default="default",
                        help="XLA for the loss: the package's default, on, off, or both (a point each)")
    parser.add_argument("--allow-tf32", action="store_true", help="let Ampere+ GPUs use TensorFloat-32")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per point (default 3600)")
    parser.add_argument("--out", default=str(HERE / "results" / "scaling"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker), Path(args.worker_out))
        return 0
    if args.evals < 1 or min(args.devices) < 1 or min(args.sizes) < 2 or args.polish_rounds < 0:
        parser.error("--evals and --devices must be >= 1, --sizes >= 2, --polish-rounds >= 0")

    sizes = sorted(set(args.sizes + ([512] if args.with_512 else [])))
    started = time.perf_counter()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "cpu_devices": args.cpu_devices, "evals": args.evals,
            "target": (f"`{args.target}`" if args.target else
                       "the package's synthetic 64x64 two-phase structure (`gaussian_random_structure((64, 64), "
                       "seed=0)`, fractions 0.6 / 0.4)"),
            "polish_rounds": args.polish_rounds,
            "polish_input": ("the labels after the 2 x --evals evaluations (far from converged: more work than "
                             "after a full run)" if args.target else
                             "another N^3 structure of the target's generator (`gaussian_random_structure((N, N, "
                             "N), seed=1)`: labels near the target, as after a converged run)"),
            "command": " ".join(["python", "benchmarks/scaling.py", *(argv if argv is not None else sys.argv[1:])]),
            "load_start": round(os.getloadavg()[0], 1)}
    points = []
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="mcrgpu_scaling_") as scratch:
        for case in args.cases:
            for size in sizes:
                for devices, jit_compile in itertools.product(args.devices, JIT_CHOICES[args.jit_compile]):
                    spec = {"case": case, "size": size, "devices": devices, "jit_compile": jit_compile,
                            "cpu_devices": args.cpu_devices,
                            "evals": args.evals, "polish": not args.no_polish, "target": args.target,
                            "polish_rounds": args.polish_rounds,
                            "allow_tf32": args.allow_tf32, "lbfgs_memory": args.lbfgs_memory,
                            "lbfgs_precision": args.lbfgs_precision}
                    print(f"[{time.perf_counter() - started:6.0f}s] {CASES[case]['label']}, N={size}, "
                          f"{devices} device(s), XLA {JIT_NAMES[jit_compile]}",
                          flush=True)
                    points.append(measure(spec, Path(scratch), args.timeout))
                    meta.update(total_s=time.perf_counter() - started, load_end=round(os.getloadavg()[0], 1))
                    write_results(out, meta, points)  # after every point: an interrupted run keeps what it has
    print((out / "scaling.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
