"""Chunks queued for a set of engines: what a LoadBalancedView with ``targets`` uses.

Each chunk goes to the next engine that is free, one chunk per engine at a time, as
ipyparallel's scheduler does, so a slow chunk on one engine does not hold back the others.
Completion callbacks send the next chunks; while a thread waits for the results, it sends
them itself, sooner.

>>> queue = EngineQueue(session.backend, [(0, session.handle(0)), (1, session.handle(1))], 0)
>>> parts = [queue.add(lambda b, h, x=x: b.call(h, "apply", (abs, (x,), {})))
...          for x in (-1, -2, -3)]
>>> queue.start(after=[])
>>> [outcome.value.value for outcome in queue.fetch(parts, None)]
[1, 2, 3]
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .backend import FutureResults, Outcome
from .reply import from_wire

if TYPE_CHECKING:
    from .asyncresult import AsyncResult

__all__ = ["EngineQueue"]


class EngineQueue(FutureResults):
    """Chunks for a set of engines, each sent to the next engine that is free (one chunk
    per engine at a time, as ipyparallel's scheduler does); a chunk that failed is sent
    again, to another engine if one is free, up to ``retries`` times.

    To the AsyncResult it is the source of outcomes, as a backend is to other results: its
    parts are Futures of the calls' Outcomes, and ``cancel`` removes a chunk that has not
    been sent yet.
    """

    ABORTED = "the chunk was aborted before it started"

    def __init__(self, backend: Any, engines: list[tuple[int, Any]], retries: int):
        self._backend = backend
        self._retries = retries
        self._free = deque(engines)
        # (future, call, attempt, retries): retries are the request's, as a queue may
        # take several requests (a view's, one after the other)
        self._waiting: deque[tuple[Future, Callable, int, int]] = deque()
        self._lock = threading.Lock()
        self._held = 0  # dependencies still running
        self._dispatching = False
        # calls sent and not yet taken back: {pending: (engine, job, watched)}; whoever
        # takes one first (its completion callback if watched, or a thread waiting in
        # fetch) acts on its end
        self._flying: dict[Any, tuple[tuple, tuple, bool]] = {}

    def expire_at(self, deadline: float, late: Callable[[], BaseException],
                  parts: list[Future]) -> None:
        """At ``deadline`` (POSIX time), fail with ``late()`` those of ``parts`` (chunks this
        queue returned from :meth:`add`) never sent yet. Other requests' chunks sharing the
        queue are not touched."""
        mine = set(map(id, parts))

        def expire() -> None:
            with self._lock:  # dispatching takes the same lock: a chunk is sent or expired
                expired = [job for job in self._waiting
                           if id(job[0]) in mine and job[2] == 0
                           and job[0].set_running_or_notify_cancel()]
                for job in expired:
                    self._waiting.remove(job)
            for fut, *_ in expired:
                self._settle(fut, Outcome(False, late()))

        timer = threading.Timer(max(0.0, deadline - time.time()), expire)
        timer.daemon = True
        timer.start()

    def add(self, call: Callable[[Any, Any], Any], retries: int | None = None) -> Future:
        """Queue ``call`` (tried again up to ``retries`` times, default the queue's)."""
        fut: Future = Future()
        with self._lock:
            self._waiting.append((fut, call, 0, self._retries if retries is None else retries))
        return fut

    def start(self, after: list[AsyncResult]) -> None:
        """Send chunks once every result in ``after`` is done."""
        pending = [ar for ar in after if not ar.done()]
        self._held = len(pending)
        for ar in pending:
            ar.add_done_callback(self._dependency_done)
        if not pending:
            self._dispatch()

    def _dependency_done(self, _: Any) -> None:
        with self._lock:
            self._held -= 1
        self._dispatch()

    def _dispatch(self, watch: bool = True) -> None:
        # One thread sends at a time; a thread arriving meanwhile leaves its work to it (the
        # loop re-checks under the lock), so completions that come back at once do not
        # recurse. ``watch=False``: the sender waits in fetch and takes the calls' ends
        # itself (see there).
        with self._lock:
            if self._dispatching:
                return
            self._dispatching = True
        while True:
            with self._lock:
                job = self._next_job()
                if job is None:
                    self._dispatching = False
                    return
            engine, (fut, call, attempt, retries) = job
            try:
                pending = call(self._backend, engine[1])
            except BaseException as exc:  # noqa: BLE001 - e.g. data that cannot be pickled
                self._settle(fut, Outcome(False, exc))
                with self._lock:
                    self._free.append(engine)
                continue
            with self._lock:
                self._flying[pending] = (engine, job[1], watch)
            if watch:
                self._watch(pending)

    def _watch(self, pending: Any) -> None:
        self._backend.when_done(pending, lambda o: self._landed(pending, o))

    def _landed(self, pending: Any, outcome: Outcome | None = None) -> None:
        """Act on the end of ``pending`` unless that was done already: from its callback
        with its ``outcome``, or (None) from a thread waiting in fetch, which sends the next
        chunks unwatched."""
        with self._lock:
            taken = self._flying.pop(pending, None)
        if taken is None:
            return
        engine, job, _ = taken
        if outcome is None:
            self._done(engine, job, self._backend.fetch([pending], None)[0], watch=False)
        else:
            self._done(engine, job, outcome)

    def _next_job(self) -> tuple | None:
        while not self._held and self._free and self._waiting:
            job = self._waiting.popleft()
            fut, attempt = job[0], job[2]
            if attempt == 0 and not fut.set_running_or_notify_cancel():
                continue  # aborted before it was sent
            if fut.done():
                continue  # timed out meanwhile
            return self._free.popleft(), job
        return None

    def _done(self, engine: tuple, job: tuple, outcome: Outcome, watch: bool = True) -> None:
        fut, call, attempt, retries = job
        failed = not outcome.ok or from_wire(outcome.value).error is not None
        retry = failed and attempt < retries and not fut.done()
        with self._lock:
            if retry:
                self._waiting.appendleft((fut, call, attempt + 1, retries))
            self._free.append(engine)  # at the back: a retry goes to another free engine
        if not retry:
            self._settle(fut, outcome)
        self._dispatch(watch)

    @staticmethod
    def _settle(fut: Future, outcome: Outcome) -> None:
        try:
            fut.set_result(outcome)
        except concurrent.futures.InvalidStateError:
            pass  # cancelled or already settled

    # --- the ResultSource protocol: what AsyncResult asks of it

    #: longest a waiting thread blocks on calls in flight before it looks again at the
    #: chunks it waits for (which a timeout or an abort may settle while none is sent)
    LOOK_AGAIN_S = 0.1

    def fetch(self, pending: Sequence[Future], timeout: float | None) -> list[Outcome | None]:
        # A thread waiting here takes the ends of the calls in flight itself and sends the
        # next chunks, as ray.util.ActorPool does, and the calls it sends have no
        # completion callback: with one, Ray's callback thread handles each reply too,
        # and on a chain of chunks per engine that costs about 0.1 ms a link (see
        # docs/performance.md). Callbacks drive the queue when nobody waits, so calls still
        # in flight when the waiter leaves get theirs then.
        end = None if timeout is None else time.monotonic() + timeout
        first = 0  # pending[:first] are done
        try:
            while True:
                while first < len(pending) and pending[first].done():
                    first += 1
                if first == len(pending):
                    break
                left = None if end is None else max(0.0, end - time.monotonic())
                with self._lock:
                    flying = list(self._flying)
                if flying:
                    look = self.LOOK_AGAIN_S if left is None else min(left,
                                                                      self.LOOK_AGAIN_S)
                    for ended in self._backend.wait_any(flying, look):
                        self._landed(ended)
                elif left is None or left > 0:  # nothing sent: chunks wait for dependencies
                    concurrent.futures.wait([f for f in pending[first:] if not f.done()],
                                            left, concurrent.futures.FIRST_COMPLETED)
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            with self._lock:
                unwatched = [p for p, (*_, watched) in self._flying.items() if not watched]
                for p in unwatched:
                    engine, job, _ = self._flying[p]
                    self._flying[p] = (engine, job, True)
            for p in unwatched:
                self._watch(p)
        return [self._outcome(f) if f.done() else None for f in pending]

    def cancel(self, pending: Future, *, engine_call: bool = False) -> bool:
        return pending.cancel()  # a chunk still waiting here for a free engine
