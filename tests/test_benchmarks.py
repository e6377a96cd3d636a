"""The benchmarks run (their --quick smoke modes); speed itself is for them to report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MAIN_ROWS = ["cold start to 2 engines ready", "apply_sync(int, 1), one engine",
             "apply_sync(int, 1), all engines", "execute('x=1'), all engines",
             "DirectView map_sync(x+1), 200 items", "push 1 MB array",
             "push 1 MB array, copy=False", "pull 1 MB array", "scatter 1 MB array",
             "scatter 1 MB array, copy=False", "gather 1 MB array",
             "LB map 20 tiny items, chunksize=1",
             "LB map 200 tiny items, chunksize=100", "LB map 20 tiny items, default chunksize",
             "LB 4 tasks of 0.05-0.15 s (imbalanced), chunksize=1"]


def run_module(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The Markdown table rows of ``stdout``: first cell -> the other cells."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")]
             for line in stdout.splitlines() if line.startswith("| ")]
    return {row[0]: row[1:] for row in cells}


@pytest.mark.slow
def test_quick_run_compares_the_three_systems_in_one_table(tmp_path):
    done = run_module("benchmarks", "--quick", "--engines", "2",
                      "--json", str(tmp_path / "run.json"), "--plots", str(tmp_path))
    rows = table_rows(done.stdout)
    assert rows["workload"] == ["rayparallel (ms)", "raw Ray (ms)", "ipyparallel (ms)",
                                "rayparallel / raw Ray", "rayparallel / ipyparallel",
                                "targets"]
    ipp_installed = importlib.util.find_spec("ipyparallel") is not None
    for label in MAIN_ROWS:
        rp_ms, raw_ms, ipp_ms, vs_raw, vs_ipp, targets = rows[label]
        assert float(rp_ms.replace(",", "")) > 0 and float(raw_ms.replace(",", "")) > 0
        assert float(vs_raw.removesuffix(" ✗")) > 0
        if ipp_installed:
            assert float(ipp_ms.replace(",", "")) > 0 and float(vs_ipp.removesuffix(" ✗")) > 0
        else:
            assert (ipp_ms, vs_ipp) == ("not installed", "")
        assert targets.startswith("≤ 1.")
    assert rows["push 1 MB array"][-1] == "≤ 1.1 / ≤ 0.15"
    assert rows["push 1 MB array, copy=False"][-1] == "≤ 1.05"
    assert rows["execute('x=1'), all engines"][-1] == "≤ 1.3 / ≤ 0.4"
    assert "apply round trip, 2 engines (ms)" in rows
    assert "LB map of 20 tiny items, 1 engines (items/s)" in rows

    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["quick"] is True and saved["engines"] == 2
    sessions = saved["results"]
    assert set(sessions["rayparallel"]["main"]) == set(sessions["ray"]["main"])
    if ipp_installed:
        assert set(sessions["ipyparallel"]["main"]) == set(sessions["ray"]["main"])
    else:
        assert sessions["ipyparallel"] == "not installed"
    for png in ("bench_scaling.png", "bench_ratios.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_in_process_comparison_quick_prints_ratios_and_the_ideal(rayparallel_ray_client,
                                                                  capsys):
    from benchmarks import bench_loadbalanced

    bench_loadbalanced.main(["--quick"])  # in the session's Ray, which it leaves running
    rows = table_rows(capsys.readouterr().out)
    assert rows["workload"] == ["rayparallel (ms)", "raw Ray (ms)", "ratio", "ideal (ms)",
                                "vs ideal"]
    naps = rows["LB 4 tasks of 0.05-0.15 s (imbalanced), chunksize=1"]
    assert float(naps[-1]) >= 0.9  # nothing beats sleeping: at least ~the ideal
    assert rows["LB map 20 tiny items, chunksize=1"][-2:] == ["", ""]


def test_bad_arguments_are_named():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--systems", "dask"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "unknown systems ['dask']" in done.stderr


@pytest.mark.slow
def test_many_engines_quick_run_compares_every_size_in_the_sessions_ray(
        rayparallel_ray_client, tmp_path, capsys):
    from benchmarks import bench_many

    bench_many.main(["--sizes", "1,2", "--quick", "--json", str(tmp_path / "many.json"),
                     "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    tables: dict[str, list[list[str]]] = {}  # by the header's second cell
    for line in out.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] in ("engines", "workload"):
                rows = tables[cells[1]] = []
            else:
                rows.append(cells)
    starts, timed = tables["rayparallel start (s)"], tables["workload"]
    assert [row[0] for row in starts] == ["1", "2"], out
    assert all(float(cell) > 0 for row in starts for cell in row[1:])
    assert [(row[0], row[1]) for row in timed] == [
        (k, label) for k in ("1", "2")
        for label in ("apply echoing 1 kB, all engines", "execute('x=1'), all engines",
                      "push 1 MB array (engines copy it)", "push 1 MB array, copy=False",
                      "LB map 100 tiny items, chunksize 10, all engines")], out
    assert all(float(cell) > 0 for row in timed for cell in row[2:])
    assert [row[0] for row in tables["submit apply, rayparallel (ms)"]] == ["1", "2"]
    assert tables["1 → 2"][0][0] == "start"

    saved = json.loads((tmp_path / "many.json").read_text())
    assert [run["engines"] for run in saved["runs"]] == [1, 2]
    assert (tmp_path / "bench_many.png").read_bytes().startswith(b"\x89PNG")
    assert rayparallel_ray_client[:].apply_sync(int, 1) == [1] * len(rayparallel_ray_client)


@pytest.mark.slow
def test_soak_30_s_with_engines_killed_loses_nothing(rayparallel_ray_client, capsys):
    from benchmarks import soak

    figures = soak.main(["--seconds", "30", "--engines", "3", "--kill-every", "4"])
    out = capsys.readouterr().out
    assert figures["kills"] >= 2, out
    assert sorted(figures["requests"]) == ["%px", "LB map", "apply", "map", "push/pull"], out
    assert soak.lost_or_wrong(figures) == 0, out
    assert all(n[soak.RIGHT] for n in figures["requests"].values()), out
    before, after = figures["object_store_bytes"]
    assert before is not None and after <= before, out  # every result dropped was freed
    assert "| request | right | hit by a kill | wrong | unanswered |" in out
    assert rayparallel_ray_client[:].apply_sync(int, 1) == [1] * len(rayparallel_ray_client)


@pytest.mark.slow
def test_soak_raw_runs_the_same_requests_through_raw_ray(rayparallel_ray_client, capsys):
    from benchmarks import soak

    figures = soak.main(["--seconds", "3", "--engines", "2", "--raw"])
    out = capsys.readouterr().out
    assert "\nraw Ray: " in "\n" + out, out
    assert figures["kills"] == 0 and soak.lost_or_wrong(figures) == 0, out
    assert sum(n[soak.RIGHT] for n in figures["requests"].values()) >= 1, out
    assert len(figures["client_uss_mib"]) >= 2, out  # before, and at the end
    assert rayparallel_ray_client[:].apply_sync(int, 1) == [1] * len(rayparallel_ray_client)


@pytest.mark.slow
def test_engine_queue_quick_run_compares_the_queue_with_raw_actors(rayparallel_ray_client,
                                                                  capsys):
    from benchmarks import bench_engine_queue

    rows = bench_engine_queue.main(["--quick", "--engines", "1,2"])
    out = capsys.readouterr().out
    table = table_rows(out)
    assert table["engines"] == ["rayparallel ms", "ActorPool ms", "one at a time ms",
                                "rp / ActorPool", "rp / one at a time"]
    assert [r["engines"] for r in rows] == [1, 2]
    assert all(float(cell) > 0 for k in ("1", "2") for cell in table[k])
    assert "A chain of 20 calls to one raw actor, per link: waiting thread " in out
