"""Client-level waiting: for results, plain Futures and engines, with or without progress.

:class:`ClientWaiting` is the part of :class:`~rayparallel.client.Client` that waits;
it needs ``session`` and ``profile`` from the client.

>>> rc.wait([rc[:].apply_async(abs, -1)], timeout=5)
True
>>> rc.wait_for_engines(len(rc), block=False).result() is None
True
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from . import checks, error
from .asyncresult import AsyncResult
from .display import progress_bar, use_widget

__all__ = ["ClientWaiting"]

#: seconds between looks for engines a profile gets from elsewhere (another client, the CLI)
ENGINE_POLL_INTERVAL = 0.2


def _as_jobs(jobs: Any, session: Any) -> list[Future]:
    """``jobs`` as a list of futures: AsyncResults, msg_ids or history indices (found in
    the ``session``), or any concurrent.futures.Future."""
    if jobs is None:
        return list(session.outstanding())
    if isinstance(jobs, str) or checks.is_int(jobs) or (
            isinstance(jobs, (list, tuple, set)) and
            any(isinstance(j, str) or checks.is_int(j) for j in jobs)):
        jobs = session.find(jobs)
    if isinstance(jobs, Future):
        return [jobs]
    jobs = list(jobs)
    for job in jobs:
        if not isinstance(job, Future):
            raise TypeError(f"wait takes AsyncResults or concurrent.futures.Futures, not "
                            f"{type(job).__name__}")
    return jobs


def _parts(jobs: list[Future]) -> tuple[int, int]:
    """(finished, total) tasks of ``jobs``: an AsyncResult counts its parts, a Future one."""
    done = total = 0
    for job in jobs:
        if isinstance(job, AsyncResult):
            finished, parts = job.parts_done
        else:
            finished, parts = int(job.done()), 1
        done, total = done + finished, total + parts
    return done, total


class ClientWaiting:
    """Waiting for results and engines, as :class:`~rayparallel.client.Client` offers it."""

    session: Any
    profile: str | None

    def wait(self, jobs: Future | Iterable[Future] | None = None,
             timeout: float | None = -1) -> bool:
        """Wait for ``jobs`` (default: everything outstanding), which may be AsyncResults,
        their msg_ids or history indices, or any :class:`concurrent.futures.Future`, at
        most ``timeout`` s (-1 or None: forever); True if all finished.

        >>> from concurrent.futures import Future
        >>> f = Future(); f.set_result(1)
        >>> rc.wait([rc[:].apply_async(abs, -1), f], timeout=5)
        True
        """
        jobs = _as_jobs(jobs, self.session)
        results = [job for job in jobs if isinstance(job, AsyncResult)]
        others = [job for job in jobs if not isinstance(job, AsyncResult)]
        limit = checks.seconds(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        if results and not self.session.wait(results, timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, pending = concurrent.futures.wait(others, timeout=left)
        return not pending

    def wait_interactive(self, jobs: Future | Iterable[Future] | None = None,
                         interval: float = 0.1, timeout: float | None = -1,
                         widget: bool | None = None) -> bool:
        """:meth:`wait`, showing progress as ``AsyncResult.wait_interactive`` does (a
        widget in a notebook, else ``   N/M tasks finished after S s``), over all of
        ``jobs`` (default: everything outstanding); True if all finished.

        >>> rc.wait_interactive([rc[:].apply_async(abs, -1)])  # doctest: +ELLIPSIS
           0/4 tasks finished after ...
        True
        """
        jobs = _as_jobs(jobs, self.session)
        limit = checks.seconds(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        bar = progress_bar(_parts(jobs)[1], widget=use_widget(widget), interval=interval,
                           desc="tasks")
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                step = interval if left is None else max(0.0, min(interval, left))
                finished = self.wait(jobs, step)
                bar.update(_parts(jobs)[0] - bar.n)
                if finished or (left is not None and left <= 0):
                    return finished
        finally:
            bar.close()

    def wait_for_engines(self, n: int | None = None, timeout: float | None = -1,
                         block: bool = True) -> Future | None:
        """Make sure at least ``n`` engines are up (engines start with the client, so this
        only checks, or, on a profile, waits for engines started elsewhere) within
        ``timeout`` s (-1 or None: forever); raises TimeoutError naming how many there are.
        ``block=False`` returns a Future of that instead (None, or the TimeoutError).

        >>> rc.wait_for_engines(len(rc))
        >>> rc.wait_for_engines(len(rc), block=False).done()
        True
        """
        if n is not None:
            checks.whole_number(n, "n")
        limit = checks.seconds(timeout)
        if block:
            return self._wait_for_engines(n, limit)
        future: Future = Future()
        if self._enough_engines(n):
            future.set_result(None)
            return future

        def wait_in_background() -> None:
            try:
                future.set_result(self._wait_for_engines(n, limit))
            except BaseException as exc:  # noqa: BLE001 - the Future carries it to the caller
                future.set_exception(exc)

        threading.Thread(target=wait_in_background, name="rayparallel-wait-for-engines",
                         daemon=True).start()
        return future

    def _enough_engines(self, n: int | None) -> bool:
        return n is None or len(self.session.ids) >= n

    def _wait_for_engines(self, n: int | None, limit: float | None) -> None:
        deadline = None if limit is None else time.monotonic() + limit
        while self.profile is not None and not self._enough_engines(n):
            self.session.refresh()  # engines of a profile may come from elsewhere (the CLI)
            if self._enough_engines(n) or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(ENGINE_POLL_INTERVAL)  # engines started by another process
        if not self._enough_engines(n):
            running = len(self.session.ids)
            raise error.TimeoutError(f"{running} engines are running, fewer than {n}; "
                                     f"start more with client.add_engines({n - running})")
