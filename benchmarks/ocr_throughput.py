"""OCR throughput: images/s of ``mcrgpu images ocr`` (PP-OCRv4 SavedModels under the strategy) against RapidOCR
1.4.4 (onnxruntime, the same PP-OCRv4 weights) on the same images, side by side, a subprocess per run.

    python benchmarks/ocr_throughput.py [--devices 1] [--repeats 2] [--copies 2] [--out benchmarks/results]

The images are scikit-image's page, text, astronaut, coffee and camera as PNG, each in COPIES
copies under other names (exact duplicates: a mirrored page would not read). mcrgpu runs
``run_ocr`` (detector + recognizer, JSON Lines written) once to load the models, then is timed
with ``overwrite=True``; the timed run traces its steps again, as every ``images ocr`` command
does (about 4 traces of the large PP-OCRv4 graphs), so more COPIES amortise them. RapidOCR reads
every image once to warm up, then is timed over all of them (``use_cls=False``: mcrgpu has no
angle classifier; RapidOCR's default batches of 6 lines). Runs alternate tool by tool and the
median is reported, with the load average before and after, and how many lines both read alike.
Needs the ``ocr`` extra (``pip install "mcrgpu[ocr]"``); writes ``OUT/ocr_throughput.md`` atomically.
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

PHOTOS = ("page", "text", "astronaut", "coffee", "camera")


def prepare(work: Path, copies: int) -> None:
    from PIL import Image
    from skimage import data

    from mcrgpu.images.models import export_model

    (work / "images").mkdir(parents=True)
    for name in PHOTOS:
        for k in range(copies):
            Image.fromarray(getattr(data, name)()).save(work / "images" / f"{name}_{k}.png")
    export_model("text_detector", work / "text_detector")
    export_model("text_recognizer", work / "text_recognizer")


def child_mcrgpu(work: Path, devices: int, batch_size: int) -> dict:
    from mcrgpu.gpu_manager import GPUConfig, setup_gpus
    from mcrgpu.images.ocr import run_ocr

    strategy = setup_gpus(GPUConfig(cpu_devices=devices))
    out = work / f"mcrgpu_{devices}.jsonl"

    def once():
        return run_ocr(work / "images", work / "text_detector", work / "text_recognizer", out=out, strategy=strategy,
                       batch_size=batch_size, overwrite=True, progress=False)

    once()  # loads the models and traces the steps
    begin = time.perf_counter()
    summary = once()
    seconds = time.perf_counter() - begin
    texts = {Path(record["image"]).name: [line["text"] for line in record["lines"]]
             for record in map(json.loads, out.read_text().splitlines())}
    return {"tool": f"mcrgpu, {devices} device(s)", "images": summary.images, "seconds": seconds,
            "per_second": summary.images / seconds, "lines": summary.lines, "texts": texts}


def child_rapidocr(work: Path) -> dict:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    files = sorted((work / "images").iterdir())
    for file in files:
        engine(str(file), use_cls=False)  # warm up: sessions, memory arenas
    begin = time.perf_counter()
    results = {file.name: engine(str(file), use_cls=False)[0] or [] for file in files}
    seconds = time.perf_counter() - begin
    texts = {name: [text for _, text, _ in lines] for name, lines in results.items()}
    return {"tool": "RapidOCR 1.4.4 (onnxruntime)", "images": len(files), "seconds": seconds,
            "per_second": len(files) / seconds, "lines": sum(map(len, texts.values())), "texts": texts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[1], help="Logical CPU devices of mcrgpu's runs.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2, help="Copies of each photograph (10 images by default).")
    parser.add_argument("--batch_size", type=int, default=1, help="mcrgpu: images or lines per device and step.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--child", nargs=2, metavar=("WORK", "TOOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work, tool = Path(args.child[0]), args.child[1]
        result = child_rapidocr(work) if tool == "rapidocr" else child_mcrgpu(work, int(tool), args.batch_size)
        print(json.dumps(result))  # noqa: T201
        return
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        sys.exit('benchmarks/ocr_throughput.py needs the ocr extra: pip install "mcrgpu[ocr]"')
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="mcrgpu-bench-ocr-") as scratch:
        work = Path(scratch)
        prepare(work, args.copies)
        for _ in range(args.repeats):
            for tool in [*map(str, args.devices), "rapidocr"]:
                command = [sys.executable, __file__, "--child", str(work), tool, "--batch_size", str(args.batch_size)]
                line = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                                      timeout=3600).stdout.strip().splitlines()[-1]
                result = json.loads(line)
                runs.setdefault(result["tool"], []).append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "texts"}), flush=True)  # noqa: T201
    load_after = os.getloadavg()
    write_report(args, runs, load_before, load_after)


def write_report(args, runs: dict[str, list[dict]], load_before, load_after) -> None:
    from mcrgpu.io import atomic_write_text

    reference = runs["RapidOCR 1.4.4 (onnxruntime)"][-1]["texts"]
    rows = []
    for tool, results in runs.items():
        texts = results[-1]["texts"]
        same = sum(a == b for name in reference for a, b in zip(texts.get(name, []), reference[name]))
        seconds = ", ".join(f"{r['seconds']:.1f}" for r in results)
        rows.append(f"| {tool} | {statistics.median(r['per_second'] for r in results):.3f} | {seconds} | "
                    f"{results[-1]['lines']} | {same} |")
    images = len(PHOTOS) * args.copies
    text = f"""# OCR throughput: mcrgpu images ocr against RapidOCR

`python benchmarks/ocr_throughput.py --devices {' '.join(map(str, args.devices))} --repeats {args.repeats} \
--copies {args.copies} --batch_size {args.batch_size}` on this project's 2-core CPU machine; load average
{load_before[0]:.1f} before and {load_after[0]:.1f} after (1-minute), so figures taken while other
work ran are noisy. {images} images (scikit-image's {', '.join(PHOTOS)}, {args.copies} copies each),
PP-OCRv4 detector + recognizer in both tools, no angle classifier; mcrgpu's time includes reading,
both passes with their tracing, writing the JSON Lines; RapidOCR's is its Python loop over the files. Median of
{args.repeats} runs, each in its own process after a warm-up pass; tools alternate run by run.

| tool | images/s | seconds per run | lines kept | lines read as RapidOCR reads them |
|---|---|---|---|---|
{chr(10).join(rows)}
"""
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "ocr_throughput.md", text)
    print(text)  # noqa: T201


if __name__ == "__main__":
    main()
