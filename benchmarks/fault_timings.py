"""How long each fault takes to reach the user, and what they see.

    python benchmarks/fault_timings.py

Starts a local Ray with a few engines, injects each fault for real (engine processes that
exit, are killed or crash; interrupts; aborts; timeouts; bad input) and prints one row per
fault: what the user sees, and the seconds from the fault to the error.
"""

from __future__ import annotations

import ctypes
import os
import signal
import tempfile
import threading
import time

import rayparallel
from rayparallel import error

ROWS: list[tuple[str, str, float]] = []


def measure(fault: str, action, inject=None) -> None:
    """Run ``action`` (which raises), ``inject`` the fault first if given; record the row."""
    if inject is not None:
        inject()
    start = time.perf_counter()
    try:
        action()
        seen = "no error (!)"
    except BaseException as exc:  # noqa: BLE001 - what the user sees is the point
        first_line = (str(exc).splitlines() or [""])[0]
        seen = f"{type(exc).__name__}: {first_line[:90]}"
    ROWS.append((fault, seen, time.perf_counter() - start))
    print(f"  {fault}: {ROWS[-1][2]:.2f} s", flush=True)


def _running(rc, engine: int, seconds: float = 60):
    """Start a call on ``engine`` and return once it is running there."""
    marker = os.path.join(tempfile.gettempdir(),
                          f"rayparallel-fault-{os.getpid()}-{engine}-{time.monotonic_ns()}")
    ar = rc[engine].apply_async(
        lambda: (open(marker, "w").close(), __import__("time").sleep(seconds)))
    while not os.path.exists(marker):
        if ar.done():  # it ended without starting to sleep: say why
            ar.get()
        time.sleep(0.01)
    os.unlink(marker)
    return ar


def main() -> None:
    rc = rayparallel.Client(num_engines=8)

    for name, die in [("engine calls os._exit", lambda: os._exit(1)),
                      ("engine process SIGKILLed by itself",
                       lambda: os.kill(os.getpid(), signal.SIGKILL)),
                      ("engine segfaults", lambda: ctypes.string_at(0))]:
        engine = rc.ids[0]
        measure(name, lambda e=engine, d=die: rc[e].apply_sync(d))

    engine = rc.ids[0]
    ar = _running(rc, engine)
    pid = rc.engine_info()[engine]["pid"]
    measure("engine killed from outside (SIGKILL) mid-call", lambda: ar.get(timeout=30),
            inject=lambda: os.kill(pid, signal.SIGKILL))

    engine = rc.ids[0]
    ar = _running(rc, engine)
    measure("rc.send_signal(SIGINT) on a running call", lambda: ar.get(timeout=30),
            inject=lambda: rc.send_signal(signal.SIGINT, targets=[engine]))
    ar = _running(rc, engine)
    measure("ar.abort() of a running call", lambda: ar.get(timeout=30), inject=ar.abort)
    blocker = _running(rc, engine, 3)
    queued = rc[engine].apply_async(int)
    measure("ar.abort() of a queued call", lambda: queued.get(timeout=30), inject=queued.abort)
    blocker.get()

    ar = _running(rc, engine)
    main_thread = threading.get_ident()
    threading.Timer(0.3, signal.pthread_kill, (main_thread, signal.SIGINT)).start()
    measure("Ctrl-C while blocking in get()", lambda: ar.get(timeout=30))
    measure("... then the engines' code", lambda: ar.get(timeout=30))

    ar = _running(rc, engine)
    measure("get(timeout=0.5) on a 60 s call", lambda: ar.get(timeout=0.5))
    ar.abort()

    lview = rc.load_balanced_view()
    lview.timeout = 1
    measure("load-balanced task past timeout=1", lambda: lview.apply_sync(time.sleep, 30))

    measure("unpicklable argument (a lock)", lambda: rc[:].apply_sync(len, threading.Lock()))
    measure("result that cannot be pickled back", lambda: rc[engine].apply_sync(threading.Lock))
    measure("syntax error in execute", lambda: rc[:].execute("def (:", block=True))
    measure("target out of range", lambda: rc[99])
    measure("deep recursion on an engine",
            lambda: rc[engine].apply_sync(lambda: (f := lambda n: f(n + 1))(0)))
    rc.shutdown(hub=True)

    try:
        rayparallel.Client(profile="nonexistent")
    except error.NoSuchProfile as exc:
        ROWS.append(("profile that does not exist (no Ray running)", str(exc)[:90], 0.0))
    except ConnectionError as exc:
        ROWS.append(("profile that does not exist (no Ray running)",
                     f"ConnectionError: {str(exc)[:90]}", 0.0))

    width = max(len(r[0]) for r in ROWS)
    print(f"{'fault':<{width}}  {'seconds':>7}  what the user sees")
    for fault, seen, seconds in ROWS:
        print(f"{fault:<{width}}  {seconds:7.2f}  {seen}")


if __name__ == "__main__":
    main()
