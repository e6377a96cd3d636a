"""Many engines: rayparallel against raw Ray at 1 to 64 engines, in one process.

For each number of engines k, in one Ray instance shared by both sides:

* **start**: ``Client(num_engines=k)`` on a running Ray, against k plain Ray actors and
  against k Ray actors that each build an IPython ``InteractiveShell`` (what an engine does
  besides answering; the fair floor for an engine's start). The sides start in turn,
  alternating which goes first, each stopped before the next starts; medians.
* **apply** echoing 1 kB to all engines, **execute** ``x=1`` on all, **push** 10 MB to all
  (by default, where engines copy arrays to make them writable, and with ``copy=False``;
  raw Ray: one ``ray.put`` and its ref to every actor, which copies the array or not
  alike), a **load-balanced map** of 1,000 tiny items in chunks of 10 over the k engines
  (raw Ray: a ``ray.util.ActorPool``):
  repetitions interleaved (:func:`benchmarks.common.measure`), medians, ratios.
* **submit**: how long the client takes to send ``apply`` to all k engines (returning
  before the replies): the client's own cost per engine.
* **push copies**: how many copies of the 10 MB a push puts in the object stores, read from
  Ray's store statistics while the pushes wait behind busy engines; and how many the
  stores hold once every engine has it without copying (one per node that hosts engines,
  if each node pulled the bytes once: see ``--nodes``).

Run from the repository root:

    python -m benchmarks.bench_many [--sizes 1,4,16,32,64] [--nodes N] [--json PATH]
                                    [--plots DIR]
    python -m benchmarks.bench_many --from-json PATH --plots DIR   # re-print, redraw

``--nodes N`` runs on a ``ray.cluster_utils.Cluster`` of N nodes on this machine, engines
spread over them. ``--quick`` is a smoke run (one start per side, few repetitions, a
1 MB push, a map of 100 items, no copy count).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import ray

import rayparallel
from benchmarks.common import MB, Sizes, markdown_table, measure, write_json
from benchmarks.workloads import (
    Workload,
    _raw_pusher,
    raw_scaling_workloads,
    scaling_workloads,
    ship_by_value,
    start_raw_actors,
    test_array,
)

ECHO = b"x" * 1000
PUSH_BYTES = 10 * MB
#: seconds the engines are kept busy while the push copies are counted
HOLD_S = 3.0


@ray.remote
class ShellActor:
    """A raw actor that builds an IPython shell as an engine does (history off, as there)."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        cfg = Config()
        cfg.HistoryManager.enabled = False
        self.shell = InteractiveShell(config=cfg)

    def ping(self) -> int:
        return 0


def start_shell_actors(n: int) -> list[Any]:
    actors = [ShellActor.options(scheduling_strategy="SPREAD").remote() for _ in range(n)]
    ray.get([a.ping.remote() for a in actors])
    return actors


def kill_actors(actors: list[Any]) -> None:
    for a in actors:
        ray.kill(a)


# --------------------------------------------------------------------------- Ray


def open_ray(nodes: int) -> Callable[[], None]:
    """Start a private Ray of ``nodes`` nodes on this machine; returns what stops it."""
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR,
             "log_to_driver": False}
    logging.getLogger("ray").setLevel(logging.ERROR)
    cpus = os.cpu_count() or 1
    if nodes <= 1:
        ray.init(num_cpus=cpus, **quiet)
        return ray.shutdown
    from ray.cluster_utils import Cluster

    per_node = max(1, cpus // nodes)
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": per_node, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=per_node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)

    def close() -> None:
        ray.shutdown()
        cluster.shutdown()
    return close


def store_bytes() -> int:
    """Bytes in the object stores of all nodes (primary copies and copies pulled to other
    nodes), from Ray's store statistics."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    state = get_state_from_address(ray.get_runtime_context().gcs_address)
    try:
        return get_memory_info_reply(state).store_stats.object_store_bytes_used
    finally:
        state.disconnect()


# --------------------------------------------------------------------------- start


def start_rounds(k: int, reps: int, budget_s: float, seconds_per_engine: float | None) -> int:
    """How many rounds of starts at k engines: ``reps``, fewer if they would take more than
    ``budget_s`` at the pace (seconds per engine, all sides) of the previous size; one at
    least."""
    if seconds_per_engine is None:
        return reps
    return max(1, min(reps, int(budget_s // (seconds_per_engine * k))))


def time_starts(k: int, rounds: int) -> tuple[dict[str, list[float]], Any, list[Any]]:
    """Seconds to start k engines / actors, the sides in turn (the order alternating), in
    ``rounds`` rounds. The last round's rayparallel client and plain actors stay up
    (returned) for the workloads; all else is stopped before the next side starts."""
    starts: dict[str, Callable[[], Any]] = {
        "raw": lambda: start_raw_actors(k),
        "raw_shell": lambda: start_shell_actors(k),
        # no start-up timeout: raw Ray's side has none either
        "rayparallel": lambda: rayparallel.Client(num_engines=k, timeout=3600),
    }
    stops = {"raw": kill_actors, "raw_shell": kill_actors,
             "rayparallel": lambda rc: rc.shutdown(hub=True)}
    seconds: dict[str, list[float]] = {name: [] for name in starts}
    kept: dict[str, Any] = {}
    for rnd in range(rounds):
        last = rnd == rounds - 1
        for name in list(starts) if rnd % 2 == 0 else reversed(list(starts)):
            t0 = time.perf_counter()
            up = starts[name]()
            seconds[name].append(time.perf_counter() - t0)
            if last and name != "raw_shell":
                kept[name] = up
            else:
                stops[name](up)
    return seconds, kept["rayparallel"], kept["raw"]


# --------------------------------------------------------------------------- workloads


def reps_for(k: int, quick: bool) -> dict[str, int]:
    """Repetitions of each workload at k engines: fewer as each takes longer."""
    if quick:
        return {"fast": 3, "push": 2, "map": 2}
    return {"fast": min(50, max(9, 600 // k)), "push": min(11, max(5, 160 // k)), "map": 7}


def workloads(rc: Any, actors: list[Any], k: int, quick: bool) -> list[tuple[Workload,
                                                                            Workload]]:
    """(rayparallel, raw Ray) pairs of the same work on k engines / actors."""
    reps = reps_for(k, quick)
    dv = rc[:]
    dv_nocopy = rc[:]
    dv_nocopy.set_flags(copy=False)
    arr = test_array(MB if quick else PUSH_BYTES)
    items = 100 if quick else 1_000
    sizes = replace(Sizes.make(quick, k), scaling_items=items, map_reps=reps["map"])
    lb_rp = scaling_workloads(rc, k, sizes)[1]
    lb_raw = raw_scaling_workloads(actors, k, sizes)[1]

    echo_ok = (lambda r: list(r) == [ECHO] * k)  # noqa: E731 - one check for both sides
    pairs = [
        ("apply", "apply echoing 1 kB, all engines",
         lambda: dv.apply_sync(bytes, ECHO),
         lambda: ray.get([a.apply.remote(bytes, ECHO) for a in actors]), reps["fast"],
         echo_ok),
        ("execute", "execute('x=1'), all engines",
         lambda: dv.execute("x=1", block=True),
         lambda: ray.get([a.execute.remote("x=1") for a in actors]), reps["fast"], None),
        ("push", f"push {arr.nbytes // MB} MB array (engines copy it)",
         lambda: dv.push({"a": arr}, block=True), _raw_pusher(actors, arr, copy=True),
         reps["push"], None),
        ("push_nocopy", f"push {arr.nbytes // MB} MB array, copy=False",
         lambda: dv_nocopy.push({"a": arr}, block=True), _raw_pusher(actors, arr),
         reps["push"], None),
    ]
    made = [(Workload(key, label, ours, n, check), Workload(key, label, raw, n, check))
            for key, label, ours, raw, n, check in pairs]
    lb_label = f"LB map {items:,} tiny items, chunksize 10, all engines"
    made.append((replace(lb_rp, key="lb_map", label=lb_label),
                 replace(lb_raw, key="lb_map", label=lb_label)))
    return made


def compare_pairs(pairs: list[tuple[Workload, Workload]]) -> list[dict[str, Any]]:
    rows = []
    for ours, raw in pairs:
        for side in (ours, raw):
            if side.check is not None:
                assert side.check(side.run()), f"{side.label}: wrong result"
        t = measure({"rayparallel": ours.run, "raw": raw.run}, ours.reps)
        rp_ms, raw_ms = t["rayparallel"].median_ms, t["raw"].median_ms
        rows.append({"key": ours.key, "workload": ours.label, "rayparallel_ms": rp_ms,
                     "raw_ms": raw_ms, "ratio": rp_ms / raw_ms, "reps": ours.reps})
    return rows


def time_submit(rc: Any, actors: list[Any], reps: int) -> dict[str, float]:
    """Median ms the client spends sending apply to all engines, replies not awaited
    (they are collected, untimed, before the next repetition)."""
    dv = rc[:]
    seconds: dict[str, list[float]] = {"rayparallel": [], "raw": []}
    for rep in range(reps + 1):  # the first is a warm-up
        for name in ("rayparallel", "raw") if rep % 2 == 0 else ("raw", "rayparallel"):
            t0 = time.perf_counter()
            if name == "rayparallel":
                pending: Any = dv.apply_async(bytes, ECHO)
            else:
                pending = [a.apply.remote(bytes, ECHO) for a in actors]
            spent = time.perf_counter() - t0
            pending.get() if name == "rayparallel" else ray.get(pending)
            if rep:
                seconds[name].append(spent)
    return {name: statistics.median(s) * 1e3 for name, s in seconds.items()}


def count_push_copies(rc: Any, actors: list[Any]) -> dict[str, float | None]:
    """Copies of a 10 MB push in the object stores while the pushes are queued behind
    busy engines: 1.0 means the bytes went in once (per node). None if the engines were
    no longer busy when the store was read (the count would be meaningless: the report
    says "not measured")."""
    arr = test_array(PUSH_BYTES)
    copies: dict[str, float | None] = {}
    for name in ("rayparallel", "raw"):
        before = store_bytes()
        if name == "rayparallel":
            hold = rc[:].apply_async(time.sleep, HOLD_S)
            pushed = rc[:].push({"a": arr}, block=False)
            during = store_bytes()
            held = not hold.ready()
            hold.get()
            pushed.get()
        else:
            holds = [a.apply.remote(time.sleep, HOLD_S) for a in actors]
            ref = ray.put({"a": arr})
            pushes = [a.push.remote(ref) for a in actors]
            during = store_bytes()
            ready, _ = ray.wait(holds, num_returns=len(holds), timeout=0)
            held = not ready
            ray.get(holds + pushes)
            del ref
        copies[name] = round((during - before) / arr.nbytes, 2) if held else None
    return copies


def count_node_copies(rc: Any, actors: list[Any]) -> dict[str, float]:
    """Copies of a 10 MB push in the object stores once every engine holds it without
    copying (``copy=False``: views of its node's store, as raw actors hold it): one per
    node hosting engines, if each node pulled the bytes once."""
    arr = test_array(PUSH_BYTES)
    nocopy = rc[:]
    nocopy.set_flags(copy=False)
    copies = {}
    for name in ("rayparallel", "raw"):
        before = store_bytes()
        if name == "rayparallel":
            nocopy.push({"probe": arr}, block=True)
        else:
            ref = ray.put({"probe": arr})
            ray.get([a.push.remote(ref) for a in actors])
        copies[name] = round((store_bytes() - before) / arr.nbytes, 2)
    nocopy.push({"probe": None}, block=True)  # let the copies go
    ray.get([a.push.remote({"probe": None}) for a in actors])
    return copies


# --------------------------------------------------------------------------- report


def growth(k1: int, k2: int, t1: float, t2: float) -> float:
    """The exponent b of time ~ k**b from k1 to k2 engines (1.0: linear)."""
    return math.log(t2 / t1) / math.log(k2 / k1)


def report(payload: dict[str, Any]) -> str:
    runs = payload["runs"]
    ks = [r["engines"] for r in runs]
    out = [f"{payload['machine']}; {payload['nodes']} node(s); medians"
           f"{' (--quick)' if payload['quick'] else ''}\n"]
    start_rows = []
    for r in runs:
        s = r["start_s"]
        start_rows.append([str(r["engines"]), f"{s['rayparallel']:.2f}", f"{s['raw_shell']:.2f}",
                           f"{s['raw']:.2f}", f"{s['rayparallel'] / s['raw_shell']:.2f}",
                           f"{s['rayparallel'] / s['raw']:.2f}"])
    out.append(markdown_table(["engines", "rayparallel start (s)",
                               "raw actors + IPython shell (s)", "plain raw actors (s)",
                               "ratio vs shell actors", "ratio vs plain actors"], start_rows))
    rows = []
    for r in runs:
        for w in r["workloads"]:
            rows.append([str(r["engines"]), w["workload"], f"{w['rayparallel_ms']:.2f}",
                         f"{w['raw_ms']:.2f}", f"{w['ratio']:.2f}"])
    out.append("\n" + markdown_table(["engines", "workload", "rayparallel (ms)",
                                      "raw Ray (ms)", "ratio"], rows))
    extra = []
    held = any(r.get("push_node_copies") for r in runs)  # runs before it was measured
    for r in runs:
        sub, cp = r["submit_ms"], r["push_copies"]
        extra.append([str(r["engines"]), f"{sub['rayparallel']:.2f}", f"{sub['raw']:.2f}",
                      f"{sub['rayparallel'] / r['engines'] * 1e3:.0f}",
                      _copies(cp["rayparallel"]), _copies(cp["raw"])])
        if held:
            nodes = r.get("push_node_copies") or {"rayparallel": None, "raw": None}
            extra[-1] += [_copies(nodes["rayparallel"]), _copies(nodes["raw"])]
    header = ["engines", "submit apply, rayparallel (ms)", "submit apply, raw Ray (ms)",
              "rayparallel submit per engine (µs)", "push copies in store, rayparallel",
              "push copies in store, raw Ray"]
    header += ["copies held after, rayparallel copy=False", "copies held after, raw Ray"
               ] * held
    out.append("\n" + markdown_table(header, extra))
    spans = [(i, i + 1) for i in range(len(ks) - 1)]
    if spans:
        series = {"start": ([r["start_s"]["rayparallel"] for r in runs],
                            [r["start_s"]["raw_shell"] for r in runs])}
        for w in runs[0]["workloads"]:
            rows_k = [next(x for x in r["workloads"] if x["key"] == w["key"]) for r in runs]
            series[w["workload"]] = ([x["rayparallel_ms"] for x in rows_k],
                                     [x["raw_ms"] for x in rows_k])
        grow = [[label, *(f"{growth(ks[a], ks[b], rp[a], rp[b]):.2f} / "
                          f"{growth(ks[a], ks[b], raw[a], raw[b]):.2f}" for a, b in spans)]
                for label, (rp, raw) in series.items()]
        out.append("\nGrowth: b in time ~ engines^b between sizes (1.0: linear), "
                   "rayparallel / raw Ray (start: raw actors with a shell)\n")
        out.append(markdown_table(["workload", *(f"{ks[a]} → {ks[b]}" for a, b in spans)],
                                  grow))
    return "\n".join(out)


def _copies(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"


def _exp(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


# --------------------------------------------------------------------------- main


def run_size(k: int, rounds: int, quick: bool) -> dict[str, Any]:
    seconds, rc, actors = time_starts(k, rounds)
    try:
        rows = compare_pairs(workloads(rc, actors, k, quick))
        submit = time_submit(rc, actors, reps_for(k, quick)["fast"])
        copies = count_push_copies(rc, actors) if not quick else \
            {"rayparallel": None, "raw": None}
        node_copies = None if quick else count_node_copies(rc, actors)
    finally:
        rc.shutdown(hub=True)
        kill_actors(actors)
    return {"engines": k, "start_s": {n: statistics.median(s) for n, s in seconds.items()},
            "start_samples_s": seconds, "workloads": rows, "submit_ms": submit,
            "push_copies": copies, "push_node_copies": node_copies}


def payload_of(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"quick": args.quick, "nodes": args.nodes, "ray": ray.__version__,
            "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
                       f"Ray {ray.__version__}",
            "runs": runs}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,32,64",
                        help="numbers of engines, comma-separated (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=1,
                        help="Ray nodes on this machine (a ray.cluster_utils.Cluster)")
    parser.add_argument("--start-reps", type=int, default=3,
                        help="starts of each side per size (default: %(default)s)")
    parser.add_argument("--start-budget", type=float, default=180, metavar="S",
                        help="fewer starts at a size if they would take longer than S "
                             "seconds (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--from-json", metavar="PATH",
                        help="re-print and redraw a saved run instead of running")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--plots", metavar="DIR", help="draw bench_many.png into DIR")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as fh:
            return show(json.load(fh), args.plots)
    ks = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    ship_by_value()
    if __name__ != "__main__":  # (run with -m, it is pickled by value already)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack it
    close = None if ray.is_initialized() else open_ray(args.nodes)
    try:
        if not args.quick:  # warm-up: the first actors of each class, the first client
            kill_actors(start_shell_actors(1))
            rayparallel.Client(num_engines=1).shutdown(hub=True)
        runs: list[dict[str, Any]] = []
        pace = None  # seconds per engine of a round of starts (all sides), last size
        for k in ks:
            rounds = 1 if args.quick else start_rounds(k, args.start_reps, args.start_budget,
                                                        pace)
            runs.append(run_size(k, rounds, args.quick))
            samples = runs[-1]["start_samples_s"]
            pace = sum(statistics.median(s) for s in samples.values()) / k
            print(f"  {k} engines done ({rounds} round(s) of starts)", file=sys.stderr,
                  flush=True)
            if args.json:  # what is done so far survives a failure at a larger size
                write_json(args.json, payload_of(args, runs))
    finally:
        if close is not None:
            close()
    payload = payload_of(args, runs)
    if args.json:
        write_json(args.json, payload)
    return show(payload, args.plots)


def show(payload: dict[str, Any], plots: str | None) -> dict[str, Any]:
    """Print the tables of a run, and draw its plot into the folder ``plots``, if given."""
    print(report(payload))
    if plots:
        from benchmarks.plots import draw_many

        print(f"\nplot: {draw_many(payload, plots)}")
    return payload


if __name__ == "__main__":
    main()
