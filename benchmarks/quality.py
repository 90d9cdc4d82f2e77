"""Reconstruction quality of mcrgpu (before/after issue 10) and MCRpy 0.2.0 at the same evaluation budget.

For every structure: mcrgpu "before" (every multigrid level in the loss, MCRpy's weights 1 and 1, labels
cut at 0.5 / arg-max: the behaviour before issue 10), mcrgpu "after" (the defaults: coarse levels in part
or not at all, see :class:`mcrgpu.mcr.losses.LossSettings`, labels with the target fractions, fitted to
the target's S2 by the two-point polish, :mod:`mcrgpu.mcr.polish`), mcrgpu "after, no polish" (the same
optimised field without the polish) and MCRpy 0.2.0 (``python -m mcrpy.match``, its ``last_frame.npy``), all with
Correlations + VolumeFractions, limit_to 8, L-BFGS-B and the same ``max_iter``; then
:func:`mcrgpu.compare` of each result with the original: S2 error (relative, |r| < 8, all phases but
the most abundant), largest phase-fraction error, chord distance (Wasserstein-1 over the mean chord
length), cluster counts, and the copy check (best IoU over periodic shifts and flips).

Usage (from the repository root, with the venv that has mcrgpu)::

    .venv/bin/python benchmarks/quality.py [--max_iter 300] [--seeds 1 2] [--only NAME ...]
    .venv/bin/python benchmarks/quality.py --sweep   # which multigrid levels may enter the loss
    .venv/bin/python benchmarks/quality.py --weight-sweep 1 10   # the weight of VolumeFractions

Writes ``benchmarks/results/quality.md`` and ``quality.json`` (after every structure); ``--sweep``
writes ``multigrid_rule.md`` / ``.json``: mcrgpu with several rules for the multigrid levels in the
loss (``full_level_windows:two_point_level_windows``, see :class:`mcrgpu.mcr.losses.LossSettings`);
``--weight-sweep`` writes ``volume_fraction_weight.md`` / ``.json``: mcrgpu with each weight of VolumeFractions.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(os.environ.get("MCRGPU_BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
                           / "microstructures"))
PEER_PYTHON = Path(os.environ.get("MCRPY_PYTHON", "/work/scratch/mcrpy-venv/bin/python"))
STRUCTURES = ["pymks_ms_64x64_1", "pymks_ms_64x64_3", "alloy_resized_s", "copolymer_resized_s", "pmma_resized_s",
              "composite_resized_s", "generated_seed0", "generated_seed1_30pc"]
DESCRIPTORS = ["Correlations", "VolumeFractions"]
BEFORE = {"full_level_windows": 0.0, "two_point_level_windows": 0.0, "descriptor_weights": [1.0, 1.0],
          "two_point_polish": False}
RULES = [(0.0, 0.0), (4.0, 4.0), (8.0, 4.0), (8.0, 2.0), (8.0, 8.0)]
"""Sweep (64x64, limit_to 8: levels of 64, 32, 16 px): every level whole (MCRpy's multigrid loss);
64 and 32 px whole, 16 px out (the rule before the short-range one); 64 px whole, 32 px with S2 and
the three-point products of shifts within limit_to original pixels, 16 px out (the default); the
same with the 16 px level in part too; level 0 only."""

RULE_SWEEP = {
    "stem": "multigrid_rule", "column": "rule", "two_phase_only": True,
    "title": "Which multigrid levels may enter the loss",
    "text": "Correlations + VolumeFractions, limit_to 8, 64x64 (levels of 64, 32, 16 px). Rule full:two = a level "
            "enters whole if its side >= full x limit_to; if >= two x limit_to with S2 and the three-point "
            "products of shifts within limit_to original pixels; else not (level 0 always). 0:0 = before "
            "(every level), 8:4 = the default.",
}
WEIGHT_SWEEP = {
    "stem": "volume_fraction_weight", "column": "VolumeFractions weight", "two_phase_only": False,
    "title": "The weight of VolumeFractions next to Correlations",
    "text": "Correlations (weight 1) + VolumeFractions (the weight in the second column), limit_to 8, 64x64, "
            "the default multigrid rule; labels keep the target fractions and are fitted to the target's S2 "
            "(the two-point polish; volume_fraction_weight_before_polish.md: without it).",
}


def load(name: str):
    from mcrgpu import gaussian_random_structure, load_microstructure

    if name == "generated_seed0":
        return gaussian_random_structure((64, 64), seed=0)
    if name == "generated_seed1_30pc":
        return gaussian_random_structure((64, 64), volume_fractions=(0.7, 0.3), correlation_length=2.0, seed=1)
    return load_microstructure(DATA / f"{name}.npy")


def run_mcrgpu(structure, max_iter: int, seed: int, *, before: bool, settings: dict | None = None):
    from mcrgpu import DMCR, Microstructure, characterize

    target = characterize(structure, DESCRIPTORS, limit_to=8)
    started = time.perf_counter()
    history, result = DMCR(DESCRIPTORS, max_iter=max_iter, seed=seed,
                           **(BEFORE if before else settings or {})).reconstruct(target, structure.shape)
    if before:
        result = Microstructure.from_indicator(history.best_field)  # the 0.5 cut / arg-max of before
    return result, history, {"evaluations": history.n_evaluations, "seconds": time.perf_counter() - started,
                             "loss": history.best_loss}


def run_mcrpy(structure, max_iter: int, work: Path):
    source = work / "original.npy"
    np.save(source, structure.labels.astype(np.int64))
    command = [str(PEER_PYTHON), "-m", "mcrpy.match", "--microstructure_filenames", str(source),
               "--descriptor_types", *DESCRIPTORS, "--limit_to", "8", "--optimizer_type", "LBFGSB",
               "--max_iter", str(max_iter), "--data_folder", str(work / "out")]
    if structure.n_phases > 2:
        command.append("--use_multiphase")
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=work)
    frame = np.load(work / "out" / "last_frame.npy")
    labels = np.rint(frame).astype(np.int64) if frame.ndim == structure.ndim else np.argmax(frame, axis=-1)
    return labels, {"seconds": time.perf_counter() - started}


def row(report: dict) -> dict:
    result = report["results"][0]
    return {"s2_error": result["s2_error_summary"], "fraction_error": result["fraction_error_max"],
            "chord_distance": result["chord_distance_summary"],
            "clusters": [c["count"] for c in result["clusters"]], "iou": result["copy"]["iou"]}


def render(results: dict, max_iter: int) -> str:
    lines = [f"# Reconstruction quality: mcrgpu before/after issue 10 and MCRpy 0.2.0 ({max_iter} evaluations)", "",
             "After, no polish: the same optimised field as after, labelled with the target fractions but not fitted "
             "to the target's S2 (--no_two_point_polish).", "",
             "Correlations + VolumeFractions, limit_to 8, L-BFGS-B, 64x64. S2 error: relative L2 error of S2 over "
             "|dy|, |dx| < 8, phases other than the most abundant, after labelling. Fraction error: largest "
             "|f_result - f_original|. Chord: Wasserstein-1 distance of the chord-length distributions over the "
             "original's mean chord length (mean over axes). Clusters: count per phase (original in the header). "
             "IoU: best over periodic shifts and the 8 flips/rotations (> 0.5: a copy). mcrgpu rows: median over "
             "seeds (IoU: the largest). Machine shared with other engineers (timings not compared here).", ""]
    for name, entry in results.items():
        lines += [f"## {name} (clusters of the original: {entry['original_clusters']})", "",
                  "| run | S2 error | fraction error | chord distance | clusters | IoU |", "|---|---|---|---|---|---|"]
        for tool, runs in entry["runs"].items():
            def median(key):
                values = [r[key] for r in runs if r[key] is not None]
                return float(np.median(values)) if values else float("nan")
            iou = max(r["iou"] for r in runs)
            clusters = "; ".join(",".join(map(str, r["clusters"])) for r in runs)
            lines.append(f"| {tool} | {median('s2_error'):.3f} | {median('fraction_error'):.4f} | "
                         f"{median('chord_distance'):.3f} | {clusters} | {iou:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_iter", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--no-peer", action="store_true", help="skip MCRpy")
    parser.add_argument("--reuse-peer", type=Path, nargs="+", default=[], metavar="quality.json",
                        help="take MCRpy's rows from earlier runs (they do not depend on mcrgpu's code)")
    parser.add_argument("--peer-only", action="store_true", help="run MCRpy only (rows for a later --reuse-peer)")
    parser.add_argument("--sweep", action="store_true", help="compare rules for the multigrid levels instead")
    parser.add_argument("--weight-sweep", type=float, nargs="+", default=None, metavar="W",
                        help="compare weights of VolumeFractions instead")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    names = [n for n in STRUCTURES if not args.only or any(o in n for o in args.only)]
    if args.sweep:
        return sweep(names, args, RULE_SWEEP, [(f"{full:g}:{two:g}", {"full_level_windows": full,
                                                                       "two_point_level_windows": two})
                                               for full, two in RULES])
    if args.weight_sweep:
        return sweep(names, args, WEIGHT_SWEEP, [(f"{w:g}", {"descriptor_weights": [1.0, w]})
                                                 for w in args.weight_sweep])
    from mcrgpu import compare
    from mcrgpu.mcr.labelling import label_field

    earlier = {}  # read before --out is written (it may be the same file)
    for path in args.reuse_peer:
        earlier.update(json.loads(path.read_text())["results"])
    results = {}
    for name in names:
        structure = load(name)
        runs = {"mcrgpu before": [], "mcrgpu after, no polish": [], "mcrgpu after": [], "MCRpy 0.2.0": []}
        for seed in [] if args.peer_only else args.seeds:
            result, _, info = run_mcrgpu(structure, args.max_iter, seed, before=True)
            runs["mcrgpu before"].append({**row(compare(structure, result)), **info, "seed": seed})
            result, history, info = run_mcrgpu(structure, args.max_iter, seed, before=False)
            unpolished = label_field(history.best_field, structure.volume_fractions(), phase_values=result.phase_values)
            runs["mcrgpu after, no polish"].append({**row(compare(structure, unpolished)), **info, "seed": seed})
            runs["mcrgpu after"].append({**row(compare(structure, result)), **info, "seed": seed})
        if name in earlier and "MCRpy 0.2.0" in earlier[name]["runs"]:
            runs["MCRpy 0.2.0"] = earlier[name]["runs"]["MCRpy 0.2.0"]
        elif not args.no_peer:
            with tempfile.TemporaryDirectory() as work:
                labels, info = run_mcrpy(structure, args.max_iter, Path(work))
            runs["MCRpy 0.2.0"].append({**row(compare(structure, labels)), **info})
        results[name] = {"original_clusters": [c["count"] for c in compare(structure, structure)["original"]
                                               ["clusters"]], "runs": {k: v for k, v in runs.items() if v}}
        print(name, json.dumps(results[name]), flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "quality.json").write_text(json.dumps({"max_iter": args.max_iter, "results": results}, indent=1))
        (args.out / "quality.md").write_text(render(results, args.max_iter))


def sweep(names: list[str], args, kind: dict, variants: list[tuple[str, dict]]) -> None:
    """mcrgpu with each of ``variants`` (label, DMCR keywords) on every structure: ``kind["stem"]``.md / .json."""
    from mcrgpu import compare

    rows = []
    lines = [f"# {kind['title']} ({args.max_iter} evaluations, seeds {args.seeds})", "",
             kind["text"] + " IoU: best over shifts and flips (largest over seeds); S2 error and clusters after "
             "labelling (median over seeds).", "",
             f"| structure | {kind['column']} | IoU | S2 error | chord distance | clusters (original) |",
             "|---|---|---|---|---|---|"]
    for name in names:
        structure = load(name)
        if kind["two_phase_only"] and structure.n_phases > 2:
            continue
        original = [c["count"] for c in compare(structure, structure)["original"]["clusters"]]
        for label, settings in variants:
            runs = []
            for seed in args.seeds:
                result, _, info = run_mcrgpu(structure, args.max_iter, seed, before=False, settings=settings)
                runs.append({**row(compare(structure, result)), **info, "seed": seed})
            rows.append({"structure": name, kind["column"]: label, "settings": settings, "runs": runs})
            clusters = "; ".join(",".join(map(str, r["clusters"])) for r in runs)
            lines.append(f"| {name} | {label} | {max(r['iou'] for r in runs):.3f} | "
                         f"{np.median([r['s2_error'] for r in runs]):.3f} | "
                         f"{np.median([r['chord_distance'] for r in runs]):.3f} | "
                         f"{clusters} ({','.join(map(str, original))}) |")
            print(lines[-1], flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{kind['stem']}.json").write_text(json.dumps({"max_iter": args.max_iter, "rows": rows},
                                                                      indent=1))
            (args.out / f"{kind['stem']}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
