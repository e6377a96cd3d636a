"""The benchmark runs (its --quick smoke mode); speed itself is for the benchmark to report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_directview_benchmark_quick_prints_ratio_table():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_directview.py"),
                           "--quick"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| workload | rayparallel (ms) | raw Ray (ms) | ratio |" in done.stdout
    assert "push" in done.stdout and "gather" in done.stdout


def test_loadbalanced_benchmark_quick_prints_ratio_table():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_loadbalanced.py"),
                           "--quick"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| workload | rayparallel (ms) | raw Ray (ms) | ratio | ideal (ms) | vs ideal |" \
        in done.stdout
    assert "chunksize=1 |" in done.stdout and "imbalanced" in done.stdout
