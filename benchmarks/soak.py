"""Soak: a mixed workload for a while, with engines killed at random; nothing may be lost.

    python -m benchmarks.soak [--seconds 600] [--engines 4] [--kill-every 20] [--json PATH]

One client (``restart_engines=True``) runs, one after another, requests of every kind:
``apply`` to all engines, a DirectView ``map``, ``push`` then ``pull`` of a 1 MB array, a
load-balanced ``map`` with ``retries=2``, and ``%px`` through a real IPython shell. Each
request's result is checked against what it must be. Meanwhile a thread kills a random
engine's process (SIGKILL) every ``--kill-every`` seconds on average; Ray restarts it.
Engine 0 is never killed, so that one engine's memory can be followed over the run.

At the end every request must be accounted for: right, or failed because a kill hit it
(the engine was lost during it, or came back with an empty namespace: the user is told
either way). None may be wrong or unanswered. It also reports the client's and the
surviving engines' memory after the first tenth and at the end, and Ray's object store
against its level before the run, once every result is dropped. Exits 1 if anything was
lost or wrong.
"""

from __future__ import annotations

import argparse
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
from benchmarks.bench_memory import object_store_bytes, settled_uss, store_settled, uss_mib
from benchmarks.common import markdown_table, write_json
from rayparallel import error

#: what a request ended as
RIGHT, HIT, WRONG, UNANSWERED = "right", "hit by a kill", "wrong", "unanswered"
TIMEOUT = 120  # s a request may take (a restart included) before it counts as unanswered


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


class Workload:
    """The requests of the soak, each returning (what came back, what must come back)."""

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

    def one(self) -> tuple[str, str]:
        """Run one request of a random kind; returns (kind, what it ended as)."""
        kind = self.rng.choice(list(self.kinds))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                got, wanted = self.kinds[kind]()
            except error.TimeoutError:
                return kind, UNANSWERED
            except Exception as exc:  # noqa: BLE001 - every failure is classified
                return kind, HIT if _hit_by_kill(exc, caught) else WRONG
        return kind, RIGHT if got == wanted else WRONG


class Killer(threading.Thread):
    """SIGKILLs a random engine's process every ``every`` s on average (not while
    ``paused`` is set)."""

    def __init__(self, rc: rayparallel.Client, every: float, seed: int):
        super().__init__(name="soak-killer", daemon=True)
        self.rc, self.every, self.rng = rc, every, random.Random(seed)
        self.kills = 0
        self.stopped, self.paused = threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.rng.uniform(0.5, 1.5) * self.every):
            if self.paused.is_set():
                continue
            eid = self.rng.choice(self.rc.ids[1:] or self.rc.ids)  # 0 survives: a witness
            pid = self.rc.engine_info()[eid].get("pid")
            try:
                # an engine still (Ray names its workers' processes), not a reused pid
                if " ".join(psutil.Process(pid).cmdline()).startswith("ray::"):
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
            except (psutil.Error, TypeError, ProcessLookupError):
                pass  # already gone, restarting


def _engine_uss(rc: rayparallel.Client) -> dict[int, float]:
    """USS of each engine process by pid (pids change when Ray restarts an engine)."""
    for _ in range(5):  # an engine killed just before may still be coming back
        try:
            pids = rc[:].apply_sync(os.getpid)
            break
        except error.RayParallelError:
            continue
    return {pid: settled_uss(pid) for pid in set(pids)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to run")
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=20, metavar="S",
                        help="mean seconds between two engine kills (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.engines < 1 or args.kill_every < 0:
        parser.error("--seconds and --engines must be positive, --kill-every not negative")
    rc = rayparallel.Client(num_engines=args.engines, restart_engines=True)
    store_before = object_store_bytes()
    work = Workload(rc, args.seed)
    ended: Counter = Counter()
    killer = Killer(rc, args.kill_every, args.seed + 1)
    start = time.monotonic()
    warm_at, warm = start + args.seconds / 10, None
    try:
        if args.kill_every:
            killer.start()
        while time.monotonic() - start < args.seconds:
            kind, outcome = work.one()
            ended[kind, outcome] += 1
            if warm is None and time.monotonic() >= warm_at:
                killer.paused.set()  # no kill while measuring
                warm = uss_mib(os.getpid()), _engine_uss(rc)
                killer.paused.clear()
        killer.paused.set()
        end = uss_mib(os.getpid()), _engine_uss(rc)
    finally:
        killer.stopped.set()
        work.close()
        rc.shutdown()
    store_after = store_settled(store_before)
    figures = _figures(ended, killer.kills, warm, end, store_before, store_after,
                       time.monotonic() - start)
    print(report(figures))
    if args.json:
        write_json(args.json, figures)
    return figures


def _figures(ended: Counter, kills: int, warm: tuple, end: tuple, store_before: int | None,
             store_after: int | None, seconds: float) -> dict[str, Any]:
    kinds = sorted({kind for kind, _ in ended})
    common = set(warm[1]) & set(end[1])  # engines never killed in between
    return {
        "seconds": seconds, "kills": kills,
        "requests": {k: {o: ended[k, o] for o in (RIGHT, HIT, WRONG, UNANSWERED)}
                     for k in kinds},
        "client_uss_mib": [warm[0], end[0]],
        "engine_uss_growth_mib": {pid: end[1][pid] - warm[1][pid] for pid in common},
        "object_store_bytes": [store_before, store_after],
    }


def report(figures: dict[str, Any]) -> str:
    """The soak's figures as Markdown."""
    rows = [[kind, *(str(n[o]) for o in (RIGHT, HIT, WRONG, UNANSWERED))]
            for kind, n in figures["requests"].items()]
    growth = figures["engine_uss_growth_mib"]
    client = figures["client_uss_mib"]
    store = figures["object_store_bytes"]
    lines = [f"{figures['seconds']:.0f} s, {figures['kills']} engines killed", "",
             markdown_table(["request", RIGHT, HIT, WRONG, UNANSWERED], rows), "",
             f"client USS: {client[0]:.1f} MiB after the first tenth, {client[1]:.1f} at "
             "the end",
             "engines never killed, USS growth since the first tenth (MiB): " +
             (", ".join(f"{g:+.1f}" for g in growth.values()) or "none survived"),
             f"object store: {store[0]} bytes before, {store[1]} after"]
    return "\n".join(lines)


def lost_or_wrong(figures: dict[str, Any]) -> int:
    """Requests that were wrong or never answered (must be 0)."""
    return sum(n[WRONG] + n[UNANSWERED] for n in figures["requests"].values())


if __name__ == "__main__":
    raise SystemExit(1 if lost_or_wrong(main()) else 0)
