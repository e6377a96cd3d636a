"""Soak: a mixed workload for a while, with engines killed at random; nothing may be lost.

    python -m benchmarks.soak [--seconds 600] [--engines 4] [--kill-every 20] [--raw]
                              [--json PATH]

One client (``restart_engines=True``) runs, one after another, requests of every kind:
``apply`` to all engines, a DirectView ``map``, ``push`` then ``pull`` of a 1 MB array, a
load-balanced ``map`` with ``retries=2``, and ``%px`` through a real IPython shell. Each
request's result is checked against what it must be. Meanwhile a thread kills a random
engine's process (SIGKILL) every ``--kill-every`` seconds on average; Ray restarts it.
Engine 0 is never killed, so that one engine's memory can be followed over the run.

At the end every request must be accounted for: right, or failed because a kill hit it
(the engine was lost during it, or came back with an empty namespace: the user is told
either way). None may be wrong or unanswered. It also reads the unique memory (USS) of the
client and of engine 0 at the end of every tenth of the run, and Ray's object store
against its level before the run, once every result is dropped. Memory is *flat* when it
grew by at most ``FLAT_MIB`` over the second half: what the client keeps is bounded
(non-blocking results nobody read until 1,000 were sent, ``rc.history``, the task database)
and fills during the first half of a long run. ``--raw`` runs the same kinds of requests
written with raw Ray, without kills: the floor for the client's memory. Exits 1 if
anything was lost or wrong.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil

import rayparallel
from benchmarks.bench_memory import object_store_bytes, store_settled, uss_mib
from benchmarks.common import markdown_table, write_json
from rayparallel import error

#: what a request ended as
RIGHT, HIT, WRONG, UNANSWERED = "right", "hit by a kill", "wrong", "unanswered"
TIMEOUT = 120  # s a request may take (a restart included) before it counts as unanswered
FLAT_MIB = 5.0  # most growth over the second half of the run for memory to count as flat


def _twice(x: int) -> int:
    return 2 * x


def _square(x: int) -> int:
    return x * x


def _hit_by_kill(exc: BaseException, caught: list) -> bool:
    """Whether a failure is one a kill explains: a lost engine, or a name missing on an
    engine that came back empty (the user was warned it was restarted)."""
    restarted = any(issubclass(w.category, error.EngineRestarted) for w in caught)
    errors = exc.elist if isinstance(exc, error.CompositeError) else [exc]
    for e in errors:
        ename = e[0] if isinstance(e, tuple) else getattr(e, "ename", type(e).__name__)
        if ename == "EngineError" or isinstance(e, error.EngineError):
            continue
        if ename == "NameError" and restarted:
            continue
        return False
    return True


class Requests:
    """Requests of every kind (``kinds``), each returning (what came back, what must come
    back); :meth:`one` runs one of a random kind."""

    kinds: dict[str, Callable[[], tuple[Any, Any]]]
    rng: random.Random

    def one(self) -> tuple[str, str]:
        """Run one request of a random kind; returns (kind, what it ended as)."""
        kind = self.rng.choice(list(self.kinds))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                got, wanted = self.kinds[kind]()
            except TimeoutError:  # rayparallel's and Ray's both are
                return kind, UNANSWERED
            except Exception as exc:  # noqa: BLE001 - every failure is classified
                return kind, HIT if _hit_by_kill(exc, caught) else WRONG
        return kind, RIGHT if got == wanted else WRONG

    def close(self) -> None:
        """Let go of what the requests needed."""


class Workload(Requests):
    """The soak's requests through rayparallel."""

    def __init__(self, rc: rayparallel.Client, seed: int):
        from IPython.core.interactiveshell import InteractiveShell

        self.rc, self.dv = rc, rc[:]
        self.lview = rc.load_balanced_view(retries=2)
        self.rng = random.Random(seed)
        self._made_shell = not InteractiveShell.initialized()
        self.shell = InteractiveShell.instance()
        self.dv.activate()
        self.kinds: dict[str, Callable[[], tuple[Any, Any]]] = {
            "apply": self.apply, "map": self.map, "push/pull": self.push_pull,
            "LB map": self.lb_map, "%px": self.px}

    def apply(self) -> tuple[Any, Any]:
        x = self.rng.randrange(1000)
        return self.dv.apply_async(_twice, x).get(TIMEOUT), [2 * x] * len(self.rc)

    def map(self) -> tuple[Any, Any]:
        n = self.rng.randrange(1, 200)
        return self.dv.map_async(_twice, range(n)).get(TIMEOUT), [2 * i for i in range(n)]

    def push_pull(self) -> tuple[Any, Any]:
        data = np.full(131072, float(self.rng.randrange(1000)))  # 1 MB
        self.dv.push({"soak_data": data}, block=True)
        pulled = self.dv.pull("soak_data").get(TIMEOUT)
        return [bool((a == data).all()) for a in pulled], [True] * len(pulled)

    def lb_map(self) -> tuple[Any, Any]:
        n = self.rng.randrange(1, 400)
        return self.lview.map_async(_square, range(n)).get(TIMEOUT), [i * i for i in range(n)]

    def px(self) -> tuple[Any, Any]:
        x = self.rng.randrange(1000)
        self.shell.run_line_magic("px", f"soak_px = {x} + 1")
        return self.dv.pull("soak_px").get(TIMEOUT), [x + 1] * len(self.rc)

    def close(self) -> None:
        """Let go of the IPython shell if the soak made it (a host program may go on)."""
        if self._made_shell:
            from IPython.core.interactiveshell import InteractiveShell

            InteractiveShell.clear_instance()


class RawWorkload(Requests):
    """The same kinds of requests written directly with Ray (``--raw``): actors holding a
    namespace, ``ray.put`` of the array, tasks for the load-balanced map, ``exec`` for
    ``%px``. What the client's memory does here is the floor rayparallel stands on."""

    def __init__(self, engines: int, seed: int):
        import ray

        from benchmarks.workloads import raw_chunk, start_raw_actors

        self.ray, self.chunk = ray, raw_chunk
        # started before the clock, as engines are: the actors, and a worker for tasks
        self.actors = start_raw_actors(engines)
        self.pid = ray.get(self.actors[0].apply.remote(os.getpid))
        ray.get(raw_chunk.remote(_square, [1]))
        self.rng = random.Random(seed)
        self.kinds = {"apply": self.apply, "map": self.map, "push/pull": self.push_pull,
                      "LB map": self.lb_map, "%px": self.px}

    def _all(self, method: str, *args: Any) -> list:
        return self.ray.get([getattr(a, method).remote(*args) for a in self.actors],
                            timeout=TIMEOUT)

    def apply(self) -> tuple[Any, Any]:
        x = self.rng.randrange(1000)
        return self._all("apply", _twice, x), [2 * x] * len(self.actors)

    def map(self) -> tuple[Any, Any]:
        n = self.rng.randrange(1, 200)
        parts = np.array_split(np.arange(n), len(self.actors))
        got = self.ray.get([a.map.remote(_twice, p.tolist())
                            for a, p in zip(self.actors, parts)], timeout=TIMEOUT)
        return [y for part in got for y in part], [2 * i for i in range(n)]

    def push_pull(self) -> tuple[Any, Any]:
        data = np.full(131072, float(self.rng.randrange(1000)))  # 1 MB
        self._all("push", self.ray.put({"soak_data": data}), True)  # put once, as push does
        return [bool((a == data).all()) for a in self._all("pull", "soak_data")], \
            [True] * len(self.actors)

    def lb_map(self) -> tuple[Any, Any]:
        n = self.rng.randrange(1, 400)
        size = max(1, n // (4 * len(self.actors)))
        chunks = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
        got = self.ray.get([self.chunk.remote(_square, c) for c in chunks], timeout=TIMEOUT)
        return [y for part in got for y in part], [i * i for i in range(n)]

    def px(self) -> tuple[Any, Any]:
        x = self.rng.randrange(1000)
        self._all("execute", f"soak_px = {x} + 1")
        return self._all("pull", "soak_px"), [x + 1] * len(self.actors)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)


class Killer(threading.Thread):
    """SIGKILLs a random engine's process, never engine 0's, every ``every`` s on
    average."""

    def __init__(self, rc: rayparallel.Client, every: float, seed: int):
        super().__init__(name="soak-killer", daemon=True)
        self.rc, self.every, self.rng = rc, every, random.Random(seed)
        self.kills = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.rng.uniform(0.5, 1.5) * self.every):
            others = self.rc.ids[1:]  # 0 survives: a witness
            if not others:
                return
            eid = self.rng.choice(others)
            pid = self.rc.engine_info()[eid].get("pid")
            try:
                # an engine still (Ray names its workers' processes), not a reused pid
                if " ".join(psutil.Process(pid).cmdline()).startswith("ray::"):
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
            except (psutil.Error, TypeError, ProcessLookupError):
                pass  # already gone, restarting


def _witness_pid(rc: rayparallel.Client) -> int:
    """The pid of engine 0, the engine never killed."""
    return rc[0].apply_sync(os.getpid)


def _memory(witness: int) -> tuple[float, float]:
    """(client USS, engine 0's USS) in MiB, after a collection here."""
    gc.collect()
    return uss_mib(os.getpid()), uss_mib(witness)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to run")
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=20, metavar="S",
                        help="mean seconds between two engine kills (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true",
                        help="the same kinds of requests written with raw Ray, no kills: "
                             "the floor for the client's memory")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.engines < 1 or args.kill_every < 0:
        parser.error("--seconds and --engines must be positive, --kill-every not negative")
    rc = None
    if args.raw:
        import ray

        if not ray.is_initialized():
            ray.init(include_dashboard=False, logging_level="ERROR")
        store_before = object_store_bytes()
        work: Requests = RawWorkload(args.engines, args.seed)
        witness = work.pid
        killer = None
    else:
        rc = rayparallel.Client(num_engines=args.engines, restart_engines=True)
        store_before = object_store_bytes()
        work = Workload(rc, args.seed)
        witness = _witness_pid(rc)
        killer = Killer(rc, args.kill_every, args.seed + 1) if args.kill_every else None
    ended: Counter = Counter()
    start = time.monotonic()
    readings = [_memory(witness)]  # before, then at the end of each tenth
    try:
        if killer is not None:
            killer.start()
        while (elapsed := time.monotonic() - start) < args.seconds:
            kind, outcome = work.one()
            ended[kind, outcome] += 1
            if elapsed >= len(readings) * args.seconds / 10:
                readings.append(_memory(witness))
        if killer is not None:
            killer.stopped.set()
        readings.append(_memory(witness))
    finally:
        if killer is not None:
            killer.stopped.set()
        work.close()
        if rc is not None:
            rc.shutdown()
    store_after = store_settled(store_before)
    figures = _figures(ended, killer.kills if killer else 0, readings, store_before,
                       store_after, time.monotonic() - start)
    figures["system"] = "raw Ray" if args.raw else "rayparallel"
    print(report(figures))
    if args.json:
        write_json(args.json, figures)
    return figures


def _figures(ended: Counter, kills: int, readings: list[tuple[float, float]],
             store_before: int | None, store_after: int | None,
             seconds: float) -> dict[str, Any]:
    kinds = sorted({kind for kind, _ in ended})
    return {
        "seconds": seconds, "kills": kills,
        "requests": {k: {o: ended[k, o] for o in (RIGHT, HIT, WRONG, UNANSWERED)}
                     for k in kinds},
        "client_uss_mib": [round(client, 1) for client, _ in readings],
        "engine0_uss_mib": [round(engine, 1) for _, engine in readings],
        "object_store_bytes": [store_before, store_after],
    }


def second_half_growth(series: list[float]) -> float:
    """MiB grown from the middle of the run to its end (readings at each tenth)."""
    return series[-1] - series[len(series) // 2]


def report(figures: dict[str, Any]) -> str:
    """The soak's figures as Markdown."""
    rows = [[kind, *(str(n[o]) for o in (RIGHT, HIT, WRONG, UNANSWERED))]
            for kind, n in figures["requests"].items()]
    store = figures["object_store_bytes"]
    lines = [f"{figures.get('system', 'rayparallel')}: {figures['seconds']:.0f} s, "
             f"{figures['kills']} engines killed", "",
             markdown_table(["request", RIGHT, HIT, WRONG, UNANSWERED], rows), ""]
    for name, key in (("client", "client_uss_mib"), ("engine 0", "engine0_uss_mib")):
        series = figures[key]
        growth = second_half_growth(series)
        verdict = "flat" if growth <= FLAT_MIB else "NOT flat"
        lines.append(f"{name} USS (MiB) before and at each tenth: "
                     f"{' → '.join(f'{m:.1f}' for m in series)}; second half "
                     f"{growth:+.1f}: {verdict} (at most {FLAT_MIB:+.1f})")
    lines.append(f"object store: {store[0]} bytes before, {store[1]} after")
    return "\n".join(lines)


def lost_or_wrong(figures: dict[str, Any]) -> int:
    """Requests that were wrong or never answered (must be 0)."""
    return sum(n[WRONG] + n[UNANSWERED] for n in figures["requests"].values())


if __name__ == "__main__":
    raise SystemExit(1 if lost_or_wrong(main()) else 0)
