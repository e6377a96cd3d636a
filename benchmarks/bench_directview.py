"""DirectView overhead: rayparallel against the same work on raw Ray actors.

Each workload runs through a rayparallel DirectView on 4 engines and through 4 plain Ray
actors called directly (``actor.method.remote(...)`` and ``ray.get``), in one process that
shares one ``ray.init``: the Client starts Ray, then the raw actors are created with Ray's
default options and ``scheduling_strategy="SPREAD"``, as the engines are. Repetitions of the
two sides are interleaved, alternating which goes first, so machine noise hits both alike;
the table shows the medians and their ratio (rayparallel / raw Ray).

Run from the repository root:

    python benchmarks/bench_directview.py [--quick] [--json PATH]

``--quick`` is a smoke run of a few seconds: 3 repetitions, a 1 MB array instead of 100 MB
and 2,000 map items instead of 20,000. ``--json PATH`` also writes the results to PATH.
"""

from __future__ import annotations

import argparse
import json
import operator
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import ray

import rayparallel

N_ENGINES = 4


@ray.remote
class RawActor:
    """An engine without rayparallel: a namespace dict and methods called directly."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}

    def apply(self, f: Callable[..., Any], *args: Any) -> Any:
        return f(*args)

    def map(self, f: Callable[[Any], Any], chunk: Sequence) -> list:
        return list(map(f, chunk))

    def execute(self, code: str) -> None:
        exec(code, self.ns)

    def push(self, ns: dict[str, Any]) -> None:
        self.ns.update(ns)

    def pull(self, name: str) -> Any:
        return self.ns[name]


@dataclass
class Workload:
    name: str
    rayparallel: Callable[[], Any]
    raw: Callable[[], Any]
    reps: int
    #: how to tell that both sides returned the same thing (checked once, untimed)
    same: Callable[[Any, Any], bool] | None = None


@dataclass
class Result:
    workload: str
    rayparallel_ms: float
    raw_ms: float
    ratio: float
    reps: int


def blocks(length: int, parts: int) -> list[slice]:
    """Contiguous block partition, the first ``length % parts`` blocks one item longer."""
    base, extra = divmod(length, parts)
    edges = [0]
    for i in range(parts):
        edges.append(edges[-1] + base + (1 if i < extra else 0))
    return [slice(a, b) for a, b in pairwise(edges)]


def build(rc: rayparallel.Client, actors: list[Any], quick: bool) -> list[Workload]:
    """The workloads, as pairs of zero-argument callables doing the same work."""
    dv, e0, a0 = rc[:], rc[0], actors[0]
    items = list(range(2_000 if quick else 20_000))
    arr = np.random.default_rng(0).random((1_000_000 if quick else 100_000_000) // 8)
    mb = f"{arr.nbytes / 1e6:g} MB"
    small, medium, large = (3, 3, 3) if quick else (200, 30, 21)
    inc = lambda x: x + 1

    def raw_map() -> list:
        parts = [items[s] for s in blocks(len(items), len(actors))]
        done = ray.get([a.map.remote(inc, p) for a, p in zip(actors, parts, strict=True)])
        return [y for part in done for y in part]

    def raw_push() -> list:
        ref = ray.put({"a": arr})
        return ray.get([a.push.remote(ref) for a in actors])

    def raw_scatter() -> list:
        parts = [arr[s] for s in blocks(len(arr), len(actors))]
        return ray.get([a.push.remote({"s": p}) for a, p in zip(actors, parts, strict=True)])

    def raw_gather() -> np.ndarray:
        return np.concatenate(ray.get([a.pull.remote("s") for a in actors]))

    return [
        Workload("apply_sync(int, 1), one engine",
                 lambda: e0.apply_sync(int, 1),
                 lambda: ray.get(a0.apply.remote(int, 1)), small, operator.eq),
        Workload("apply_sync(int, 1), all engines",
                 lambda: dv.apply_sync(int, 1),
                 lambda: ray.get([a.apply.remote(int, 1) for a in actors]), small, operator.eq),
        Workload("execute('x=1'), all engines",
                 lambda: dv.execute("x=1", block=True),
                 lambda: ray.get([a.execute.remote("x=1") for a in actors]), small),
        Workload(f"map_sync(x+1) over {len(items):,} items",
                 lambda: dv.map_sync(inc, items), raw_map, medium, operator.eq),
        Workload(f"push {mb} array", lambda: dv.push({"a": arr}, block=True), raw_push, large),
        Workload(f"pull {mb} array", lambda: dv.pull("a", block=True),
                 lambda: ray.get([a.pull.remote("a") for a in actors]), large,
                 lambda x, y: all(map(np.array_equal, x, y))),
        Workload(f"scatter {mb} array", lambda: dv.scatter("s", arr, block=True),
                 raw_scatter, large),
        Workload(f"gather {mb} array", lambda: dv.gather("s", block=True), raw_gather, large,
                 np.array_equal),
    ]


def measure(w: Workload, warmup: int) -> Result:
    """Medians over interleaved repetitions; results are dropped as soon as they arrive."""
    for _ in range(warmup):
        w.rayparallel()
        w.raw()
    if w.same is not None:
        assert w.same(w.rayparallel(), w.raw()), f"{w.name}: the two sides disagree"
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
    return Result(w.name, rp_ms, raw_ms, rp_ms / raw_ms, w.reps)


def table(results: list[Result]) -> str:
    lines = ["| workload | rayparallel (ms) | raw Ray (ms) | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {r.workload} | {r.rayparallel_ms:.2f} | {r.raw_ms:.2f} | {r.ratio:.2f} |"
              for r in results]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="few repetitions, 1 MB array, 2,000 map items (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    if __name__ != "__main__":  # imported (by a test): ship this module's code by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    rc = rayparallel.Client(num_engines=N_ENGINES)  # starts Ray unless it is running
    actors = [RawActor.options(scheduling_strategy="SPREAD").remote() for _ in range(N_ENGINES)]
    try:
        ray.get([a.apply.remote(int, 0) for a in actors])  # wait until the actors are up
        workloads = build(rc, actors, args.quick)
        warmup = 1 if args.quick else 2
        results = [measure(w, warmup) for w in workloads]
    finally:
        for a in actors:
            ray.kill(a)
        rc.shutdown(hub=True)

    print(f"{N_ENGINES} engines vs {N_ENGINES} raw actors, Ray {ray.__version__}, medians of "
          f"interleaved repetitions{' (--quick)' if args.quick else ''}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"quick": args.quick, "engines": N_ENGINES, "ray": ray.__version__,
                       "results": [asdict(r) for r in results]}, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
