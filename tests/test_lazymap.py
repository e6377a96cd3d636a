"""The lazy map (``LoadBalancedView.imap``, ``view.executor.map``): bounded submission from
any input, even an endless one; ``cancel()``; order; the input's own errors."""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import Future

import pytest

from rayparallel import error
from rayparallel.lazymap import LazyMapIterator


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture
def lview(rc):
    return rc.load_balanced_view()


def nap_or_wait_for(what: float | str) -> float | str:
    """Sleep ``what`` seconds, or until the file ``what`` exists."""
    if isinstance(what, str):
        while not os.path.exists(what):
            time.sleep(0.01)
        return what
    return nap(what)


def timed_nap(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_cancel_stops_taking_input(lview):
    taken = []

    def endless():
        for i in itertools.count():
            taken.append(i)
            yield 0.05

    results = lview.imap(timed_nap, endless(), max_outstanding=2)
    assert isinstance(results, LazyMapIterator)
    spans = [next(results) for _ in range(4)]
    results.cancel()
    assert results.wait_submitted(30) and results.done
    spans += list(results)  # what was already sent still comes back, then the end
    assert len(spans) == len(taken)
    # never more than max_outstanding calls at once (one instant's ends before its starts)
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                    key=lambda e: (e[0], e[1]))
    running = list(itertools.accumulate(change for _, change in events))
    assert max(running) <= 2


class Finished(Future):
    """A call that finished as it was submitted."""

    def __init__(self, value):
        super().__init__()
        self.set_result(value)

    def get(self):
        return self.result()


@pytest.mark.parametrize("ordered", [True, False])
def test_a_slow_reader_holds_a_bounded_number_of_results(ordered):
    # Calls that finish at once, read slowly: the input is taken only as results are read
    # (max_outstanding + max_unread ahead), so memory stays flat over an endless input.
    taken = []

    def endless():
        for i in itertools.count():
            taken.append(i)
            yield (i,)

    results = LazyMapIterator(endless(), lambda args: Finished(args[0]), max_outstanding=2,
                              ordered=ordered, max_unread=5)
    deadline = time.monotonic() + 30
    while len(taken) < 7 and time.monotonic() < deadline:  # the feeder fills the room
        time.sleep(0.01)
    assert [next(results) for _ in range(100)] == list(range(100))
    results.cancel()
    assert 7 <= len(taken) <= 100 + 7 + 1  # one more may be in hand as it stops


@pytest.mark.ray_only  # local mode runs tasks one after another, in order
def test_unordered_yields_as_they_finish(lview, tmp_path):
    marker = tmp_path / "go"
    slow_first = lview.imap(nap_or_wait_for, [str(marker), 0.0, 0.0, 0.0],
                            max_outstanding=2, ordered=False)
    assert [next(slow_first) for _ in range(3)] == [0.0, 0.0, 0.0]
    marker.touch()  # only now can the first item finish
    assert next(slow_first) == str(marker)
    with pytest.raises(StopIteration):
        next(slow_first)


def test_an_input_that_raises_ends_the_results_there(lview):
    def two_then_broken():
        yield 1
        yield 2
        raise OSError("the input broke")

    results = lview.imap(abs, two_then_broken())
    assert next(results) == 1 and next(results) == 2
    with pytest.raises(OSError, match="the input broke"):
        next(results)
    assert list(results) == []


def test_what_cannot_be_sent_first_raises_at_once(lview):
    import threading

    lock = threading.Lock()
    with pytest.raises(error.SerializationError, match="cannot be pickled"):
        lview.imap(lambda x: lock, [1])
    with pytest.raises(ZeroDivisionError):
        lview.imap(abs, (1 / x for x in [0]))


def test_executor_map_is_lazy_and_shutdown_waits_for_it(lview):
    with lview.executor as ex:
        squares = ex.map(pow, range(10), itertools.repeat(2))
        assert isinstance(squares, LazyMapIterator)
    assert squares.done and not squares.pending()  # shutdown waited for every item
    assert list(squares) == [i * i for i in range(10)]
    with pytest.raises(ValueError, match="chunksize must be a whole number >= 1"):
        lview.executor.map(abs, [1], chunksize=0)


@pytest.mark.ray_only  # local mode runs the task as it is submitted: it is never late
def test_executor_map_timeout_raises_when_reached(rc, lview):
    results = lview.executor.map(nap, [0.5], timeout=0.1)
    with pytest.raises(TimeoutError, match="did not come in time"):
        next(results)
    assert rc.wait(results.pending(), timeout=30)


def test_repr_says_how_far_it_got(lview):
    results = lview.imap(abs, [-1, -2])
    assert next(results) == 1
    results.wait_submitted(30)
    assert repr(results) == "<LazyMapIterator: 1 yielded, done>"
