"""A lazy map: what ``LoadBalancedView.imap`` and ``view.executor.map`` return.

Items are taken from the input only as there is room for them: at most ``max_outstanding``
calls are in flight (submitted, not finished) at once, so the input may be endless. A
feeder thread submits the next item as soon as one finishes, whether or not the results are
being read yet, up to ``max_unread`` (1000) finished results waiting to be read, so that
memory stays flat however long the input and however slow the reader; a result is let go
once read. :meth:`LazyMapIterator.cancel` stops taking input (calls already submitted
still finish and are yielded).

>>> import itertools
>>> squares = lview.imap(lambda x: x * x, itertools.count(), max_outstanding=2)
>>> [next(squares) for _ in range(4)]
[0, 1, 4, 9]
>>> squares.cancel()
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LazyMapIterator"]


class _Feeder:
    """Takes items from the input and submits them, keeping the number in flight bounded.

    Kept apart from the iterator so that the feeder thread does not keep the iterator
    alive: an iterator nobody can read any more stops taking input (see ``weakref``)."""

    def __init__(self, items: Iterator[tuple], submit: Callable[[tuple], Any],
                 max_outstanding: int, ordered: bool, max_unread: int):
        self._items = items
        self._submit = submit
        self._max = max_outstanding
        self._max_held = max_outstanding + max_unread
        self.held = 0  # submitted and not read yet: in flight, or waiting to be read
        self._ordered = ordered
        self.lock = threading.Condition()
        # results not yet read: in submission order (ordered) or as they finished; only
        # these are kept, so an endless map does not hold every result it ever had
        self.unread: deque[Any] = deque()
        self.running: set[Any] = set()  # submitted, not finished
        self.input_error: BaseException | None = None  # consuming the input raised it
        self.stopped = False  # no more input will be taken
        self._cancelled = False

    # --- the feeder's side

    def take_one(self, raise_errors: bool = False) -> bool:
        """Submit the next item; False once the input is exhausted, failed or cancelled.
        An error taking or submitting it ends the input: raised if ``raise_errors``, else
        kept for the reader to raise where the input stopped."""
        with self.lock:
            if self._cancelled:
                return self._stop()
        try:
            args = next(self._items)
            ar = self._submit(args)
        except StopIteration:
            with self.lock:
                return self._stop()
        except BaseException as exc:  # noqa: BLE001 - the user's iterator may raise anything
            with self.lock:
                self._stop()
                if raise_errors:
                    raise
                self.input_error = exc
                return False
        with self.lock:
            if self._ordered:
                self.unread.append(ar)
            self.running.add(ar)
            self.held += 1
            self.lock.notify_all()
        ar.add_done_callback(self._one_done)
        return True

    def _stop(self) -> bool:
        self.stopped = True
        self.lock.notify_all()
        return False

    def _one_done(self, ar: Any) -> None:
        with self.lock:
            self.running.discard(ar)
            if not self._ordered:
                self.unread.append(ar)
            self.lock.notify_all()

    def run(self) -> None:
        """The feeder thread: submit items while there is room, until the input ends."""
        while True:
            with self.lock:
                while self._max and not self._cancelled and (
                        len(self.running) >= self._max or self.held >= self._max_held):
                    self.lock.wait()
            if not self.take_one():
                return

    def cancel(self) -> None:
        with self.lock:
            self._cancelled = True
            self.lock.notify_all()

    # --- the reader's side

    def pop(self) -> Any:
        """The next result to yield (there is one), making room for another item."""
        with self.lock:
            self.held -= 1
            self.lock.notify_all()
            return self.unread.popleft()

    def wait_for(self, ready: Callable[[], bool], deadline: float | None) -> None:
        """Block until ``ready()`` (checked under the lock) or ``deadline`` (perf_counter)."""
        with self.lock:
            while not ready():
                left = None if deadline is None else deadline - time.perf_counter()
                if left is not None and left <= 0:
                    raise TimeoutError("the lazy map's results did not come in time")
                self.lock.wait(left)


class LazyMapIterator:
    """The results of a lazy map (``imap``), in order or as they finish.

    ``cancel()`` stops taking items from the input, e.g. an endless one once the wanted
    result came; calls already submitted still run and their results are still yielded.
    Dropping the iterator (no reference left) cancels it too. At most ``max_unread``
    finished results wait to be read (with a ``max_outstanding``; without, the input is
    taken greedily).

    >>> it = lview.imap(abs, [-1, -2, -3])
    >>> list(it), it.done
    ([1, 2, 3], True)
    """

    #: finished results that may wait to be read before the input is taken further
    MAX_UNREAD = 1000

    def __init__(self, items: Iterator[tuple], submit: Callable[[tuple], Any], *,
                 max_outstanding: int, ordered: bool = True,
                 value: Callable[[Any], Any] = lambda ar: ar.get(),
                 timeout: float | None = None, max_unread: int = MAX_UNREAD):
        self._feeder = feeder = _Feeder(items, submit, max_outstanding, ordered, max_unread)
        self._ordered = ordered
        self._value = value
        self._deadline = None if timeout is None else time.perf_counter() + timeout
        self._yielded = 0
        # The first item is submitted here, so a function or item that cannot be sent
        # raises in the caller; the rest are submitted by the feeder thread.
        if feeder.take_one(raise_errors=True):
            threading.Thread(target=feeder.run, name="rayparallel-imap", daemon=True).start()
        weakref.finalize(self, feeder.cancel)

    def __iter__(self) -> LazyMapIterator:
        return self

    def __next__(self) -> Any:
        feeder = self._feeder
        # ordered: the next one submitted; unordered: the next one finished, or the end
        # once the input stopped and nothing is in flight
        feeder.wait_for(lambda: bool(feeder.unread) or (feeder.stopped and (
            self._ordered or not feeder.running)), self._deadline)
        if not feeder.unread:
            return self._end()
        ar = feeder.pop()
        self._yielded += 1
        if self._deadline is not None and not ar.wait(max(0.0, self._deadline -
                                                          time.perf_counter())):
            raise TimeoutError("the lazy map's results did not come in time")
        return self._value(ar)

    def _end(self) -> Any:
        error, self._feeder.input_error = self._feeder.input_error, None
        if error is not None:
            raise error  # where the input failed, after the results before it
        raise StopIteration

    def cancel(self) -> None:
        """Take no more items from the input (those submitted still finish and are yielded).

        >>> it = lview.imap(abs, range(-100, 0), max_outstanding=1)
        >>> next(it)
        100
        >>> it.cancel()
        >>> len(list(it)) < 99
        True
        """
        self._feeder.cancel()

    @property
    def done(self) -> bool:
        """True once no more items will be taken from the input (it ended, failed, or
        ``cancel()`` was called)."""
        return self._feeder.stopped

    def pending(self) -> list[Any]:
        """The results of the calls submitted and not finished yet.

        >>> it = lview.imap(abs, [-1])
        >>> it.wait_submitted(30) and all(ar.wait(30) for ar in it.pending())
        True
        """
        with self._feeder.lock:
            return list(self._feeder.running)

    def wait_submitted(self, timeout: float | None = None) -> bool:
        """Wait until no more items will be submitted; False if ``timeout`` s passed first.

        >>> it = lview.imap(abs, [-1, -2])
        >>> it.wait_submitted(30)
        True
        """
        deadline = None if timeout is None else time.perf_counter() + timeout
        try:
            self._feeder.wait_for(lambda: self._feeder.stopped, deadline)
        except TimeoutError:
            return False
        return True

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<LazyMapIterator: {self._yielded} yielded, {state}>"
