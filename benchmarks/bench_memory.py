"""Memory: what an engine costs idle, whether engine and client memory stay flat over long
runs, and whether results nobody holds leave Ray's object store.

One run, one private Ray instance, rayparallel engines and a raw Ray actor side by side:

1. idle engine: unique memory (USS: the pages only that process holds) of each engine,
   and of a plain Ray actor for reference;
2. engine over many calls: engine USS before and after ``--calls`` small requests
   (``apply`` of a tiny function, one in ten an ``execute``), sent in non-blocking
   batches of 1,000;
3. client over a long ``imap``: this process's USS and RSS every tenth of an
   ``--imap-items``-item ``LoadBalancedView.imap`` of a tiny function;
4. object store: bytes in Ray's object store after pushing 10 MB arrays to all engines
   and applying functions returning 10 MB arrays, while their results are held and once
   they are dropped (``del`` + ``gc.collect()``), against the bytes before.

Memory is read with psutil (it comes with Ray) and the object store's use with Ray's
memory-summary call, on a Ray started for the run. Run from the repository root:

    python -m benchmarks.bench_memory [--calls N] [--imap-items N] [--steps idle,engine,...]
                                      [--json PATH]

Defaults: 100,000 calls, 1,000,000 imap items (some minutes on a small machine); lower
them for a quick look. "Flat" means growth within a few MiB.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil
import ray

import rayparallel
from benchmarks.common import markdown_table, write_json
from benchmarks.workloads import inc, ship_by_value, start_raw_actors

MiB = 1 << 20
N_ENGINES = 2
BATCH = 1_000
BIG_BYTES = 10_000_000
BIG_ROUNDS = 20
SAMPLES = 10  # client memory readings over the imap
IMAP_IN_FLIGHT = 32  # calls in flight in the imap (more than the default: faster)


def uss_mib(pid: int) -> float:
    """Unique memory of process ``pid`` in MiB (pages no other process shares)."""
    return psutil.Process(pid).memory_full_info().uss / MiB


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MiB


def settled_uss(pid: int, tries: int = 5) -> float:
    """USS once a process has finished freeing what it just used (after a collection):
    the lowest of a few readings a moment apart."""
    readings = []
    for _ in range(tries):
        readings.append(uss_mib(pid))
        time.sleep(0.2)
    return min(readings)


def collect_on_engines(rc: rayparallel.Client) -> None:
    rc[:].apply_sync(gc.collect)


def tiny(x: int) -> int:
    return x + 1


def idle_memory(rc: rayparallel.Client) -> dict[str, Any]:
    """USS of each idle engine and of an idle raw Ray actor."""
    pids = rc[:].apply_sync(os.getpid)
    collect_on_engines(rc)
    engines = [settled_uss(pid) for pid in pids]
    actor = start_raw_actors(1)[0]
    try:
        actor_pid = ray.get(actor.apply.remote(os.getpid))
        raw = settled_uss(actor_pid)
    finally:
        ray.kill(actor)
    return {"engine_uss_mib": engines, "raw_actor_uss_mib": raw}


def grown(pids: Sequence[int], calls: int, batch: Callable[[int, int], None],
          collect: Callable[[], Any]) -> dict[str, Any]:
    """USS of ``pids`` before and after ``calls`` requests sent by ``batch(start, n)``
    (after a warm-up batch)."""
    per_batch = min(BATCH, calls)
    batch(0, per_batch)  # warm-up: imports, first-call caches
    collect()
    before = [settled_uss(pid) for pid in pids]
    samples = [(0, max(before))]  # (calls, the largest engine's USS) every tenth
    every = max(per_batch, calls // SAMPLES)
    t0 = time.perf_counter()
    done = 0
    while done < calls:
        batch(done, per_batch)
        done += per_batch
        if done % every < per_batch and done < calls:
            samples.append((done, max(uss_mib(pid) for pid in pids)))
    elapsed = time.perf_counter() - t0
    collect()
    after = [settled_uss(pid) for pid in pids]
    samples.append((done, max(after)))
    return {"calls": done, "seconds": elapsed, "before_mib": before, "after_mib": after,
            "samples": samples,
            "growth_mib": max(a - b for a, b in zip(after, before, strict=True))}


def engine_growth(rc: rayparallel.Client, calls: int) -> dict[str, Any]:
    """Engine USS before and after ``calls`` small requests: ``apply`` of a tiny function,
    one in ten an ``execute``, sent without blocking ``BATCH`` at a time; a raw Ray actor
    taking the same calls alongside."""
    dv = rc[:]
    pids = dv.apply_sync(os.getpid)

    def batch(start: int, n: int) -> None:  # n requests in all, over the engines
        ars = [dv.execute(f"y = {start + k}", block=False) if k % 10 == 9 else
               dv.apply_async(tiny, start + k) for k in range(n // len(pids))]
        for ar in ars:
            ar.get()

    ours = grown(pids, calls, batch, lambda: collect_on_engines(rc))
    actor = start_raw_actors(1)[0]
    try:
        def raw_batch(start: int, n: int) -> None:
            ray.get([actor.execute.remote(f"y = {start + k}") if k % 10 == 9 else
                     actor.apply.remote(tiny, start + k) for k in range(n)])

        raw = grown([ray.get(actor.apply.remote(os.getpid))], calls, raw_batch,
                    lambda: ray.get(actor.apply.remote(gc.collect)))
    finally:
        ray.kill(actor)
    return {**ours, "raw_actor": raw}


def client_growth(rc: rayparallel.Client, items: int) -> dict[str, Any]:
    """This process's USS and RSS along an ``items``-long imap of a tiny function."""
    lview = rc.load_balanced_view()
    pid = os.getpid()
    every = max(1, items // SAMPLES)
    list(lview.imap(inc, range(1_000), max_outstanding=IMAP_IN_FLIGHT))  # warm-up
    gc.collect()
    samples = [(0, uss_mib(pid), rss_mib(pid))]
    t0 = time.perf_counter()
    total = 0
    for n, y in enumerate(lview.imap(inc, range(items), max_outstanding=IMAP_IN_FLIGHT), 1):
        total += y
        if n % every == 0:
            samples.append((n, uss_mib(pid), rss_mib(pid)))
            print(f"  imap {n:,} items, {time.perf_counter() - t0:.0f} s: client USS "
                  f"{samples[-1][1]:.1f} MiB", flush=True)  # a long run shows where it is
    elapsed = time.perf_counter() - t0
    assert total == items * (items + 1) // 2, "imap returned wrong results"
    gc.collect()
    samples.append((items, uss_mib(pid), rss_mib(pid)))
    # growth from the first tenth on: the first items fill bounded records and caches
    steady = samples[1] if len(samples) > 2 else samples[0]
    return {"items": items, "seconds": elapsed, "samples": samples,
            "history": len(rc.history), "task_records": len(rc.hub_history()),
            "uss_growth_mib": samples[-1][1] - samples[0][1],
            "uss_growth_after_first_tenth_mib": samples[-1][1] - steady[1]}


def object_store_bytes() -> int | None:
    """Bytes in use in Ray's object store (this node's), or None if Ray does not say."""
    try:
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        address = ray.get_runtime_context().gcs_address
        return int(get_memory_info_reply(get_state_from_address(address))
                   .store_stats.object_store_bytes_used)
    except Exception:  # noqa: BLE001 - a private API: report nothing rather than fail
        return None


def store_settled(baseline: int | None, wait_s: float = 10.0) -> int | None:
    """Object store bytes once frees have gone through (Ray frees asynchronously): back
    at ``baseline``, or the lowest reading within ``wait_s``."""
    lowest = object_store_bytes()
    deadline = time.monotonic() + wait_s
    while lowest is not None and baseline is not None and lowest > baseline and \
            time.monotonic() < deadline:
        time.sleep(0.25)
        now = object_store_bytes()
        lowest = lowest if now is None else min(lowest, now)
    return lowest


def big_array(n: int) -> Any:
    import numpy as np
    return np.full(n // 8, 1.0)


def object_store(rc: rayparallel.Client) -> dict[str, Any]:
    """Object-store bytes before, while holding and after dropping big pushes and results."""
    dv = rc[:]
    gc.collect()
    baseline = store_settled(None)
    data = np.ones(BIG_BYTES // 8)
    pushes = [dv.push({"a": data}) for _ in range(BIG_ROUNDS)]
    results = [dv.apply_async(big_array, BIG_BYTES) for _ in range(BIG_ROUNDS)]
    for ar in pushes + results:
        ar.get()
    held = object_store_bytes()
    del pushes, results, ar, data
    gc.collect()
    after = store_settled(baseline)
    return {"baseline_bytes": baseline, "held_bytes": held, "after_drop_bytes": after,
            "workload": f"{BIG_ROUNDS} x push of {BIG_BYTES // 1_000_000} MB to "
                        f"{len(rc.ids)} engines + {BIG_ROUNDS} x apply returning "
                        f"{BIG_BYTES // 1_000_000} MB arrays on {len(rc.ids)} engines"}


def fmt_mib(x: float) -> str:
    return f"{x:.1f}"


def report(figures: dict[str, Any]) -> str:
    """The figures of the steps taken, as a Markdown table."""
    mb = lambda b: "n/a" if b is None else f"{b / MiB:.1f}"  # noqa: E731
    rows = []
    if "idle" in figures:
        idle = figures["idle"]
        rows.append(["idle engine USS (MiB)", " / ".join(map(fmt_mib, idle["engine_uss_mib"])),
                     f"raw Ray actor: {fmt_mib(idle['raw_actor_uss_mib'])}"])
    if "engine" in figures:
        for who, eng in (("engine", figures["engine"]),
                         ("raw Ray actor", figures["engine"]["raw_actor"])):
            rows.append([f"{who} USS every tenth of {eng['calls']:,} calls (MiB)",
                         " → ".join(fmt_mib(s[1]) for s in eng["samples"]),
                         f"growth {eng['growth_mib']:+.1f} MiB ({eng['seconds']:.0f} s)"])
    if "client" in figures:
        cli = figures["client"]
        rows.append([f"client USS over a {cli['items']:,}-item imap (MiB)",
                     " → ".join(fmt_mib(s[1]) for s in cli["samples"]),
                     f"growth {cli['uss_growth_mib']:+.1f} MiB, "
                     f"{cli['uss_growth_after_first_tenth_mib']:+.1f} after the first tenth "
                     f"({cli['seconds']:.0f} s; then {cli['history']:,} msg_ids in "
                     f"rc.history, {cli['task_records']:,} task records)"])
    if "store" in figures:
        store = figures["store"]
        rows.append(["object store (MiB): before / holding / after del + gc",
                     f"{mb(store['baseline_bytes'])} / {mb(store['held_bytes'])} / "
                     f"{mb(store['after_drop_bytes'])}", store["workload"]])
    return markdown_table(["measure", "figures", "notes"], rows, align="lll")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000,
                        help="small requests sent to the engines (default 100,000)")
    parser.add_argument("--imap-items", type=int, default=1_000_000,
                        help="items of the long imap (default 1,000,000)")
    parser.add_argument("--steps", default="idle,engine,client,store",
                        help="which measures to take, comma-separated (default: all four)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    ship_by_value()
    steps: dict[str, Callable[[rayparallel.Client], dict]] = {
        "idle": idle_memory,
        "engine": lambda rc: engine_growth(rc, args.calls),
        "client": lambda rc: client_growth(rc, args.imap_items),
        "store": object_store,
    }
    wanted = args.steps.split(",")
    unknown = [name for name in wanted if name not in steps]
    if unknown:
        parser.error(f"--steps: no step {', '.join(unknown)}; the steps are "
                     f"{', '.join(steps)}")
    steps = {name: step for name, step in steps.items() if name in wanted}
    # A Ray of this run's own, never a cluster found on the machine: the object store's
    # figures must count this run's objects only.
    ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    rc = rayparallel.Client(num_engines=N_ENGINES)
    figures: dict[str, Any] = {}
    try:
        for name, step in steps.items():
            t0 = time.perf_counter()
            figures[name] = step(rc)
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        rc.shutdown(hub=True)
        ray.shutdown()
    print(f"\n{N_ENGINES} engines, Ray {ray.__version__}, Python "
          f"{'.'.join(map(str, os.sys.version_info[:3]))}\n")
    print(report(figures))
    if args.json:
        write_json(args.json, {"engines": N_ENGINES, "ray": ray.__version__, **figures})
    return figures


if __name__ == "__main__":
    main()
