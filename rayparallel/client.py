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
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

from . import checks, error
from .backend import Backend
from .backend.connect import open_backend
from .broadcast import BroadcastView
from .clientinternals import IpyparallelClientInternals
from .clientwait import ClientWaiting
from .display import compact_ids
from .hubclient import TaskDatabaseAPI
from .loadbalanced import LoadBalancedView
from .session import Session
from .view import DirectView

__all__ = ["Client"]


class Client(ClientWaiting, IpyparallelClientInternals, TaskDatabaseAPI):
    """A connection to a set of engines.

    Parameters
    ----------
    num_engines
        How many engines to start (default 4).
    address
        Ray to join: ``None`` joins the Ray already initialised in this process, or this
        machine's cluster, or starts a quiet local one (no dashboard, listening on
        127.0.0.1 only); ``"auto"``, ``"host:6379"`` or ``"ray://host:10001"`` join an
        existing cluster, in its authentication mode (ConnectionError says why if not).
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
        Extra keyword arguments for ``ray.init`` when this client starts Ray
        (``{"_node_ip_address": "<this machine's address>"}`` opens it to other machines:
        see the README's Security).
    restart_engines
        If an engine's process dies, Ray starts it again (with an empty namespace; the next
        result from it warns with :class:`~rayparallel.error.EngineRestarted`). Without it,
        a dead engine leaves ``ids``. Either way, what was running there fails with
        :class:`~rayparallel.error.EngineError`.
    local_mode
        Run engines and tasks in this process, without Ray (for tests and debugging; see
        :mod:`rayparallel.backend.local`). The environment variable
        ``RAYPARALLEL_LOCAL_MODE=1`` makes it the default for every client.
    context
        Accepted for code written for ipyparallel (a zmq Context) and ignored: Ray does
        the messaging.
    url_file
        ipyparallel's connection file: there is none on Ray, so giving one is an error
        that says to use ``address`` or ``profile``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Client:
        # A __new__ of its own: patching Client.__new__ (mock.patch.object, as tests of code
        # written for ipyparallel do) deletes the patch afterwards, and a class whose
        # patched-then-deleted __new__ was object's can no longer be called with arguments.
        return super().__new__(cls)

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
        context: Any = None,
        url_file: str | None = None,
    ):
        if isinstance(num_engines, str) or url_file is not None:
            raise TypeError(
                f"ipyparallel connection files ({url_file or num_engines!r}) do not apply: "
                "there is no controller on Ray. Join a cluster with Client(address=...) or "
                "a profile's engines with Client(profile=...)")
        if num_engines is None:
            num_engines = 0 if profile is not None else 4
        checks.whole_number(num_engines, "num_engines")
        self.block = block
        if local_mode is None:
            local_mode = checks.env_flag("RAYPARALLEL_LOCAL_MODE") and profile is None
        if backend is None:
            backend = open_backend(address, profile=profile, local_mode=local_mode,
                                   ray_init=ray_init, min_cpus=num_engines)
        engine_options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "memory": memory,
                          "resources": resources, "runtime_env": runtime_env,
                          # Work in flight when an engine dies fails (never re-runs on an
                          # empty namespace); the engine itself comes back.
                          "max_restarts": -1 if restart_engines else None}
        #: the :class:`~rayparallel.cluster.Cluster` that made this client, if one did
        self.cluster: Any = None
        #: the machinery views, results and magics share (engines, outstanding results)
        self.session = Session(backend, profile=profile, engine_options=engine_options,
                               restart_engines=restart_engines, timeout=timeout)
        if profile is not None:
            self.session.attach(num_engines)
        elif num_engines:
            self.session.add_engines(num_engines)
        self._init_results()
        self._activate_magics()

    @property
    def profile(self) -> str | None:
        """The profile whose engines this client uses (they outlive it), or None."""
        return self.session.profile

    @property
    def restart_engines(self) -> bool:
        """Whether Ray brings engines whose process died back (with empty namespaces)."""
        return self.session.restart_engines

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`shutdown` let go of the engines.

        >>> with Client(num_engines=1) as c:
        ...     pass
        >>> c.closed
        True
        """
        return self.session.closed

    @property
    def local_mode(self) -> bool:
        """True if engines run in this process (``Client(local_mode=True)``)."""
        return self.session.backend.name == "local"

    # ------------------------------------------------------------------ engines

    def add_engines(self, n: int, timeout: float | None = None) -> list[int]:
        """Start ``n`` more engines and wait until they are ready; returns their ids.
        On a profile, they join the profile and outlive this client.

        >>> rc.add_engines(2)
        [4, 5]
        """
        return self.session.add_engines(n, timeout)

    @property
    def ids(self) -> list[int]:
        """The ids of the engines, in order.

        >>> rc.ids
        [0, 1, 2, 3]
        """
        return self.session.ids

    def __len__(self) -> int:
        return len(self.session.ids)

    def engine_info(self) -> dict[int, dict]:
        """Where each engine runs: ``{id: {pid, hostname, node_id, ...}}``.

        >>> rc.engine_info()[0]["engine_id"]
        0
        """
        return {eid: self.session.info(eid) for eid in self.ids}

    def engine_status(self, timeout: float = 1.0) -> dict[int, dict]:
        """:meth:`engine_info` plus each engine's ``state``: ``idle``, ``busy`` (it did not
        answer within ``timeout`` s: it is running something) or ``dead``, and ``names``
        (how many names its namespace holds).

        >>> rc.engine_status()[0]["state"]
        'idle'
        """
        return self.session.status(timeout)

    # ------------------------------------------------------------------ views

    def __getitem__(self, key: int | slice | list[int]) -> DirectView:
        """``rc[0]``, ``rc[::2]``, ``rc[1:3]``, ``rc[[1, 3]]``, ``rc[:]``: a DirectView.

        >>> rc[::2]
        <DirectView [0, 2]>
        """
        if key is None:  # direct_view(None) means every engine; rc[None] is a mistake
            raise TypeError("targets must be 'all', an int, a slice or a list of ints, not "
                            "None (every engine: rc[:])")
        self.session.check_open()
        if not self.ids:
            raise error.NoEnginesRegistered(
                "this client has no engines (they were stopped, or their processes died); "
                "start some with client.add_engines(N)")
        if not self.session.resolve_targets(key)[0]:
            raise IndexError(f"no engines match {key!r}; engines: {self.ids}")
        return self.direct_view(key)

    def __iter__(self) -> Iterator[DirectView]:
        return (self.direct_view(eid) for eid in self.ids)

    def direct_view(self, targets: Any = "all") -> DirectView:
        """A DirectView on ``targets``, resolved to engine ids now (``-1``: the last
        engine); ``'all'`` stays ``'all'`` and follows the engines as they come and go.

        >>> rc.direct_view("all").apply_sync(lambda: 1)
        [1, 1, 1, 1]
        >>> rc.direct_view(-1).targets, rc.direct_view(slice(0, 2)).targets
        (3, [0, 1])
        """
        return DirectView(self, self._view_targets(targets))

    def _view_targets(self, targets: Any) -> Any:
        """``targets`` as a view keeps them: ``'all'`` (following the engines as they come
        and go), one engine id, or a list of ids (negative indices and slices resolved)."""
        if targets is None or checks.is_all(targets):
            self.session.resolve_targets(targets)  # a closed client says so now
            return "all"
        ids, single = self.session.resolve_targets(targets)
        return ids[0] if single else ids

    def broadcast_view(self, targets: Any = "all", is_coalescing: bool = False,
                       **flags: Any) -> BroadcastView:
        """A :class:`~rayparallel.broadcast.BroadcastView`: a DirectView (see there for
        what broadcasting means on Ray).

        >>> rc.broadcast_view([0, 1]).apply_sync(lambda: 2)
        [2, 2]
        """
        view = BroadcastView(self, self._view_targets(targets), is_coalescing=is_coalescing)
        view.set_flags(**flags)
        return view

    def load_balanced_view(self, targets: Any = None, **flags: Any) -> LoadBalancedView:
        """A LoadBalancedView: work goes to Ray tasks across the cluster, or, with
        ``targets``, to whichever of those engines is free.

        >>> lview = rc.load_balanced_view()
        >>> lview.map_sync(lambda x: x * x, range(4))
        [0, 1, 4, 9]
        """
        if targets is not None:
            # one engine, a slice or negative ids: the list of engine ids, as ipyparallel
            resolved = self._view_targets(targets)
            targets = [resolved] if checks.is_int(resolved) else resolved
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
        from .magics import register_magics, registered_view  # IPython's: only when used

        current = registered_view(shell)
        if current is not None and not current.client.closed:
            return  # as in ipyparallel, %px stays with the first client until it closes
        view = self.direct_view("all")
        view.block = True  # %px waits by default, as in ipyparallel
        register_magics(shell, view)

    def activate(self, targets: Any = "all", suffix: str = "") -> DirectView:
        """Make a DirectView on ``targets`` and register the parallel magics for it
        (``%px``, ``%%px``, ``%pxresult``, ``%pxconfig``, ``%autopx``, each with ``suffix``).

        In IPython::

            rc.activate([0, 1], suffix="_01")
            %px_01 print("hi")
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

        On Ray::

            ar = rc[:].execute("import time; time.sleep(60)")
            rc.send_signal("SIGINT")
            ar.get()  # CompositeError: ... [0:execute] KeyboardInterrupt ...
        """
        self.session.send_signal(sig, targets)

    # ------------------------------------------------------------------ results


    @property
    def history(self) -> list[str]:
        """msg_ids of the requests this client sent, oldest first: the newest 10,000
        (``session.history.limit``), so that a long ``imap`` does not fill memory.

        >>> ar = rc[0].apply_async(abs, -1)
        >>> rc.history[-1] == ar.msg_ids[0]
        True
        """
        return self.session.history

    def clear(self, targets: Any = None, block: bool | None = None) -> Any:
        """Empty the namespaces of the engines ``targets`` (default: all).

        >>> rc.clear(block=True)
        [None, None, None, None]
        """
        return self.direct_view(targets).clear(block=block)

    def abort(self, jobs: Any = None, targets: Any = None, block: bool | None = None) -> None:
        """Abort ``jobs`` (AsyncResults, msg_ids or history indices; default: everything
        outstanding, or, with ``targets``, everything sent to those engines). Parts not
        started fail with TaskAborted; code running for them is interrupted (see
        :meth:`AsyncResult.abort`). Done before this returns; ``block`` is accepted for
        ipyparallel compatibility.

        >>> busy = rc[0].apply_async(time.sleep, 0.1)
        >>> queued = rc[0].apply_async(abs, -1)
        >>> rc.abort(queued)
        >>> queued.get()
        Traceback (most recent call last):
        ...
        rayparallel.error.TaskAborted: ...
        """
        results = self.session.find(jobs)
        if targets is not None:
            ids = set(self.session.resolve_targets(targets)[0])
            results = [ar for ar in results if ids.intersection(ar.engine_ids)]
        # Newest first: every request still queued behind an older one is failed before
        # the older one is interrupted, so none can slip into the engine as it frees up.
        for ar in sorted(results, key=lambda ar: ar.submitted, reverse=True):
            ar.abort()

    def queue_status(self, targets: Any = "all", verbose: bool = False) -> dict:
        """What is queued where, in ipyparallel's shape: ``{engine_id: {'queue', 'completed',
        'tasks'}, 'unassigned': n}`` (one engine's dict for an int ``targets``). Ray has no
        hub queue: ``queue`` counts this client's requests sent to the engine and not yet
        replied (running or waiting), ``completed`` those that replied, ``tasks`` is 0 (no
        per-engine task queue) and ``unassigned`` counts load-balanced requests not done.
        ``verbose`` lists msg_ids instead of counts (``completed`` stays a count).

        >>> rc.queue_status(0)
        {'queue': 0, 'completed': 0, 'tasks': 0}
        """
        return self.session.queue_status(targets, verbose)


    # ------------------------------------------------------------------ serializers

    def use_cloudpickle(self) -> None:
        """Send functions and data with cloudpickle (the default).

        >>> rc.use_cloudpickle()
        """
        self.session.serializer = "cloudpickle"

    def use_dill(self) -> None:
        """Send data with dill (functions still travel by value, see ``DirectView.use_dill``).

        >>> rc.use_dill()
        """
        self.session.serializer = "dill"

    def use_pickle(self) -> None:
        """Send data with the standard library's pickle (functions still travel by value,
        see ``DirectView.use_pickle``).

        >>> rc.use_pickle()
        """
        self.session.serializer = "pickle"

    # ------------------------------------------------------------------ lifetime

    def remove_engines(self, ids: int | list[int]) -> None:
        """Stop the engines ``ids`` (on a profile, for every client); the rest go on.

        >>> rc.remove_engines([2, 3])
        >>> rc.ids
        [0, 1]
        """
        targets, _ = self.session.resolve_targets([ids] if checks.is_engine_id(ids) else ids)
        self.session.remove_engines(targets)

    def shutdown(self, targets: Any = "all", hub: bool = False, block: bool | None = None) -> None:
        """Stop engines (all by default; a profile's too). ``hub=True`` also stops the Ray
        instance this client started, if it did.

        >>> rc.shutdown()
        """
        session = self.session
        if session.closed:
            return
        ids, _ = session.resolve_targets(targets)
        session.remove_engines(ids)
        if hub or checks.is_all(targets):
            session.closed = True
        if hub:
            session.backend.shutdown()

    def close(self) -> None:
        """Let go of the engines: a profile's keep running (with their namespaces) for other
        clients; engines this client started on its own are stopped.

        >>> with Client(num_engines=1) as rc:
        ...     rc[:].apply_sync(abs, -1)
        [1]
        """
        if self.session.closed:
            return
        if self.profile is None:
            self.shutdown()
            return
        self.session.forget_engines()
        self.session.closed = True

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _repr_html_(self) -> str:
        if self.session.closed:
            return "<b>rayparallel.Client</b>: closed"
        backend = self.session.backend
        facts = backend.describe()
        by_node: dict[str, list[int]] = {}
        for eid, info in self.engine_info().items():
            where = info.get("node_ip") or info.get("hostname") or "?"
            by_node.setdefault(str(where), []).append(eid)
        rows = "".join(
            f"<tr><td>{html.escape(node)}</td><td>{len(ids)}</td>"
            f"<td>{html.escape(compact_ids(ids))}</td></tr>" for node, ids in by_node.items())
        address = facts.get("address")
        where = f"{backend.name} at <code>{html.escape(str(address))}</code>" \
            if address else html.escape(backend.name)
        busy = len(self.outstanding)
        return (f"<div><b>rayparallel.Client</b>: {len(self)} engine"
                f"{'s' if len(self) != 1 else ''} on {len(by_node)} node"
                f"{'s' if len(by_node) != 1 else ''}, {where}; {busy} request"
                f"{'s' if busy != 1 else ''} outstanding"
                f"<table><tr><th>node</th><th>engines</th><th>ids</th></tr>{rows}</table></div>")

    def __repr__(self) -> str:
        if self.session.closed:
            return "<Client: closed>"
        backend = self.session.backend
        facts = backend.describe()
        nodes = len({i.get("node_id") for i in self.engine_info().values()}) or \
            facts.get("nodes", 0)
        where = f", {backend.name} at {facts['address']}" if facts.get("address") else \
            f", {backend.name}"
        if self.profile is not None:
            where = f", profile {self.profile!r}{where}"
        return (f"<Client: {len(self)} engine{'s' if len(self) != 1 else ''} on "
                f"{nodes} node{'s' if nodes != 1 else ''}{where}>")
