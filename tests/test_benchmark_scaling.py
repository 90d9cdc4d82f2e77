"""benchmarks/scaling.py's table on made-up measurements: complete, partial and failed points."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_scaling():
    spec = importlib.util.spec_from_file_location("scaling", BENCHMARKS / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


META = {"date": "2026-12-03 13:00:00", "host": "h", "cpu_count": 2, "python": "3.11", "cpu_devices": False,
        "evals": 5, "polish_rounds": 20, "polish_input": "stand-in labels", "target": "synthetic",
        "command": "python benchmarks/scaling.py", "load_start": 1.0, "load_end": 2.0, "total_s": 100.0}


def test_rows_partial_points_and_failures(tmp_path):
    scaling = load_scaling()
    base = {"case": "fft", "devices": 2, "peak_rss_mb": 1500.4, "wall_s": 50.0, "tf32": False,
            "gpus": ["NVIDIA A100", "NVIDIA A100"]}
    points = [
        {**base, "size": 64, "jit_compile": None, "xla": True, "s_per_eval": 0.0123, "warmup_s": 4.5,
         "polish_s": 10.0, "polish_rounds_done": 20, "s2_before": 0.0358, "s2_after": 0.0123,
         "gpu_peak_mb": [812.2, 790.6]},
        {**base, "size": 128, "jit_compile": False, "xla": False, "s_per_eval": 0.1, "warmup_s": 9.0,
         "error": "timed out after 3600 s (--timeout)"},
        {**base, "size": 256, "error": "out of memory"},
    ]
    scaling.write_results(tmp_path, META, points)
    text = (tmp_path / "scaling.md").read_text()
    assert "devices: GPUs: NVIDIA A100, NVIDIA A100; TensorFloat-32: off" in text
    assert ("| FFTCorrelations + Variation | 64 | 2 | on (default) | 0.0123 | 4.5 | 10 | 20 | 0.5 | 0.0358 -> 0.0123 | "
            "1500 | 812, 791 | 50 |") in text
    assert "| FFTCorrelations + Variation | 128 | 2 | off | 0.1 | 9 | – | – | – | – | 1500 | – | 50 |" in text
    assert "| 256 |" not in text
    assert text.endswith("## Failures\n\n- FFTCorrelations + Variation, N=128, 2 device(s), XLA off: timed out after "
                         "3600 s (--timeout)\n- FFTCorrelations + Variation, N=256, 2 device(s): out of memory\n")
    assert (tmp_path / "scaling.json").is_file() and not list(tmp_path.glob(".*.tmp"))
