"""The machinery behind a Client: what its views, results and magics share.

A :class:`Session` owns the backend, the engines (ids, handles, where they run, which are
restarting), target resolution, calls to engines, signals, the record of outstanding
results with the interrupt policy, and the serializer choice. Views hold the session of
the client they came from; results report back to it through the small
:class:`~rayparallel.asyncresult.ResultOwner` protocol it implements. The public
:class:`~rayparallel.client.Client` is a thin front over it.

>>> from rayparallel.backend.connect import open_backend
>>> session = Session(open_backend(local_mode=True))
>>> session.add_engines(2)
[0, 1]
>>> ar = session.send([0, 1], "apply", lambda i: ((abs, (-i,), {}),), "abs", single=False)
>>> ar.get()
[0, 1]
"""

from __future__ import annotations

import collections
import itertools
import pickle
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from . import checks, error, serialize
from .asyncresult import AsyncResult
from .backend import Backend, OutputStream
from .hub import History, Resend, TaskDatabase
from .watch import EngineWatch

__all__ = ["Session"]


class Session:
    """Engines and outstanding results of one client.

    ``engine_options`` are the Ray options of each engine (``num_cpus``, ``max_restarts``,
    ...); ``profile`` names detached engines shared with other clients; ``timeout`` is how
    long engines may take to start or come back.
    """

    #: results submitted before the record is pruned of those that finished unseen
    PRUNE_AT = 1000

    def __init__(self, backend: Backend, *, profile: str | None = None,
                 engine_options: dict | None = None, restart_engines: bool = False,
                 timeout: float = 60):
        self.backend = backend
        self.profile = profile
        self.engine_options = dict(engine_options or {})
        self.restart_engines = restart_engines
        self.timeout = timeout
        self.closed = False
        self._serializer = "cloudpickle"
        self._engines: dict[int, Any] = {}
        self._info: dict[int, dict] = {}
        self._restarting: set[int] = set()  # engines Ray is bringing back (restart_engines)
        self._next_id = 0
        # Outstanding results in submission order (a dict is an ordered set): the
        # interrupt policy needs to know what was sent to an engine before what.
        self._outstanding: dict[AsyncResult, None] = {}
        self._prune_at = self.PRUNE_AT
        self._lock = threading.Lock()
        #: msg_ids of the requests sent, oldest first (ipyparallel's ``client.history``),
        #: the newest :attr:`History.limit` of them
        self.history = History()
        #: this client's id in message headers; msg_ids are ``<id>_<n>``
        self.client_id = uuid.uuid4().hex
        self._msg_numbers = itertools.count()
        #: ipyparallel's digests of signed messages: always empty, Ray authenticates
        #: its own messages and rayparallel signs none
        self.digest_history: set[str] = set()
        #: the task database (ipyparallel's hub records), shared by a profile's clients
        self.hub = TaskDatabase.for_profile(profile)
        # Results by msg_id while someone holds them (this client's, or the task database
        # which keeps the newest records): weak references let the others go.
        self._by_msg_id: weakref.WeakValueDictionary[str, AsyncResult] = \
            weakref.WeakValueDictionary()
        self._msg_ids: weakref.WeakKeyDictionary[AsyncResult, list[str]] = \
            weakref.WeakKeyDictionary()
        self._completed: dict[int, int] = {}  # finished requests per engine
        self._finished: collections.deque[AsyncResult] = collections.deque()  # see forget
        self._store_backed: weakref.WeakSet[AsyncResult] = weakref.WeakSet()  # ditto
        self._watcher: EngineWatch | None = None  # started with the first engines

    # ------------------------------------------------------------------ serializer

    @property
    def serializer(self) -> str:
        """How functions and data are pickled: ``cloudpickle``, ``dill`` or ``pickle``."""
        return self._serializer

    @serializer.setter
    def serializer(self, mode: str) -> None:
        serialize.pack(None, mode)  # fails now if the library is missing or the name unknown
        self._serializer = mode

    # ------------------------------------------------------------------ engines

    @property
    def ids(self) -> list[int]:
        """The ids of the engines, in order."""
        return sorted(self._engines)

    def info(self, engine_id: int) -> dict:
        """Where engine ``engine_id`` runs: ``{pid, hostname, node_id, ...}``."""
        return dict(self._info.get(engine_id, {"engine_id": engine_id}))

    def check_open(self) -> None:
        if self.closed:
            raise error.RayParallelError("this Client has been shut down or closed; "
                                         "create a new one")

    def add_engines(self, n: int, timeout: float | None = None) -> list[int]:
        """Start ``n`` engines, wait until they answer, and return their ids."""
        self.check_open()
        checks.whole_number(n, "the number of engines to add")
        if self.profile is not None:
            self.refresh()  # ids other clients took are taken
        ids = list(range(self._next_id, self._next_id + n))
        self._next_id += n
        handles = self.backend.start_engines(ids, {**self.engine_options,
                                                   "profile": self.profile})
        limit = self.timeout if timeout is None else timeout
        infos = self.backend.fetch([self.backend.call(h, "info") for h in handles], limit)
        failures = [o.value for o in infos if o is not None and not o.ok]
        if failures or None in infos:
            for h in handles:
                self.backend.kill(h)
            if failures:
                raise error.EngineError(f"engines failed to start: {failures[0]}") from failures[0]
            raise error.EngineError(
                f"{infos.count(None)} of {n} engines did not start within {limit} s. Each "
                f"engine asks for {self._requested()}; the cluster has "
                f"{self.backend.describe().get('resources', 'unknown resources')}.")
        with self._lock:
            for eid, handle, info in zip(ids, handles, infos):
                self._engines[eid] = handle
                self._info[eid] = info.value
        self._watch()
        return ids

    def _watch(self) -> None:
        if self._watcher is None and self.backend.loses_engines:
            self._watcher = EngineWatch(self)

    def check_engines(self) -> None:
        """Drop engines the backend says are gone (their node left the cluster), or with
        ``restart_engines`` wait for Ray to bring them back; called by the client's
        :class:`~rayparallel.watch.EngineWatch`, and by anyone who wants it now."""
        with self._lock:
            infos = {eid: self._info.get(eid, {}) for eid in self._engines
                     if eid not in self._restarting}  # known lost: where they were is moot
        for eid in self.backend.lost_engines(infos):
            self.engine_lost(eid, "its node left the Ray cluster")
        for eid in list(self._restarting):  # back yet? (asked briefly: others may wait)
            handle = self._engines.get(eid)
            if handle is not None:
                self._came_back(eid, handle, timeout=1)

    def _requested(self) -> str:
        asked = {k: v for k, v in self.engine_options.items() if v is not None}
        return ", ".join(f"{k}={v}" for k, v in asked.items()) or "the Ray defaults"

    def attach(self, at_least: int) -> None:
        """Take the profile's running engines, starting more if fewer than ``at_least``."""
        self.refresh()
        self._watch()
        if not self._engines and not at_least:
            others = sorted(self.backend.profiles())
            raise error.NoSuchProfile(
                f"no engines are running for profile {self.profile!r} on the Ray cluster at "
                f"{self.backend.describe().get('address')}; start them with `rayparallel "
                f"start --profile {self.profile} -n 4`"
                + (f" (running profiles: {', '.join(others)})" if others else ""))
        if len(self._engines) < at_least:
            self.add_engines(at_least - len(self._engines))

    def refresh(self) -> None:
        """Pick up engines other clients added to the profile, and drop removed ones."""
        found = self.backend.find_engines(self.profile)
        with self._lock:
            new = [eid for eid in found if eid not in self._engines]
            for eid in set(self._engines) - set(found):
                self._engines.pop(eid)
                self._info.pop(eid, None)
            for eid in new:
                self._engines[eid] = found[eid]
            self._next_id = max([self._next_id, *(eid + 1 for eid in found)])
        if new:  # engines busy with another client's work answer later; don't wait for them
            infos = self.backend.fetch([self.backend.call(found[e], "info") for e in new], 2)
            for eid, outcome in zip(new, infos):
                self._info[eid] = outcome.value if outcome is not None and outcome.ok else \
                    {"engine_id": eid}

    def remove_engines(self, ids: Iterable[int]) -> None:
        """Stop the engines ``ids`` (already resolved) now."""
        for eid in ids:
            with self._lock:
                handle = self._engines.pop(eid, None)
                self._info.pop(eid, None)
            if handle is not None:
                self.backend.kill(handle)

    def forget_engines(self) -> None:
        """Let go of every engine without stopping it (a profile's, on close)."""
        with self._lock:
            self._engines.clear()
            self._info.clear()

    def status(self, timeout: float) -> dict[int, dict]:
        """Each engine's info plus ``state``: idle, busy (no answer in ``timeout`` s) or dead."""
        ids = self.ids
        outcomes = self.backend.fetch([self.backend.call(self.handle(e), "info") for e in ids],
                                      timeout)
        status = {}
        for eid, outcome in zip(ids, outcomes):
            if outcome is None:
                status[eid] = {**self.info(eid), "state": "busy"}
            elif outcome.ok:
                self._info[eid] = outcome.value
                status[eid] = {**outcome.value, "state": "idle"}
            else:
                status[eid] = {**self.info(eid), "state": "dead"}
        return status

    def handle(self, engine_id: int) -> Any:
        """The backend's handle of an engine (waiting for it if Ray is restarting it)."""
        try:
            handle = self._engines[engine_id]
        except KeyError:
            raise IndexError(f"engine {engine_id} is not registered; engines: {self.ids}") from None
        if engine_id in self._restarting:
            self._await_restart(engine_id, handle)
        return handle

    def _await_restart(self, engine_id: int, handle: Any) -> None:
        """Wait for Ray to bring a dead engine back (it refuses calls until then)."""
        if not self._came_back(engine_id, handle, self.timeout):
            raise error.EngineError(f"engine {engine_id} died and did not come back within "
                                    f"{self.timeout} s", engine_id)

    def _came_back(self, engine_id: int, handle: Any, timeout: float) -> bool:
        """Whether a restarting engine answers within ``timeout`` s; if so it is no longer
        restarting, and its info (new pid, maybe a new node) replaces the old."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            outcome = self.backend.fetch([self.backend.call(handle, "info")], left)[0]
            if outcome is not None and outcome.ok:
                self._restarting.discard(engine_id)
                self._info[engine_id] = outcome.value
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)  # Ray answers "restarting" at once; ask again shortly

    def resolve_targets(self, targets: Any) -> tuple[list[int], bool]:
        """Engine ids for ``targets`` (``'all'``/None, an id, a slice, a list of ids), and
        whether they are one int target (whose results are single values).

        >>> session.resolve_targets(slice(None, None, 2)), session.resolve_targets(-1)
        (([0, 2], False), ([3], True))
        """
        self.check_open()
        return checks.engine_targets(targets, self.ids)

    # ------------------------------------------------------------------ calls

    def no_engines(self) -> error.NoEnginesRegistered:
        """The error for a call that targets no engine: the client has none, or the
        targets (an empty list, a slice past the end) select none of them."""
        if self.ids:
            return error.NoEnginesRegistered(
                f"the targets select no engine (the client's engines are {self.ids}): give "
                f"at least one engine id, or 'all'")
        return error.NoEnginesRegistered()

    def call(self, engine_id: int, method: str, *args: Any) -> Any:
        """``Engine.<method>(*args)`` on one engine; returns the backend's pending handle."""
        return self.backend.call(self.handle(engine_id), method, *args)

    def share(self, obj: Any, what: str) -> Any:
        """``obj`` stored once for many calls (Ray's object store); names ``what`` if it
        cannot be pickled."""
        try:
            return self.backend.share(obj)
        except (TypeError, pickle.PicklingError) as exc:
            raise serialize.explain_unpicklable({what: obj}, exc) from None

    def send(self, ids: list[int], method: str, args_for: Callable[[int], tuple], fname: str,
             *, single: bool, result_cls: type[AsyncResult] = AsyncResult,
             named: Callable[[], dict] | None = None, **result_options: Any) -> AsyncResult:
        """Call ``Engine.<method>(*args_for(i))`` on the i-th of ``ids`` and return the
        result tracking them all. ``named()`` names the arguments, to say which one cannot
        be pickled if sending fails (before anything was sent); made only then."""
        if not ids:
            raise self.no_engines()
        parts = []
        shared = False  # whether arguments went through the object store (large data)
        try:
            for i, eid in enumerate(ids):
                args = args_for(i)
                shared = shared or any(map(self.backend.is_shared, args))
                parts.append(self.call(eid, method, *args))
        except (TypeError, pickle.PicklingError) as exc:
            # Ray says TypeError("Could not serialize ...") or lets pickle's error through
            if parts or not (isinstance(exc, pickle.PicklingError) or "serializ" in str(exc)):
                raise
            raise serialize.explain_unpicklable(named() if named else {}, exc) from None
        ar = result_cls(parts, fname, list(ids), source=self.backend, owner=self,
                        single=single, **result_options)

        def resend(i: int) -> AsyncResult:
            return self.send([ids[i]], method, lambda _: args_for(i), fname, single=True)

        self.track(ar, resend, "execute" if method == "execute" else "apply", shared=shared)
        return ar

    def open_output_stream(self) -> OutputStream | None:
        """A channel for engines' output while a request runs (None: not on this backend)."""
        return self.backend.open_output_stream()

    def send_signal(self, sig: int | str, targets: Any = None) -> None:
        """Send a signal to the processes of the engines ``targets``."""
        signum = checks.signal_number(sig)
        ids, _ = self.resolve_targets(targets)
        for eid in ids:
            try:
                self.backend.signal_engine(self.handle(eid), self.info(eid), signum)
            except ProcessLookupError:
                raise error.EngineError(f"engine {eid} is no longer running") from None

    # ------------------------------------------------------------------ results

    def msg_ids(self, ar: AsyncResult) -> list[str]:
        """The ids naming ``ar`` (its own ``msg_ids`` if it has them, else one this session
        gave it) for ``get_result``, ``abort`` and dependencies."""
        own = ar.msg_ids
        if own:
            return own
        with self._lock:
            ids = self._msg_ids.get(ar)
            if ids is None:
                ids = self._msg_ids[ar] = [uuid.uuid4().hex]
                self._by_msg_id[ids[0]] = ar
        return list(ids)

    def find(self, jobs: Any, missing_ok: bool = False) -> list[AsyncResult]:
        """The results ``jobs`` names: an AsyncResult, a msg_id, an index into
        ``history``, or a list of those; None: everything outstanding. Unknown msg_ids
        are a KeyError, or skipped if ``missing_ok``.

        >>> ar = rc[0].apply_async(abs, -1)
        >>> session.find([ar, session.msg_ids(ar)[0], -1]) == [ar]
        True
        """
        if jobs is None:  # in submission order
            with self._lock:
                candidates = list(self._outstanding)
            return [ar for ar in candidates if not ar.done()]
        if isinstance(jobs, (str, AsyncResult)) or checks.is_int(jobs):
            jobs = [jobs]
        if not isinstance(jobs, (list, tuple, set)):
            raise TypeError(f"jobs must be AsyncResults, msg_ids or history indices, not "
                            f"{type(jobs).__name__}")
        found: dict[AsyncResult, None] = {}
        for job in jobs:
            if checks.is_int(job):
                try:
                    job = self.history[job]
                except IndexError:
                    raise IndexError(f"history has {len(self.history)} entries, no "
                                     f"{job}") from None
            if isinstance(job, str):
                ar = self._by_msg_id.get(job)
                if ar is None:
                    recorded = self.hub.part(job)  # another client's, or dropped here
                    ar = None if recorded is None else recorded[0]
                if ar is None and missing_ok:
                    continue
                if ar is None:
                    raise KeyError(
                        f"no result with msg_id {job!r} is known to this client: the task "
                        f"database keeps the newest {self.hub.max_records} records, and a "
                        "result is also found while someone holds its AsyncResult")
                job = ar
            if not isinstance(job, AsyncResult):
                raise TypeError(f"expected an AsyncResult, a msg_id or a history index, "
                                f"not {job!r}")
            found[job] = None
        return list(found)

    def queue_status(self, targets: Any = None, verbose: bool = False) -> dict:
        """Per engine, the requests sent to it that have not replied (``queue``), those
        finished (``completed``: a count), and ``tasks`` (0: rayparallel has no per-engine
        task queue); ``unassigned``: load-balanced parts not done. ``verbose`` lists
        msg_ids instead of counting."""
        ids, single = self.resolve_targets(targets)
        queued: dict[int, list[str]] = {eid: [] for eid in ids}
        unassigned: list[str] = []
        for ar in self.find(None):
            running = set(ar.running_engines)
            for eid, name in zip(ar.engine_ids, self.msg_ids(ar)):
                if eid is None:
                    unassigned.append(name)
                elif eid in running and eid in queued:
                    queued[eid].append(name)

        def shown(items: list[str]) -> list[str] | int:
            return items if verbose else len(items)

        self._settle_finished()
        status: dict[Any, Any] = {
            eid: {"queue": shown(queued[eid]), "completed": self._completed.get(eid, 0),
                  "tasks": [] if verbose else 0} for eid in ids}
        if single:
            return status[ids[0]]
        status["unassigned"] = shown(unassigned)
        return status

    def purge(self, results: list[AsyncResult] | None) -> None:
        """Forget ``results`` (None: all) by msg_id; they must be finished."""
        if results is None:
            results = list(set(self._by_msg_id.values()))
        busy = [ar for ar in results if not ar.done()]
        if busy:
            raise RuntimeError(f"can't purge outstanding results: {busy}")
        names = [msg_id for ar in results for msg_id in self.msg_ids(ar)]
        with self._lock:
            for msg_id in names:
                self._by_msg_id.pop(msg_id, None)

    def new_msg_ids(self, n: int) -> list[str]:
        """``n`` fresh msg_ids (cheap: this client's id and a counter).

        >>> a, b = session.new_msg_ids(2); a != b and a.startswith(session.client_id)
        True
        """
        prefix, numbers = self.client_id, self._msg_numbers
        return [f"{prefix}_{next(numbers)}" for _ in range(n)]

    def track(self, ar: AsyncResult, resend: Resend | None = None,
              msg_type: str = "apply", *, shared: bool = False) -> None:
        """Record an outstanding result, giving its parts msg_ids, in the task database
        (``resend(i)`` sends part ``i`` again, for ``resubmit``; ``shared``: its arguments
        are in the object store). Results forget themselves when they finish."""
        names = self.new_msg_ids(len(ar.engine_ids))
        ar.msg_ids = names
        self.hub.add(ar, names, resend, msg_type, self.client_id, shared=shared)
        if shared:
            self._store_backed.add(ar)
        with self._lock:
            self.history.extend(names)
            for msg_id in names:
                self._by_msg_id[msg_id] = ar
            self._outstanding[ar] = None
            crowded = len(self._outstanding) > self._prune_at
        if Future.done(ar):  # finished before it was recorded: its forget() came first
            self.forget(ar)
        self._settle_finished()  # this request is on its way: a good time
        if crowded:
            self._prune()

    def _prune(self) -> None:
        """Forget results that finished unseen (submitted and dropped without waiting), so
        a long fire-and-forget loop does not hold every reply. Costs one poll per result,
        at most about once per as many submissions: amortized, almost nothing."""
        with self._lock:
            results = list(self._outstanding)
        for ar in results:
            ar.done()  # polls; a finished result forgets itself (not under our lock)
        self._settle_finished()
        with self._lock:
            self._prune_at = max(self.PRUNE_AT, 2 * len(self._outstanding))

    @property
    def tracked(self) -> int:
        """How many results the session still records (finished ones are dropped)."""
        self._settle_finished()
        return len(self._outstanding)

    def outstanding(self) -> set[AsyncResult]:
        """Results not yet complete."""
        with self._lock:
            candidates = list(self._outstanding)
        # done() may finish a result, whose callback takes the lock: ask outside it
        return {ar for ar in candidates if not ar.done()}

    def wait(self, jobs: AsyncResult | Iterable[AsyncResult] | None,
             timeout: float | None) -> bool:
        """Wait for ``jobs`` (default: all outstanding) at most ``timeout`` s (-1: forever)."""
        if jobs is None:
            jobs = self.outstanding()
        elif isinstance(jobs, AsyncResult):
            jobs = [jobs]
        jobs = list(jobs)
        for job in jobs:
            if not isinstance(job, AsyncResult):
                raise TypeError(f"wait takes AsyncResults, not {type(job).__name__}")
        limit = checks.seconds(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not job.wait(-1 if left is None else left):
                return False
        return True

    # --- the ResultOwner protocol (see asyncresult.py)

    def forget(self, ar: AsyncResult) -> None:
        # Mostly called while the caller waits for the value: the bookkeeping waits for the
        # next request, once that is on its way (the client's work costs a fraction then of
        # what it costs between a reply and its value), or for a look at what it keeps.
        self._finished.append(ar)  # atomic: any thread may finish a result
        if (self._store_backed and ar in self._store_backed) or not self.hub.holds_little(ar):
            self._settle_finished()  # its data in Ray's store, or a reply maybe large: go now

    def _settle_finished(self) -> None:
        """The bookkeeping of the results finished since last time (see :meth:`forget`):
        no longer outstanding, counted per engine, their records sized by the task
        database."""
        finished = self._finished
        while finished:
            try:
                ar = finished.popleft()
            except IndexError:  # another thread took the last one
                return
            with self._lock:
                if self._outstanding.pop(ar, _GONE) is _GONE:
                    continue  # not tracked yet (track() forgets it again), or settled
                for eid in ar.engine_ids:
                    if eid is not None:
                        self._completed[eid] = self._completed.get(eid, 0) + 1
            self.hub.finished(ar)

    def engine_lost(self, engine_id: int, why: str = "") -> None:
        """The engine's process is gone (a result says so, or, ``why``, its node left):
        forget it, unless Ray restarts it; what it still had fails now."""
        if self.restart_engines:
            self._restarting.add(engine_id)
            return
        if engine_id not in self._engines:
            return
        self.remove_engines([engine_id])
        with self._lock:
            results = list(self._outstanding)
        for ar in results:  # rather than when Ray notices (15 s for a lost node)
            ar.engine_gone(engine_id, why or "its process died", self.backend)

    def interrupt(self, ar: AsyncResult, engine_ids: list[int]) -> set[int]:
        """SIGINT to those of ``engine_ids`` that are running ``ar`` now: where nothing
        sent earlier is still unfinished (an engine runs requests in the order sent; a
        request queued behind another must not interrupt that one). Returns them."""
        if not self.backend.concurrent:
            return set()  # nothing runs while the caller is here
        with self._lock:
            earlier = []
            for other in self._outstanding:
                if other is ar:
                    break
                earlier.append(other)
        busy_before = {eid for o in earlier if not o.done() for eid in o.running_engines}
        live = [eid for eid in engine_ids if eid in self._engines and eid not in busy_before]
        if live:
            try:
                self.send_signal(signal.SIGINT, targets=live)
            except (error.EngineError, NotImplementedError):
                pass
        return set(live)

    def skip_queued(self, source: Any, queued: dict[int, tuple[int, Any]]) -> set[int]:
        """Have engines skip queued parts ``{index: (engine_id, pending call)}`` of a
        result (see :meth:`Backend.skip_queued`); returns the indices they will skip."""
        if source is not self.backend:  # parts held by an engine queue, not engine calls
            return set()
        by_engine: dict[int, list[int]] = {}
        for i, (eid, _) in queued.items():
            by_engine.setdefault(eid, []).append(i)
        skipped: set[int] = set()
        for eid, indices in by_engine.items():
            handle = self._engines.get(eid)
            if handle is None or eid in self._restarting:  # gone, or coming back empty
                continue
            if self.backend.skip_queued(handle, self.info(eid),
                                        [queued[i][1] for i in indices]):
                skipped.update(indices)
        return skipped


_GONE = object()
