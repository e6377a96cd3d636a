"""Where the time of one small request goes: rayparallel's round trip taken apart.

A round trip of ``rc[0].apply_sync(int, 1)`` is Ray's round trip to an actor plus what
rayparallel adds on each side. This benchmark measures, in one process on one
``ray.init``, the same call built up one layer at a time, so that each difference is one
layer:

* **raw actor**: ``ray.get(actor.apply.remote(int, 1))``, the floor;
* **engine, called directly**: the client's engine actor called with raw Ray:
  the engine's side (capturing output, timing, the reply it sends back);
* **+ the result**: the same call through an ``AsyncResult`` and its ``get()``;
* **+ the session**: ``Session.send(...).get()``: msg_ids, the task database, history;
* **rayparallel**: ``apply_sync``, the view's part added (targets, serializer, flags);
* and the same for ``execute('x=1')``: a raw actor running ``exec``, the engine's shell
  taking the short road of plain silent cells, and IPython's full ``run_cell``.

Each side runs in blocks of consecutive calls (a user's loop of calls), the blocks of all
sides shuffled together, so machine noise hits all alike. Not an alternating order: calls in
the middle of one pay for the process switches around them, and the first and last sides,
which repeat at every turn, look faster (measured: the same actor three ways came out
1.00, 1.06, 1.08 by position).

It also measures the CPU time each call takes in the worker's process (the engine's or the
raw actor's, from ``psutil``): what many engines sharing few cores wait for, which wall
times on an idle engine hide. And it profiles the client's side (cProfile, the engine call
answered at once by an object already in Ray's store) and prints the functions taking the
most of it. Run from the repository root:

    python -m benchmarks.bench_overhead [--blocks N] [--cpu-blocks N] [--json PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

import rayparallel
from benchmarks.common import markdown_table, write_json
from benchmarks.workloads import RawActor, ship_by_value
from rayparallel.asyncresult import AsyncResult


def _in_blocks(sides: dict[str, Callable[[], Any]], blocks: int,
               per_block: int = 20) -> dict[str, float]:
    """Median microseconds of each side: ``blocks`` blocks of ``per_block`` calls per side,
    the blocks of all sides in a shuffled order (the first two calls of a block warm up)."""
    samples: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for block in range(blocks):
        random.Random(block).shuffle(names)
        for name in names:
            call = sides[name]
            for i in range(per_block):
                t0 = time.perf_counter()
                call()
                if i >= 2:
                    samples[name].append((time.perf_counter() - t0) * 1e6)
    return {k: statistics.median(v) for k, v in samples.items()}


def _worker_cpu(sides: dict[str, tuple[int, Callable[[], Any]]], blocks: int,
                per_block: int = 200) -> dict[str, float]:
    """Median µs of CPU per call in the process ``pid`` serving each side ``(pid, call)``,
    over ``blocks`` blocks of ``per_block`` calls, the sides in turn."""
    import psutil  # a dependency of Ray's

    def cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system

    procs = {name: psutil.Process(pid) for name, (pid, _) in sides.items()}
    samples: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(blocks):
        for name, (_, call) in sides.items():
            call()
            before = cpu(procs[name])
            for _ in range(per_block):
                call()
            samples[name].append((cpu(procs[name]) - before) / per_block * 1e6)
    return {k: statistics.median(v) for k, v in samples.items()}


def _client_profile(call: Callable[[], Any], n: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        call()
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("tottime")
    stats.print_stats(r"rayparallel|threading|concurrent", 12)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100,
                        help="blocks of 20 calls of each side")
    parser.add_argument("--cpu-blocks", type=int, default=6,
                        help="blocks of 200 calls of each side for the worker CPU table")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    ship_by_value()
    rc = rayparallel.Client(num_engines=1)  # starts Ray unless it is running
    actor = RawActor.remote()
    ray.get(actor.apply.remote(int, 0))
    e0 = rc[0]
    from rayparallel.reply import Reply, to_wire

    ready = ray.put(to_wire(Reply(0, "apply", value=1, engine_uuid="0" * 32)))
    backend = rc.session.backend
    real_call = backend.call
    answered = e0.apply_sync  # the same view, its engine call answered at once

    def client_only() -> Any:
        backend.call = lambda handle, method, *a: ready
        try:
            return answered(int, 1)
        finally:
            backend.call = real_call

    request = (int, (1,), {})
    session = rc.session
    engine = session.handle(0)  # engine 0's actor, called directly below

    def through_result() -> Any:
        return AsyncResult([backend.call(engine, "apply", request)], "int", [0],
                           source=backend, single=True).get()

    try:
        apply = _in_blocks({
            "raw actor": lambda: ray.get(actor.apply.remote(int, 1)),
            "engine, called directly": lambda: ray.get(engine.apply.remote(request)),
            "+ the result (AsyncResult.get)": through_result,
            "+ the session (Session.send)": lambda: session.send(
                [0], "apply", lambda i: (request,), "int", single=True).get(),
            "rayparallel apply_sync": lambda: e0.apply_sync(int, 1),
        }, args.blocks)
        execute = _in_blocks({
            "raw actor: exec": lambda: ray.get(actor.execute.remote("x=1")),
            "engine, short road": lambda: ray.get(engine.execute.remote("x=1")),
            "engine, IPython's run_cell": lambda: ray.get(engine.execute.remote(" x=1")),
            "rayparallel execute": lambda: e0.execute("x=1", block=True),
        }, args.blocks)
        raw_pid, engine_pid = ray.get(actor.apply.remote(os.getpid)), rc.session.info(0)["pid"]
        worker_cpu = _worker_cpu({
            "raw actor: exec": (raw_pid, lambda: ray.get(actor.execute.remote("x=1"))),
            "engine: execute": (engine_pid, lambda: ray.get(engine.execute.remote("x=1"))),
            "raw actor: apply": (raw_pid, lambda: ray.get(actor.apply.remote(int, 1))),
            "engine: apply": (engine_pid, lambda: ray.get(engine.apply.remote(request))),
        }, args.cpu_blocks)
        profile = _client_profile(client_only, 2000)
    finally:
        ray.kill(actor)
        rc.shutdown(hub=True)
    floor = apply["raw actor"]
    rows, below = [], floor
    for name, us in apply.items():
        rows.append([name, f"{us:,.0f}", f"{us - below:+,.0f}" if name != "raw actor" else "",
                     f"{us / floor:.3f}"])
        below = us
    exec_floor = execute["raw actor: exec"]
    exec_rows = [[name, f"{us:,.0f}", f"{us / exec_floor:.2f}"] for name, us in execute.items()]
    print(f"Ray {ray.__version__}, medians of {args.blocks} shuffled blocks of 20 calls\n")
    print("apply_sync(int, 1) on one engine, built up layer by layer (µs):\n")
    print(markdown_table(["calls", "µs", "the layer adds", "× floor"], rows))
    print("\nexecute('x=1') on one engine (' x=1', indented, goes IPython's way):\n")
    print(markdown_table(["side", "µs", "× raw exec"], exec_rows))
    print("\nCPU per call in the worker's process (µs, engine called with raw Ray):\n")
    print(markdown_table(["side", "CPU µs per call"],
                         [[name, f"{us:,.0f}"] for name, us in worker_cpu.items()]))
    print("\nThe client's side, by function (cProfile, time in the function itself):\n")
    print(profile)
    result = {"ray": ray.__version__, "blocks": args.blocks, "apply_us": apply,
              "execute_us": execute, "worker_cpu_us": worker_cpu}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
