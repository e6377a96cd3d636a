"""The Client: starts or joins Ray, owns the engines, and makes views on them.

>>> import rayparallel
>>> rc = rayparallel.Client(num_engines=4)
>>> rc.ids
[0, 1, 2, 3]
>>> rc[:].apply_sync(lambda: "hi")
['hi', 'hi', 'hi', 'hi']
>>> rc.shutdown()
"""

from __future__ import annotations

import html
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

from . import error, serialize
from .asyncresult import AsyncResult
from .backend import Backend
from .view import DirectView

if TYPE_CHECKING:
    from .loadbalanced import LoadBalancedView

__all__ = ["Client"]


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={value!r}: use 1 or 0")


class Client:
    """A connection to a set of engines.

    Parameters
    ----------
    num_engines
        How many engines to start (default 4).
    address
        Ray to join: ``None`` joins the Ray already initialised in this process or starts a
        quiet local one (no dashboard); ``"auto"``, ``"host:6379"`` or ``"ray://host:10001"``
        join an existing cluster.
    profile
        Attach to the engines ``rayparallel start --profile NAME`` started (on the cluster at
        ``address``, by default the one ``ray start`` runs on this machine). With
        ``num_engines``, start more if fewer are running. Closing the client leaves them
        running; ``shutdown()`` stops them.
    block
        Default blocking mode of views made from this client.
    timeout
        Seconds to wait for engines to start before saying why they did not.
    num_cpus, num_gpus, memory, resources, runtime_env
        Ray resources and environment of each engine. By default an engine reserves no CPU
        once running, so 8 engines fit on a 2-core laptop next to load-balanced tasks.
    ray_init
        Extra keyword arguments for ``ray.init`` when this client starts Ray.
    restart_engines
        If an engine's process dies, Ray starts it again (with an empty namespace; the next
        result from it warns with :class:`~rayparallel.error.EngineRestarted`). Without it,
        a dead engine leaves ``ids``. Either way, what was running there fails with
        :class:`~rayparallel.error.EngineError`.
    local_mode
        Run engines and tasks in this process, without Ray (for tests and debugging; see
        :mod:`rayparallel.backend.local`). The environment variable
        ``RAYPARALLEL_LOCAL_MODE=1`` makes it the default for every client.
    """

    def __init__(
        self,
        num_engines: int | None = None,
        *,
        address: str | None = None,
        profile: str | None = None,
        block: bool = False,
        timeout: float = 60,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        memory: int | None = None,
        resources: dict[str, float] | None = None,
        runtime_env: dict | None = None,
        ray_init: dict | None = None,
        local_mode: bool | None = None,
        restart_engines: bool = False,
        backend: Backend | None = None,
        context: Any = None,  # ipyparallel's zmq context: nothing to do on Ray, accepted
    ):
        if num_engines is None:
            num_engines = 0 if profile is not None else 4
        if not isinstance(num_engines, int) or isinstance(num_engines, bool) or num_engines < 0:
            raise ValueError(f"num_engines must be a whole number >= 0, not {num_engines!r}")
        self.block = block
        self._serializer = "cloudpickle"
        self._engine_options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory,
                                "resources": resources, "runtime_env": runtime_env,
                                # Work in flight when an engine dies fails (never re-runs on
                                # an empty namespace); the engine itself comes back.
                                "max_restarts": -1 if restart_engines else None}
        self.restart_engines = restart_engines
        self._timeout = timeout
        if local_mode is None:
            local_mode = _env_flag("RAYPARALLEL_LOCAL_MODE") and profile is None
        if profile is not None and local_mode:
            raise ValueError(f"profile {profile!r} names engines on a Ray cluster; local mode "
                             "runs engines in this process and cannot attach to them")
        if backend is None and profile is not None:
            from .backend.ray import RayBackend

            # A profile's engines run on a cluster that is already up: join, never start one.
            backend = RayBackend(address, ray_init, join=True)
        elif backend is None and local_mode:
            if address is not None:
                raise ValueError(f"local_mode=True runs engines in this process; it cannot "
                                 f"join the Ray cluster at {address!r}")
            from .backend.local import LocalBackend

            backend = LocalBackend()
        elif backend is None:
            from .backend.ray import RayBackend

            backend = RayBackend(address, ray_init)
        self._backend = backend
        self._engines: dict[int, Any] = {}
        self._info: dict[int, dict] = {}
        self._next_id = 0
        self._outstanding: set[AsyncResult] = set()
        self._restarting: set[int] = set()  # engines Ray is restarting (restart_engines)
        self._prune_at = 1000  # see _prune
        self._lock = threading.Lock()
        self._closed = False
        #: engines of a profile are shared: closing this client leaves them running
        self.profile = profile
        if profile is not None:
            self._attach(num_engines)
        elif num_engines:
            self.add_engines(num_engines)
        self._activate_magics()

    @property
    def local_mode(self) -> bool:
        """True if engines run in this process (``Client(local_mode=True)``)."""
        return self._backend.name == "local"

    # ------------------------------------------------------------------ engines

    def _attach(self, at_least: int) -> None:
        """Take the profile's running engines, starting more if there are fewer than
        ``at_least``."""
        self._refresh()
        if not self._engines and not at_least:
            others = sorted(self._backend.profiles())
            raise error.NoSuchProfile(
                f"no engines are running for profile {self.profile!r} on the Ray cluster at "
                f"{self._backend.describe().get('address')}; start them with `rayparallel "
                f"start --profile {self.profile} -n 4`"
                + (f" (running profiles: {', '.join(others)})" if others else ""))
        if len(self._engines) < at_least:
            self.add_engines(at_least - len(self._engines))

    def _refresh(self) -> None:
        """Pick up engines other clients added to the profile, and drop removed ones."""
        found = self._backend.find_engines(self.profile)
        new = [eid for eid in found if eid not in self._engines]
        for eid in set(self._engines) - set(found):
            self._engines.pop(eid)
            self._info.pop(eid, None)
        for eid in new:
            self._engines[eid] = found[eid]
        if new:  # engines busy with another client's work answer later; don't wait for them
            infos = self._backend.fetch([self._backend.call(found[e], "info") for e in new], 2)
            for eid, info in zip(new, infos):
                self._info[eid] = info.value if info is not None and info.ok else \
                    {"engine_id": eid}
        self._next_id = max([self._next_id, *(eid + 1 for eid in found)])

    def add_engines(self, n: int, timeout: float | None = None) -> list[int]:
        """Start ``n`` more engines and wait until they are ready; returns their ids.
        On a profile, they join the profile and outlive this client.

        >>> rc.add_engines(2)
        [4, 5]
        """
        self._check_open()
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"the number of engines to add must be a whole number >= 0, "
                             f"not {n!r}")
        if self.profile is not None:
            self._refresh()  # ids other clients took are taken
        ids = list(range(self._next_id, self._next_id + n))
        self._next_id += n
        handles = self._backend.start_engines(ids, {**self._engine_options,
                                                    "profile": self.profile})
        limit = self._timeout if timeout is None else timeout
        infos = self._backend.fetch([self._backend.call(h, "info") for h in handles], limit)
        failures = [o.value for o in infos if o is not None and not o.ok]
        if failures or None in infos:
            for h in handles:
                self._backend.kill(h)
            if failures:
                raise error.EngineError(f"engines failed to start: {failures[0]}") from failures[0]
            raise error.EngineError(
                f"{infos.count(None)} of {n} engines did not start within {limit} s. Each "
                f"engine asks for {self._requested()}; the cluster has "
                f"{self._backend.describe().get('resources', 'unknown resources')}.")
        for eid, handle, info in zip(ids, handles, infos):
            self._engines[eid] = handle
            self._info[eid] = info.value
        return ids

    def _requested(self) -> str:
        asked = {k: v for k, v in self._engine_options.items() if v is not None}
        return ", ".join(f"{k}={v}" for k, v in asked.items()) or "the Ray defaults"

    @property
    def ids(self) -> list[int]:
        """The ids of the engines, in order."""
        return sorted(self._engines)

    def __len__(self) -> int:
        return len(self._engines)

    def engine_info(self) -> dict[int, dict]:
        """Where each engine runs: ``{id: {pid, hostname, node_id, ...}}``."""
        return {eid: dict(self._info[eid]) for eid in self.ids}

    def engine_status(self, timeout: float = 1.0) -> dict[int, dict]:
        """:meth:`engine_info` plus each engine's ``state``: ``idle``, ``busy`` (it did not
        answer within ``timeout`` s: it is running something) or ``dead``, and ``names``
        (how many names its namespace holds).

        >>> rc.engine_status()[0]["state"]
        'idle'
        """
        ids = self.ids
        outcomes = self._backend.fetch(
            [self._backend.call(self._handle(e), "info") for e in ids], timeout)
        status = {}
        for eid, outcome in zip(ids, outcomes):
            if outcome is None:
                status[eid] = {**self._info[eid], "state": "busy"}
            elif outcome.ok:
                self._info[eid] = outcome.value
                status[eid] = {**outcome.value, "state": "idle"}
            else:
                status[eid] = {**self._info[eid], "state": "dead"}
        return status

    def _handle(self, engine_id: int) -> Any:
        try:
            handle = self._engines[engine_id]
        except KeyError:
            raise IndexError(f"engine {engine_id} is not registered; engines: {self.ids}") from None
        if engine_id in self._restarting:
            self._await_restart(engine_id, handle)
        return handle

    def _await_restart(self, engine_id: int, handle: Any) -> None:
        """Wait for Ray to bring a dead engine back (it refuses calls until then)."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            outcome = self._backend.fetch([self._backend.call(handle, "info")], None)[0]
            if outcome.ok:
                self._restarting.discard(engine_id)
                self._info[engine_id] = outcome.value
                return
            time.sleep(0.1)  # Ray answers "restarting" at once; ask again shortly
        raise error.EngineError(f"engine {engine_id} died and did not come back within "
                                f"{self._timeout} s", engine_id)

    def _resolve_targets(self, targets: Any) -> tuple[list[int], bool]:
        """Engine ids for ``targets``, and whether the view is on one int target."""
        self._check_open()
        ids = self.ids
        if targets is None or targets == "all":
            return ids, False
        if isinstance(targets, bool):
            raise TypeError("targets must be 'all', an int, a slice or a list of ints, not a bool")
        if isinstance(targets, int):
            return [self._one(targets, ids)], True
        if isinstance(targets, slice):
            return ids[targets], False
        if isinstance(targets, (list, tuple, range)):
            return [self._one(t, ids) for t in targets], False
        raise TypeError(f"targets must be 'all', an int, a slice or a list of ints, "
                        f"not {type(targets).__name__}")

    @staticmethod
    def _one(target: Any, ids: list[int]) -> int:
        if not isinstance(target, int) or isinstance(target, bool):
            raise TypeError(f"engine ids are ints, not {type(target).__name__} ({target!r})")
        if not ids:
            raise error.NoEnginesRegistered()
        eid = ids[target] if target < 0 and -len(ids) <= target else target
        if eid not in ids:
            raise IndexError(f"engine {target} is not registered; engines: {ids}")
        return eid

    # ------------------------------------------------------------------ views

    def __getitem__(self, key: int | slice | list[int]) -> DirectView:
        """``rc[0]``, ``rc[::2]``, ``rc[1:3]``, ``rc[[1, 3]]``, ``rc[:]``: a DirectView.

        >>> rc[::2]
        <DirectView [0, 2]>
        """
        ids, single = self._resolve_targets(key)
        if not self._engines:
            raise error.NoEnginesRegistered(
                "this client has no engines (they were stopped, or their processes died); "
                "start some with client.add_engines(N)")
        if not ids:
            raise IndexError(f"no engines match {key!r}; engines: {self.ids}")
        return DirectView(self, ids[0] if single else ids)

    def __iter__(self) -> Iterator[DirectView]:
        return (self[eid] for eid in self.ids)

    def direct_view(self, targets: Any = "all") -> DirectView:
        """A DirectView; ``'all'`` follows the engines as they come and go.

        >>> rc.direct_view("all").apply_sync(lambda: 1)
        [1, 1, 1, 1]
        """
        self._resolve_targets(targets)  # validate now
        return DirectView(self, targets)

    def load_balanced_view(self, targets: Any = None, **flags: Any) -> LoadBalancedView:
        """A LoadBalancedView: work goes to Ray tasks across the cluster, or, with
        ``targets``, to whichever of those engines is free.

        >>> lview = rc.load_balanced_view()
        >>> lview.map_sync(lambda x: x * x, range(4))
        [0, 1, 4, 9]
        """
        from .loadbalanced import LoadBalancedView

        if targets is not None:
            self._resolve_targets(targets)  # validate now
        return LoadBalancedView(self, targets, **flags)

    def executor(self, targets: Any = None, **flags: Any) -> Executor:
        """A :class:`concurrent.futures.Executor` over a LoadBalancedView.

        >>> with rc.executor() as ex:
        ...     list(ex.map(abs, [-1, -2]))
        [1, 2]
        """
        return self.load_balanced_view(targets, **flags).executor

    def _activate_magics(self) -> None:
        """Inside IPython, point ``%px`` and friends at this client's engines, as
        ipyparallel does (the seeds use ``%px`` with no set-up)."""
        from IPython import get_ipython

        shell = get_ipython()
        # Not in IPython, or inside an engine (whose shell is not the user's).
        if shell is None or type(shell).__name__ == "EngineShell":
            return
        from .magics import register_magics

        view = self.direct_view("all")
        view.block = True  # %px waits by default, as in ipyparallel
        register_magics(shell, view)

    def activate(self, targets: Any = "all", suffix: str = "") -> DirectView:
        """Make a DirectView on ``targets`` and register the parallel magics for it
        (``%px``, ``%%px``, ``%pxresult``, ``%pxconfig``, ``%autopx``, each with ``suffix``).

        >>> rc.activate([0, 1], suffix="_01")
        <DirectView [0, 1]>
        >>> %px_01 print("hi")
        """
        view = self.direct_view(targets)
        view.block = True  # %px waits by default, as in ipyparallel
        view.activate(suffix)
        return view

    def clear(self, targets: Any = None, block: bool | None = None) -> Any:
        """Empty the namespaces of ``targets`` (all engines by default), as ipyparallel's."""
        return self.direct_view("all" if targets is None else targets).clear(block=block)

    # ------------------------------------------------------------------ signals

    def send_signal(self, sig: int | str, targets: Any = None, block: bool | None = None
                    ) -> None:
        """Send a signal (``signal.SIGINT``, ``"SIGINT"`` or ``2``) to engines' processes.

        SIGINT interrupts the code the engines are running: it raises KeyboardInterrupt
        there, and the engines keep their namespaces; between requests engines ignore it.
        ``%px`` sends it on Ctrl-C. Signals are sent before this returns; ``block`` is
        accepted for ipyparallel compatibility.

        >>> ar = rc[:].execute("import time; time.sleep(60)")
        >>> rc.send_signal("SIGINT")
        >>> ar.get()
        CompositeError: one or more exceptions raised in: execute
        [0:execute] KeyboardInterrupt: ...
        """
        if isinstance(sig, str):
            name = sig.upper() if sig.upper().startswith("SIG") else "SIG" + sig.upper()
            try:
                signum = int(signal.Signals[name])
            except KeyError:
                raise ValueError(f"unknown signal {sig!r}; use e.g. 'SIGINT' or 2") from None
        elif isinstance(sig, int) and not isinstance(sig, bool):
            signum = int(sig)
        else:
            raise TypeError(f"sig must be a signal number or name, not {type(sig).__name__}")
        ids, _ = self._resolve_targets(targets)
        for eid in ids:
            try:
                self._backend.signal_engine(self._handle(eid), self._info[eid], signum)
            except ProcessLookupError:
                raise error.EngineError(f"engine {eid} is no longer running") from None

    # ------------------------------------------------------------------ results

    def _remember(self, ar: AsyncResult) -> None:
        with self._lock:
            self._outstanding.add(ar)
            crowded = len(self._outstanding) > self._prune_at
        if Future.done(ar):  # finished before it was remembered: its _forget came first
            self._forget(ar)
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
        with self._lock:
            self._prune_at = max(1000, 2 * len(self._outstanding))

    def _forget(self, ar: AsyncResult) -> None:
        with self._lock:
            self._outstanding.discard(ar)

    @property
    def outstanding(self) -> set[AsyncResult]:
        """Results not yet complete."""
        with self._lock:
            candidates = list(self._outstanding)
        # done() may finish a result, whose callback takes the lock: ask outside it
        return {ar for ar in candidates if not ar.done()}

    def wait(self, jobs: AsyncResult | Iterable[AsyncResult] | None = None,
             timeout: float | None = -1) -> bool:
        """Wait for ``jobs`` (default: everything outstanding); True if all finished.

        >>> rc.wait([rc[:].apply_async(time.sleep, 0.1)], timeout=5)
        True
        """
        if jobs is None:
            jobs = self.outstanding
        elif isinstance(jobs, AsyncResult):
            jobs = [jobs]
        jobs = list(jobs)
        for job in jobs:
            if not isinstance(job, AsyncResult):
                raise TypeError(f"wait takes AsyncResults, not {type(job).__name__}")
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not job.wait(-1 if left is None else left):
                return False
        return True

    def wait_for_engines(self, n: int | None = None, timeout: float | None = -1,
                         block: bool = True) -> None:
        """Make sure at least ``n`` engines are up (engines start with the client, so this
        only checks); raises TimeoutError naming how many there are."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while self.profile is not None and n is not None and len(self) < n:
            self._refresh()  # engines of a profile may come from elsewhere (the CLI)
            if len(self) >= n or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.2)
        if n is not None and len(self) < n:
            raise error.TimeoutError(f"{len(self)} engines are running, fewer than {n}; "
                                     f"start more with client.add_engines({n - len(self)})")

    # ------------------------------------------------------------------ serializers

    def _use(self, mode: str) -> None:
        serialize.pack(None, mode)  # fails early if the library is missing
        self._serializer = mode

    def use_cloudpickle(self) -> None:
        """Send functions and data with cloudpickle (the default)."""
        self._use("cloudpickle")

    def use_dill(self) -> None:
        """Send functions and data with dill."""
        self._use("dill")

    def use_pickle(self) -> None:
        """Send functions and data with the standard library's pickle."""
        self._use("pickle")

    # ------------------------------------------------------------------ lifetime

    def _check_open(self) -> None:
        if self._closed:
            raise error.RayParallelError("this Client has been shut down or closed; "
                                         "create a new one")

    def _engine_lost(self, engine_id: int) -> None:
        """A result says the engine's process is gone: forget it, unless Ray restarts it."""
        if self.restart_engines:
            self._restarting.add(engine_id)
            return
        with self._lock:
            handle = self._engines.pop(engine_id, None)
            self._info.pop(engine_id, None)
        if handle is not None:
            self._backend.kill(handle)

    def _interrupt(self, ar: AsyncResult, engine_ids: list[int]) -> set[int]:
        """SIGINT to the engines that are running ``ar`` now: those where nothing this
        client sent earlier is still unfinished (an engine runs requests in the order sent;
        a request queued behind another must not interrupt that one)."""
        if not self._backend.concurrent:
            return set()  # nothing runs while the caller is here
        with self._lock:
            others = [o for o in self._outstanding
                      if o is not ar and o._t_submitted < ar._t_submitted]
        busy_before = {eid for o in others if not o.done() for eid in o._unfinished_engines()}
        live = [eid for eid in engine_ids if eid in self._engines and eid not in busy_before]
        if live:
            try:
                self.send_signal(signal.SIGINT, targets=live)
            except (error.EngineError, NotImplementedError):
                pass
        return set(live)

    def remove_engines(self, ids: int | list[int]) -> None:
        """Stop the engines ``ids`` (on a profile, for every client); the rest go on.

        >>> rc.remove_engines([4, 5])
        >>> rc.ids
        [0, 1, 2, 3]
        """
        targets, _ = self._resolve_targets([ids] if isinstance(ids, int) else ids)
        for eid in targets:
            self._backend.kill(self._engines.pop(eid))
            self._info.pop(eid, None)

    def shutdown(self, targets: Any = "all", hub: bool = False, block: bool | None = None) -> None:
        """Stop engines (all by default; a profile's too). ``hub=True`` also stops the Ray
        instance this client started, if it did.

        >>> rc.shutdown()
        """
        if self._closed:
            return
        ids, _ = self._resolve_targets(targets)
        self.remove_engines(ids)
        if hub or targets == "all":
            self._closed = True
        if hub:
            self._backend.shutdown()

    def close(self) -> None:
        """Let go of the engines: a profile's keep running (with their namespaces) for other
        clients; engines this client started on its own are stopped.

        >>> with Client(profile="nbserver") as rc:
        ...     rc[:].apply_sync(os.getpid)
        """
        if self._closed:
            return
        if self.profile is None:
            self.shutdown()
            return
        self._engines.clear()
        self._info.clear()
        self._closed = True

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _repr_html_(self) -> str:
        if self._closed:
            return "<b>rayparallel.Client</b>: closed"
        facts = self._backend.describe()
        by_node: dict[str, list[int]] = {}
        for eid in self.ids:
            info = self._info.get(eid, {})
            where = info.get("node_ip") or info.get("hostname") or "?"
            by_node.setdefault(str(where), []).append(eid)
        rows = "".join(
            f"<tr><td>{html.escape(node)}</td><td>{len(ids)}</td>"
            f"<td>{html.escape(_compact_ids(ids))}</td></tr>" for node, ids in by_node.items())
        address = facts.get("address")
        where = f"{self._backend.name} at <code>{html.escape(str(address))}</code>" \
            if address else html.escape(self._backend.name)
        busy = len(self.outstanding)
        return (f"<div><b>rayparallel.Client</b>: {len(self)} engine"
                f"{'s' if len(self) != 1 else ''} on {len(by_node)} node"
                f"{'s' if len(by_node) != 1 else ''}, {where}; {busy} request"
                f"{'s' if busy != 1 else ''} outstanding"
                f"<table><tr><th>node</th><th>engines</th><th>ids</th></tr>{rows}</table></div>")

    def __repr__(self) -> str:
        if self._closed:
            return "<Client: closed>"
        facts = self._backend.describe()
        nodes = len({i.get("node_id") for i in self._info.values()}) or facts.get("nodes", 0)
        where = f", {self._backend.name} at {facts['address']}" if facts.get("address") else \
            f", {self._backend.name}"
        if self.profile is not None:
            where = f", profile {self.profile!r}{where}"
        return (f"<Client: {len(self)} engine{'s' if len(self) != 1 else ''} on "
                f"{nodes} node{'s' if nodes != 1 else ''}{where}>")


def _compact_ids(ids: list[int]) -> str:
    """``[0, 1, 2, 3, 7]`` as ``0-3, 7``."""
    parts: list[str] = []
    start = prev = None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)
