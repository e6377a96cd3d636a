"""Results of requests: :class:`AsyncResult` (maps: :mod:`rayparallel.mapresult`).

An AsyncResult is a :class:`concurrent.futures.Future` over the replies of one request's
parts (one per engine, or one per load-balanced chunk). It completes when every part has
replied; ``get()`` then returns the values (or raises the remote error), and the replies'
bookkeeping is there as ``metadata``, ``stdout``, ``wall_time`` and so on.

>>> ar = rc[:].apply_async(lambda: 42)
>>> ar.get(timeout=10)
[42, 42, 42, 42]
>>> ar.engine_id
[0, 1, 2, 3]
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future
from datetime import datetime, timezone
from typing import Any, Protocol

from . import checks, error
from .backend import Outcome, ResultSource
from .executereply import ExecuteReply
from .reply import Reply, from_wire, plain_value
from .resultinfo import METADATA_KEYS, ResultInfo

__all__ = ["AsyncResult", "ResultOwner", "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"]

#: what ``wait(return_when=...)`` accepts (concurrent.futures' constants)
_RETURN_WHEN = (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION)


class ResultOwner(Protocol):
    """What a result tells whoever submitted it (a client's
    :class:`~rayparallel.session.Session`)."""

    def forget(self, ar: AsyncResult) -> None:
        """``ar`` has finished: stop tracking it."""

    def engine_lost(self, engine_id: int, why: str = "") -> None:
        """A part failed because engine ``engine_id``'s process is gone."""

    def interrupt(self, ar: AsyncResult, engine_ids: list[int]) -> set[int]:
        """Interrupt the code ``ar`` runs on those of ``engine_ids`` where it is running
        now (abort, Ctrl-C); returns which engines were signalled."""

    def skip_queued(self, source: ResultSource,
                    queued: dict[int, tuple[int, Any]]) -> set[int]:
        """Have engines skip parts ``{index: (engine_id, pending call of source)}`` that
        have not started; returns the indices whose engine will (it then replies
        TaskAborted)."""


class AsyncResult(ResultInfo, Future):
    """The pending result of one request to one or more engines.

    Views create these; users get them from ``apply_async`` and friends. Outcomes are
    collected lazily: ``get()`` fetches them on the calling thread, and completion callbacks
    (``add_done_callback``, ``concurrent.futures.wait``, ``await``) are only set up when one
    of those is used.
    """

    def __init__(self, parts: list[Any], fname: str, engine_ids: list[int | None], *,
                 source: ResultSource, owner: ResultOwner | None = None, single: bool = False,
                 execute: bool = False, item_counts: list[int] | None = None):
        super().__init__()
        self._parts = parts
        self._fname = fname
        self._engine_ids = engine_ids
        self._source = source
        self._single = single
        self._execute = execute
        self._owner = owner
        self._lock = threading.Lock()
        self._arrivals: list[int] = []  # part indices in the order they were recorded
        self._outcomes: list[Outcome | None] = [None] * len(parts)
        self._pending = len(parts)
        self._watching = False
        self._outcome: tuple[bool, Any] | None = None  # (ok, value or exception)
        #: items each part stands for (a map's chunk sizes): what len() and progress count
        self._item_counts = item_counts or [1] * len(parts)
        self._split: tuple[AsyncResult, ...] | None = None
        #: part index -> the same part in another result (split() and its parent)
        self._linked: dict[int, tuple[AsyncResult, int]] = {}
        self.submitted = datetime.now(timezone.utc)
        self._t_submitted = time.perf_counter()
        self._t_received: float | None = None
        # concurrent.futures.wait/as_completed register through _waiters: start watching.
        self._waiters = _WatchOnAppend(self)
        if not parts:
            self._finish()

    @property
    def _arrived(self) -> threading.Condition:
        """Notified as each part is recorded; made on first use (few results are waited
        on part by part, and every request makes a result)."""
        made = threading.Condition(self._lock)
        return self.__dict__.setdefault("_arrived_condition", made)  # one, even if raced

    # ------------------------------------------------------------------ completion

    def _record(self, i: int, outcome: Outcome) -> None:
        with self._lock:
            if self._outcomes[i] is not None:
                return
            self._outcomes[i] = outcome
            self._arrivals.append(i)
            self._pending -= 1
            last = self._pending == 0
            arrived = self.__dict__.get("_arrived_condition")
            if arrived is not None:
                arrived.notify_all()
            linked = self._linked.get(i)
        if linked is not None:
            linked[0]._record(linked[1], outcome)
        if not outcome.ok and self._owner is not None and \
                self._engine_ids[i] is not None and error.engine_lost(outcome.value):
            self._owner.engine_lost(self._engine_ids[i])
        if last:
            self._finish()

    def engine_gone(self, engine_id: int, why: str, source: ResultSource) -> None:
        """Engine ``engine_id`` is gone (``why``): its calls through ``source`` still
        pending fail now (an engine queue's parts are the queue's to send elsewhere)."""
        if self._source is not source:
            return
        for i, eid in enumerate(self._engine_ids):
            if eid == engine_id and self._outcomes[i] is None:
                self._record(i, Outcome(False, error.EngineLostError(
                    f"engine {eid} died or became unreachable during {self._fname}: {why}",
                    eid, self._fname)))

    def _finish(self) -> None:
        self._t_received = time.perf_counter()
        self.received = datetime.now(timezone.utc)
        # Every outcome is here now: drop the handles so Ray frees its copies at once.
        self._parts = [None] * len(self._parts)
        super().set_result(None)
        if self._owner is not None:
            self._owner.forget(self)

    def _collect(self, timeout: float | None) -> bool:
        """Fetch outcomes of parts still pending, waiting up to ``timeout`` s."""
        end = None if timeout is None else time.perf_counter() + timeout
        while True:
            parts = self._parts  # _finish replaces the list (never empties this one)
            todo = [i for i, o in enumerate(self._outcomes) if o is None]
            if not todo:
                # Every outcome is in (the thread that recorded the last one may still be
                # finishing the Future): done.
                return True
            now = time.perf_counter()
            limit = None if end is None else max(0.0, end - now)
            fetched = self._source.fetch([parts[i] for i in todo], limit)
            for i, outcome in zip(todo, fetched):
                if outcome is not None:
                    self._record(i, outcome)
            if super().done():
                return True
            if end is not None and time.perf_counter() >= end:
                return False

    def _watch(self) -> None:
        """Have the backend report each part's end, so the Future completes by itself."""
        with self._lock:
            if self._watching:
                return
            self._watching = True
        for i, part in enumerate(self._parts):
            if self._outcomes[i] is None:
                self._source.when_done(part, lambda o, i=i: self._record(i, o))

    def add_done_callback(self, fn: Callable[[Future], Any]) -> None:
        """Call ``fn(self)`` once every part has replied (Future protocol)."""
        self._watch()
        super().add_done_callback(fn)

    def done(self) -> bool:
        """Whether every part has replied (not whether it succeeded)."""
        return super().done() or self._collect(0)

    def _reply(self, i: int) -> Reply | BaseException:
        """Part ``i``'s Reply, or the infrastructure error it failed with."""
        outcome = self._outcomes[i]
        if outcome is None:
            raise RuntimeError("part not complete")
        if outcome.ok:
            value = outcome.value
            if type(value) is list:  # a reply as engines and tasks send it (to_wire)
                value = from_wire(value)
                self._outcomes[i] = Outcome(True, value)
            return value
        return error.translate(outcome.value, self._engine_ids[i], self._fname)

    def _replies(self) -> list[Reply | BaseException]:
        return [self._reply(i) for i in range(len(self._parts))]

    def _value_of(self, reply: Reply) -> Any:
        return ExecuteReply(reply) if self._execute else reply.value

    def _combine(self, values: list) -> Any:
        return values[0] if self._single else values

    def _part_results(self, replies: list[Reply | BaseException] | None = None,
                      ) -> list[tuple[bool, Any]]:
        """Each part (of ``replies``, default: this result's) as ``(ok, value or
        exception)``."""
        results = []
        for r in self._replies() if replies is None else replies:
            if isinstance(r, BaseException):
                results.append((False, r))
            elif r.error is not None:
                error.fill_source_lines(r.error)
                results.append((False, r.error))
            else:
                results.append((True, self._value_of(r)))
        return results

    def _plain_values(self) -> list | None:
        """Every part's value read from the replies as sent, if all succeeded with nothing
        else to tell (no error, no note), else None: each step from reply to value costs."""
        found = [plain_value(o.value) if o.ok else (False, None) for o in self._outcomes]
        return [v for _, v in found] if all(ok for ok, _ in found) else None

    def _compute_outcome(self) -> tuple[bool, Any]:
        values = None if self._execute else self._plain_values()  # the common case
        if values is not None:
            return True, self._combine(values)
        replies = self._replies()
        for r in replies:
            if isinstance(r, Reply) and r.note:
                warnings.warn(f"[engine {r.engine_id}] {r.note}", error.EngineRestarted,
                              stacklevel=4)
        results = self._part_results(replies)
        errors = [v for ok, v in results if not ok]
        if not errors:
            return True, self._combine([v for _, v in results])
        return False, self._error_of(errors, self._single or len(self._parts) == 1)

    def _error_of(self, errors: list[BaseException], single: bool) -> BaseException:
        """The exception to raise for ``errors``: the error itself for a single result,
        else a CompositeError of them all."""
        if single:
            return error.as_raised(errors[0])
        remote = [e if isinstance(e, error.RemoteError) else
                  error.RemoteError(type(e).__name__, str(e), "",
                                    {"engine_id": getattr(e, "engine_id", None),
                                     "method": self._fname})
                  for e in errors]
        return error.CompositeError(f"one or more exceptions raised in: {self._fname}", remote)

    def _outcome_now(self) -> tuple[bool, Any]:
        if self._outcome is None:
            self._outcome = self._compute_outcome()
        return self._outcome

    # ------------------------------------------------------------------ waiting

    def wait(self, timeout: float | None = -1, return_when: str | None = None, *,
             interrupt: bool = True) -> bool | tuple[set[AsyncResult], set[AsyncResult]]:
        """Wait until every part has replied (at most ``timeout`` s; -1 or None: forever).
        Returns whether it is done.

        With ``return_when`` (``ALL_COMPLETED``, ``FIRST_COMPLETED`` or
        ``FIRST_EXCEPTION`` of :mod:`concurrent.futures`) it returns, as
        :func:`concurrent.futures.wait` does, ``(done, pending)``: sets of the
        single-part results of :meth:`split`.

        Ctrl-C while waiting also interrupts the engines' code (KeyboardInterrupt there;
        they keep their namespaces), unless ``interrupt=False``: then only the waiting
        stops (``%px`` sends its own, configurable signal).

        >>> rc[:].apply_async(abs, -1).wait(5)
        True
        >>> from concurrent.futures import FIRST_EXCEPTION
        >>> done, pending = rc[:2].apply_async(abs, -1).wait(5, return_when=FIRST_EXCEPTION)
        >>> len(done), pending
        (2, set())
        """
        if return_when is not None and return_when not in _RETURN_WHEN:
            raise ValueError(f"return_when must be one of {', '.join(_RETURN_WHEN)} (or "
                             f"None), not {return_when!r}")
        try:
            if return_when is None:
                return super().done() or self._collect(checks.seconds(timeout))
            return self._wait_parts(checks.seconds(timeout), return_when)
        except KeyboardInterrupt:
            if interrupt:
                self._interrupt_running()
            raise

    def _failed(self, i: int) -> bool:
        """Whether part ``i`` (which has replied) failed."""
        r = self._reply(i)
        return isinstance(r, BaseException) or r.error is not None

    def _wait_parts(self, timeout: float | None, return_when: str) -> tuple[set, set]:
        children = self.split()

        def enough() -> bool:
            arrived = self._arrivals
            if return_when == FIRST_COMPLETED:
                return bool(arrived)
            if return_when == FIRST_EXCEPTION and any(self._failed(i) for i in arrived):
                return True
            return len(arrived) == len(self._outcomes)

        if not self._collect(0) and not enough():
            self._watch()  # each part reports its end by itself from now on
            with self._arrived:
                self._arrived.wait_for(enough, timeout)
        done, pending = set(), set()
        for i, child in enumerate(children):
            outcome = self._outcomes[i]
            if outcome is None:
                pending.add(child)
            else:
                child._record(0, outcome)  # the child may not have heard yet
                done.add(child)
        return done, pending

    # ------------------------------------------------------------------ parts

    def split(self) -> tuple[AsyncResult, ...]:
        """One result per part (engine, or load-balanced task), to wait for them one by
        one (``concurrent.futures.wait`` and friends): a single value each, or, for a
        map, the list of the part's items. A one-part result splits into itself.

        >>> parts = rc[:2].apply_async(lambda: 1).split()
        >>> [ar.get() for ar in parts], parts[0].split() == (parts[0],)
        ([1, 1], True)
        """
        if len(self._outcomes) == 1:
            return (self,)
        with self._lock:
            if self._split is None:
                children = []
                for i, (part, eid) in enumerate(zip(self._parts, self._engine_ids)):
                    child = AsyncResult([part], self._fname, [eid], source=self._source,
                                        single=not self._parts_are_lists, execute=self._execute)
                    child._linked[0] = (self, i)  # what either hears, the other hears too
                    self._linked[i] = (child, 0)
                    children.append(child)
                self._split = tuple(children)
        for i, child in enumerate(self._split):
            if self._outcomes[i] is not None:
                child._record(0, self._outcomes[i])
        return self._split

    #: whether parts are lists of items (maps), which split() keeps as lists
    _parts_are_lists = False

    @classmethod
    def join(cls, *results: AsyncResult) -> AsyncResult:
        """One result over the parts of ``results`` (the inverse of :meth:`split`).

        >>> ar = rc[:2].apply_async(lambda: 3)
        >>> AsyncResult.join(*ar.split()).get()
        [3, 3]
        """
        if not results:
            raise ValueError("join() needs at least one AsyncResult")
        if len(results) == 1:
            return results[0]
        first = results[0]
        outcomes = [o for r in results for o in r._outcomes]
        joined = AsyncResult([p for r in results for p in r._parts], first._fname,
                             [e for r in results for e in r._engine_ids],
                             source=first._source, execute=first._execute)
        for i, outcome in enumerate(outcomes):
            if outcome is not None:
                joined._record(i, outcome)
        return joined

    def pending_handles(self, source: ResultSource) -> list[Any] | None:
        """The pending calls of this result's parts if they come from ``source`` (so that
        ``source`` can make other work wait for them), else None.

        >>> ar = rc[:2].apply_async(abs, -1)
        >>> len(ar.pending_handles(rc.session.backend))
        2
        >>> ar.get(), ar.pending_handles(rc.session.backend)
        ([1, 1], [])
        """
        if source is not self._source:
            return None
        return [p for p, o in zip(self._parts, self._outcomes) if o is None and p is not None]

    def _interrupt_running(self) -> set[int]:
        """Interrupt the engines running this request now; returns which."""
        engines = self.running_engines
        if engines and self._owner is not None:
            return self._owner.interrupt(self, engines)
        return set()

    def get(self, timeout: float | None = -1, return_exceptions: bool = False,
            return_when: str | None = None) -> Any:
        """The result, waiting at most ``timeout`` seconds (-1: forever).

        Raises :class:`~rayparallel.error.RemoteError` (one engine) or
        :class:`~rayparallel.error.CompositeError` (several) if the code failed there, and
        :class:`~rayparallel.error.TimeoutError` if not ready in time; the result can still
        be fetched later. ``return_exceptions=True`` puts each failure's exception in place
        of its value instead, so what succeeded is not lost. ``return_when=FIRST_EXCEPTION``
        raises the first error as soon as it happens, not once every part has replied
        (``FIRST_COMPLETED`` is not supported: it warns and waits for all, as ipyparallel).

        >>> rc[:].apply_async(lambda: 1).get(timeout=10)
        [1, 1, 1, 1]
        >>> rc[0].push({"d": 0}, block=True); rc[1].push({"d": 1}, block=True)
        >>> rc[0:2].apply_async(lambda: 1 / d).get(return_exceptions=True)
        [<RemoteError[0]:ZeroDivisionError(division by zero)>, 1.0]
        """
        if return_when == FIRST_COMPLETED:
            warnings.warn("get(return_when=FIRST_COMPLETED) is not supported; waiting for "
                          "all parts", UserWarning, stacklevel=2)
        if return_when == FIRST_EXCEPTION and not return_exceptions and not self.done():
            done, _ = self.wait(timeout, return_when=FIRST_EXCEPTION)
            for part in done:
                if not part.successful():
                    return part.get()  # raises its error
        if not self.wait(timeout):
            raise error.TimeoutError(
                f"{self._fname}: result not ready after {timeout} s "
                f"({self.progress}/{len(self)} tasks done); call get() again to keep waiting")
        ok, value = self._outcome_now()
        if not ok:
            if return_exceptions:
                return self._with_errors()
            raise error.raisable(value)
        return value

    def _with_errors(self) -> Any:
        """The result with each failed part's exception in its place."""
        values = [v if ok else error.as_raised(v) for ok, v in self._part_results()]
        return values[0] if self._single else values

    def result(self, timeout: float | None = None) -> Any:
        """The ``concurrent.futures.Future`` spelling of :meth:`get` (``None``: forever)."""
        return self.get(-1 if timeout is None else timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The error :meth:`result` would raise, or None."""
        if not self.wait(-1 if timeout is None else timeout):
            raise error.TimeoutError(f"{self._fname}: not ready after {timeout} s")
        ok, value = self._outcome_now()
        return None if ok else value

    def __await__(self):
        return asyncio.wrap_future(self).__await__()

    def ready(self) -> bool:
        """Whether every part has replied (not whether it succeeded)."""
        return self.done()

    def successful(self) -> bool | None:
        """True if done without error, False if failed, None while pending."""
        if not self.done():
            return None
        return self._outcome_now()[0]

    def cancel(self) -> bool:
        """Abort what has not started (see :meth:`abort`); running parts go on."""
        self.abort()
        return False

    def abort(self) -> None:
        """Stop this request: parts that have not started never run, and fail with
        ``TaskAborted`` (a part queued on a busy engine, when the engine gets to it); code
        an engine is running for it raises ``KeyboardInterrupt`` there (the engine keeps its
        namespace). Ray interrupts a load-balanced task's running Python code itself.

        >>> busy = rc[0].apply_async(time.sleep, 0.1)  # keeps engine 0 busy...
        >>> ar = rc[0].apply_async(time.sleep, 60)  # ...so this one waits its turn
        >>> ar.abort()
        >>> ar.get()
        Traceback (most recent call last):
        ...
        rayparallel.error.TaskAborted: ...
        """
        running = self._interrupt_running()
        marked = {}
        for i, part in enumerate(self._parts):
            eid = self._engine_ids[i]
            if self._outcomes[i] is not None:
                continue
            if eid in running:
                # signalled, but the engine may not have started it yet (then SIGINT
                # found it idle): the mark stops it there; if it runs, it goes unused
                marked[i] = (eid, part)
            elif not self._source.cancel(part, engine_call=eid is not None) and \
                    eid is not None:
                marked[i] = (eid, part)  # sent to its engine, which must be told
        skipped = self._owner.skip_queued(self._source, marked) if marked and \
            self._owner is not None else set()
        for i, (eid, _) in marked.items():
            if i not in skipped and eid not in running:  # the engine still runs it
                self._record(i, Outcome(False, error.TaskAborted(
                    f"{self._fname} was aborted before it started on engine {eid}; the "
                    "engine could not be told, still runs it when it gets there, and its "
                    "result is discarded")))

    def get_dict(self, timeout: float | None = -1) -> dict:
        """``{engine_id: value}`` of a multi-engine request.

        >>> rc[:].apply_async(lambda: 2 * 21).get_dict()
        {0: 42, 1: 42, 2: 42, 3: 42}
        """
        values = self.get(timeout)
        if self._single:
            values = [values]
        if len(set(self._engine_ids)) < len(self._engine_ids):
            where = "load-balanced tasks" if None in self._engine_ids else "the same engine"
            raise ValueError(f"get_dict() needs one part per engine; {self._fname} has "
                             f"parts on {where}")
        return dict(zip(self._engine_ids, values))

    # ------------------------------------------------------------------ bookkeeping

    def __len__(self) -> int:
        """How many tasks: one per engine, one per item of a map.

        >>> len(rc[:].apply_async(abs, -1)), len(rc[:].map_async(abs, range(10)))
        (4, 10)
        """
        return sum(self._item_counts)

    @property
    def progress(self) -> int:
        """How many of the ``len(ar)`` tasks have finished (a map counts items).

        >>> ar = rc[:].map_async(abs, range(10)); ar.wait(); ar.progress
        True
        10
        """
        self.done()
        return sum(n for n, o in zip(self._item_counts, self._outcomes) if o is not None)

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            if key not in METADATA_KEYS:
                raise KeyError(key)
            return getattr(self, key)
        return self.get()[key]

    def __iter__(self) -> Iterator:
        if self._single:
            yield from self.get()
            return
        for i in range(len(self._parts)):
            yield from self._part_values(i)

    def _wait_part(self, i: int) -> None:
        """Wait for part ``i``'s outcome."""
        part = self._parts[i]  # first: once every outcome is in, _finish drops the handles
        if self._outcomes[i] is None:
            self._record(i, self._source.fetch([part], None)[0])

    def _part_values(self, i: int) -> list:
        self._wait_part(i)
        r = self._reply(i)
        if isinstance(r, BaseException):
            raise error.raisable(r)
        if r.error is not None:
            error.fill_source_lines(r.error)
            raise error.raisable(r.error.with_original_type())
        return [self._value_of(r)]

    def __repr__(self) -> str:
        name = type(self).__name__
        if not self.done():
            return f"<{name}: {self._fname}>"
        return f"<{name}: {self._fname}:{'finished' if self.successful() else 'failed'}>"


class _WatchOnAppend(list):
    """``Future._waiters`` that starts watching when ``concurrent.futures.wait`` or
    ``as_completed`` registers a waiter, so they see the result complete."""

    def __init__(self, result: AsyncResult):
        super().__init__()
        # weakly: a result and its own list must not form a cycle, or every result (and
        # the object-store data its request holds) would wait for the cyclic collector
        self._result = weakref.ref(result)

    def append(self, waiter: Any) -> None:
        super().append(waiter)
        result = self._result()
        if result is not None:
            result._watch()
