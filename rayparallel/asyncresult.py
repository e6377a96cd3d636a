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
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import Any, Protocol

from . import checks, error
from .backend import Outcome, ResultSource
from .reply import ExecuteReply, Metadata, Reply
from .tasks import from_wire

__all__ = ["AsyncResult", "ResultOwner"]

_METADATA_KEYS = frozenset(
    ["engine_id", "method", "error", "stdout", "stderr", "outputs", "execute_result",
     "execution_count", "started", "completed", "status", "note"]
)


class ResultOwner(Protocol):
    """What a result tells whoever submitted it (a client's
    :class:`~rayparallel.session.Session`)."""

    def forget(self, ar: AsyncResult) -> None:
        """``ar`` has finished: stop tracking it."""

    def engine_lost(self, engine_id: int) -> None:
        """A part failed because engine ``engine_id``'s process is gone."""

    def interrupt(self, ar: AsyncResult, engine_ids: list[int]) -> set[int]:
        """Interrupt the code ``ar`` runs on those of ``engine_ids`` where it is running
        now (abort, Ctrl-C); returns which engines were signalled."""


class AsyncResult(Future):
    """The pending result of one request to one or more engines.

    Views create these; users get them from ``apply_async`` and friends. Outcomes are
    collected lazily: ``get()`` fetches them on the calling thread, and completion callbacks
    (``add_done_callback``, ``concurrent.futures.wait``, ``await``) are only set up when one
    of those is used.
    """

    def __init__(
        self,
        parts: list[Any],
        fname: str,
        engine_ids: list[int | None],
        *,
        source: ResultSource,
        owner: ResultOwner | None = None,
        single: bool = False,
        execute: bool = False,
        expires_after: float | None = None,
    ):
        super().__init__()
        self._parts = parts
        self._fname = fname
        self._engine_ids = engine_ids
        self._source = source
        self._single = single
        self._execute = execute
        self._owner = owner
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified as each part is recorded
        self._arrivals: list[int] = []  # part indices in the order they were recorded
        self._timer: threading.Timer | None = None
        self._expires_at: float | None = None  # perf_counter time of the timeout flag
        self._outcomes: list[Outcome | None] = [None] * len(parts)
        self._pending = len(parts)
        self._watching = False
        self._outcome: tuple[bool, Any] | None = None  # (ok, value or exception)
        self.submitted = datetime.now(timezone.utc)
        self._t_submitted = time.perf_counter()
        self._t_received: float | None = None
        # concurrent.futures.wait/as_completed register through _waiters: start watching.
        self._waiters = _WatchOnAppend(self)
        if not parts:
            self._finish()
        elif expires_after is not None:
            self._expire_after(expires_after)

    # ------------------------------------------------------------------ completion

    def _record(self, i: int, outcome: Outcome) -> None:
        with self._lock:
            if self._outcomes[i] is not None:
                return
            self._outcomes[i] = outcome
            self._arrivals.append(i)
            self._pending -= 1
            last = self._pending == 0
            self._arrived.notify_all()
        if not outcome.ok and self._owner is not None and \
                self._engine_ids[i] is not None and error.engine_lost(outcome.value):
            self._owner.engine_lost(self._engine_ids[i])
        if last:
            self._finish()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._t_received = time.perf_counter()
        self.received = datetime.now(timezone.utc)
        # Every outcome is here now: drop the handles so Ray frees its copies at once.
        self._parts = [None] * len(self._parts)
        super().set_result(None)
        if self._owner is not None:
            self._owner.forget(self)

    def _expire_after(self, seconds: float) -> None:
        """Fail the parts still running ``seconds`` after submission with a TimeoutError,
        and stop them (the ``timeout`` flag of load-balanced views)."""
        self._expires_at = self._t_submitted + seconds
        self._timer = threading.Timer(seconds, self._expire, args=(seconds,))
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, seconds: float) -> None:
        if super().done() or self._collect(0):
            return
        self._fail_unfinished(seconds)

    def _fail_unfinished(self, seconds: float) -> None:
        for i, part in enumerate(self._parts):
            if self._outcomes[i] is None:
                self._source.cancel(part)
                self._record(i, Outcome(False, error.TimeoutError(
                    f"{self._fname}: the task did not finish within timeout={seconds:g} s")))

    def _collect(self, timeout: float | None) -> bool:
        """Fetch outcomes of parts still pending, waiting up to ``timeout`` s (and no
        longer than the timeout flag, when the result has one)."""
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
            expires = self._expires_at
            if expires is not None:
                left = max(0.0, expires - now)
                limit = left if limit is None else min(limit, left)
            fetched = self._source.fetch([parts[i] for i in todo], limit)
            for i, outcome in zip(todo, fetched):
                if outcome is not None:
                    self._record(i, outcome)
            if super().done():
                return True
            now = time.perf_counter()
            if expires is not None and now >= expires:
                self._fail_unfinished(expires - self._t_submitted)
                return True
            if end is not None and now >= end:
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
            if type(value) is list:  # a task's reply, sent as a plain list
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

    def _part_results(self) -> list[tuple[bool, Any]]:
        """Each part as ``(ok, value or exception)``."""
        results = []
        for r in self._replies():
            if isinstance(r, BaseException):
                results.append((False, r))
            elif r.error is not None:
                error.fill_source_lines(r.error)
                results.append((False, r.error))
            else:
                results.append((True, self._value_of(r)))
        return results

    def _compute_outcome(self) -> tuple[bool, Any]:
        for r in self._replies():
            if isinstance(r, Reply) and r.note:
                warnings.warn(f"[engine {r.engine_id}] {r.note}", error.EngineRestarted,
                              stacklevel=4)
        results = self._part_results()
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

    def wait(self, timeout: float | None = -1, *, interrupt: bool = True) -> bool:
        """Wait until every part has replied (at most ``timeout`` s; -1: forever).
        Returns whether it is done.

        Ctrl-C while waiting also interrupts the engines' code (KeyboardInterrupt there;
        they keep their namespaces), unless ``interrupt=False``: then only the waiting
        stops (``%px`` sends its own, configurable signal).

        >>> rc[:].apply_async(abs, -1).wait(5)
        True
        """
        try:
            return super().done() or self._collect(checks.seconds(timeout))
        except KeyboardInterrupt:
            if interrupt:
                self._interrupt_running()
            raise

    @property
    def engine_ids(self) -> list[int | None]:
        """The engine each part was sent to (None for a load-balanced task's parts).

        >>> rc[:2].apply_async(abs, -1).engine_ids
        [0, 1]
        """
        return list(self._engine_ids)

    @property
    def running_engines(self) -> list[int]:
        """Engines whose part of this request has not replied yet (queued or running).

        >>> rc[0].apply_async(time.sleep, 0.1).running_engines
        [0]
        """
        return [eid for eid, o in zip(self._engine_ids, self._outcomes)
                if o is None and eid is not None]

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

    def get(self, timeout: float | None = -1, return_exceptions: bool = False) -> Any:
        """The result, waiting at most ``timeout`` seconds (-1: forever).

        Raises :class:`~rayparallel.error.RemoteError` (one engine) or
        :class:`~rayparallel.error.CompositeError` (several) if the code failed there, and
        :class:`~rayparallel.error.TimeoutError` if not ready in time; the result can still
        be fetched later. ``return_exceptions=True`` puts each failure's exception in place
        of its value instead, so what succeeded is not lost.

        >>> rc[:].apply_async(lambda: 1).get(timeout=10)
        [1, 1, 1, 1]
        >>> rc[0].push({"d": 0}, block=True); rc[1].push({"d": 1}, block=True)
        >>> rc[0:2].apply_async(lambda: 1 / d).get(return_exceptions=True)
        [<RemoteError[0]:ZeroDivisionError(division by zero)>, 1.0]
        """
        if not self.wait(timeout):
            raise error.TimeoutError(
                f"{self._fname}: result not ready after {timeout} s "
                f"({self.progress}/{len(self)} parts done); call get() again to keep waiting")
        ok, value = self._outcome_now()
        if not ok:
            if return_exceptions:
                return self._with_errors()
            raise value
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
        """Stop this request: parts that have not started fail with ``TaskAborted``; code
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
        for i, part in enumerate(self._parts):
            eid = self._engine_ids[i]
            if self._outcomes[i] is not None or eid in running:
                continue
            if not self._source.cancel(part, engine_call=eid is not None):
                if eid is not None:  # queued on an engine, which will still run it
                    self._record(i, Outcome(False, error.TaskAborted(
                        f"{self._fname} was aborted before it started on engine {eid}; the "
                        "engine still runs it when it gets there, and its result is "
                        "discarded")))

    def get_dict(self, timeout: float | None = -1) -> dict:
        """``{engine_id: value}`` of a multi-engine request.

        >>> rc[:].apply_async(lambda: 2 * 21).get_dict()
        {0: 42, 1: 42, 2: 42, 3: 42}
        """
        values = self.get(timeout)
        if self._single:
            values = [values]
        return dict(zip(self._engine_ids, values))

    def wait_interactive(self, interval: float = 0.1, timeout: float | None = -1,
                         widget: bool | None = None) -> None:
        """Wait, showing progress as ``N/M tasks finished after S s``; prints ``done``.

        >>> rc[:].apply_async(abs, -1).wait_interactive()  # doctest: +SKIP
           4/4 tasks finished after    0 s
        done
        """
        from tqdm import tqdm

        bar = tqdm(total=len(self), file=sys.stdout, mininterval=interval,
                   bar_format="{n:4d}/{total} tasks finished after {elapsed_s:4.0f} s")
        deadline = checks.seconds(timeout)
        start = time.perf_counter()
        try:
            while not self.done():
                left = None if deadline is None else deadline - (time.perf_counter() - start)
                if left is not None and left <= 0:
                    break
                self.wait(interval if left is None else min(interval, left))
                bar.update(self.progress - bar.n)
            bar.update(self.progress - bar.n)
        finally:
            bar.close()
        if self.done():
            print("done")
        else:
            raise error.TimeoutError(f"{self._fname}: not done after {timeout} s")

    # ------------------------------------------------------------------ bookkeeping

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def progress(self) -> int:
        """How many parts have replied."""
        self.done()
        return sum(1 for o in self._outcomes if o is not None)

    @property
    def elapsed(self) -> float:
        """Seconds since submission (until completion, once done)."""
        end = self._t_received if self._t_received is not None else time.perf_counter()
        return end - self._t_submitted

    @property
    def wall_time(self) -> float:
        """Seconds from submission to the last reply."""
        self.wait()
        return self._t_received - self._t_submitted

    @property
    def serial_time(self) -> float:
        """Sum of the seconds each part spent running."""
        self.wait()
        return sum(r.completed - r.started for r in self._replies() if isinstance(r, Reply))

    def _metadata_list(self) -> list[Metadata | None]:
        self.done()
        out = []
        for i, outcome in enumerate(self._outcomes):
            r = self._reply(i) if outcome is not None else None
            out.append(r.metadata() if isinstance(r, Reply) else None)
        return out

    @property
    def metadata(self) -> Metadata | list[Metadata | None]:
        """Per-part metadata dicts (engine_id, started, completed, stdout, stderr, outputs,
        execute_result, execution_count, status); one dict for a single-engine request."""
        mds = self._metadata_list()
        return mds[0] if self._single else mds

    def __getattr__(self, key: str) -> Any:
        if key in _METADATA_KEYS:
            values = [md.get(key) if md else None for md in self._metadata_list()]
            return values[0] if self._single else values
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            if key not in _METADATA_KEYS:
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
            raise r
        if r.error is not None:
            error.fill_source_lines(r.error)
            raise r.error.with_original_type()
        return [self._value_of(r)]

    # ------------------------------------------------------------------ display

    def display_outputs(self, groupby: str = "type", result_only: bool = False) -> None:
        """Show what the engines printed and displayed, ipyparallel style:
        ``[stdout:0] ...``, ``[output:1]`` + rich output, ``Out[0:3]: ...``.

        ``groupby`` is ``type``, ``engine`` or ``order`` (see
        :func:`rayparallel.display.show_replies`).

        >>> rc[:2].execute("print('hi')").display_outputs()
        [stdout:0] hi
        [stdout:1] hi
        """
        from .display import show_replies

        show_replies(self.finished_replies(), groupby=groupby, result_only=result_only)

    def finished_replies(self) -> list[Reply]:
        """Replies of the parts that have finished so far (not those that failed to run):
        each with ``value``, ``error``, ``stdout``, ``outputs``, ``execute_result``, ...

        >>> [r.stdout for r in rc[:2].execute("print(1)", block=True).finished_replies()]
        ['1\\n', '1\\n']
        """
        self.done()
        done = [self._reply(i) for i, o in enumerate(self._outcomes) if o is not None]
        return [r for r in done if isinstance(r, Reply)]

    def _repr_html_(self) -> str:
        import html

        done = self.done()
        if not done:
            state = f"running: {self.progress}/{len(self)} done after {self.elapsed:.1f} s"
        elif self.successful():
            state = f"finished in {self.wall_time:.3g} s"
        else:
            state = "failed: " + html.escape(str(self.exception()).splitlines()[0])
        engines = [e for e in self._engine_ids if e is not None]
        where = f" on engine{'s' if len(engines) != 1 else ''} " + \
            html.escape(", ".join(map(str, engines))) if engines else ""
        return (f"<b>{type(self).__name__}</b>: <code>{html.escape(self._fname)}</code>"
                f"{where}; {state}")

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
        self._result = result

    def append(self, waiter: Any) -> None:
        super().append(waiter)
        self._result._watch()
