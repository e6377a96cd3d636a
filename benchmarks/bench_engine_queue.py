"""A load-balanced map over chosen engines (``load_balanced_view(targets=...)``), against
the same chunks sent to raw Ray actors, in one process.

With ``targets`` the chunks do not become Ray tasks: they queue for those engines, one
chunk per engine at a time, each sent when an engine is free (see
:mod:`rayparallel.enginequeue`). Sides, their repetitions interleaved in shuffled order:

- ``rayparallel``: ``lview.map_sync(inc, items, chunksize=10)`` on k engines;
- ``ActorPool``: ``ray.util.ActorPool(actors).map(...)`` over k raw actors, what a Ray user
  writes (it hands an actor its next chunk before the previous one's result is read, so an
  actor may hold two);
- ``one at a time``: raw actors, one chunk each at a time, the next sent by the thread
  waiting with ``ray.wait``: the queue's own policy written with raw Ray.

It also times a chain of calls to one raw actor, each sent when the previous one ended, seen
by a thread waiting in ``ray.get`` or by a completion callback (``ObjectRef.future()``): what
a link of such a chain costs the two ways. Run from the repository root:

    python -m benchmarks.bench_engine_queue [--engines 1,4] [--rounds 30] [--json PATH]

``--quick`` is a smoke run of a few seconds (100 items, chains of 20 calls, 1 round).
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.util.actor_pool import ActorPool

import rayparallel
from benchmarks.common import Timing, chunks, markdown_table, write_json
from benchmarks.workloads import inc, ship_by_value, start_raw_actors

CHUNK = 10


def shuffled(sides: dict[str, Callable[[], Any]], rounds: int) -> dict[str, Timing]:
    """Median-ready timings of each side, one call per side per round in shuffled order
    (the first two rounds are a warm-up)."""
    timings = {name: Timing() for name in sides}
    names = list(sides)
    for rnd in range(rounds + 2):
        random.Random(rnd).shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            sides[name]()
            if rnd >= 2:
                timings[name].samples_ms.append((time.perf_counter() - t0) * 1e3)
    return timings


def map_sides(rc: Any, actors: list[Any], n: int) -> dict[str, Callable[[], list]]:
    items = list(range(n))
    parts = chunks(items, CHUNK)
    lview = rc.load_balanced_view(targets=rc.ids[:len(actors)])

    def actor_pool() -> list:
        pool = ActorPool(actors)
        return [y for part in pool.map(lambda a, c: a.map.remote(inc, c), parts)
                for y in part]

    def one_at_a_time() -> list:
        done: dict[int, list] = {}
        free, todo, flying = list(actors), list(enumerate(parts)), {}
        while todo or flying:
            while free and todo:
                at, part = todo.pop()
                actor = free.pop()
                flying[actor.map.remote(inc, part)] = (actor, at)
            [ended], _ = ray.wait(list(flying), num_returns=1)
            actor, at = flying.pop(ended)
            free.append(actor)
            done[at] = ray.get(ended)
        return [y for at in sorted(done) for y in done[at]]

    return {"rayparallel": lambda: lview.map_sync(inc, items, chunksize=CHUNK),
            "ActorPool": actor_pool, "one at a time": one_at_a_time}


def chain_sides(actor: Any, links: int) -> dict[str, Callable[[], None]]:
    def waiting() -> None:
        for i in range(links):
            ray.get(actor.apply.remote(int, i))

    def callbacks() -> None:
        finished, sent = threading.Event(), [0]

        def send(_: Any = None) -> None:
            if sent[0] == links:
                finished.set()
                return
            sent[0] += 1
            actor.apply.remote(int, sent[0]).future().add_done_callback(send)

        send()
        finished.wait()

    return {"waiting thread": waiting, "completion callbacks": callbacks}


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="1,4", help="engine counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per side")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    items, links, rounds = (100, 20, 1) if args.quick else (1_000, 200, args.rounds)
    sizes = [int(k) for k in args.engines.split(",")]
    ship_by_value()
    rc = rayparallel.Client(num_engines=max(sizes))
    actors = start_raw_actors(max(sizes))
    rows = []
    try:
        for k in sizes:
            t = shuffled(map_sides(rc, actors[:k], items), rounds)
            ours = t["rayparallel"].median_ms
            rows.append({"engines": k, **{f"{name}_ms": v.median_ms for name, v in t.items()},
                         "vs_pool": ours / t["ActorPool"].median_ms,
                         "vs_one_at_a_time": ours / t["one at a time"].median_ms})
        chain = shuffled(chain_sides(actors[0], links), rounds)
    finally:
        rc.shutdown(hub=True)
    per_link = {name: v.median_ms / links * 1e3 for name, v in chain.items()}
    print(f"Load-balanced map of {items:,} tiny items in chunks of {CHUNK} over k engines, "
          f"Ray {ray.__version__}, medians of {rounds} shuffled rounds\n")
    print(markdown_table(
        ["engines", "rayparallel ms", "ActorPool ms", "one at a time ms", "rp / ActorPool",
         "rp / one at a time"],
        [[str(r["engines"]), f"{r['rayparallel_ms']:.1f}", f"{r['ActorPool_ms']:.1f}",
          f"{r['one at a time_ms']:.1f}", f"{r['vs_pool']:.2f}", f"{r['vs_one_at_a_time']:.2f}"]
         for r in rows]))
    print(f"\nA chain of {links} calls to one raw actor, per link: "
          + ", ".join(f"{name} {us:.0f} us" for name, us in per_link.items()))
    if args.json:
        write_json(args.json, {"ray": ray.__version__, "rounds": rounds, "maps": rows,
                               "chain_us_per_link": per_link})
    return rows


if __name__ == "__main__":
    main()
