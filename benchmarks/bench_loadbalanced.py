"""LoadBalancedView overhead: rayparallel against the same work written with raw Ray tasks.

Each workload runs through ``rc.load_balanced_view().map_sync`` and through plain Ray
tasks (a ``@ray.remote`` function per item or per chunk, submitted at once and collected
with one ``ray.get``), in one process sharing one ``ray.init``. The raw side cuts the items
into the same chunks rayparallel does (for the default chunk size, the one rayparallel
chose), so the ratio measures rayparallel's own cost. Repetitions of the two sides are
interleaved, alternating which goes first, so machine noise hits both alike; the table
shows the medians and their ratio (rayparallel / raw Ray). The imbalanced workload (items
sleeping 0.05-0.15 s, one task each) is also compared with the ideal: the sum of the
sleeps divided by the CPUs.

Run from the repository root:

    python benchmarks/bench_loadbalanced.py [--quick] [--json PATH]

``--quick`` is a smoke run of a few seconds: 2 repetitions, 200 / 2,000 / 200 items and 8
imbalanced tasks. ``--json PATH`` also writes the results to PATH.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import ray

import rayparallel
from rayparallel.loadbalanced import auto_chunksize


def inc(x: int) -> int:
    return x + 1


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@ray.remote
def raw_item(x: int) -> int:
    return inc(x)


@ray.remote
def raw_chunk(chunk: Sequence[int]) -> list[int]:
    return [inc(x) for x in chunk]


@ray.remote
def raw_nap(seconds: float) -> float:
    return nap(seconds)


@dataclass
class Workload:
    name: str
    rayparallel: Callable[[], Any]
    raw: Callable[[], Any]
    reps: int
    #: seconds the work would take on perfectly balanced CPUs, if known
    ideal_s: float | None = None


@dataclass
class Result:
    workload: str
    rayparallel_ms: float
    raw_ms: float
    ratio: float
    reps: int
    ideal_ms: float | None = None
    vs_ideal: float | None = None


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def build(lview: rayparallel.LoadBalancedView, cpus: int, quick: bool) -> list[Workload]:
    n_small, n_large, n_naps = (200, 2_000, 8) if quick else (2_000, 20_000, 40)
    # Many repetitions of the short workloads: on a shared machine their medians need them.
    slow_reps, fast_reps, nap_reps = (2, 2, 1) if quick else (5, 21, 3)
    small, large = list(range(n_small)), list(range(n_large))
    auto = auto_chunksize(n_small, cpus)
    naps = [random.Random(i).uniform(0.05, 0.15) for i in range(n_naps)]

    def raw_chunks(items: list, size: int) -> list[int]:
        done = ray.get([raw_chunk.remote(c) for c in chunks(items, size)])
        return [y for part in done for y in part]

    return [
        Workload(f"map {n_small:,} tiny items, chunksize=1",
                 lambda: lview.map_sync(inc, small, chunksize=1),
                 lambda: ray.get([raw_item.remote(x) for x in small]), slow_reps),
        Workload(f"map {n_large:,} tiny items, chunksize=100",
                 lambda: lview.map_sync(inc, large, chunksize=100),
                 lambda: raw_chunks(large, 100), fast_reps),
        Workload(f"map {n_small:,} tiny items, default chunksize ({auto})",
                 lambda: lview.map_sync(inc, small),
                 lambda: raw_chunks(small, auto), fast_reps),
        Workload(f"map {n_naps} tasks of 0.05-0.15 s (imbalanced), chunksize=1",
                 lambda: lview.map_sync(nap, naps, chunksize=1),
                 lambda: ray.get([raw_nap.remote(s) for s in naps]), nap_reps,
                 ideal_s=sum(naps) / cpus),
    ]


def measure(w: Workload, warmup: int) -> Result:
    """Medians over interleaved repetitions, after checking both sides agree."""
    for _ in range(warmup):
        assert w.rayparallel() == w.raw(), f"{w.name}: the two sides disagree"
    times: dict[str, list[float]] = {"rayparallel": [], "raw": []}
    for rep in range(w.reps):
        order = ["rayparallel", "raw"] if rep % 2 == 0 else ["raw", "rayparallel"]
        for side in order:
            fn = w.rayparallel if side == "rayparallel" else w.raw
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    rp_ms = statistics.median(times["rayparallel"]) * 1e3
    raw_ms = statistics.median(times["raw"]) * 1e3
    ideal_ms = None if w.ideal_s is None else w.ideal_s * 1e3
    return Result(w.name, rp_ms, raw_ms, rp_ms / raw_ms, w.reps, ideal_ms,
                  None if ideal_ms is None else rp_ms / ideal_ms)


def table(results: list[Result]) -> str:
    lines = ["| workload | rayparallel (ms) | raw Ray (ms) | ratio | ideal (ms) | vs ideal |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        ideal = "" if r.ideal_ms is None else f"{r.ideal_ms:.0f}"
        vs = "" if r.vs_ideal is None else f"{r.vs_ideal:.2f}"
        lines.append(f"| {r.workload} | {r.rayparallel_ms:.1f} | {r.raw_ms:.1f} | "
                     f"{r.ratio:.2f} | {ideal} | {vs} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 repetitions of smaller workloads (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    if __name__ != "__main__":  # imported (by a test): ship this module's code by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    rc = rayparallel.Client(num_engines=0)  # starts Ray unless it is running; tasks only
    try:
        lview = rc.load_balanced_view()
        cpus = len(lview)
        workloads = build(lview, cpus, args.quick)
        results = [measure(w, warmup=1) for w in workloads]
    finally:
        rc.shutdown(hub=True)

    print(f"LoadBalancedView vs raw Ray tasks on {cpus} CPUs, Ray {ray.__version__}, medians "
          f"of interleaved repetitions{' (--quick)' if args.quick else ''}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"quick": args.quick, "cpus": cpus, "ray": ray.__version__,
                       "results": [asdict(r) for r in results]}, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
