"""Fault table: bad input, impossible options and stop signals given to the real command line.

Each case runs ``mcrgpu`` in a fresh process inside a scratch folder and reports its exit code, the
last line it printed, and which files it left in the output folder (``results/``). The image tasks'
cases run after the reconstruction's, in order: some continue an earlier case's output (a rerun
with another input, seed or model). Run from the repository:

    python benchmarks/faults.py [--out benchmarks/results/faults.md]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

MCRGPU = [sys.executable, "-c", "from mcrgpu.cli import main; main()"]
QUICK = ["--descriptor_types", "FFTCorrelations", "--limit_to", "4", "--max_iter", "20", "--no_progress"]


def prepare(folder: Path) -> None:
    """Input files of every kind of fault, in ``folder``."""
    rng = np.random.default_rng(0)
    good = (rng.random((32, 32)) > 0.6).astype(np.int64)
    np.save(folder / "good.npy", good)
    np.save(folder / "empty.npy", np.zeros((0, 0)))
    (folder / "text.npy").write_text("this is not an array\n")
    (folder / "random.npy").write_bytes(rng.bytes(4096))
    np.save(folder / "truncated.npy", good)
    (folder / "truncated.npy").write_bytes((folder / "truncated.npy").read_bytes()[:200])
    np.save(folder / "nan.npy", np.where(good > 0, np.nan, 0.0))
    np.save(folder / "float.npy", good * 0.5)
    np.save(folder / "one_phase.npy", np.zeros((32, 32), np.int64))
    np.save(folder / "line.npy", np.arange(32) % 2)
    np.save(folder / "four_d.npy", np.zeros((4, 4, 4, 4), np.int64))
    np.save(folder / "tiny.npy", np.array([[0, 1], [1, 0]]))
    np.save(folder / "many_phases.npy", np.arange(64 * 64).reshape(64, 64) % 983)
    np.save(folder / "negative.npy", good - 1)
    (folder / "a_directory.npy").mkdir()
    run(["characterize", "good.npy", "--descriptor_types", "FFTCorrelations", "--limit_to", "4",
         "--data_folder", "chars"], folder)
    data = (folder / "chars" / "good_characterization.npz").read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (folder / "flipped_characterization.npz").write_bytes(bytes(flipped))
    with zipfile.ZipFile(folder / "chars" / "good_characterization.npz") as source, \
            zipfile.ZipFile(folder / "future_characterization.npz", "w") as target:
        for item in source.namelist():
            content = source.read(item)
            if item == "header.npy":
                header = np.load(io.BytesIO(content))
                text = str(header).replace('"format_version": 1', '"format_version": 99')
                buffer = io.BytesIO()
                np.save(buffer, np.array(text))
                content = buffer.getvalue()
            target.writestr(item, content)


CASES = [
    ("batch allocation without srun (one worker)", ["gpus"], {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}),
    ("GPU id that does not exist", ["gpus", "--gpu_ids", "3"], {}),
    ("memory limit without a GPU", ["gpus", "--memory_limit", "4000"], {}),
    ("missing file", ["match", "missing.npy", *QUICK], {}),
    ("directory instead of a file", ["match", "a_directory.npy", *QUICK], {}),
    ("empty .npy", ["match", "empty.npy", *QUICK], {}),
    ("truncated .npy", ["match", "truncated.npy", *QUICK], {}),
    ("text named .npy", ["match", "text.npy", *QUICK], {}),
    ("random bytes", ["match", "random.npy", *QUICK], {}),
    ("NaN labels", ["match", "nan.npy", *QUICK], {}),
    ("float labels", ["match", "float.npy", *QUICK], {}),
    ("one phase", ["match", "one_phase.npy", *QUICK], {}),
    ("1D array", ["match", "line.npy", *QUICK], {}),
    ("4D array", ["match", "four_d.npy", *QUICK], {}),
    ("2x2 image", ["match", "tiny.npy", *QUICK], {}),
    ("983 phases", ["match", "many_phases.npy", *QUICK], {}),
    ("negative labels (valid: labels name phases)", ["match", "negative.npy", *QUICK], {}),
    ("byte-flipped characterization", ["reconstruct", "--descriptor_filename", "flipped_characterization.npz",
                                       "--extent_x", "16", "--extent_y", "16", "--max_iter", "5"], {}),
    ("characterization of a newer format", ["reconstruct", "--descriptor_filename", "future_characterization.npz",
                                            "--extent_x", "16", "--extent_y", "16", "--max_iter", "5"], {}),
    ("a structure given as characterization", ["reconstruct", "--descriptor_filename", "good.npy"], {}),
    ("limit_to 0", ["match", "good.npy", "--limit_to", "0", "--max_iter", "5"], {}),
    ("limit_to above half the image", ["match", "good.npy", "--limit_to", "40", "--max_iter", "5"], {}),
    ("unknown descriptor", ["match", "good.npy", "--descriptor_types", "Corelations"], {}),
    ("unknown optimiser", ["match", "good.npy", "--optimizer_type", "LBFGS"], {}),
    ("path traversal in --information", ["match", "good.npy", *QUICK, "--information", "x/../../ESCAPED"], {}),
    ("300-character name", ["match", "good.npy", *QUICK, "--information", "n" * 300], {}),
    ("one weight too many", ["match", "good.npy", *QUICK, "--descriptor_weights", "1", "2"], {}),
    ("unwritable output", ["example", "/proc/x/y.npy"], {}),
    ("resume from a corrupt file", ["match", "good.npy", *QUICK, "--resume", "flipped_characterization.npz"], {}),
]


def prepare_images(folder: Path) -> None:
    """Built-in models, rasters and photographs for the image tasks' cases, in ``folder``."""
    from PIL import Image
    from skimage import data

    for name in ("segment_phases", "colour_transfer", "matcher", "image_statistics", "microstructure_descriptors"):
        run(["models", "export", name, f"models/{name}"], folder)
    rng = np.random.default_rng(0)
    np.save(folder / "a.npy", rng.random((300, 300)).astype(np.float32))
    np.save(folder / "b.npy", rng.random((300, 300)).astype(np.float32))
    np.save(folder / "big.npy", rng.random((3000, 3000)).astype(np.float32))
    holes = rng.random((300, 300)).astype(np.float32)
    holes[100:110, 50:60] = np.nan
    np.save(folder / "holes.npy", holes)
    (folder / "photos").mkdir()
    for name, array in (("astronaut", data.astronaut()), ("coffee", data.coffee()), ("camera", data.camera())):
        Image.fromarray(array[::4, ::4]).save(folder / "photos" / f"{name}.png")
    (folder / "pairs.txt").write_text("photos/astronaut.png photos/coffee.png\nphotos/camera.png photos/coffee.png\n")
    results = folder / "results"
    results.mkdir(exist_ok=True)
    (results / "notes.npy").write_text("a file of the user's\n")
    (results / "pairs").mkdir()
    (results / "pairs" / "astronaut__coffee.npz").write_text("a file of the user's\n")
    for name, model in (("one", "image_statistics"), ("other", "microstructure_descriptors")):
        (folder / f"{name}.toml").write_text(f'default = "rest"\n[models.stats]\npath = "models/{model}"\n'
                                             '[[bins]]\nname = "first"\nwhen = ["stats.' +
                                             ("sharpness > 0" if name == "one" else "phase_fraction >= 0") + '"]\n')


TILES = ["images", "tiles", "--model", "models/segment_phases", "--no_progress"]
GRID = ["images", "grid", "--model", "models/colour_transfer", "--images", "photos", "--references", "photos",
        "--no_progress"]
IMAGE_CASES = [
    ("tiles: output is the input", [*TILES, "a.npy", "a.npy", "--overwrite"], None),
    ("tiles: a file of the user's at the output", [*TILES, "a.npy", "results/notes.npy"], None),
    ("tiles: NaN in the raster", [*TILES, "holes.npy", "results/holes_phases.npy"], None),
    ("tiles: a finished output", [*TILES, "a.npy", "results/phases.npy"], None),
    ("tiles: rerun of a finished output with another raster", [*TILES, "b.npy", "results/phases.npy"], None),
    ("tiles: SIGTERM during the run", [*TILES, "big.npy", "results/big_phases.npy", "--tile_size", "128"],
     "results/big_phases.npy.manifest.jsonl"),
    ("tiles: resuming a stopped run with another raster", [*TILES, "a.npy", "results/big_phases.npy"], None),
    ("grid: a finished run", [*GRID, "--data_folder", "results/grid"], None),
    ("grid: rerun with another --seed", [*GRID, "--data_folder", "results/grid", "--seed", "1"], None),
    ("grid: SIGTERM during the run", [*GRID, "--samples", "50", "--data_folder", "results/grid_stopped"],
     "results/grid_stopped/grid_manifest.jsonl"),
    ("pairs: an output the manifest does not list", ["images", "pairs", "--model", "models/matcher", "--pairs",
                                                     "pairs.txt", "--data_folder", "results/pairs", "--no_progress"],
     None),
    ("bin: a finished run", ["images", "bin", "photos", "--rules", "one.toml", "--out", "results/bins.csv",
                             "--no_progress"], None),
    ("bin: [models.stats] pointed at another model", ["images", "bin", "photos", "--rules", "other.toml", "--out",
                                                      "results/bins.csv", "--no_progress"], None),
    ("models export over a SavedModel", ["models", "export", "matcher", "models/colour_transfer"], None),
    ("models export --overwrite keeps the user's files", ["models", "export", "matcher", "results/model",
                                                          "--overwrite"], None),
    ("models show of a damaged saved_model.pb", ["models", "show", "damaged"], None),
]


def run_until(arguments, folder: Path, ready: Path, signum=signal.SIGTERM):
    """(exit code, the line to show, lines printed) of ``arguments`` sent ``signum`` once ``ready`` holds two
    lines (a manifest: some items are done); killed if it has not ended 600 s later."""
    process = subprocess.Popen([*MCRGPU, *arguments], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline and not (
                (folder / ready).is_file() and len((folder / ready).read_text().splitlines()) >= 2):
            time.sleep(0.1)
        process.send_signal(signum)
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    shown = [line for line in lines if line.strip()]
    return process.returncode, " ".join((shown[-1:] or [""])[0].split()), len(shown)


def run(arguments, folder: Path, env=None, *, stop_after: str | None = None, signum=signal.SIGTERM):
    """(exit code, the line to show, lines printed); with ``stop_after``, ``signum`` once that text
    appears. The line shown is the last one, or the worker count of ``mcrgpu gpus``."""
    process = subprocess.Popen([*MCRGPU, *arguments], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **(env or {})})
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if stop_after and stop_after in line:
            process.send_signal(signum)
            stop_after = None
    process.wait(timeout=600)
    shown = [line for line in lines if line.strip()]
    workers = [line for line in shown if line.startswith("Workers")]
    line = " ".join((workers or shown[-1:] or [""])[0].split())
    return process.returncode, line, len(shown)


def outputs(folder: Path) -> set[str]:
    """Files in results/ (and its folders), relative to it, with size and modification time, so that a
    replaced file counts as written."""
    root = folder / "results"
    if not root.is_dir():
        return set()
    return {f"{p.relative_to(root)}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}" for p in root.rglob("*")
            if p.is_file() or p.name.startswith(".")}


def written(before: set[str], folder: Path) -> str:
    names = sorted({entry.split("\0")[0] for entry in outputs(folder) - before})
    shown = ", ".join(names[:6]) + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")
    return shown or "nothing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Also write the Markdown table here.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        prepare(folder)
        for name, arguments, env in CASES:
            before = outputs(folder)
            code, line, count = run(arguments, folder, env)
            rows.append((name, " ".join(["mcrgpu", *arguments]).replace("n" * 300, "n...n (300)"), code,
                         f"{line} ({count} lines)" if count > 1 else line, written(before, folder)))
        for signum in (signal.SIGTERM, signal.SIGINT):
            arguments = ["match", "good.npy", "--add_dimension", "32", "--descriptor_types", "FFTCorrelations",
                         "--limit_to", "4", "--max_iter", "100000", "--tolerance", "0", "--information",
                         signum.name, "--progress"]
            before = outputs(folder)
            code, line, _ = run(arguments, folder, stop_after="loss=", signum=signum)
            rows.append((f"{signum.name} during the run", " ".join(["mcrgpu", *arguments]), code, line,
                         written(before, folder)))
        prepare_images(folder)
        for name, arguments, ready in IMAGE_CASES:
            if name == "models show of a damaged saved_model.pb":
                run(["models", "export", "image_statistics", "damaged"], folder)
                (folder / "damaged" / "saved_model.pb").write_bytes(b"\0damaged" * 64)
            if name.startswith("models export --overwrite"):
                run(["models", "export", "matcher", "results/model"], folder)
                (folder / "results" / "model" / "README.txt").write_text("the user's notes\n")
            before = outputs(folder)
            code, line, count = run_until(arguments, folder, Path(ready)) if ready else run(arguments, folder)
            rows.append((name, " ".join(["mcrgpu", *arguments]), code,
                         f"{line} ({count} lines)" if count > 1 else line, written(before, folder)))
    table = ["| case | command | exit | line shown (lines printed) | files it wrote in results/ |",
             "|---|---|---|---|---|"]
    table += [f"| {name} | `{command}` | {code} | {line.replace('|', '/')} | {kept} |"
              for name, command, code, line, kept in rows]
    text = "\n".join(table)
    print(text)
    if args.out:
        args.out.write_text(f"# Fault table\n\n`python benchmarks/faults.py --out {args.out}`\n\n{text}\n")


if __name__ == "__main__":
    main()
