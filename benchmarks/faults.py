"""Fault table: bad input, impossible options and stop signals given to the real command line.

Each case runs ``mcrgpu`` in a fresh process inside a scratch folder and reports its exit code, the
last line it printed, and which files it left in the output folder. Run from the repository:

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
    return {p.name for p in (folder / "results").iterdir()} if (folder / "results").is_dir() else set()


def written(before: set[str], folder: Path) -> str:
    return ", ".join(sorted(outputs(folder) - before)) or "nothing"


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
