"""LoadBalancedView: chunks as Ray tasks (or queued to engines with targets), and what users
see of them: values, order, progress, printed output, errors, flags, executor, joblib."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
import time

import numpy as np
import pytest
from isolated_ray import IsolatedRay

import rayparallel
from rayparallel import CompositeError, LoadBalancedView, RemoteError, error
from rayparallel.loadbalanced import auto_chunksize


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def spin(seconds: float) -> float:
    """Busy for ``seconds``: unlike a sleep, Ray's cancel can interrupt it."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


def noisy(x: int) -> int:
    print(f"item {x}")
    if x == 3:
        raise ValueError("three is bad")
    return x * 10


@pytest.fixture(scope="module")
def lview(rc) -> LoadBalancedView:
    return rc.load_balanced_view()


def test_apply_variants_and_block_flag(rc, lview):
    assert repr(lview) == "<LoadBalancedView None>"
    assert lview.apply_sync(lambda x, y: x**2 + y**2, 3, y=4) == 25
    ar = lview.apply_async(pow, 2, 10)
    assert isinstance(ar, rayparallel.AsyncResult)
    assert ar.get(timeout=30) == 1024
    assert lview.apply(pow, 2, 3).get() == 8
    blocking = rc.load_balanced_view(block=True)
    assert blocking.apply(pow, 3, 2) == 9
    assert blocking.map(abs, [-1, -2]) == [1, 2]


def test_map_variants_with_several_sequences(lview):
    assert lview.map_sync(lambda x, y: x + y, range(5), [10] * 5) == [10, 11, 12, 13, 14]
    assert lview.map(abs, [-3, 4], block=True) == [3, 4]
    ar = lview.map_async(lambda x: x * x, range(6))
    assert isinstance(ar, rayparallel.AsyncMapResult)
    assert ar.get() == [0, 1, 4, 9, 16, 25]
    assert lview.map_sync(abs, []) == []


def test_explicit_chunksize_is_honoured_and_counts_tasks(lview):
    ar = lview.map_async(lambda x: -x, range(25), chunksize=10)
    assert ar.get() == [-x for x in range(25)]
    assert len(ar) == 25 and ar.progress == 25  # items, as in ipyparallel
    assert [len(out) for out in ar.stdout] == [0, 0, 0]


def test_auto_chunksize_from_items_and_cpus(lview):
    cpus = len(lview)
    assert cpus >= 1
    ar = lview.map_async(lambda x: x + 1, range(2000))
    assert ar.get() == list(range(1, 2001))
    tasks = len(ar.stdout)  # one per chunk (len(ar) counts items)
    assert tasks == -(-2000 // auto_chunksize(2000, cpus))
    assert 8 <= tasks <= 2000 // 10  # neither one task per item nor one task in all
    assert auto_chunksize(40, 2) == 2 and auto_chunksize(5, 2) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_bad_chunksize_is_named(lview, bad):
    with pytest.raises(ValueError, match=f"chunksize must be a whole number >= 1.*{bad!r}"):
        lview.map_async(abs, [1, 2], chunksize=bad)


@pytest.mark.ray_only  # local mode runs tasks one after another, in order
def test_unordered_iteration_yields_a_slow_first_item_last(lview):
    ar = lview.map_async(nap, [1.0, 0.0, 0.0, 0.0], chunksize=1, ordered=False)
    got = list(ar)
    # the slow first item does not hold back the others (Ray may queue one of them
    # behind it on the same worker, so "last" is not guaranteed)
    assert got[0] == 0.0 and sorted(got) == [0.0, 0.0, 0.0, 1.0]
    assert ar.get() == [1.0, 0.0, 0.0, 0.0]  # get() keeps the input order
    ordered = lview.map_async(nap, [0.3, 0.0, 0.0], chunksize=1)
    assert list(ordered) == [0.3, 0.0, 0.0]


@pytest.mark.slow  # starts a Ray of its own
def test_a_ray_rayparallel_starts_runs_a_task_on_every_engine_at_once(tmp_path):
    # ipyparallel runs a load-balanced task on every engine at once, however few the cores;
    # the Ray rayparallel starts by itself offers at least one CPU per engine for that
    own_ray = IsolatedRay()
    own_ray.env["PYTHONPATH"] = os.path.dirname(__file__)  # for waiting.py, here and in tasks
    try:
        out = own_ray.python(f"""
            import os, ray, rayparallel
            from waiting import wait_for_entries

            def arrive_and_wait(me, everyone):
                open(os.path.join({str(tmp_path)!r}, str(me)), "w").close()
                wait_for_entries({str(tmp_path)!r}, everyone, timeout=60)
                return me

            n = (os.cpu_count() or 1) + 2
            rc = rayparallel.Client(num_engines=n)
            print(int(ray.cluster_resources()["CPU"]) == n)
            print(rc.load_balanced_view().map_sync(arrive_and_wait, range(n), [n] * n,
                                                   chunksize=1) == list(range(n)))
            rc.shutdown(hub=True)
        """)
    finally:
        own_ray.stop()
    assert out.split() == ["True", "True"]


def test_seed_style_progress_wait_interactive_and_wall_time(lview, capsys):
    out = lview.map_async(lambda row: float(sum(row)), np.ones((200, 3)), chunksize=10)
    out.wait_interactive()
    printed = capsys.readouterr().out
    assert printed.replace("\r", "\n").splitlines()[-2].startswith("  20/20 tasks finished after")
    assert printed.endswith("done\n")
    assert 0 < out.wall_time < 60
    assert out.get() == [3.0] * 200


def test_task_prints_are_captured_never_streamed(lview, capsys):
    ar = lview.map_async(noisy, [0, 1, 2], chunksize=2)
    assert ar.get() == [0, 10, 20]
    assert ar.stdout == ["item 0\nitem 1\n", "item 2\n"]
    assert capsys.readouterr().out == ""


def test_failing_item_raises_and_other_items_are_not_lost(lview):
    ar = lview.map_async(noisy, range(6), chunksize=2)
    with pytest.raises(CompositeError) as info:
        ar.get()
    assert "[ :map[3]] ValueError: three is bad" in str(info.value)
    assert len(info.value.errors) == 1
    with pytest.raises(ValueError, match="three is bad"):
        info.value.raise_exception()
    # the failing item's neighbours in its chunk ran, and printed
    assert ar.stdout[1] == "item 2\nitem 3\n"
    values = lview.map_sync(noisy, range(6), chunksize=2, return_exceptions=True)
    assert values[:3] == [0, 10, 20] and values[4:] == [40, 50]
    assert isinstance(values[3], RemoteError) and isinstance(values[3], ValueError)
    assert "noisy" in values[3].traceback
    it = iter(lview.map_async(noisy, range(6), chunksize=1))
    assert [next(it), next(it), next(it)] == [0, 10, 20]
    with pytest.raises(ValueError, match="three is bad"):
        next(it)


def test_single_failing_apply_raises_the_remote_error(lview):
    with pytest.raises(ZeroDivisionError) as info:
        lview.apply_sync(lambda: 1 / 0)
    assert isinstance(info.value, RemoteError)
    assert "1 / 0" in info.value.traceback


def test_name_only_on_engines_gives_a_hint(rc, dv, lview):
    dv.push({"engine_only": 5}, block=True)

    def uses_engine_name(x):
        return engine_only + x  # noqa: F821 - exists on the engines only

    with pytest.raises(NameError) as info:
        lview.apply_sync(uses_engine_name, 1)
    message = str(info.value)
    assert "name 'engine_only' is not defined" in message
    assert "do not see names pushed or defined there" in message
    assert "load_balanced_view(targets=...)" in message
    # ... and with targets the engines' namespaces are there
    assert rc.load_balanced_view(targets=[0, 1]).map_sync(uses_engine_name, [1, 2]) == [6, 7]


@pytest.mark.ray_only  # local mode runs one chunk at a time: the same engine is always free
def test_targets_balance_over_engines_dynamically(rc, dv):
    on_engines = rc.load_balanced_view(targets=[2, 5])
    assert len(on_engines) == 2
    ar = on_engines.map_async(nap, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], chunksize=1)
    assert ar.get() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    engines = ar.engine_id
    assert set(engines) == {2, 5}
    # while one engine slept on the first item, the other took all the rest
    assert engines[1:] == [engines[1]] * 5 and engines[0] != engines[1]
    assert on_engines.apply_sync(os.getpid) in {i["pid"] for i in rc.engine_info().values()}


def test_retries_run_failed_items_again(lview, tmp_path):
    counter = str(tmp_path / "attempts")

    def flaky(x):
        path = f"{counter}-{x}"
        n = int(open(path).read()) if os.path.exists(path) else 0
        with open(path, "w") as fh:
            fh.write(str(n + 1))
        if n < 2:
            raise RuntimeError(f"attempt {n}")
        return x

    with lview.temp_flags(retries=2):
        assert lview.map_sync(flaky, [1, 2], chunksize=1) == [1, 2]
    with lview.temp_flags(retries=1), pytest.raises(RuntimeError, match="attempt 1"):
        lview.apply_sync(flaky, 3)
    assert lview.retries == 0


def test_after_starts_only_when_dependencies_are_done(rc, lview, tmp_path):
    marker = str(tmp_path / "first-done")

    def first():
        time.sleep(0.5)
        open(marker, "w").close()

    def second():
        return os.path.exists(marker)

    dep = lview.apply_async(first)
    with lview.temp_flags(after=[dep]):
        waited = lview.apply_async(second)
    assert waited.get(timeout=30) is True
    engines = rc.load_balanced_view(targets=[0, 1])
    os.remove(marker)
    dep = engines.apply_async(first)
    with engines.temp_flags(after=dep):
        assert engines.map_sync(lambda _: second(), [0]) == [True]


@pytest.mark.ray_only  # local mode runs work when asked for, so it is never late
def test_timeout_fails_what_did_not_start_in_time_and_never_stops_what_did(rc, lview):
    one_engine = rc.load_balanced_view(targets=[0], timeout=0.3)
    # the second chunk waits for the engine longer than the timeout
    values = one_engine.map_sync(nap, [1.0, 0.0], chunksize=1, return_exceptions=True)
    assert values[0] == 1.0 and isinstance(values[1], error.TaskTimeout)
    assert str(values[1]).endswith("nap: the task did not start within timeout=0.3 s")
    # waiting for dependencies counts too
    slow = lview.apply_async(nap, 1.0)
    with lview.temp_flags(after=[slow], timeout=0.3):
        waiting = lview.apply_async(abs, -1)
    with pytest.raises(error.TaskTimeout, match="abs: the task did not start within"):
        waiting.get(timeout=30)
    assert slow.get(timeout=30) == 1.0
    with lview.temp_flags(timeout=1):  # started in time: runs to its end
        assert lview.apply_sync(nap, 1.5) == 1.5
    assert isinstance(error.TaskTimeout(), TimeoutError)


def test_abort_cancels_queued_chunks(lview):
    start = time.perf_counter()
    ar = lview.map_async(spin, [0.5] * 10, chunksize=1, return_exceptions=True)
    ar.abort()
    values = ar.get(timeout=30)
    aborted = [v for v in values if isinstance(v, error.TaskAborted)]
    assert len(aborted) >= 10 - len(lview)  # at most the running ones finished
    assert time.perf_counter() - start < 10 * 0.5 / len(lview)
    raising = lview.map_async(spin, [0.5] * 4, chunksize=1)
    raising.abort()
    with pytest.raises(CompositeError, match="aborted"):
        raising.get(timeout=30)
    assert lview.map_sync(nap, [0.0], chunksize=1) == [0.0]  # the view still works


@pytest.mark.ray_only  # local mode runs tasks one after another, in order
def test_imap_ordered_unordered_and_endless_input(lview):
    assert list(lview.imap(lambda x: x * 2, range(5))) == [0, 2, 4, 6, 8]
    got = list(lview.imap(nap, [0.8, 0.0, 0.0], ordered=False, max_outstanding=3))
    assert got[0] == 0.0 and sorted(got) == [0.0, 0.0, 0.8]
    squares = lview.imap(lambda x: x * x, itertools.count(), max_outstanding=4)
    assert [next(squares) for _ in range(5)] == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="three is bad"):
        list(lview.imap(noisy, range(5)))
    assert list(lview.imap(noisy, range(2, 5), return_exceptions=True))[0] == 20


def test_executor_is_a_concurrent_futures_executor(rc, lview):
    with rc.executor() as ex:
        assert isinstance(ex, concurrent.futures.Executor)
        assert list(ex.map(abs, [-1, -2, -3])) == [1, 2, 3]
        futures = [ex.submit(pow, 2, i) for i in range(4)]
        done = {f.result() for f in concurrent.futures.as_completed(futures, timeout=30)}
        assert done == {1, 2, 4, 8}
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(abs, 1)
    assert lview.executor is lview.executor


def test_joblib_backend(lview):
    joblib = pytest.importorskip("joblib")
    lview.register_joblib_backend()
    with joblib.parallel_backend("rayparallel"):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(pow)(i, 2) for i in range(10))
    assert out == [i * i for i in range(10)]
    with joblib.parallel_backend("ipyparallel"):  # the name code written for ipyparallel uses
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3)) == [0, 1, 2]


@pytest.mark.ray_only  # Ray's task options need Ray
def test_ray_options_reach_the_tasks(rc):
    env = rc.load_balanced_view(runtime_env={"env_vars": {"RAYPARALLEL_LB": "yes"}},
                                num_cpus=1)
    assert env.apply_sync(lambda: os.environ.get("RAYPARALLEL_LB")) == "yes"


@pytest.mark.parametrize("flags, exc, message", [
    ({"retries": -1}, ValueError, "retries must be a whole number >= 0"),
    ({"timeout": 0}, ValueError, "timeout must be a number of seconds > 0"),
    ({"after": 5}, TypeError, "after must be an AsyncResult, a msg_id, a list of those"),
    ({"targets": [99]}, IndexError, "engine 99 is not registered"),
    ({"chunky": 1}, KeyError, "invalid flag 'chunky'"),
])
def test_bad_flags_are_named(rc, lview, flags, exc, message):
    with pytest.raises(exc, match=message):
        lview.set_flags(**flags)
    assert lview.retries == 0 and lview.timeout is None and lview.targets is None


def test_unpicklable_function_or_data_is_named_and_nothing_runs(lview):
    lock = threading.Lock()
    with pytest.raises(error.SerializationError, match="the function cannot be pickled"):
        lview.map_async(lambda x: lock, [1])
    with pytest.raises(error.SerializationError, match="item 1 of the sequences cannot be "
                                                       "pickled"):
        lview.map_async(abs, [1, lock], chunksize=1)
    with pytest.raises(error.SerializationError, match="argument 1 cannot be pickled"):
        lview.apply_async(pow, 1, lock)
    with pytest.raises(TypeError, match=r"map: argument 1 \(int\) is not iterable"):
        lview.map_async(abs, 1)


@pytest.mark.ray_only  # needs engines busy at the same time
def test_with_targets_abort_drops_queued_chunks_and_retries_use_another_engine(rc, tmp_path):
    one_engine = rc.load_balanced_view(targets=[3])
    ar = one_engine.map_async(nap, [0.3] * 5, chunksize=1, return_exceptions=True)
    ar.abort()
    values = ar.get(timeout=30)
    assert values[0] == 0.3  # already sent to the engine: it runs to the end
    assert all(isinstance(v, error.TaskAborted) for v in values[1:])

    marker = str(tmp_path / "failed-once")

    def fails_on_first_engine():
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first try")
        return os.getpid()

    two = rc.load_balanced_view(targets=[4, 6], retries=1)
    ar = two.apply_async(fails_on_first_engine)  # engine 4 first, then the retry on 6
    assert ar.get(timeout=30) == rc.engine_info()[6]["pid"]
    assert ar.engine_id == 6


@pytest.mark.ray_only  # needs a call still running when the wait gives up
def test_with_targets_chunks_left_in_flight_by_a_timed_out_get_finish_by_themselves(rc):
    # A thread waiting in get() sends each engine's next chunk itself; when it gives up,
    # what it left in flight must still finish and send the rest with nobody waiting.
    # (Quick chunks first: the waiting thread is soon the one sending them.)
    naps = [0.0] * 30 + [1.0, 0.0]
    one_engine = rc.load_balanced_view(targets=[1])
    ar = one_engine.map_async(nap, naps, chunksize=1)
    with pytest.raises(error.TimeoutError):
        ar.get(timeout=0.5)
    finished = threading.Event()
    ar.add_done_callback(lambda _: finished.set())  # no thread waits in get() from here
    assert finished.wait(60), "the chunks left in flight never finished"
    assert ar.get(timeout=0) == naps
