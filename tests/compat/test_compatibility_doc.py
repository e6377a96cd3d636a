"""docs/compatibility.md is what expected_failures.py and the installed ipyparallel say,
and every test id named there exists (so the file cannot drift or go stale)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compatibility_doc_is_current():
    done = subprocess.run([sys.executable, "-m", "tests.compat.report", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
