"""Where engines live and tasks run: the only seam between rayparallel and Ray.

A backend starts engines, calls their methods, shares data with many calls at once, and
reports outcomes. A call returns an opaque *pending* handle; :meth:`Backend.fetch` collects
outcomes (waiting as long as asked), :meth:`Backend.wait_any` tells a waiting thread which
have ended, and :meth:`Backend.when_done` reports them as they come.
Blocking ``get()`` thus costs one ``ray.get`` on the calling thread, and callbacks cost
nothing until someone asks for them. The layers above (views, results) are the same
whether engines are Ray actors (:mod:`.ray`) or objects in this process (local mode).
"""

from __future__ import annotations

import concurrent.futures
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

__all__ = ["Backend", "FutureResults", "Outcome", "OutputStream", "ResultSource", "TASK_OPTIONS"]

#: Ray resources and placement of a load-balanced task (and of an engine), under Ray's names
TASK_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env",
                "scheduling_strategy")


class Outcome(NamedTuple):
    """How a call ended: ``ok`` with its value, or not, with the exception."""

    ok: bool
    value: Any


class OutputStream(ABC):
    """Engine output on its way to the client while a request runs (``%px`` streaming).

    :attr:`writer` goes to engines with the request (``Engine.execute(code, silent,
    writer)``); they call ``writer(engine_id, seq, name, text)`` as the code prints, without
    waiting for an answer. :meth:`poll` hands the client what has arrived since the last
    poll. The final reply still carries all of the output: streaming is only a preview.
    """

    #: picklable callable ``(engine_id, seq, name, text) -> None`` run on the engines
    writer: Callable[[int, int, str, str], None]

    @abstractmethod
    def poll(self) -> list[tuple[int, str, str]]:
        """``(engine_id, name, text)`` chunks that arrived since the last poll, each
        engine's in the order written, with no gaps (a chunk that overtook an earlier
        one waits for it)."""

    def close(self) -> None:
        """Drop whatever is still on its way."""


class ResultSource(ABC):
    """Where an :class:`~rayparallel.asyncresult.AsyncResult` gets its parts' outcomes: a
    backend (parts are its pending calls and tasks) or an engine queue (parts wait there for
    a free engine, see :mod:`rayparallel.enginequeue`)."""

    @abstractmethod
    def fetch(self, pending: Sequence[Any], timeout: float | None) -> list[Outcome | None]:
        """Outcomes of ``pending`` calls, waiting up to ``timeout`` s (None: for all);
        ``None`` in place of those still running."""

    @abstractmethod
    def when_done(self, pending: Any, callback: Callable[[Outcome], None]) -> None:
        """Call ``callback(outcome)`` (from any thread) once ``pending`` has ended."""

    def cancel(self, pending: Any, *, engine_call: bool = False) -> bool:
        """Try to stop a call or task that has not started; True if it will not run.
        ``engine_call``: ``pending`` is an engine method call, not a task."""
        return False


class FutureResults(ResultSource):
    r"""A source whose parts are :class:`concurrent.futures.Future`\ s of Outcomes, settled
    by whoever holds them back (an engine queue waiting for free engines, a gate waiting
    for dependencies); a cancelled Future fails with ``TaskAborted(ABORTED)``."""

    #: why a part cancelled before it was sent failed
    ABORTED = "the request was aborted before it started"

    def _outcome(self, fut: Future) -> Outcome:
        if fut.cancelled():
            from ..error import TaskAborted

            return Outcome(False, TaskAborted(self.ABORTED))
        return fut.result()

    def fetch(self, pending: Sequence[Future], timeout: float | None) -> list[Outcome | None]:
        done, _ = concurrent.futures.wait(pending, timeout)
        return [self._outcome(f) if f in done else None for f in pending]

    def when_done(self, pending: Future, callback: Callable[[Outcome], None]) -> None:
        pending.add_done_callback(lambda f: callback(self._outcome(f)))


class Backend(ResultSource):
    """What the client needs from the thing that hosts engines."""

    #: short name shown in reprs ("ray", "local")
    name: str = ""
    #: whether engines run while the caller goes on (False: work runs when asked for)
    concurrent: bool = True

    @abstractmethod
    def start_engines(self, ids: list[int], options: dict) -> list[Any]:
        """Start one engine per id; return their handles (they may still be starting)."""

    @abstractmethod
    def call(self, engine: Any, method: str, *args: Any) -> Any:
        """Call ``Engine.<method>(*args)`` on an engine; returns a pending handle."""

    @abstractmethod
    def submit(self, fn: Callable, args: tuple, options: dict) -> Any:
        """Run ``fn(*args)`` as a task anywhere in the cluster; returns a pending handle.

        ``fn`` is a module-level function (see :mod:`rayparallel.tasks`). ``options`` use
        rayparallel's names, whatever the backend calls them: ``retries`` (run a task again
        if its worker was lost, up to that many times; 0: the backend's default; the task
        itself retries calls that raised), ``num_cpus``, ``num_gpus``, ``memory``,
        ``resources``, ``runtime_env``, ``scheduling_strategy`` (None: the default).
        Pending handles from earlier calls may appear in ``args``: the task then starts
        after they have ended and receives their values.
        """

    @abstractmethod
    def wait_any(self, pending: Sequence[Any], timeout: float | None) -> list[Any]:
        """Those of ``pending`` that have ended, once one has or ``timeout`` s (None: no
        limit) have passed; what a waiting thread uses to act on each end as it comes.

        >>> from rayparallel.backend.connect import open_backend
        >>> backend = open_backend(local_mode=True)
        >>> first = backend.submit(abs, (-1,), {})
        >>> backend.wait_any([first], None) == [first]
        True
        """

    def submit_many(self, fn: Callable, args_list: Sequence[tuple], options: dict) -> list[Any]:
        """:meth:`submit` ``fn`` once per argument tuple, with the same ``options``.

        >>> from rayparallel.backend.connect import open_backend
        >>> backend = open_backend(local_mode=True)
        >>> pending = backend.submit_many(abs, [(-1,), (-2,)], {})
        >>> backend.fetch(pending, None)
        [Outcome(ok=True, value=1), Outcome(ok=True, value=2)]
        """
        return [self.submit(fn, args, options) for args in args_list]

    def task_slots(self) -> int:
        """How many tasks can run at once (the CPUs tasks may use); chooses chunk sizes."""
        return os.cpu_count() or 1

    @abstractmethod
    def share(self, obj: Any) -> Any:
        """Store ``obj`` once; what this returns can be passed as an argument to many calls
        and arrives there as ``obj``."""

    def is_shared(self, arg: Any) -> bool:
        """Whether ``arg`` is what :meth:`share` returned (data kept in a store of its own
        while something holds it)."""
        return False

    @abstractmethod
    def kill(self, engine: Any) -> None:
        """Stop an engine now."""

    def find_engines(self, profile: str) -> dict[int, Any]:
        """The running engines of ``profile`` (engines that outlive clients): ``{id: handle}``."""
        raise NotImplementedError(f"the {self.name or type(self).__name__} backend has no "
                                  "profiles: they are engines on a Ray cluster")

    def profiles(self) -> dict[str, list[int]]:
        """Profiles with engines running, and their engine ids."""
        return {}

    def open_output_stream(self) -> OutputStream | None:
        """A channel for engines' output while a request runs, or None if this backend
        cannot stream (the output then shows when the request ends).

        Local mode: engines run inline, so there is nothing to poll while they run; return
        None (or a stream whose writer prints straight to the caller's terminal).
        """
        return None

    #: whether engines can go away unannounced (their node leaving): then the client
    #: asks :meth:`lost_engines` now and then (see rayparallel.watch)
    loses_engines: bool = False

    def lost_engines(self, infos: dict[int, dict]) -> list[int]:
        """Which of the engines ``{id: info}`` are gone, as far as can be told without
        calling them (e.g. their node left the cluster)."""
        return []

    def skip_queued(self, engine: Any, info: dict, pending: Sequence[Any]) -> bool:
        """Have ``engine`` skip its calls ``pending``, which have not started (``info`` as
        for :meth:`signal_engine`); True if it will: each then fails with ``TaskAborted``
        and never runs. A call that starts before the engine learns of it runs as usual."""
        return all([self.cancel(p, engine_call=True) for p in pending])

    def signal_engine(self, engine: Any, info: dict, signum: int) -> None:
        """Send signal ``signum`` to the process of ``engine`` (``info`` is what the
        engine's ``info()`` returned: ``pid``, and ``node_id`` for Ray), e.g. SIGINT to
        interrupt the code it runs: the engine raises KeyboardInterrupt in that code and
        keeps its namespace.

        Local mode: the engine's code runs in the caller's own thread, where Ctrl-C
        already lands, so SIGINT needs nothing; other signals would hit the caller's own
        process and should be refused with a clear error.
        """
        raise NotImplementedError(f"the {self.name or type(self).__name__} backend cannot "
                                  "send signals to engines")

    def describe(self) -> dict:
        """Facts for reprs: address, nodes, resources."""
        return {}

    def shutdown(self) -> None:
        """Release what the backend started for this client."""

