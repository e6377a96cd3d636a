"""The Client's side of the task database: results by msg_id, ``get_result``, ``resubmit``,
``db_query``, ``hub_history`` and the ``purge_*`` methods (ipyparallel's hub API; the
records themselves are in :mod:`rayparallel.hub`).

>>> ar = rc[:2].apply_async(abs, -1); ar.get()
[1, 1]
>>> rc.hub_history()[-2:] == ar.msg_ids
True
>>> records = rc.db_query({"msg_id": {"$in": ar.msg_ids}}, keys=["engine_uuid"])
>>> [r["engine_uuid"] for r in records] == ar.engine_uuid
True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from . import checks
from .asyncresult import AsyncResult
from .hub import AsyncHubResult, JoinedResult
from .session import Session

__all__ = ["TaskDatabaseAPI"]


class TaskDatabaseAPI:
    """What :class:`~rayparallel.client.Client` offers of ipyparallel's hub API."""

    session: Session
    block: bool

    def _init_results(self) -> None:
        #: values of results fetched without an owner (``get_result(..., owner=False)``),
        #: by msg_id; a result's owner takes its values, so they are not kept here
        self.results: dict[str, Any] = {}
        #: the metadata of the values in :attr:`results`, by msg_id
        self.metadata: defaultdict[str, dict] = defaultdict(dict)

    # ------------------------------------------------------------------ outstanding

    @property
    def outstanding(self) -> set[str]:
        """msg_ids of the parts that have not replied yet.

        >>> ar = rc[0].apply_async(abs, -1); ar.get()
        1
        >>> ar.msg_ids[0] in rc.outstanding
        False
        """
        return {msg_id for ids in self._outstanding_by_engine().values() for msg_id in ids}

    def _outstanding_by_engine(self) -> dict[int | None, set[str]]:
        by_engine: dict[int | None, set[str]] = defaultdict(set)
        for ar in self.session.outstanding():
            running = set(ar.running_engines)
            for eid, msg_id in zip(ar.engine_ids, self.session.msg_ids(ar)):
                if eid is None or eid in running:
                    by_engine[eid].add(msg_id)
        return by_engine

    _engines: dict[int, str]  # engine id -> uuid (clientinternals.py)

    @property
    def _outstanding_dict(self) -> dict[str, set[str]]:
        # ipyparallel's engine uuid -> outstanding msg_ids (its tests read it)
        engines = self._engines
        found = self._outstanding_by_engine()
        return defaultdict(set, {uid: found.get(eid, set()) for eid, uid in engines.items()})

    # ------------------------------------------------------------------ by msg_id

    def get_result(self, indices_or_msg_ids: Any = None, block: bool | None = None,
                   owner: bool = True) -> AsyncResult:
        """The result of requests named by msg_id, index into ``history`` (default -1: the
        latest), or AsyncResult; a list of them makes one result over all their parts.
        A request this client sent is its own AsyncResult (or part of it); another
        client's (of the same profile, in this process) comes from the task database as
        an :class:`~rayparallel.hub.AsyncHubResult`, whose values are kept in
        :attr:`results` once fetched if ``owner`` is False.

        >>> ar = rc[0].apply_async(abs, -3)
        >>> rc.get_result(-1) is ar, rc.get_result(ar.msg_ids).get()
        (True, 3)
        """
        jobs = -1 if indices_or_msg_ids is None else indices_or_msg_ids
        single = not isinstance(jobs, (list, tuple, set))
        pieces: list[AsyncResult] = []
        msg_ids: list[str] = []
        origins: list[AsyncResult] = []
        from_hub = False
        for job in [jobs] if single else jobs:
            if checks.is_int(job):
                job = self._history_entry(job)
            if isinstance(job, AsyncResult):
                pieces.extend(job.split())
                msg_ids.extend(self.session.msg_ids(job))
                origins.append(job)
                continue
            if not isinstance(job, str):
                raise TypeError(f"get_result takes msg_ids, history indices or AsyncResults, "
                                f"not {job!r}")
            ar, i, other = self._locate(job)
            from_hub = from_hub or other and job not in self.results
            pieces.append(ar.split()[i])
            msg_ids.append(job)
            if not any(o is ar for o in origins):
                origins.append(ar)
        if not from_hub and len(origins) == 1 and msg_ids == self.session.msg_ids(origins[0]):
            result = origins[0]  # exactly one request of this client's: its own result
        elif from_hub:
            keep = None if owner else self._keep
            result = AsyncHubResult.of(pieces, msg_ids, single=single and len(pieces) == 1,
                                       origins=origins, keep=keep)
        elif len(pieces) == 1:
            result = pieces[0]
        else:  # parts of several requests, maybe of different views
            result = JoinedResult.of(pieces, msg_ids, single=False, origins=origins)
        if self.block if block is None else block:
            result.wait()
        return result

    def _history_entry(self, index: int) -> str:
        history = self.session.history
        try:
            return history[index]
        except IndexError:
            raise IndexError(f"history has {len(history)} entries, no {index}") from None

    def _locate(self, msg_id: str) -> tuple[AsyncResult, int, bool]:
        """The result holding ``msg_id``, its part index, and whether another client sent
        it (msg_ids begin with the id of the client that sent them)."""
        ar = self.session.find(msg_id)[0]  # KeyError says what is kept
        names = ar.msg_ids
        i = names.index(msg_id) if msg_id in names else 0
        return ar, i, not msg_id.startswith(f"{self.session.client_id}_")

    def _keep(self, msg_id: str, value: Any, metadata: Any) -> None:
        self.results[msg_id] = value
        self.metadata[msg_id] = dict(metadata or {})

    def resubmit(self, indices_or_msg_ids: Any = None, metadata: dict | None = None,
                 block: bool | None = None) -> AsyncHubResult:
        """Send requests again, as they were sent (by msg_id, history index or
        AsyncResult; default: the latest), running or not; returns the result of the new
        requests. A msg_id the task database has no record of raises a RemoteError that
        is also a KeyError. ``metadata`` is accepted for ipyparallel compatibility.

        >>> ar = rc[0].apply_async(abs, -4)
        >>> again = rc.resubmit(ar.msg_ids)
        >>> again.get(), again.msg_ids != ar.msg_ids
        ([4], True)
        """
        jobs = -1 if indices_or_msg_ids is None else indices_or_msg_ids
        msg_ids = self._msg_ids_of(jobs, "resubmit")
        if not msg_ids:
            raise ValueError("resubmit needs at least one request")
        new = self.session.hub.resubmit(msg_ids)
        result = AsyncHubResult.of([p for ar in new for p in ar.split()],
                                   [m for ar in new for m in ar.msg_ids], single=False,
                                   origins=new)
        if self.block if block is None else block:
            result.wait()
        return result

    def db_query(self, query: dict, keys: Sequence[str] | str | None = None) -> list[dict]:
        """Task records matching a mongodb-style ``query`` (operators ``$in``, ``$nin``,
        ``$lt``, ``$gt``, ``$lte``, ``$gte``, ``$eq``, ``$ne``, ...) on keys such as
        ``msg_id``, ``submitted``, ``completed``, ``engine_uuid``, ``header``; ``keys``
        picks the keys returned (``msg_id`` always is). See :mod:`rayparallel.hub`.

        >>> ar = rc[0].apply_async(abs, -1); ar.get()
        1
        >>> rc.db_query({"msg_id": ar.msg_ids[0]}, keys=["completed"])[0].keys()
        dict_keys(['msg_id', 'completed'])
        """
        return self.session.hub.query(query, keys)

    def hub_history(self) -> list[str]:
        """msg_ids of every request in the task database (this process's clients of the
        same profile; the newest ``session.hub.max_records``), oldest first.

        >>> ar = rc[0].apply_async(abs, -1)
        >>> rc.hub_history()[-1] == ar.msg_ids[0]
        True
        """
        return self.session.hub.history()

    # ------------------------------------------------------------------ purging

    def _msg_ids_of(self, jobs: Any, what: str, finished: bool = False) -> list[str]:
        """The msg_ids ``jobs`` name (msg_ids, history indices, AsyncResults, or a list of
        those); with ``finished``, a result still running is a RuntimeError."""
        msg_ids: list[str] = []
        for job in jobs if isinstance(jobs, (list, tuple, set)) else [jobs]:
            if checks.is_int(job):
                msg_ids.append(self._history_entry(job))
            elif isinstance(job, AsyncResult):
                if finished and not job.done():
                    raise RuntimeError(f"can't {what} outstanding results: {job}")
                msg_ids.extend(self.session.msg_ids(job))
            elif isinstance(job, str):
                msg_ids.append(job)
            else:
                raise TypeError(f"{what} takes msg_ids, history indices or AsyncResults, "
                                f"not {job!r}")
        return msg_ids

    def _purge_msg_ids(self, jobs: Any) -> list[str]:
        return self._msg_ids_of(jobs, "purge", finished=True)

    def purge_local_results(self, jobs: Any = (), targets: Any = ()) -> None:
        """Forget finished results by msg_id (``jobs``; ``'all'``: every one) from
        :attr:`results` and :attr:`metadata`, so that :meth:`get_result` no longer finds
        this client's own; ``targets`` alone purges nothing (results are not kept per
        engine). RuntimeError if one of them is outstanding.

        >>> ar = rc[0].apply_async(abs, -1); ar.get()
        1
        >>> rc.purge_local_results(ar)
        """
        if not jobs and not targets:
            raise ValueError("purge needs jobs (results, msg_ids or 'all') or targets")
        if isinstance(jobs, str) and jobs == "all":
            outstanding = self.session.outstanding()
            if outstanding:
                raise RuntimeError(f"can't purge outstanding results: {outstanding}")
            self.session.purge(None)
            self.results.clear()
            self.metadata.clear()
        elif jobs:
            msg_ids = self._purge_msg_ids(jobs)
            self.session.purge(self.session.find(msg_ids, missing_ok=True))
            for msg_id in msg_ids:
                self.results.pop(msg_id, None)
                self.metadata.pop(msg_id, None)

    def purge_hub_results(self, jobs: Any = (), targets: Any = ()) -> None:
        """Drop records from the task database: of ``jobs`` (msg_ids, history indices,
        AsyncResults; ``'all'``: every finished request) and the finished requests sent
        to ``targets``. RuntimeError if one named is still running.

        >>> rc.purge_hub_results("all"); rc.hub_history()
        []
        """
        if not jobs and not targets:
            raise ValueError("purge needs jobs (results, msg_ids or 'all') or targets")
        engine_ids = self.session.resolve_targets(targets)[0] if targets else []
        if isinstance(jobs, str) and jobs == "all":
            self.session.hub.purge(None, engine_ids)
        else:
            self.session.hub.purge(self._purge_msg_ids(jobs) if jobs else [], engine_ids)

    def purge_results(self, jobs: Any = (), targets: Any = ()) -> None:
        """:meth:`purge_local_results` and :meth:`purge_hub_results`.

        >>> rc.purge_results("all"); rc.results, rc.hub_history()
        ({}, [])
        """
        self.purge_local_results(jobs, targets)
        self.purge_hub_results(jobs, targets)

    def purge_everything(self) -> None:
        """Forget every finished result, the :attr:`history` and the task database's
        records.

        >>> rc.purge_everything(); rc.history, rc.hub_history()
        ([], [])
        """
        self.purge_results("all")
        self.session.history.clear()
        self.session.digest_history.clear()
