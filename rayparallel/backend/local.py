"""Local mode: engines are objects in this process, and work runs here, in order.

Nothing of Ray is started (``ray.is_initialized()`` stays False), so a client is ready in a
fraction of a second, and a debugger, coverage and print-debugging all work inside remote
functions. What users can observe stays as on a cluster:

* each engine is a separate :class:`~rayparallel.engine.Engine` with its own IPython shell
  and namespace (and leaves the user's own IPython alone);
* arguments, shared data and results are pickled and unpickled with Ray's cloudpickle on the
  way, so what cannot cross to a cluster fails here the same way;
* calls are queued and run in submission order when someone needs a result (``get``,
  ``wait``, ``done``, a callback), so ``AsyncResult`` timings and ``abort`` behave as they
  would with engines that are busy.

>>> rc = Client(num_engines=2, local_mode=True)
>>> rc[:].apply_sync(lambda: 1)
[1, 1]
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .. import error
from ..engine import Engine
from ..reply import capture_per_thread
from . import Backend, Outcome

__all__ = ["LocalBackend"]


def _pickler():
    # cloudpickle, which Ray also uses (in a vendored copy: importing Ray would cost a second)
    import cloudpickle

    return cloudpickle


def _round_trip(obj: Any, what: str) -> Any:
    """``obj`` as it would arrive on another machine; TypeError (as Ray raises) if it can't."""
    pickler = _pickler()
    try:
        data = pickler.dumps(obj, protocol=5)
    except Exception as exc:
        raise TypeError(f"Could not serialize {what}: {exc}") from exc
    return pickler.loads(data)


class _Shared:
    """What :meth:`LocalBackend.share` returns: stored once, unpickled for each call."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class _Pending:
    """One queued call: a thunk until run, then its outcome."""

    __slots__ = ("run", "outcome", "callbacks", "cancelled")

    def __init__(self, run: Callable[[], Outcome]):
        self.run = run
        self.outcome: Outcome | None = None
        self.callbacks: list[Callable[[Outcome], None]] = []
        self.cancelled = False


class LocalBackend(Backend):
    """Hosts engines in this process and runs their calls and tasks in submission order."""

    name = "local"
    concurrent = False

    def __init__(self) -> None:
        # Work runs in whichever of the host's threads waits for it, while others print.
        capture_per_thread()
        self._queue: deque[_Pending] = deque()
        # Killed engines, held weakly: a set of id()s would take a new engine that reuses
        # a freed one's address for a stopped one.
        self._stopped: weakref.WeakSet[Engine] = weakref.WeakSet()
        # Re-entrant: a remote function may itself use a client (and so run the queue).
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ engines and calls

    def start_engines(self, ids: list[int], options: dict) -> list[Any]:
        return [Engine(i, in_process=True) for i in ids]

    def call(self, engine: Any, method: str, *args: Any) -> Any:
        args = self._arrive(args, f"the arguments of {method}")

        def run() -> Outcome:
            if engine in self._stopped:
                return Outcome(False, error.EngineError(
                    f"engine {engine.id} was stopped before it ran {method}"))
            reply = getattr(engine, method)(*self._open(args))
            try:
                return Outcome(True, _round_trip(reply, "the result"))
            except TypeError as exc:  # what Ray reports as a failure of the engine method
                return Outcome(False, error.translate_cause(exc.__cause__ or exc,
                                                            engine.id, method))

        return self._enqueue(run)

    def submit(self, fn: Callable, args: tuple, options: dict) -> Any:
        # Resource options mean nothing in one process; ``retries`` re-runs tasks whose
        # worker died, which cannot happen here (tasks retry raising items themselves).
        args = self._arrive(args, "the task's arguments")

        def run() -> Outcome:
            try:
                values = self._open(args)
            except _DependencyFailed as failed:
                return Outcome(False, failed.args[0])
            try:
                value = fn(*values)
            except Exception as exc:  # noqa: BLE001 - a task's failure is its outcome
                return Outcome(False, exc)
            try:
                return Outcome(True, _round_trip(value, "the result"))
            except TypeError as exc:
                return Outcome(False, exc)

        return self._enqueue(run)

    def _arrive(self, args: tuple, what: str) -> tuple:
        """Serialize arguments now, as Ray does at ``.remote()``: errors belong to the caller."""
        handles = {i: a for i, a in enumerate(args) if isinstance(a, (_Shared, _Pending))}
        sent = _round_trip(tuple(None if i in handles else a for i, a in enumerate(args)), what)
        return tuple(handles.get(i, a) for i, a in enumerate(sent))

    def _open(self, args: tuple) -> list:
        """The arguments as the call sees them: shared data unpickled, earlier results
        (run first if need be) in place of their handles."""
        out = []
        for arg in args:
            if isinstance(arg, _Shared):
                arg = _pickler().loads(arg.data)
            elif isinstance(arg, _Pending):
                self._run_until(arg)
                if not arg.outcome.ok:
                    raise _DependencyFailed(arg.outcome.value)
                arg = arg.outcome.value
            out.append(arg)
        return out

    # ------------------------------------------------------------------ the queue

    def _enqueue(self, run: Callable[[], Outcome]) -> _Pending:
        pending = _Pending(run)
        with self._lock:
            self._queue.append(pending)
        return pending

    def _run_until(self, target: _Pending) -> None:
        """Run queued calls in order until ``target`` has its outcome."""
        with self._lock:
            while target.outcome is None and self._queue:
                item = self._queue[0]
                if item.outcome is None:
                    self._settle(item, item.run())
                if self._queue and self._queue[0] is item:
                    self._queue.popleft()
                if _interrupted(item.outcome):
                    # Ctrl-C reached user code (the engine kept it in the reply): stop here,
                    # as engines on a cluster would, rather than run everything queued.
                    self._abort_queued("a KeyboardInterrupt stopped local mode")
                    raise KeyboardInterrupt

    def _abort_queued(self, why: str) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item.outcome is None:
                self._settle(item, Outcome(False, error.TaskAborted(
                    f"the request was aborted before it started: {why}")))

    def _settle(self, item: _Pending, outcome: Outcome) -> None:
        item.outcome = outcome
        item.run = None  # drop the arguments
        callbacks, item.callbacks = item.callbacks, []
        for callback in callbacks:
            callback(outcome)

    def fetch(self, pending: Sequence[Any], timeout: float | None) -> list[Outcome | None]:
        # Work runs here and now, so there is nothing to wait for: a timeout never expires.
        for p in pending:
            self._run_until(p)
        return [p.outcome for p in pending]

    def wait_any(self, pending: Sequence[Any], timeout: float | None) -> list[Any]:
        if pending and all(p.outcome is None for p in pending):
            self._run_until(pending[0])
        return [p for p in pending if p.outcome is not None]

    def when_done(self, pending: Any, callback: Callable[[Outcome], None]) -> None:
        # Someone is waiting for it: run up to it now (nothing else would).
        if pending.outcome is None:
            pending.callbacks.append(callback)
            self._run_until(pending)
        else:
            callback(pending.outcome)

    def cancel(self, pending: Any, *, engine_call: bool = False) -> bool:
        with self._lock:
            if pending.outcome is not None:
                return False
            self._settle(pending, Outcome(False, error.TaskAborted(
                "the request was aborted before it started")))
            return True

    # ------------------------------------------------------------------ the rest

    def share(self, obj: Any) -> Any:
        pickler = _pickler()
        try:
            return _Shared(pickler.dumps(obj, protocol=5))
        except Exception as exc:
            raise TypeError(f"Could not serialize the shared data: {exc}") from exc

    def is_shared(self, arg: Any) -> bool:
        return isinstance(arg, _Shared)

    def signal_engine(self, engine: Any, info: dict, signum: int) -> None:
        if signum != signal.SIGINT:
            raise ValueError(f"local mode runs engines' code in this process: only SIGINT "
                             f"(Ctrl-C) applies to it, not signal {signum}")
        # Engine code runs in the caller's thread, where Ctrl-C lands by itself.

    def kill(self, engine: Any) -> None:
        self._stopped.add(engine)

    def describe(self) -> dict:
        return {"address": None, "nodes": 1, "resources": {"CPU": float(os.cpu_count() or 1)}}


def _interrupted(outcome: Outcome) -> bool:
    err = getattr(outcome.value, "error", None) if outcome.ok else None
    return getattr(err, "ename", None) == "KeyboardInterrupt"


class _DependencyFailed(Exception):
    """A task's ``after`` dependency failed: the task fails with that error."""
