"""The workloads, written once for the ipyparallel client API and once for raw Ray.

rayparallel and ipyparallel share one API, so :func:`directview_workloads` and
:func:`loadbalanced_workloads` run unchanged on either client. The ``raw_*`` functions do
the same work with plain Ray: actors called directly (``actor.method.remote`` and
``ray.get``) in place of engines, ``@ray.remote`` tasks in place of load-balanced chunks.
Every workload has a ``key`` shared by all systems, so that their timings can be compared.

The functions here travel to engines and workers by value (see :func:`ship_by_value`):
the engines cannot import this module.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np
import ray
from ray.util import ActorPool

from benchmarks.common import MB, Sizes, blocks, chunks
from rayparallel.loadbalanced import auto_chunksize


def inc(x: int) -> int:
    return x + 1


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def ship_by_value() -> None:
    """Pickle this module's functions by value, for Ray's pickler and for ipyparallel's."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass
class Workload:
    key: str
    label: str
    run: Callable[[], Any]
    reps: int
    #: whether a result is right (checked once, untimed)
    check: Callable[[Any], bool] | None = None
    #: seconds the work would take on perfectly balanced CPUs, if known
    ideal_s: float | None = None


def test_array(nbytes: int) -> np.ndarray:
    return np.random.default_rng(0).random(nbytes // 8)


def nap_lengths(n: int) -> list[float]:
    return [random.Random(i).uniform(0.05, 0.15) for i in range(n)]


def array_label(nbytes: int) -> str:
    return f"{nbytes / MB:g} MB array"


def directview_workloads(rc: Any, sizes: Sizes) -> list[Workload]:
    """Round trips, a map and array moves through a DirectView of all of ``rc``'s engines."""
    dv, e0 = rc[:], rc[0]
    reader = rc[:]  # engines that only read what they get: no writable copies
    reader.set_flags(copy=False)
    n = len(dv)
    items = list(range(sizes.map_items))
    arr = test_array(sizes.array_bytes)
    arr_label, fast, big = array_label(arr.nbytes), sizes.roundtrip_reps, sizes.array_reps
    return [
        Workload("apply_one", "apply_sync(int, 1), one engine",
                 lambda: e0.apply_sync(int, 1), fast, lambda r: r == 1),
        Workload("apply_all", "apply_sync(int, 1), all engines",
                 lambda: dv.apply_sync(int, 1), fast, lambda r: r == [1] * n),
        Workload("execute_all", "execute('x=1'), all engines",
                 lambda: dv.execute("x=1", block=True), fast),
        Workload("dv_map", f"DirectView map_sync(x+1), {len(items):,} items",
                 lambda: dv.map_sync(inc, items), sizes.map_reps,
                 lambda r: list(r) == [x + 1 for x in items]),
        Workload("push", f"push {arr_label}", lambda: dv.push({"a": arr}, block=True), big),
        Workload("push_nocopy", f"push {arr_label}, copy=False",
                 lambda: reader.push({"a": arr}, block=True), big),
        Workload("pull", f"pull {arr_label}", lambda: dv.pull("a", block=True), big,
                 lambda r: all(np.array_equal(x, arr) for x in r)),
        Workload("scatter", f"scatter {arr_label}",
                 lambda: dv.scatter("s", arr, block=True), big),
        Workload("scatter_nocopy", f"scatter {arr_label}, copy=False",
                 lambda: reader.scatter("s", arr, block=True), big),
        Workload("gather", f"gather {arr_label}", lambda: dv.gather("s", block=True), big,
                 lambda r: np.array_equal(r, arr)),
    ]


def loadbalanced_workloads(lview: Any, sizes: Sizes) -> list[Workload]:
    """Maps of tiny items at three chunk sizes, and imbalanced tasks, through ``lview``."""
    small, large = list(range(sizes.lb_small)), list(range(sizes.lb_large))
    naps = nap_lengths(sizes.naps)
    ideal_s = sum(naps) / len(lview)  # the naps spread perfectly over the view's slots
    return [
        Workload("lb_chunk1", f"LB map {len(small):,} tiny items, chunksize=1",
                 lambda: lview.map_sync(inc, small, chunksize=1), sizes.slow_reps,
                 lambda r: list(r) == [x + 1 for x in small]),
        Workload("lb_chunk100", f"LB map {len(large):,} tiny items, chunksize=100",
                 lambda: lview.map_sync(inc, large, chunksize=100), sizes.map_reps,
                 lambda r: list(r) == [x + 1 for x in large]),
        Workload("lb_default", f"LB map {len(small):,} tiny items, default chunksize",
                 lambda: lview.map_sync(inc, small), sizes.map_reps,
                 lambda r: list(r) == [x + 1 for x in small]),
        Workload("lb_naps", f"LB {len(naps)} tasks of 0.05-0.15 s (imbalanced), chunksize=1",
                 lambda: lview.map_sync(nap, naps, chunksize=1), sizes.slow_reps,
                 lambda r: list(r) == naps, ideal_s),
    ]


def scaling_workloads(rc: Any, k: int, sizes: Sizes) -> list[Workload]:
    """A round trip on ``k`` engines, and a load-balanced map over those ``k`` engines."""
    targets = rc.ids[:k]
    dv, lview = rc[targets], rc.load_balanced_view(targets=targets)
    items = list(range(sizes.scaling_items))
    return [
        Workload(f"apply_{k}", f"apply_sync(int, 1), {k} engines",
                 lambda: dv.apply_sync(int, 1), sizes.roundtrip_reps, lambda r: r == [1] * k),
        Workload(f"lb_{k}", f"LB map {len(items):,} tiny items, chunksize 10, {k} engines",
                 lambda: lview.map_sync(inc, items, chunksize=10), sizes.map_reps,
                 lambda r: list(r) == [x + 1 for x in items]),
    ]


def push_size_workloads(rc: Any, sizes: Sizes) -> list[Workload]:
    dv = rc[:]
    return [Workload(f"push_{mb}MB", f"push {mb} MB", _pusher(dv, test_array(mb * MB)),
                     3 if mb >= 1000 else sizes.array_reps)
            for mb in sizes.push_sizes_mb]


def _pusher(dv: Any, arr: np.ndarray) -> Callable[[], Any]:
    return lambda: dv.push({"a": arr}, block=True)


# --- raw Ray -----------------------------------------------------------------------------


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

    def push(self, ns: dict[str, Any], copy: bool = False) -> None:
        if copy:  # what engines do by default: arrays from the object store are read-only
            ns = {k: v.copy() if isinstance(v, np.ndarray) and not v.flags.writeable else v
                  for k, v in ns.items()}
        self.ns.update(ns)

    def pull(self, name: str) -> Any:
        return self.ns[name]


@ray.remote
def raw_chunk(f: Callable[[Any], Any], chunk: Sequence) -> list:
    return [f(x) for x in chunk]


@ray.remote
def raw_item(f: Callable[[Any], Any], x: Any) -> Any:
    return f(x)


def start_raw_actors(n: int) -> list[Any]:
    """``n`` raw actors, placed as rayparallel places its engines, once they answer."""
    actors = [RawActor.options(scheduling_strategy="SPREAD").remote() for _ in range(n)]
    ray.get([a.apply.remote(int, 0) for a in actors])
    return actors


def _flat_get(refs: list) -> list:
    return [y for part in ray.get(refs) for y in part]


def raw_directview_workloads(actors: list[Any], sizes: Sizes) -> list[Workload]:
    """:func:`directview_workloads` written with raw actors."""
    a0, n = actors[0], len(actors)
    items = list(range(sizes.map_items))
    arr = test_array(sizes.array_bytes)
    arr_label, fast, big = array_label(arr.nbytes), sizes.roundtrip_reps, sizes.array_reps

    def raw_map() -> list:
        parts = [items[s] for s in blocks(len(items), n)]
        return _flat_get([a.map.remote(inc, p) for a, p in zip(actors, parts, strict=True)])

    def raw_scatter(copy: bool) -> list:
        parts = [arr[s] for s in blocks(len(arr), n)]
        return ray.get([a.push.remote({"s": p}, copy)
                        for a, p in zip(actors, parts, strict=True)])

    return [
        Workload("apply_one", "apply_sync(int, 1), one engine",
                 lambda: ray.get(a0.apply.remote(int, 1)), fast, lambda r: r == 1),
        Workload("apply_all", "apply_sync(int, 1), all engines",
                 lambda: ray.get([a.apply.remote(int, 1) for a in actors]), fast,
                 lambda r: r == [1] * n),
        Workload("execute_all", "execute('x=1'), all engines",
                 lambda: ray.get([a.execute.remote("x=1") for a in actors]), fast),
        Workload("dv_map", f"DirectView map_sync(x+1), {len(items):,} items", raw_map,
                 sizes.map_reps, lambda r: r == [x + 1 for x in items]),
        Workload("push", f"push {arr_label}", _raw_pusher(actors, arr, copy=True), big),
        Workload("push_nocopy", f"push {arr_label}, copy=False", _raw_pusher(actors, arr),
                 big),
        Workload("pull", f"pull {arr_label}",
                 lambda: ray.get([a.pull.remote("a") for a in actors]), big,
                 lambda r: all(np.array_equal(x, arr) for x in r)),
        Workload("scatter", f"scatter {arr_label}", lambda: raw_scatter(True), big),
        Workload("scatter_nocopy", f"scatter {arr_label}, copy=False",
                 lambda: raw_scatter(False), big),
        Workload("gather", f"gather {arr_label}",
                 lambda: np.concatenate(ray.get([a.pull.remote("s") for a in actors])), big,
                 lambda r: np.array_equal(r, arr)),
    ]


def _raw_pusher(actors: list[Any], arr: np.ndarray, copy: bool = False) -> Callable[[], Any]:
    """One put, shared by all actors; with ``copy`` each actor makes the array writable,
    as engines do by default."""
    def push() -> list:
        ref = ray.put({"a": arr})  # one copy in the object store, shared by all actors
        return ray.get([a.push.remote(ref, copy) for a in actors])
    return push


def raw_loadbalanced_workloads(sizes: Sizes, cpus: int) -> list[Workload]:
    """:func:`loadbalanced_workloads` written with raw tasks on ``cpus`` CPUs; the default
    chunk size is the one rayparallel picks, so that both send the same number of tasks."""
    small, large = list(range(sizes.lb_small)), list(range(sizes.lb_large))
    naps = nap_lengths(sizes.naps)
    default_chunksize = auto_chunksize(len(small), cpus)

    def raw_chunks(items: list, size: int) -> list:
        return _flat_get([raw_chunk.remote(inc, c) for c in chunks(items, size)])

    return [
        Workload("lb_chunk1", f"LB map {len(small):,} tiny items, chunksize=1",
                 lambda: ray.get([raw_item.remote(inc, x) for x in small]), sizes.slow_reps,
                 lambda r: r == [x + 1 for x in small]),
        Workload("lb_chunk100", f"LB map {len(large):,} tiny items, chunksize=100",
                 lambda: raw_chunks(large, 100), sizes.map_reps,
                 lambda r: r == [x + 1 for x in large]),
        Workload("lb_default", f"LB map {len(small):,} tiny items, default chunksize",
                 lambda: raw_chunks(small, default_chunksize), sizes.map_reps,
                 lambda r: r == [x + 1 for x in small]),
        Workload("lb_naps", f"LB {len(naps)} tasks of 0.05-0.15 s (imbalanced), chunksize=1",
                 lambda: ray.get([raw_item.remote(nap, s) for s in naps]), sizes.slow_reps,
                 lambda r: r == naps, sum(naps) / cpus),
    ]


def raw_scaling_workloads(actors: list[Any], k: int, sizes: Sizes) -> list[Workload]:
    """:func:`scaling_workloads` with raw actors; an ActorPool stands in for the
    load-balanced view on ``k`` engines."""
    some = actors[:k]
    items = list(range(sizes.scaling_items))

    def pool_map() -> list:
        pool = ActorPool(some)
        done = pool.map(lambda a, c: a.map.remote(inc, c), chunks(items, 10))
        return [y for part in done for y in part]

    return [
        Workload(f"apply_{k}", f"apply_sync(int, 1), {k} engines",
                 lambda: ray.get([a.apply.remote(int, 1) for a in some]), sizes.roundtrip_reps,
                 lambda r: r == [1] * k),
        Workload(f"lb_{k}", f"LB map {len(items):,} tiny items, chunksize 10, {k} engines",
                 pool_map, sizes.map_reps, lambda r: r == [x + 1 for x in items]),
    ]


def raw_push_size_workloads(actors: list[Any], sizes: Sizes) -> list[Workload]:
    return [Workload(f"push_{mb}MB", f"push {mb} MB",
                     _raw_pusher(actors, test_array(mb * MB), copy=True),
                     3 if mb >= 1000 else sizes.array_reps)
            for mb in sizes.push_sizes_mb]
