"""Client-level waiting: rc.wait on AsyncResults and plain Futures, rc.wait_interactive,
rc.wait_for_engines blocking or as a Future."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from rayparallel import error


def test_wait_takes_plain_futures_too(rc):
    future: Future = Future()
    threading.Timer(0.05, future.set_result, args=("later",)).start()
    assert rc.wait([future, rc[:].apply_async(abs, -1)], timeout=30)
    assert future.result() == "later"
    assert rc.wait(Future(), timeout=0.01) is False
    with pytest.raises(TypeError, match="wait takes AsyncResults or concurrent.futures."
                                        "Futures, not float"):
        rc.wait([1.5])


def test_wait_interactive_shows_progress_of_everything_outstanding(rc, capsys):
    ar = rc[:].apply_async(abs, -1)
    assert rc.wait_interactive([ar], interval=0.01, widget=False)
    assert f"{len(rc)}/{len(rc)} tasks finished after" in capsys.readouterr().out
    rc[:].apply_async(abs, -1)
    assert rc.wait_interactive(interval=0.01, widget=False)
    assert rc.outstanding == set()


def test_wait_for_engines_blocking_or_as_a_future(rc):
    n = len(rc)
    assert rc.wait_for_engines(n) is None
    ready = rc.wait_for_engines(n, block=False)
    assert isinstance(ready, Future) and ready.done() and ready.result() is None
    with pytest.raises(error.TimeoutError, match=f"{n} engines are running, fewer than "
                                                 f"{n + 1}"):
        rc.wait_for_engines(n + 1, timeout=0.1)
    too_many = rc.wait_for_engines(n + 1, timeout=0.1, block=False)
    with pytest.raises(error.TimeoutError, match="add_engines"):
        too_many.result(timeout=30)
    with pytest.raises(ValueError, match="n must be a whole number"):
        rc.wait_for_engines(-1)


def test_register_joblib_backend_without_a_view(rc):
    joblib = pytest.importorskip("joblib")
    from rayparallel.joblibbackend import register_joblib_backend

    register_joblib_backend("rayparallel-own-client")
    with joblib.parallel_backend("rayparallel-own-client"):
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3)) == [0, 1, 2]
