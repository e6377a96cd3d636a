"""One system (rayparallel, raw Ray or ipyparallel) in a process of its own, timing the
workloads ``benchmarks/run.py`` asks for.

The process starts the system cold (timed: from nothing to N engines answering, imports not
counted), then times the workloads one at a time when the parent asks, so that the parent
can take the systems in turn workload by workload; it stops the system however it ends.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.common import Sizes, measure
from benchmarks.workloads import (
    Workload,
    directview_workloads,
    loadbalanced_workloads,
    push_size_workloads,
    raw_directview_workloads,
    raw_loadbalanced_workloads,
    raw_push_size_workloads,
    raw_scaling_workloads,
    scaling_workloads,
    ship_by_value,
    start_raw_actors,
)


class Rayparallel:
    def start(self, n: int) -> None:
        import rayparallel

        self.rc = rayparallel.Client(num_engines=n)  # starts Ray; returns once engines answer

    def workloads(self, sizes: Sizes) -> list[Workload]:
        return directview_workloads(self.rc, sizes) + \
            loadbalanced_workloads(self.rc.load_balanced_view(), sizes)

    def push_sizes(self, sizes: Sizes) -> list[Workload]:
        return push_size_workloads(self.rc, sizes)

    def grow(self, n: int) -> None:
        self.rc.add_engines(n - len(self.rc.ids))

    def scaling(self, k: int, sizes: Sizes) -> list[Workload]:
        return scaling_workloads(self.rc, k, sizes)

    def stop(self) -> None:
        self.rc.shutdown(hub=True)


class RawRay:
    def start(self, n: int) -> None:
        import ray

        ray.init()
        self.actors = start_raw_actors(n)

    def workloads(self, sizes: Sizes) -> list[Workload]:
        import ray

        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return raw_directview_workloads(self.actors, sizes) + \
            raw_loadbalanced_workloads(sizes, cpus)

    def push_sizes(self, sizes: Sizes) -> list[Workload]:
        return raw_push_size_workloads(self.actors, sizes)

    def grow(self, n: int) -> None:
        self.actors += start_raw_actors(n - len(self.actors))

    def scaling(self, k: int, sizes: Sizes) -> list[Workload]:
        return raw_scaling_workloads(self.actors, k, sizes)

    def stop(self) -> None:
        import ray

        ray.shutdown()


class Ipyparallel(Rayparallel):
    """The same client API as rayparallel; only starting and stopping differ."""

    def start(self, n: int) -> None:
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=n, log_level=logging.WARNING)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(n)
        self.rc[:].use_cloudpickle()  # as rayparallel does: functions travel by value

    def grow(self, n: int) -> None:
        self.cluster.start_engines_sync(n=n - len(self.rc.ids))
        self.rc.wait_for_engines(n)
        self.rc[:].use_cloudpickle()

    def stop(self) -> None:
        self.rc.close()
        self.cluster.stop_cluster_sync()


SYSTEMS: dict[str, type] = {"rayparallel": Rayparallel, "ray": RawRay,
                            "ipyparallel": Ipyparallel}


def run_one(system: str, w: Workload, sizes: Sizes) -> dict[str, Any]:
    """Check the workload's result once, then time it."""
    if w.check is not None:
        assert w.check(w.run()), f"{system}: {w.label}: wrong result"
    timing = measure({system: w.run}, w.reps, warmup=1, budget_s=sizes.budget_s)[system]
    result = {"label": w.label, "median_ms": timing.median_ms, "reps": len(timing.samples_ms)}
    if w.ideal_s is not None:
        result["ideal_ms"] = w.ideal_s * 1e3
    print(f"  {system}: {w.label}: {timing.median_ms:.2f} ms "
          f"(median of {len(timing.samples_ms)})", file=sys.stderr, flush=True)
    return result


PHASES = {"main": lambda runner, sizes: runner.workloads(sizes),
          "push_sizes": lambda runner, sizes: runner.push_sizes(sizes),
          "scaling": lambda runner, sizes: [w for k in sizes.scaling_engines
                                            for w in runner.scaling(k, sizes)]}


def serve(system: str, sizes: Sizes, conn: Connection) -> None:
    """A child process: start ``system`` (timed), then do what the parent asks until it
    says ``stop``. Requests are ``(name, argument)`` pairs:

    * ``("plan", phase)``: build the workloads of a phase; answers their keys in order;
    * ``("run", key)``: check and time that workload, then drop it (and its data);
    * ``("grow", n)``: start engines up to ``n``.

    A failure is answered with ``{"error": traceback}``, and the child stops.
    """
    os.dup2(2, 1)  # Ray's and the engines' messages go to stderr: the parent prints tables
    ship_by_value()
    runner = SYSTEMS[system]()
    started = False
    try:
        t0 = time.perf_counter()
        runner.start(sizes.engines)
        started = True
        conn.send({"cold_start_ms": (time.perf_counter() - t0) * 1e3})
        workloads: dict[str, Workload] = {}
        while True:
            request, arg = conn.recv()
            if request == "stop":
                break
            if request == "plan":
                workloads = {w.key: w for w in PHASES[arg](runner, sizes)}
                conn.send(list(workloads))
            elif request == "run":
                conn.send(run_one(system, workloads.pop(arg), sizes))
            elif request == "grow":
                runner.grow(arg)
                conn.send(None)
    except Exception:  # noqa: BLE001 - told to the parent, which goes on without us
        conn.send({"error": traceback.format_exc()})
    finally:
        if started:
            runner.stop()
