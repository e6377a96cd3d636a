"""``Cluster``: start engines, connect clients and stop it all, as ipyparallel 8+ documents.

>>> import rayparallel
>>> with rayparallel.Cluster(n=4) as rc:
...     rc[:].apply_sync(lambda: "hi")
['hi', 'hi', 'hi', 'hi']
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import os
import random
import string
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from . import checks, error
from .client import Client

__all__ = ["Cluster", "EngineSet"]

T = TypeVar("T")

#: ipyparallel options for its controller process, launchers, log and connection files.
#: Ray has none of these, so code written for ipyparallel keeps running and is told once.
_IGNORED = ("controller_ip", "controller_location", "controller_args", "delay", "log_level",
            "log", "send_engines_connection_env", "load_profile", "profile_dir",
            "cluster_file", "config", "parent")
#: rayparallel Client options, passed to every client the cluster makes
_CLIENT_OPTIONS = ("local_mode", "num_cpus", "num_gpus", "memory", "resources", "runtime_env",
                   "ray_init", "restart_engines", "block")


@dataclass
class EngineSet:
    """Engines one ``start_engines`` call started: stopped, restarted, signalled together."""

    id: str
    ids: list[int]

    @property
    def n(self) -> int:
        return len(self.ids)


def _launcher_name(value: Any) -> str:
    """``"MPI"``, ``"mpi"``, ``MPIEngineSetLauncher`` (or its name) all as ``"mpi"``."""
    name = (value if isinstance(value, str) else getattr(value, "__name__", str(value))).lower()
    name = name.rsplit(".", 1)[-1]
    for suffix in ("enginesetlauncher", "controllerlauncher", "launcher"):
        name = name.removesuffix(suffix)
    return name


def _refuse_launcher(kind: str, value: Any) -> None:
    name = _launcher_name(value)
    if name == "mpi" and kind == "engines":
        raise ValueError(
            f"engines={value!r}: MPI engines are not available. rayparallel's engines are "
            "Ray actors, not ranks of one mpiexec, so mpi4py's COMM_WORLD does not span them. "
            "Drop engines= to get Ray actor engines (Cluster(n=..., address=...) spreads them "
            "over the Ray cluster's nodes); for collectives between them use "
            "ray.util.collective, or run your MPI program with mpiexec outside rayparallel.")
    if kind == "engines":
        raise ValueError(
            f"engines={value!r}: rayparallel does not launch engine processes; engines are "
            "Ray actors placed on the nodes of a Ray cluster. Start Ray on those machines "
            f"(`ray start --address=HEAD` on each, or Ray's guide for {name}) and pass "
            "Cluster(address=...).")
    raise ValueError(
        f"controller={value!r}: the controller is the Ray cluster's head. Start it where you "
        "want it (`ray start --head` there) and pass Cluster(address=...).")


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # This thread already runs an event loop (Jupyter, an async app): it cannot wait for a
    # coroutine itself, so a helper thread runs it to completion (ipyparallel does the same).
    with ThreadPoolExecutor(1, thread_name_prefix="rayparallel-cluster") as pool:
        return pool.submit(asyncio.run, coro).result()


def _with_sync_twins(cls: type) -> type:
    """Give each public coroutine method ``name`` a blocking ``name_sync``."""
    for name, method in list(vars(cls).items()):
        if inspect.iscoroutinefunction(method) and not name.startswith("_"):
            setattr(cls, f"{name}_sync", _sync_twin(name, method))
    return cls


def _sync_twin(name: str, method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    @functools.wraps(method)
    def twin(self: Any, *args: Any, **kwargs: Any) -> T:
        return _run_sync(method(self, *args, **kwargs))

    twin.__name__ = f"{name}_sync"
    twin.__qualname__ = f"Cluster.{name}_sync"
    twin.__doc__ = f"Blocking :meth:`{name}` (also inside a running event loop)."
    return twin


_at_exit: weakref.WeakSet[Cluster] = weakref.WeakSet()
_worker = ThreadPoolExecutor(1, thread_name_prefix="rayparallel-cluster")
_exiting = False


def _stop_at_exit() -> None:
    global _exiting
    _exiting = True
    for cluster in list(_at_exit):
        try:
            cluster.stop_cluster_sync()
        except Exception:  # noqa: BLE001 - Ray may be gone already; nothing left to report to
            pass


@_with_sync_twins
class Cluster:
    """Engines and the Ray they run on, started and stopped together.

    The ipyparallel ``Cluster``: each async method has a blocking ``_sync`` twin
    (``start_cluster_sync()``), and ``with Cluster(n=4) as rc:`` starts everything, gives a
    connected :class:`Client` and stops it all at the end.

    What the parts mean on Ray:

    * **controller**: Ray itself. ``start_controller`` joins the Ray at ``address`` (or the
      one this process already joined, or the one ``ray start`` runs here) or starts a
      quiet local one; ``stop_controller`` stops Ray only if it started it.
    * **engines**: Ray actors, as for :class:`Client`, in the profile :attr:`ray_profile`
      (``profile`` when ``cluster_id`` is ``""``, else ``profile-cluster_id``), so every
      client of the cluster (``connect_client``, ``Client(profile=cluster.ray_profile)``,
      ``rayparallel status --profile ...``) sees the same engines. Each ``start_engines``
      call makes one :class:`EngineSet`.
    * ``local_mode=True`` (and the other :class:`Client` options: ``num_cpus``,
      ``num_gpus``, ``memory``, ``resources``, ``runtime_env``, ``ray_init``,
      ``restart_engines``, ``block``) go to the clients. In local mode there are no
      profiles: ``connect_client`` returns the one client holding the engines.

    ipyparallel's controller, launcher and log options are accepted and ignored with one
    warning; launchers other than ``"local"`` (MPI, SSH, batch systems) are refused.

    >>> cluster = Cluster(n=2)
    >>> rc = cluster.start_and_connect_sync()
    >>> rc[:].apply_sync(lambda: 1)
    [1, 1]
    >>> cluster.stop_cluster_sync()
    """

    def __init__(self, n: int | None = None, *, profile: str | None = None,
                 cluster_id: str | None = None, address: str | None = None,
                 engines: Any = None, controller: Any = None, engine_timeout: float = 60,
                 shutdown_atexit: bool = True, **kwargs: Any):
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ValueError(f"n must be a whole number >= 0 or None, not {n!r}")
        engines = kwargs.pop("engine_launcher_class", engines)
        controller = kwargs.pop("controller_launcher_class", controller)
        ignored = [k for k in _IGNORED if k in kwargs]
        unknown = sorted(set(kwargs) - set(_IGNORED) - set(_CLIENT_OPTIONS))
        if unknown:
            raise TypeError(f"Cluster() got unexpected keyword arguments: {', '.join(unknown)}")
        for kind, value in (("engines", engines), ("controller", controller)):
            if value is not None:
                if _launcher_name(value) != "local":
                    _refuse_launcher(kind, value)
                ignored.append(f"{kind}={value!r}")
        if ignored:
            warnings.warn(f"Cluster ignores ipyparallel options that have no meaning on Ray "
                          f"(there is no controller process, launcher or log file): "
                          f"{', '.join(ignored)}", UserWarning, stacklevel=2)
        #: engines ``start_engines`` starts by default (None: one per CPU)
        self.n = n
        self.profile = profile or "default"
        if cluster_id is None:  # unique per cluster, as in ipyparallel: time + 4 letters
            letters = "".join(random.choices(string.ascii_lowercase + string.digits, k=4))
            cluster_id = f"{int(time.time())}-{letters}"
        self.cluster_id = cluster_id
        self.address = address
        #: seconds engines may take to start
        self.engine_timeout = engine_timeout
        #: stop engines (and a Ray this cluster started) when the Python process exits
        self.shutdown_atexit = shutdown_atexit
        #: engine sets by id, as ``start_engines`` returns them
        self.engines: dict[str, EngineSet] = {}
        self._options = {k: kwargs[k] for k in _CLIENT_OPTIONS if k in kwargs}
        local = self._options.get("local_mode")
        if local is None:  # as Client: RAYPARALLEL_LOCAL_MODE=1 makes clusters local too
            local = checks.env_flag("RAYPARALLEL_LOCAL_MODE") and profile is None
        self._local = bool(local)
        if self._local:
            self._options["local_mode"] = True
        self._controller: Client | None = None  # joined (or started) Ray; in local mode, all
        self._owner: Client | None = None  # starts and stops the engines
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()  # handed to users
        self._context_client: Client | None = None

    @property
    def ray_profile(self) -> str:
        """The rayparallel profile holding the engines: ``Client(profile=...)`` and
        ``rayparallel status --profile ...`` find them by this name."""
        return self.profile if not self.cluster_id else f"{self.profile}-{self.cluster_id}"

    @property
    def controller(self) -> Client | None:
        """The connection to Ray ``start_controller`` made (a :class:`Client` with no engines
        of its own; in local mode, the one holding the engines), or None."""
        return self._controller

    @property
    def engine_set(self) -> EngineSet | None:
        """The first engine set (most clusters have just one)."""
        return next(iter(self.engines.values()), None)

    def __repr__(self) -> str:
        fields = [f"cluster_id={self.cluster_id!r}", f"profile={self.profile!r}"]
        if self._controller is not None:
            fields.append("controller=<running>")
        if self.engines:
            fields.append(f"engine_sets={list(self.engines)}")
        return f"<Cluster({', '.join(fields)})>"

    # ------------------------------------------------------------------ plumbing

    def _client(self, *args: Any, **kwargs: Any) -> Client:
        options = {**self._options, "timeout": self.engine_timeout, **kwargs}
        if not self._local:
            options.update(address=self.address, local_mode=False)
        return Client(*args, **options)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Starting Ray and engines blocks for seconds: off the event loop, so a notebook's
        # other tasks go on. Local-mode engines live in this process and start at once.
        # One long-lived thread, not asyncio.to_thread: Ray's processes die with the thread
        # that started them (PR_SET_PDEATHSIG), and an event loop's threads come and go.
        if self._local or _exiting:  # at exit, Python has already stopped that thread
            return fn(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            _worker, functools.partial(fn, *args, **kwargs))

    def _start_owner(self, n: int) -> list[int]:
        try:  # the profile may have engines already (another process, the CLI)
            self._owner = self._client(profile=self.ray_profile)
        except error.NoSuchProfile:
            self._owner = self._client(n, profile=self.ray_profile)
            return self._owner.ids
        return self._owner.add_engines(n)

    def _release(self, ids: list[int]) -> list[Client]:
        """Stop engines ``ids``; every client holding them lets go of them (as engines leave
        ipyparallel clients when they unregister). Returns those other clients."""
        holders = [c for c in {self._owner, *self._clients} if c is not None
                   and any(e in c.ids for e in ids)]  # a closed client holds none
        for client in holders:
            client.remove_engines([e for e in ids if e in client.ids])
        return [c for c in holders if c is not self._owner]

    def _stop_at_exit(self) -> None:
        if self.shutdown_atexit:
            _at_exit.add(self)
            # After ray.init, which registers Ray's own exit handler: ours must run first
            # (handlers run last-registered first), while the engines can still be reached.
            atexit.unregister(_stop_at_exit)
            atexit.register(_stop_at_exit)

    # ------------------------------------------------------------------ starting

    async def start_controller(self) -> None:
        """Join Ray (``address``, or the Ray this process or ``ray start`` runs), or start
        a quiet local one. RuntimeError if already done.

        >>> cluster.start_controller_sync()
        """
        if self._controller is not None:
            raise RuntimeError("the controller is already running; call stop_controller() "
                               "first")
        self._controller = await self._call(self._client, 0)
        self._local = self._controller.local_mode
        if self._local:
            self._owner = self._controller
        self._stop_at_exit()

    async def start_engines(self, n: int | None = None, engine_set_id: str | None = None
                            ) -> str:
        """Start ``n`` engines (default: ``self.n``, else one per CPU) as one engine set,
        starting the controller first if needed; returns the set's id.

        >>> set_id = cluster.start_engines_sync(2)
        >>> cluster.engines[set_id].ids
        [0, 1]
        """
        if n is None:
            n = self.n if self.n is not None else (os.cpu_count() or 1)
        if engine_set_id is None:
            engine_set_id = base = str(int(time.time()))
            count = 1
            while engine_set_id in self.engines:
                engine_set_id, count = f"{base}-{count}", count + 1
        elif engine_set_id in self.engines:
            raise ValueError(f"engine set {engine_set_id!r} exists; stop it first")
        if self._controller is None:
            await self.start_controller()
        if not n:
            ids: list[int] = []
        elif self._owner is None:
            ids = await self._call(self._start_owner, n)
        else:
            ids = await self._call(self._owner.add_engines, n)
        self.engines[engine_set_id] = EngineSet(engine_set_id, ids)
        return engine_set_id

    async def start_cluster(self, n: int | None = None) -> Cluster:
        """Start the controller (if not running) and ``n`` engines; returns the cluster.

        >>> cluster.start_cluster_sync(4) is cluster
        True
        """
        if self._controller is None:
            await self.start_controller()
        await self.start_engines(n)
        return self

    async def connect_client(self, **client_kwargs: Any) -> Client:
        """A :class:`Client` on the cluster's engines. Closing it leaves them running (in
        local mode the one client holding them is returned: closing it stops them).

        >>> _ = cluster.start_cluster_sync()
        >>> rc = cluster.connect_client_sync()
        """
        if self._controller is None:
            raise RuntimeError("the cluster is not running: call start_cluster() first")
        if self._local:
            client = self._controller
        else:
            try:
                client = await self._call(self._client, profile=self.ray_profile,
                                          **client_kwargs)
            except error.NoSuchProfile:
                raise error.NoEnginesRegistered(
                    f"cluster {self.cluster_id!r} has no engines yet: on Ray, clients find "
                    "engines rather than a controller; call start_engines(n) first") from None
        client.cluster = self  # as ipyparallel's Client.cluster
        self._clients.add(client)
        return client

    async def start_and_connect(self, n: int | None = None, activate: bool = False) -> Client:
        """Start the cluster and return a connected client, once its engines are up.
        ``activate=True`` points ``%px`` at them (blocking).

        >>> rc = cluster.start_and_connect_sync(activate=True)
        >>> len(rc)
        2
        """
        await self.start_cluster(n)
        client = await self.connect_client()
        await self.wait_for_engines(timeout=self.engine_timeout)
        if activate:
            view = client[:]
            view.block = True
            view.activate()
        return client

    async def wait_for_engines(self, n: int | None = None, timeout: float | None = None
                               ) -> None:
        """Wait until the cluster has ``n`` engines (default: as many as it started),
        counting those others add to its profile; rayparallel.TimeoutError if not in time.

        >>> _ = cluster.start_cluster_sync(2)
        >>> cluster.wait_for_engines_sync(2, timeout=30)
        """
        if n is None:
            n = sum(es.n for es in self.engines.values())
        if self._owner is None:
            if n:
                raise error.TimeoutError(f"the cluster has no engines, fewer than {n}")
            return
        await self._call(self._owner.wait_for_engines, n, -1 if timeout is None else timeout)

    # ------------------------------------------------------------------ stopping

    async def stop_engines(self, engine_set_id: str | None = None) -> None:
        """Stop an engine set (KeyError if there is none of that id), or all of them.

        >>> cluster.stop_engines_sync()
        """
        for set_id in list(self.engines) if engine_set_id is None else [engine_set_id]:
            await self._call(self._release, self.engines[set_id].ids)
            del self.engines[set_id]

    async def restart_engines(self, engine_set_id: str | None = None) -> None:
        """Replace an engine set's engines (or all) by as many new ones, with new ids and
        empty namespaces. The clients that held the old ones get the new ones.

        >>> cluster.restart_engines_sync()
        """
        for set_id in list(self.engines) if engine_set_id is None else [engine_set_id]:
            n = self.engines[set_id].n
            holders = await self._call(self._release, self.engines.pop(set_id).ids)
            await self.start_engines(n, set_id)
            for client in holders:  # profile clients pick up the new engines by waiting
                await self._call(client.wait_for_engines, len(self._owner), self.engine_timeout)

    async def signal_engines(self, signum: int | str, engine_set_id: str | None = None
                             ) -> None:
        """Send a signal to an engine set's processes (or all engines'). SIGINT interrupts
        what they run (KeyboardInterrupt there); they keep their namespaces.

        >>> import signal
        >>> cluster.signal_engines_sync(signal.SIGINT)
        """
        sets = self.engines.values() if engine_set_id is None else [self.engines[engine_set_id]]
        ids = [e for es in sets for e in es.ids]
        if ids:
            await self._call(self._owner.send_signal, signum, ids)

    async def stop_controller(self) -> None:
        """Let go of Ray, stopping it if this cluster started it (and with it all its
        engines). Does nothing if not running.

        >>> cluster.stop_controller_sync()
        """
        controller, self._controller = self._controller, None
        _at_exit.discard(self)
        if controller is None:
            return
        await self._call(controller.shutdown, hub=True)
        if self._local or not _ray_is_up():
            self._owner = None  # its engines went with it
            self.engines.clear()

    async def stop_cluster(self) -> None:
        """Stop all engines, then the controller.

        >>> cluster.stop_cluster_sync()
        """
        await self.stop_engines()
        await self.stop_controller()

    # ------------------------------------------------------------------ with

    async def __aenter__(self) -> Client:
        self._context_client = await self.start_and_connect()
        return self._context_client

    async def __aexit__(self, *exc: Any) -> None:
        if self._context_client is not None:
            self._context_client.close()
            self._context_client = None
        await self.stop_cluster()

    def __enter__(self) -> Client:
        self._context_client = self.start_and_connect_sync()
        return self._context_client

    def __exit__(self, *exc: Any) -> None:
        if self._context_client is not None:
            self._context_client.close()
            self._context_client = None
        self.stop_cluster_sync()

    # ------------------------------------------------------------------ attaching

    @classmethod
    def from_file(cls, cluster_file: str | None = None, *, profile: str | None = None,
                  profile_dir: str | None = None, cluster_id: str = "", **kwargs: Any
                  ) -> Cluster:
        """Attach to running engines: with the default ``cluster_id=""``, those of
        ``rayparallel start --profile NAME`` (ipyparallel's ``ipcluster start``). Their
        engines form one set; the cluster does not stop them at exit unless asked to
        (``stop_cluster()``). NoSuchProfile if none run.

        After ``rayparallel start --profile nbserver -n 4``::

            cluster = Cluster.from_file(profile="nbserver")
            rc = cluster.connect_client_sync()
        """
        if cluster_file is not None:
            raise ValueError("rayparallel keeps no cluster files: engines are found on Ray "
                             "by profile; use Cluster.from_file(profile=..., cluster_id=...)")
        if profile_dir is not None:
            kwargs["profile_dir"] = profile_dir  # ignored, with the warning
        kwargs.setdefault("shutdown_atexit", False)  # they were running before us
        cluster = cls(profile=profile, cluster_id=cluster_id, **kwargs)
        if cluster._local:
            raise ValueError("local mode runs engines in this process; it cannot attach to "
                             "a profile's engines on Ray")
        cluster._owner = cluster._client(profile=cluster.ray_profile)  # joins, never starts
        cluster._controller = cluster._client(0)  # the Ray the owner joined
        set_id = str(int(time.time()))
        cluster.engines[set_id] = EngineSet(set_id, cluster._owner.ids)
        cluster._stop_at_exit()
        return cluster


def _ray_is_up() -> bool:
    import ray  # only on the Ray path: local mode never imports Ray

    return ray.is_initialized()
