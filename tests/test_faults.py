"""The fault suite: engines that die, Ray that goes away, many threads, dropped results, and
bad input. Each fault is injected for real; every wait is bounded, so a hang fails the test
rather than the run."""

from __future__ import annotations

import concurrent.futures
import ctypes
import gc
import os
import signal
import threading
import warnings
import weakref

import pytest
from isolated_ray import IsolatedRay
from waiting import wait_for_file

import rayparallel
from rayparallel import error


@pytest.fixture(scope="module")
def fragile(rayparallel_ray_client):
    """Engines to kill (on the session's Ray, apart from the shared 8-engine client)."""
    rc = rayparallel.Client(num_engines=6)
    yield rc
    rc.shutdown()


def _exit():
    os._exit(3)


def _sigkill():
    os.kill(os.getpid(), signal.SIGKILL)


def _segfault():
    ctypes.string_at(0)


@pytest.mark.parametrize("die", [_exit, _sigkill, _segfault],
                         ids=["os._exit", "SIGKILL", "segfault"])
def test_a_dying_engine_fails_its_work_and_leaves_the_rest(fragile, die):
    victim, survivor = fragile.ids[:2]
    fragile[victim].push({"doomed": True}, block=True)
    fragile[survivor].push({"doomed": False}, block=True)
    ar = fragile[[victim, survivor]].apply_async(lambda: die() if doomed else "alive")  # noqa: F821
    # within 10 s, or get raises TimeoutError instead
    lost, delivered = ar.get(timeout=10, return_exceptions=True)
    assert delivered == "alive"
    assert isinstance(lost, error.EngineError) and lost.engine_id == victim
    assert str(lost).startswith(f"engine {victim} died or became unreachable during <lambda>")
    with pytest.raises(error.CompositeError, match=rf"\[{victim}:<lambda>\] EngineError"):
        ar.get()
    assert victim not in fragile.ids and survivor in fragile.ids
    with pytest.raises(IndexError, match=f"engine {victim} is not registered"):
        fragile[victim]
    assert fragile[survivor].apply_sync(lambda: doomed) is False  # noqa: F821


def test_an_engine_killed_from_outside_while_working(fragile, tmp_path):
    victim = fragile.ids[0]
    started = tmp_path / "started"
    ar = fragile[victim].apply_async(
        lambda: (open(started, "w").close(), __import__("time").sleep(60)))
    # wait (bounded) until the engine is inside the call, then kill its process
    concurrent.futures.wait([fragile[fragile.ids[1]].apply_async(
        wait_for_file, str(started))], timeout=30)
    os.kill(fragile.engine_info()[victim]["pid"], signal.SIGKILL)
    with pytest.raises(error.EngineError, match=f"engine {victim} died"):
        ar.get(timeout=10)
    assert victim not in fragile.ids




def test_restarted_engines_come_back_empty_and_say_so_once(rayparallel_ray_client):
    rc = rayparallel.Client(num_engines=2, restart_engines=True)
    try:
        rc[:].push({"state": "kept"}, block=True)
        with pytest.raises(error.EngineError, match="engine 0 died"):
            rc[0].apply_sync(_exit)
        assert rc.ids == [0, 1]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert rc[:].apply_sync(lambda: globals().get("state")) == [None, "kept"]
            assert rc[:].apply_sync(lambda: globals().get("state")) == [None, "kept"]
        assert [str(w.message) for w in caught] == [
            "[engine 0] engine 0 was restarted after its process died: its namespace is empty"]
        assert caught[0].category is error.EngineRestarted
    finally:
        rc.shutdown()


@pytest.mark.slow
def test_ray_going_away_is_a_clear_error_not_a_hang():
    ray = IsolatedRay()
    try:
        ray.ray("start", "--head", "--port=0", "--include-dashboard=false",
                "--disable-usage-stats")
        out = ray.python(f"""
            import os, time, psutil, rayparallel
            rc = rayparallel.Client(num_engines=2)
            ar = rc[:].apply_async(time.sleep, 60)
            for proc in psutil.process_iter(["cmdline"]):  # the whole Ray: head and engines
                if proc.pid != os.getpid() and any(
                        {ray.dir!r} in part for part in proc.info["cmdline"] or ()):
                    proc.kill()
            try:
                ar.get(timeout=20)
            except rayparallel.CompositeError as exc:
                print(sorted({{e[0] for e in exc.elist}}))
            try:
                rc[:]
            except rayparallel.error.NoEnginesRegistered as exc:
                print(exc)
        """)
        assert out.splitlines() == [
            "['EngineError']",
            "this client has no engines (they were stopped, or their processes died); "
            "start some with client.add_engines(N)",
        ]
    finally:
        ray.stop()


def test_eight_threads_share_one_client(rc):
    def work(thread: int) -> list:
        view = rc[thread % len(rc)]
        got = [view.apply_sync(lambda x: x * x, thread * 100 + i) for i in range(20)]
        got.append(rc[:].map_sync(lambda x: x + thread, range(16)))
        return got

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for thread, got in enumerate(results):
        assert got[:20] == [(thread * 100 + i) ** 2 for i in range(20)]
        assert got[20] == [x + thread for x in range(16)]


def test_results_no_one_holds_are_released(rc):
    ar = rc[:].apply_async(lambda: bytearray(1_000_000))
    assert len(ar.get(timeout=30)) == len(rc)
    gone = weakref.ref(ar)
    del ar
    # submitted and dropped without waiting: the client forgets them once they finish
    requests = rc.session.hub.max_records + 200
    for _ in range(requests):
        rc[0].apply_async(int)
    rc.wait(timeout=60)
    assert rc.outstanding == set()
    assert rc.session.tracked < requests
    # the task database keeps only the newest records: the first result is gone by now
    gc.collect()
    assert gone() is None


class _Held:
    """Something a caller holds (a large array, in real code)."""


@pytest.mark.parametrize("read", ["get", "iterate", "single engine"])
def test_a_failed_get_does_not_keep_what_the_callers_frames_hold(rc, dv, read):
    ar = rc[0].apply_async(lambda: 1 / 0) if read == "single engine" else \
        dv.map_async(lambda x: 1 / x, [0] * len(rc)) if read == "iterate" else \
        dv.apply_async(lambda: 1 / 0)
    ar.wait(timeout=30)

    def caller() -> tuple[weakref.ref, int]:
        held = _Held()
        with pytest.raises(error.RemoteError) as raised:
            list(ar) if read == "iterate" else ar.get()
        return weakref.ref(held), len(raised.traceback)

    held, depth = caller()
    gc.collect()
    # the result (kept by the task database) does not keep the caller's frames alive
    assert held() is None
    # and its traceback does not grow with each reading
    assert caller()[1] == depth


# ---------------------------------------------------------------------------- bad input

lock = threading.Lock()


def _uses_lock():
    return lock


class _UnpicklableError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def _raise_unpicklable():
    raise _UnpicklableError("has a lock")


def _recurse(n):
    return _recurse(n + 1)


BAD_INPUT = {
    "lock argument": (lambda rc, tmp: rc[:].apply(lambda x: x, lock), error.SerializationError,
                      "argument 0 cannot be pickled to send to the engines .*Nothing was sent"),
    "lock keyword": (lambda rc, tmp: rc[:].apply(lambda x=0: x, x=lock), error.SerializationError,
                     "keyword argument 'x' cannot be pickled"),
    "function using a lock": (lambda rc, tmp: rc[:].apply(_uses_lock), error.SerializationError,
                              "the function cannot be pickled"),
    "generator argument": (lambda rc, tmp: rc[:].apply(len, (i for i in range(3))),
                           error.SerializationError, "cannot pickle 'generator' object"),
    "file open for writing": (lambda rc, tmp: rc[:].apply(len, open(tmp / "w", "w")),
                              error.SerializationError, "argument 0 cannot be pickled"),
    "generator as function": (lambda rc, tmp: rc[:].apply(i for i in range(3)), TypeError,
                              "apply needs a callable, not generator"),
    "unpicklable result": (lambda rc, tmp: rc[0].apply_sync(threading.Lock),
                           rayparallel.RemoteError, "TypeError: cannot pickle '_thread.lock'"),
    "exception class only on the engine": (
        lambda rc, tmp: rc[0].execute("class Boom(Exception): pass\nraise Boom('x')", block=True),
        rayparallel.RemoteError, r"\[0:execute\] Boom: x"),
    "exception that cannot be pickled": (lambda rc, tmp: rc[0].apply_sync(_raise_unpicklable),
                                         _UnpicklableError, "has a lock"),
    "deep recursion": (lambda rc, tmp: rc[0].apply_sync(_recurse, 0), RecursionError,
                       "maximum recursion depth exceeded"),
    "target out of range": (lambda rc, tmp: rc[99], IndexError,
                            r"engine 99 is not registered; engines: \[0, 1, "),
    "target of the wrong type": (lambda rc, tmp: rc[1.5], TypeError,
                                 "targets must be 'all', an int, a slice or a list of ints"),
    "pull of a missing name": (lambda rc, tmp: rc[0].pull("nope", block=True), NameError,
                               "name 'nope' is not defined on engine 0"),
    "pull of a non-name": (lambda rc, tmp: rc[:].pull(5), TypeError,
                           "pull needs a name or a list of names, not 5"),
    "scatter of a non-sequence": (lambda rc, tmp: rc[:].scatter("x", 5), TypeError,
                                  "scatter needs a sequence"),
    "parallel call on unequal lengths": (
        lambda rc, tmp: rc[:].map_partitions(pow, [1, 2], [1]), ValueError,
        r"all sequences must have equal length, but have \[2, 1\]"),
    "map without a sequence": (lambda rc, tmp: rc[:].map(abs), TypeError,
                               "map needs at least one sequence"),
    "code with a syntax error": (lambda rc, tmp: rc[0].execute("def (:", block=True),
                                 rayparallel.RemoteError, r"\[0:execute\] SyntaxError"),
    "run of a missing file": (lambda rc, tmp: rc[:].run(str(tmp / "missing.py")),
                              FileNotFoundError, "missing.py"),
    "push of a non-dict": (lambda rc, tmp: rc[:].push([1]), TypeError,
                           "push needs a dict of names to values, not list"),
    "push of a non-name key": (lambda rc, tmp: rc[:].push({1: 2}), ValueError,
                               "push: keys must be valid Python names"),
    "execute of a non-string": (lambda rc, tmp: rc[:].execute(5), TypeError,
                                "execute needs a string of code, not int"),
    "apply of a non-callable": (lambda rc, tmp: rc[:].apply(5), TypeError,
                                "apply needs a callable, not int"),
    "an unknown view flag": (lambda rc, tmp: rc[:].set_flags(bogus=1), KeyError,
                             "invalid flag 'bogus'"),
    "a timeout that is not a number": (lambda rc, tmp: rc[0].apply_async(int).get(timeout="1"),
                                       TypeError, "timeout must be a number of seconds"),
    "wait on something else": (lambda rc, tmp: rc.wait([1.5]), TypeError,
                               "wait takes AsyncResults or concurrent.futures.Futures, "
                               "not float"),
    "wait on an unknown msg_id": (lambda rc, tmp: rc.wait(["x"]), KeyError,
                                  "no result with msg_id 'x'"),
    "a negative number of engines": (lambda rc, tmp: rc.add_engines(-2), ValueError,
                                     "must be a whole number >= 0, not -2"),
    "an unknown serializer": (lambda rc, tmp: rayparallel.serialize.pack(1, "json"), ValueError,
                              "unknown serializer 'json'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_a_clear_error_and_loses_nothing(rc, dv, tmp_path, case):
    dv.push({"kept": 1}, block=True)
    action, exc, message = BAD_INPUT[case]
    with pytest.raises(exc, match=message):
        action(rc, tmp_path)
    assert dv.pull("kept", block=True) == [1] * len(rc)


def test_calls_after_shutdown_and_unknown_profiles(rayparallel_local_client):
    rc = rayparallel.Client(num_engines=1, local_mode=True)
    view = rc[:]
    rc.shutdown()
    with pytest.raises(error.RayParallelError, match="this Client has been shut down"):
        view.apply_sync(int)
    with pytest.raises(ValueError, match="profile 'x' names engines on a Ray cluster"):
        rayparallel.Client(profile="x", local_mode=True)


# ---------------------------------------------------------------------------- interrupts


def _busy_until_interrupted(marker: str) -> str:
    import time

    open(marker, "w").close()
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        return "interrupted"
    return "slept"


def _started(rc, engine: int, marker) -> None:
    """Wait (bounded) until the engine is inside the call, asking another engine to watch."""
    watcher = next(e for e in rc.ids if e != engine)
    rc[watcher].apply_sync(wait_for_file, str(marker))


@pytest.mark.ray_only
def test_send_signal_interrupts_running_code_and_the_engine_keeps_its_namespace(rc, dv,
                                                                                tmp_path):
    dv.push({"kept": 1}, block=True)
    marker = tmp_path / "running"
    ar = rc[0].apply_async(_busy_until_interrupted, str(marker))
    _started(rc, 0, marker)
    rc.send_signal(signal.SIGINT, targets=[0])
    assert ar.get(timeout=5) == "interrupted"
    assert rc[0].pull("kept", block=True) == 1


@pytest.mark.ray_only
def test_abort_interrupts_the_running_part_and_cancels_queued_work(rc, dv, tmp_path):
    dv.push({"kept": 1}, block=True)
    marker = tmp_path / "running"
    running = rc[0].apply_async(lambda m: open(m, "w").close() or __import__("time").sleep(60),
                                str(marker))
    queued = rc[0].apply_async(lambda: "ran")
    _started(rc, 0, marker)
    queued.abort()
    running.abort()
    with pytest.raises(rayparallel.RemoteError, match=r"\[0:apply\] KeyboardInterrupt"):
        running.get(timeout=5)
    with pytest.raises(error.TaskAborted, match="aborted before it started on engine 0"):
        queued.get(timeout=5)
    assert rc[0].pull("kept", block=True) == 1
    assert rc[0].apply_sync(lambda: "next") == "next"  # the engine takes work at once


def _touch(path: str) -> str:
    open(path, "w").close()
    return "ran"


@pytest.mark.ray_only
def test_an_aborted_queued_request_never_runs(rc, dv, tmp_path):
    marker, effect = tmp_path / "running", tmp_path / "side-effect"
    running = rc[0].apply_async(_busy_until_interrupted, str(marker))
    queued = rc[0].apply_async(_touch, str(effect))
    kept = rc[0].apply_async(_touch, str(tmp_path / "kept"))
    _started(rc, 0, marker)
    queued.abort()
    rc.send_signal(signal.SIGINT, targets=[0])  # let the engine go on to the queued ones
    assert running.get(timeout=30) == "interrupted"
    with pytest.raises(error.TaskAborted, match="aborted before it started on engine 0; "
                                                "it did not run"):
        queued.get(timeout=30)
    assert kept.get(timeout=30) == "ran"  # the request after it ran: the engine went past
    assert not effect.exists()


@pytest.mark.ray_only
def test_ctrl_c_while_waiting_interrupts_the_engines_code(rc, dv, tmp_path, ctrl_c):
    dv.push({"kept": 1}, block=True)
    marker = tmp_path / "running"
    main = threading.get_ident()

    def press_ctrl_c():
        wait_for_file(str(marker))
        signal.pthread_kill(main, signal.SIGINT)

    # The presser runs before the work exists, so Ctrl-C can only come once the engines
    # have started it: by then this thread waits in get() (an engine call takes ~1 ms,
    # from here to get() a few microseconds).
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    ar = rc[0:2].apply_async(_busy_until_interrupted, str(marker))
    with pytest.raises(KeyboardInterrupt):
        ar.get(timeout=60)
    presser.join()
    assert ar.get(timeout=5) == ["interrupted", "interrupted"]
    assert dv.pull("kept", block=True) == [1] * len(rc)


@pytest.mark.ray_only
def test_a_100000_item_map_keeps_client_memory_bounded(rc, dv):
    import psutil

    lview = rc.load_balanced_view()
    items = range(100_000)
    me = psutil.Process()

    def one_round() -> None:
        assert dv.map_sync(lambda x: x + 1, items)[-1] == 100_000
        assert lview.map_sync(lambda x: x * 2, items)[-1] == 199_998

    one_round()  # first use: code, caches, connections
    settled = me.memory_info().rss
    for _ in range(3):
        one_round()
    gc.collect()
    assert me.memory_info().rss - settled < 64 * 2**20
    assert rc.outstanding == set()
