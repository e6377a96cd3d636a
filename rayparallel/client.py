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
    block
        Default blocking mode of views made from this client.
    timeout
        Seconds to wait for engines to start before saying why they did not.
    num_cpus, num_gpus, memory, resources, runtime_env
        Ray resources and environment of each engine. By default an engine reserves no CPU
        once running, so 8 engines fit on a 2-core laptop next to load-balanced tasks.
    ray_init
        Extra keyword arguments for ``ray.init`` when this client starts Ray.
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
        backend: Backend | None = None,
    ):
        if profile is not None:
            raise ValueError(
                f"no engines are running for profile {profile!r}: profiles of named engines "
                "are not available yet; use Client(num_engines=N)")
        if num_engines is None:
            num_engines = 4
        if not isinstance(num_engines, int) or isinstance(num_engines, bool) or num_engines < 0:
            raise ValueError(f"num_engines must be a whole number >= 0, not {num_engines!r}")
        self.block = block
        self._serializer = "cloudpickle"
        self._engine_options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory,
                                "resources": resources, "runtime_env": runtime_env}
        self._timeout = timeout
        if backend is None:
            from .backend.ray import RayBackend

            backend = RayBackend(address, ray_init)
        self._backend = backend
        self._engines: dict[int, Any] = {}
        self._info: dict[int, dict] = {}
        self._next_id = 0
        self._outstanding: set[AsyncResult] = set()
        self._lock = threading.Lock()
        self._closed = False
        if num_engines:
            self.add_engines(num_engines)
        self._activate_magics()

    # ------------------------------------------------------------------ engines

    def add_engines(self, n: int, timeout: float | None = None) -> list[int]:
        """Start ``n`` more engines and wait until they are ready; returns their ids.

        >>> rc.add_engines(2)
        [4, 5]
        """
        self._check_open()
        ids = list(range(self._next_id, self._next_id + n))
        self._next_id += n
        handles = self._backend.start_engines(ids, self._engine_options)
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

    def _handle(self, engine_id: int) -> Any:
        try:
            return self._engines[engine_id]
        except KeyError:
            raise IndexError(f"engine {engine_id} is not registered; engines: {self.ids}") from None

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
        if Future.done(ar):  # finished before it was remembered: its _forget came first
            self._forget(ar)

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

    def shutdown(self, targets: Any = "all", hub: bool = False, block: bool | None = None) -> None:
        """Stop engines (all by default). ``hub=True`` also stops the Ray instance this
        client started, if it did.

        >>> rc.shutdown()
        """
        if self._closed:
            return
        ids, _ = self._resolve_targets(targets)
        for eid in ids:
            self._backend.kill(self._engines.pop(eid))
            self._info.pop(eid, None)
        if hub or targets == "all":
            self._closed = True
        if hub:
            self._backend.shutdown()

    def close(self) -> None:
        """Stop this client's engines and release them."""
        self.shutdown()

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
