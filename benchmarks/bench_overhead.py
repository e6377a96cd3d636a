"""Where the time of one small request goes: rayparallel's round trip taken apart.

A round trip of ``rc[0].apply_sync(int, 1)`` is Ray's round trip to an actor plus what
rayparallel adds on each side. This benchmark measures, interleaved in one process on one
``ray.init``, the same call five ways, so that each difference is one layer:

* **raw actor**: ``ray.get(actor.apply.remote(int, 1))``, the floor;
* **engine, called directly**: a rayparallel engine actor called with raw Ray, no client;
  minus the floor: the engine's side (capturing output, timing, the reply it sends back);
* **client, engine answered at once**: the client's whole path with the engine call
  replaced by an object already in Ray's store; minus a ``ray.get`` of such an object: the
  client's side (views, the result, the task database);
* **rayparallel**: the real thing;
* and the same for ``execute('x=1')``: a raw actor running ``exec``, the engine's shell
  taking the short road of plain silent cells, and IPython's full ``run_cell``.

It also profiles the client's side (cProfile) and prints the functions taking the most of
it. Run from the repository root:

    python -m benchmarks.bench_overhead [--reps N] [--json PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

import rayparallel
from benchmarks.common import markdown_table, write_json
from benchmarks.workloads import RawActor, ship_by_value


def _interleaved(sides: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Median microseconds of each side, repetitions interleaved (order alternating)."""
    samples: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for rep in range(reps + reps // 10):
        for name in names if rep % 2 else reversed(names):
            t0 = time.perf_counter()
            sides[name]()
            if rep >= reps // 10:  # the first tenth warms up
                samples[name].append((time.perf_counter() - t0) * 1e6)
    return {k: statistics.median(v) for k, v in samples.items()}


def _engine_alone(engine_id: int) -> Any:
    """A rayparallel engine actor with no client: called with raw Ray."""
    from rayparallel.backend.ray import RayBackend

    return RayBackend().start_engines([engine_id], {})[0]


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
    parser.add_argument("--reps", type=int, default=2000, help="repetitions of each side")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    ship_by_value()
    rc = rayparallel.Client(num_engines=1)  # starts Ray unless it is running
    actor = RawActor.remote()
    engine = _engine_alone(99)
    ray.get([actor.apply.remote(int, 0), engine.apply.remote((int, (0,), {}))])
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
    try:
        apply = _interleaved({
            "raw actor": lambda: ray.get(actor.apply.remote(int, 1)),
            "engine, called directly": lambda: ray.get(engine.apply.remote(request)),
            "ray.get of a stored object": lambda: ray.get(ready),
            "client, engine answered at once": client_only,
            "rayparallel": lambda: e0.apply_sync(int, 1),
        }, args.reps)
        execute = _interleaved({
            "raw actor: exec": lambda: ray.get(actor.execute.remote("x=1")),
            "engine, short road": lambda: ray.get(engine.execute.remote("x=1")),
            "engine, IPython's run_cell": lambda: ray.get(engine.execute.remote(" x=1")),
            "rayparallel execute": lambda: e0.execute("x=1", block=True),
        }, args.reps)
        profile = _client_profile(client_only, min(args.reps, 2000))
    finally:
        ray.kill(actor)
        ray.kill(engine)
        rc.shutdown(hub=True)
    floor = apply["raw actor"]
    layers = [
        ("Ray's round trip to an actor (the floor)", floor),
        ("engine side: request bookkeeping and reply", apply["engine, called directly"] - floor),
        ("client side: view, result, task database",
         apply["client, engine answered at once"] - apply["ray.get of a stored object"]),
    ]
    rows = [[name, f"{us:,.0f}", f"{us / floor:.2f}"] for name, us in layers]
    rows.append(["sum of the layers", f"{sum(us for _, us in layers):,.0f}",
                 f"{sum(us for _, us in layers) / floor:.2f}"])
    rows.append(["rayparallel apply_sync, measured", f"{apply['rayparallel']:,.0f}",
                 f"{apply['rayparallel'] / floor:.2f}"])
    exec_floor = execute["raw actor: exec"]
    exec_rows = [[name, f"{us:,.0f}", f"{us / exec_floor:.2f}"] for name, us in execute.items()]
    print(f"Ray {ray.__version__}, medians of {args.reps} interleaved repetitions\n")
    print("apply_sync(int, 1) on one engine, taken apart (µs; share of the floor):\n")
    print(markdown_table(["layer", "µs", "× floor"], rows))
    print("\nexecute('x=1') on one engine (' x=1', indented, goes IPython's way):\n")
    print(markdown_table(["side", "µs", "× raw exec"], exec_rows))
    print("\nThe client's side, by function (cProfile, time in the function itself):\n")
    print(profile)
    result = {"ray": ray.__version__, "reps": args.reps, "apply_us": apply,
              "execute_us": execute}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
