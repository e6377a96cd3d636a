"""Where engines live and tasks run: the only seam between rayparallel and Ray.

A backend starts engines, calls their methods, shares data with many calls at once, and
reports outcomes. A call returns an opaque *pending* handle; :meth:`Backend.fetch` collects
outcomes (waiting as long as asked) and :meth:`Backend.when_done` reports them as they come.
Blocking ``get()`` thus costs one ``ray.get`` on the calling thread, and callbacks cost
nothing until someone asks for them. The layers above (views, results) are the same
whether engines are Ray actors (:mod:`.ray`) or objects in this process (local mode).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["Backend", "Outcome"]


class Outcome(NamedTuple):
    """How a call ended: ``ok`` with its value, or not, with the exception."""

    ok: bool
    value: Any


class Backend(ABC):
    """What the client needs from the thing that hosts engines."""

    #: short name shown in reprs ("ray", "local")
    name: str = ""

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

    def submit_many(self, fn: Callable, args_list: Sequence[tuple], options: dict) -> list[Any]:
        """:meth:`submit` ``fn`` once per argument tuple, with the same ``options``.

        >>> backend.submit_many(run_chunk, [(blob, chunk, 0, settings) for chunk in chunks], {})
        [<pending>, ...]
        """
        return [self.submit(fn, args, options) for args in args_list]

    def task_slots(self) -> int:
        """How many tasks can run at once (the CPUs tasks may use); chooses chunk sizes."""
        return os.cpu_count() or 1

    @abstractmethod
    def fetch(self, pending: Sequence[Any], timeout: float | None) -> list[Outcome | None]:
        """Outcomes of ``pending`` calls, waiting up to ``timeout`` s (None: for all);
        ``None`` in place of those still running."""

    @abstractmethod
    def when_done(self, pending: Any, callback: Callable[[Outcome], None]) -> None:
        """Call ``callback(outcome)`` (from any thread) once ``pending`` has ended."""

    @abstractmethod
    def share(self, obj: Any) -> Any:
        """Store ``obj`` once; what this returns can be passed as an argument to many calls
        and arrives there as ``obj``."""

    @abstractmethod
    def kill(self, engine: Any) -> None:
        """Stop an engine now."""

    def cancel(self, pending: Any) -> bool:
        """Try to stop a call that has not started; True if asked."""
        return False

    def describe(self) -> dict:
        """Facts for reprs: address, nodes, resources."""
        return {}

    def shutdown(self) -> None:
        """Release what the backend started for this client."""
