"""The task database: what ipyparallel's hub records of every request, kept in the client.

ipyparallel's hub is a process that sees every message and stores a record per msg_id
(``Client.db_query``, ``hub_history``, ``get_result`` of other clients' requests,
``resubmit``). Ray has no such process, so a :class:`TaskDatabase` keeps the records in
this process: one per client, shared by every client of the same profile here (so one
client finds what another sent). Records are references to the results and requests
themselves, made into ipyparallel-style dicts only when queried, so recording costs one
dict entry per part.

The database is bounded: it keeps the newest :attr:`TaskDatabase.max_records` records
(default 1000, one per part: per engine, or per load-balanced chunk) and drops the oldest,
so a long ``imap`` does not hold every reply. A record holds its request's result and
arguments (for ``resubmit``). Records of large data are kept only while their result is
held: a request whose arguments went through Ray's object store (data sent to many
engines), or whose results hold more than :attr:`TaskDatabase.max_kept_bytes` (100 kB,
about where Ray stores objects in its object store), leaves the database once it has
finished and nobody holds its AsyncResult any more, so that the data leaves the object
store and this process's memory (ipyparallel's hub bounds the bytes it keeps too). What
was dropped can no longer be queried, fetched by msg_id from another client, or
resubmitted. Clients in other processes have their own databases.

>>> db = rc.session.hub
>>> ar = rc[0].apply_async(abs, -5); ar.get()
5
>>> [r["result_content"]["status"] for r in db.query({"msg_id": ar.msg_ids[0]})]
['ok']
"""

from __future__ import annotations

import fnmatch
import getpass
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import timezone
from typing import Any

from . import error
from .asyncresult import AsyncResult
from .backend import Outcome, ResultSource
from .reply import SCALAR_TYPES, Reply, holds_little, payload

__all__ = ["TaskDatabase", "History", "JoinedResult", "AsyncHubResult", "RECORD_KEYS", "utc"]

#: the time zone of the dates in records (ipyparallel's ``util.utc``)
utc = timezone.utc

#: re-sends part ``i`` of a request; returns the new request's result
Resend = Callable[[int], AsyncResult]

#: the keys of a record, as in ipyparallel's hub (``buffers`` and ``result_buffers`` only
#: when asked for by name: rayparallel sends no separate buffers, they are always empty)
RECORD_KEYS = ("msg_id", "header", "metadata", "content", "buffers", "submitted",
               "client_uuid", "engine_uuid", "started", "completed", "resubmitted",
               "received", "result_header", "result_metadata", "result_content",
               "result_buffers", "queue", "execute_input", "execute_result", "error",
               "stdout", "stderr")
_DEFAULT_KEYS = tuple(k for k in RECORD_KEYS if k not in ("buffers", "result_buffers"))


def _compare(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """``test``, False where the values do not compare (None against a date, say)."""
    def safe(a: Any, b: Any) -> bool:
        try:
            return bool(test(a, b))
        except TypeError:
            return False
    return safe


#: mongodb-style query operators, as ipyparallel's in-memory hub database has them
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": _compare(lambda a, b: a < b),
    "$gt": _compare(lambda a, b: a > b),
    "$lte": _compare(lambda a, b: a <= b),
    "$gte": _compare(lambda a, b: a >= b),
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$in": _compare(lambda a, b: a in b),
    "$nin": _compare(lambda a, b: a not in b),
    "$all": _compare(lambda a, b: all(x in a for x in b)),
    "$mod": _compare(lambda a, b: a % b[0] == b[1]),
    "$exists": lambda a, b: (a is not None) == bool(b),
    "$glob": lambda a, b: isinstance(a, str) and fnmatch.fnmatch(a, b),
}


def matches(record: dict, query: dict) -> bool:
    """Whether ``record`` satisfies a mongodb-style ``query``.

    >>> matches({"n": 3}, {"n": {"$gt": 1, "$lt": 5}}), matches({"n": 3}, {"n": 4})
    (True, False)
    """
    for key, condition in query.items():
        value = record.get(key)
        if isinstance(condition, dict) and condition and \
                all(isinstance(op, str) and op.startswith("$") for op in condition):
            for op, operand in condition.items():
                test = OPERATORS.get(op)
                if test is None:
                    raise ValueError(f"unknown query operator {op!r} for {key!r}; known: "
                                     f"{', '.join(OPERATORS)}")
                if not test(value, operand):
                    return False
        elif value != condition:
            return False
    return True


class History(list):
    """msg_ids, oldest first, keeping the newest :attr:`limit` (and up to a tenth more
    between trims, which cost one shift of the list), so that a long ``imap`` does not
    fill memory; read at its tail, as it mostly is, it is ipyparallel's unbounded list.

    >>> h = History(limit=10); h.extend(str(i) for i in range(100)); h[-1], len(h) <= 11
    ('99', True)
    """

    #: how many msg_ids a new history keeps
    LIMIT = 10_000

    def __init__(self, limit: int = LIMIT):
        super().__init__()
        self.limit = limit

    def extend(self, msg_ids: Iterable[str]) -> None:
        super().extend(msg_ids)
        if len(self) > self.limit + self.limit // 10:
            del self[:len(self) - self.limit]

    def append(self, msg_id: str) -> None:
        self.extend((msg_id,))


class TaskDatabase:
    """Records of requests by msg_id, newest last, at most :attr:`max_records` of them.

    >>> db = TaskDatabase(max_records=2)
    >>> db.max_records, db.max_kept_bytes
    (2, 100000)
    """

    #: how many records a new database keeps (the oldest are dropped beyond it)
    DEFAULT_MAX_RECORDS = 1000
    #: results larger than this are kept only while their AsyncResult is held elsewhere
    DEFAULT_MAX_KEPT_BYTES = 100_000
    _shared: weakref.WeakValueDictionary[str, TaskDatabase] = weakref.WeakValueDictionary()
    _shared_lock = threading.Lock()

    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS,
                 max_kept_bytes: int = DEFAULT_MAX_KEPT_BYTES):
        self.max_records = max_records
        #: a finished request whose results hold more bytes than this (roughly: arrays,
        #: bytes and strings) is kept only while its AsyncResult is held elsewhere
        self.max_kept_bytes = max_kept_bytes
        # msg_id -> (result, or a weak reference to it; part index, msg_type, client id);
        # the result carries the function re-sending it (``_resend``)
        self._records: OrderedDict[str, tuple] = OrderedDict()
        self._resubmitted: dict[str, str] = {}  # old msg_id -> the msg_id re-sending it
        # msg_ids of weakly held results that are gone: appended by the garbage collector
        # (at any moment, so without the lock; deque.extend is atomic), dropped under it
        self._gone: deque[str] = deque()
        self._lock = threading.Lock()

    @classmethod
    def for_profile(cls, profile: str | None) -> TaskDatabase:
        """The database of the clients of ``profile`` in this process (a new one for None).

        >>> TaskDatabase.for_profile("p") is TaskDatabase.for_profile("p")
        True
        """
        if profile is None:
            return cls()
        with cls._shared_lock:
            db = cls._shared.get(profile)
            if db is None:
                db = cls._shared[profile] = cls()
            return db

    @property
    def max_records(self) -> int:
        """How many records are kept; setting it drops the oldest beyond it."""
        return self._max_records

    @max_records.setter
    def max_records(self, n: int) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"max_records must be a whole number >= 1, not {n!r}")
        self._max_records = n
        if hasattr(self, "_records"):
            with self._lock:
                self._trim()

    def _trim(self) -> None:
        """Drop the records of results gone, then the oldest beyond the bound (locked)."""
        gone, records = self._gone, self._records
        while gone:
            msg_id = gone.popleft()
            records.pop(msg_id, None)
            self._resubmitted.pop(msg_id, None)
        while len(records) > self._max_records:
            old, _ = records.popitem(last=False)
            self._resubmitted.pop(old, None)

    def __len__(self) -> int:
        with self._lock:
            self._trim()
            return len(self._records)

    def add(self, ar: AsyncResult, msg_ids: Sequence[str], resend: Resend | None,
            msg_type: str, client_id: str, *, shared: bool = False) -> None:
        """Record the parts of ``ar`` under ``msg_ids`` (``resend(i)`` sends part i again).
        ``shared``: its arguments are in Ray's object store, so it is kept only while
        ``ar`` is held elsewhere (until it finishes, its client holds it)."""
        ar._resend = resend
        holder = self._weak(ar, msg_ids) if shared else ar
        with self._lock:
            records = self._records
            for i, msg_id in enumerate(msg_ids):
                records[msg_id] = (holder, i, msg_type, client_id)
            if len(records) > self._max_records or self._gone:
                self._trim()

    def _weak(self, ar: AsyncResult, msg_ids: Sequence[str]) -> weakref.ref:
        gone = self._gone
        return weakref.ref(ar, lambda _, names=tuple(msg_ids): gone.extend(names))

    @staticmethod
    def holds_little(ar: AsyncResult) -> bool:
        """Whether every part of ``ar`` replied with a bare scalar (no output, displays or
        data), so that :meth:`finished` has nothing to do for it: a quick look, no walk."""
        return all(o is not None and o.ok and holds_little(o.value) for o in ar._outcomes)

    def finished(self, ar: AsyncResult) -> None:
        """``ar`` has every reply: if they hold more than :attr:`max_kept_bytes`, keep its
        records only while ``ar`` is held elsewhere. Cheap for small replies."""
        values = [payload(o.value) for o in ar._outcomes if o is not None]
        if not _larger_than(values, self.max_kept_bytes):
            return
        msg_ids = ar.msg_ids
        holder = self._weak(ar, msg_ids)
        with self._lock:
            records = self._records
            for msg_id in msg_ids:
                entry = records.get(msg_id)
                if entry is not None and entry[0] is ar:
                    records[msg_id] = (holder, *entry[1:])

    def _entries(self) -> list[tuple[str, AsyncResult, int, str, str]]:
        """``(msg_id, result, part, msg_type, client id)`` of every record, oldest first."""
        with self._lock:
            self._trim()
            items = list(self._records.items())
        found = []
        for msg_id, (holder, i, msg_type, client_id) in items:
            ar = holder() if isinstance(holder, weakref.ref) else holder
            if ar is not None:
                found.append((msg_id, ar, i, msg_type, client_id))
        return found

    def _entry(self, msg_id: str) -> tuple[AsyncResult, int] | None:
        entry = self._records.get(msg_id)
        if entry is None:
            return None
        holder, i = entry[0], entry[1]
        ar = holder() if isinstance(holder, weakref.ref) else holder
        return None if ar is None else (ar, i)

    def __contains__(self, msg_id: object) -> bool:
        return isinstance(msg_id, str) and self._entry(msg_id) is not None

    def part(self, msg_id: str) -> tuple[AsyncResult, int] | None:
        """The result and part index recorded for ``msg_id`` (None: no such record)."""
        return self._entry(msg_id)

    def history(self) -> list[str]:
        """msg_ids of every record, oldest first."""
        return [e[0] for e in self._entries()]

    def query(self, query: dict, keys: Sequence[str] | str | None = None) -> list[dict]:
        """Records matching ``query`` (mongodb operators: ``$in``, ``$lt``, ...) with
        ``keys`` (default: all but ``buffers`` and ``result_buffers``; ``msg_id`` always)."""
        if not isinstance(query, dict):
            raise TypeError(f"a query is a dict such as {{'msg_id': {{'$in': ids}}}}, not "
                            f"{type(query).__name__}")
        if isinstance(keys, str):
            keys = [keys]
        wanted = _DEFAULT_KEYS if keys is None else ("msg_id", *keys)
        unknown = [k for k in wanted if k not in RECORD_KEYS]
        if unknown:
            raise KeyError(f"records have no key {unknown[0]!r}; keys: {', '.join(RECORD_KEYS)}")
        metadata: dict[int, list] = {}  # per result: its parts' metadata, read once
        found = []
        for msg_id, ar, i, msg_type, client_id in self._entries():
            record = self._record(msg_id, ar, i, msg_type, client_id, metadata)
            if matches(record, query):
                found.append({k: record[k] for k in wanted})
        return found

    def _record(self, msg_id: str, ar: AsyncResult, i: int, msg_type: str, client_id: str,
                metadata: dict[int, list]) -> dict:
        done = ar.done()
        if id(ar) not in metadata:
            mds = ar.metadata
            metadata[id(ar)] = mds if isinstance(mds, list) else [mds]
        md = metadata[id(ar)][i]
        header = {"msg_id": msg_id, "msg_type": f"{msg_type}_request", "date": ar.submitted,
                  "session": client_id, "username": _USER, "version": "5.3"}
        record = {
            "msg_id": msg_id, "header": header, "metadata": {}, "content": {},
            "buffers": [], "submitted": ar.submitted, "client_uuid": client_id,
            "engine_uuid": None if md is None else md.get("engine_uuid"),
            "started": None, "completed": None,
            "resubmitted": self._resubmitted.get(msg_id),
            "received": ar.received if done else None,
            "result_header": None, "result_metadata": None, "result_content": None,
            "result_buffers": [], "queue": "task" if ar.engine_ids[i] is None else "mux",
            "execute_input": None, "execute_result": None, "error": None,
            "stdout": None, "stderr": None,
        }
        if md is not None:
            status = md.get("status")
            record.update(
                started=md.get("started"), completed=md.get("completed"),
                result_header={"msg_id": f"{msg_id}-reply", "msg_type": f"{msg_type}_reply",
                               "date": md.get("completed"), "session": client_id},
                result_metadata=dict(md), result_content={"status": status},
                execute_result=md.get("execute_result"), error=md.get("error"),
                stdout=md.get("stdout"), stderr=md.get("stderr"))
        elif done:  # failed before an engine replied (aborted, engine lost, timed out)
            record.update(result_content={"status": "error"}, completed=ar.received)
        return record

    def purge(self, msg_ids: Sequence[str] | None = None, engine_ids: Sequence[int] = ()
              ) -> None:
        """Drop the records ``msg_ids`` (None: every finished one) and the finished ones
        of ``engine_ids``. RuntimeError if one named is still running."""
        entries = self._entries()
        if msg_ids is not None:
            named = set(msg_ids)
            running = [e[0] for e in entries if e[0] in named and not e[1].done()]
            if running:
                raise RuntimeError(f"can't purge the records of requests still running: "
                                   f"{running}")
            doomed = named
        else:
            doomed = {e[0] for e in entries if e[1].done()}
        if engine_ids:
            targets = set(engine_ids)
            doomed |= {e[0] for e in entries if e[1].engine_ids[e[2]] in targets
                       and e[1].done()}
        with self._lock:
            for msg_id in doomed:
                if self._records.pop(msg_id, None) is not None:
                    self._resubmitted.pop(msg_id, None)

    def resubmit(self, msg_ids: Sequence[str]) -> list[AsyncResult]:
        """Send the requests ``msg_ids`` again (running ones too); one new result each.
        A msg_id without a record raises a RemoteError that is also a KeyError."""
        resends = []
        for msg_id in msg_ids:
            entry = self._entry(msg_id)
            if entry is None or entry[0]._resend is None:
                why = "no record" if entry is None else "a record but no request to re-send"
                raise error.RemoteError(
                    "KeyError", f"{msg_id!r}: the task database has {why} of it (it keeps "
                    f"the newest {self.max_records} records of this process's clients, "
                    f"those of large data while their result is held)",
                    engine_info={"method": "resubmit"},
                    exc_type=("builtins", "KeyError")).with_original_type()
            resends.append((msg_id, entry[0]._resend, entry[1]))
        new = []
        for msg_id, resend, i in resends:
            again = resend(i)
            self._resubmitted[msg_id] = again.msg_ids[0]
            new.append(again)
        return new


def _larger_than(obj: Any, limit: int, max_objects: int = 1000) -> bool:
    """Whether ``obj`` holds more than ``limit`` bytes, roughly: the arrays, bytes and
    strings in it, through containers and replies. It looks at ``max_objects`` objects at
    most (a result of more parts than that counts as large), so it is cheap: a few
    microseconds for a small reply.

    >>> _larger_than([b"x" * 10, "y", 3.5, None], 100), _larger_than({"a": bytes(200)}, 100)
    (False, True)
    """
    total, todo = 0, [obj]
    for _ in range(max_objects):
        if not todo:
            return False
        x = todo.pop()
        kind = type(x)
        if kind in SCALAR_TYPES:
            continue
        if kind in _TEXT:
            total += len(x)
        elif kind in _CONTAINERS:
            if len(x) > max_objects:  # more than would be looked at: large, say so now
                return True
            todo.extend(x)
            total += 8 * len(x)
        elif kind is dict:
            todo.extend(x.keys())
            todo.extend(x.values())
        elif kind is Reply:
            todo.extend(payload(x))
        elif isinstance(getattr(x, "nbytes", None), int):  # numpy arrays, memoryviews
            total += x.nbytes
        else:
            total += sys.getsizeof(x, 64)  # pandas objects count their data here
        if total > limit:
            return True
    return bool(todo)


_TEXT = frozenset({str, bytes, bytearray})
_CONTAINERS = frozenset({list, tuple, set, frozenset})


_USER = getpass.getuser()


class _PiecesSource(ResultSource):
    """Parts that are one-part results of their own (of this or another client)."""

    def fetch(self, pending: Sequence[AsyncResult], timeout: float | None
              ) -> list[Outcome | None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes: list[Outcome | None] = []
        for piece in pending:
            left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            outcomes.append(AsyncHubResult._outcome_of(piece) if piece.wait(left) else None)
        return outcomes

    def when_done(self, pending: AsyncResult, callback: Callable[[Outcome], None]) -> None:
        pending.add_done_callback(lambda piece: callback(AsyncHubResult._outcome_of(piece)))

    def cancel(self, pending: AsyncResult, *, engine_call: bool = False) -> bool:
        pending.abort()
        return pending.done()


_PIECES = _PiecesSource()


class JoinedResult(AsyncResult):
    """One result over parts of other results (``get_result`` of several msg_ids), which
    may come from different views; timings are those of the original requests.

    >>> ar, other = rc[0].apply_async(abs, -2), rc.load_balanced_view().apply_async(abs, -3)
    >>> both = JoinedResult.of([ar, other], ar.msg_ids + other.msg_ids, single=False)
    >>> both.get(), both.msg_ids == ar.msg_ids + other.msg_ids
    ([2, 3], True)
    """

    _origins: list[AsyncResult]
    _keep: Callable[[str, Any, Any], None] | None

    @classmethod
    def of(cls, pieces: list[AsyncResult], msg_ids: list[str], *, single: bool,
           origins: list[AsyncResult] | None = None,
           keep: Callable[[str, Any, Any], None] | None = None) -> JoinedResult:
        """Over ``pieces`` (one-part results, one per msg_id); ``keep(msg_id, value,
        metadata)`` is told each part's outcome once :meth:`get` has it."""
        first = pieces[0]
        hub = cls(list(pieces), first._fname, [p.engine_ids[0] for p in pieces],
                  source=_PIECES, single=single, execute=first._execute)
        hub.msg_ids = list(msg_ids)
        hub._keep = keep
        hub._origins = origins or list(pieces)
        hub._t_submitted = min(o._t_submitted for o in hub._origins)
        hub.submitted = min(o.submitted for o in hub._origins)
        return hub

    @staticmethod
    def _outcome_of(piece: AsyncResult) -> Outcome:
        """The outcome of a finished one-part result."""
        return piece._outcomes[0]

    def _finish(self) -> None:
        super()._finish()
        ends = [o._t_received for o in self._origins]
        if None not in ends:  # the originals' replies, not when this one heard of them
            self._t_received = max(ends)
            self.received = max(o.received for o in self._origins)


class AsyncHubResult(JoinedResult):
    """A result fetched from the task database by msg_id: of a request another client sent,
    or one :meth:`Client.resubmit` sent again.

    >>> ar = rc[0].apply_async(abs, -2)
    >>> hub = AsyncHubResult.of([ar], ar.msg_ids, single=True)
    >>> hub.get(), hub.msg_ids == ar.msg_ids
    (2, True)
    """

    def get(self, timeout: float | None = -1, return_exceptions: bool = False,
            return_when: str | None = None) -> Any:
        """As :meth:`AsyncResult.get`; without an owner, the client keeps each part's
        value in ``Client.results`` (ipyparallel's ``owner=False``)."""
        try:
            return super().get(timeout, return_exceptions, return_when)
        finally:
            if self._keep is not None and self.done():
                mds = self._metadata_list()
                for msg_id, (_, value), md in zip(self.msg_ids, self._part_results(), mds):
                    self._keep(msg_id, value, md)
