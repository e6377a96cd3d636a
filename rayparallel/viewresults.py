"""What a view keeps of the requests it sent: ``outstanding``, ``history``, ``wait``,
``abort``, ``get_result``, ``queue_status``, ``purge_results`` (ipyparallel's View API).

A view records the results it hands out (weakly: a result nobody holds is let go), so that
``view.wait()`` and ``view.abort()`` act on this view's requests, as in ipyparallel.

>>> ar = dv.apply_async(abs, -1)
>>> dv.wait(timeout=5), dv.outstanding
(True, set())
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from .asyncresult import AsyncResult
from .hub import History

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ViewResults"]


class ViewResults:
    """The result bookkeeping every view has (mixed into :class:`~rayparallel.view.View`)."""

    client: Any
    session: Session
    targets: Any

    def _init_results(self) -> None:
        self._sent: weakref.WeakSet[AsyncResult] = weakref.WeakSet()
        #: msg_ids of the requests sent through this view, oldest first (the newest
        #: 10,000, as the client's)
        self.history = History()
        self._latest: list[str] = []  # msg_ids of the latest request

    def _note(self, ar: AsyncResult) -> AsyncResult:
        """Record a result this view sent."""
        self._sent.add(ar)
        self._latest = self.session.msg_ids(ar)
        self.history.extend(self._latest)
        return ar

    @property
    def outstanding(self) -> set[AsyncResult]:
        """This view's results not yet complete.

        >>> dv.outstanding
        set()
        """
        return {ar for ar in list(self._sent) if not ar.done()}

    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait for ``jobs`` (AsyncResults or msg_ids; default: this view's outstanding
        results) at most ``timeout`` s (-1: forever); True if all finished.

        >>> dv.wait(dv.apply_async(abs, -1), timeout=5)
        True
        """
        if jobs is None:
            jobs = self.outstanding
        elif isinstance(jobs, (str, int)) or (
                isinstance(jobs, (list, tuple, set)) and
                any(isinstance(j, (str, int)) for j in jobs)):
            jobs = self.session.find(jobs)
        return self.session.wait(jobs, timeout)

    def abort(self, jobs: Any = None, targets: Any = None, block: bool | None = None) -> None:
        """Abort ``jobs`` (AsyncResults, msg_ids; default: this view's outstanding
        requests): parts not started fail with TaskAborted, code running for them is
        interrupted (see :meth:`AsyncResult.abort`). ``targets`` and ``block`` as in
        :meth:`Client.abort <rayparallel.client.Client.abort>`.

        >>> busy = rc[0].apply_async(time.sleep, 0.1)
        >>> queued = rc[0].apply_async(abs, -1)
        >>> rc[0].abort(queued)
        >>> queued.successful()
        False
        """
        if jobs is None:
            jobs = list(self.outstanding)
        self.client.abort(jobs, targets, block)

    def get_result(self, indices_or_msg_ids: Any = None, block: bool | None = None,
                   owner: bool = False) -> AsyncResult:
        """:meth:`Client.get_result <rayparallel.client.Client.get_result>`; the default
        is this view's latest request.

        >>> ar = dv.apply_async(abs, -1)
        >>> dv.get_result() is ar
        True
        """
        if indices_or_msg_ids is None:
            if not self.history:
                raise IndexError("this view has sent no requests yet")
            indices_or_msg_ids = self._latest  # all its parts
        return self.client.get_result(indices_or_msg_ids, block, owner)

    def queue_status(self, targets: Any = None, verbose: bool = False) -> dict:
        """:meth:`Client.queue_status <rayparallel.client.Client.queue_status>` for this
        view's engines (default).

        >>> rc[0].queue_status()
        {'queue': 0, 'completed': 0, 'tasks': 0}
        """
        return self.client.queue_status(self.targets if targets is None else targets,
                                        verbose)

    def purge_results(self, jobs: Any = (), targets: Any = ()) -> None:
        """:meth:`Client.purge_results <rayparallel.client.Client.purge_results>`.

        >>> dv.purge_results("all")
        """
        self.client.purge_results(jobs, targets)
