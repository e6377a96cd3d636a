"""Engines as Ray actors, data through Ray's object store."""

from __future__ import annotations

import atexit
import ctypes
import functools
import itertools
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import ray
import ray._private.utils
import ray.cloudpickle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .. import ipyparallel as alias
from .. import serialize
from ..engine import Engine
from ..reply import Reply, to_wire
from . import TASK_OPTIONS, Backend, Outcome, OutputStream, rayjoin
from .aborts import AbortBoard, mark

__all__ = ["RayBackend", "RayEngine", "ensure_ray", "start_head", "profile_options"]

#: options of Client(...) that are per-engine Ray actor options
ACTOR_OPTIONS = (*TASK_OPTIONS, "max_restarts", "name", "namespace", "lifetime")


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class RayEngine(Engine):
    """An Engine that also knows which Ray node it is on, and whether Ray restarted it."""

    #: requests between two returns of freed memory to the system (see _sent_as_list)
    TRIM_EVERY = 1_000

    def __init__(self, engine_id: int, in_process: bool = False, as_ipyparallel: bool = False):
        super().__init__(engine_id, in_process, as_ipyparallel)
        self._trim = _malloc_trim()
        self._until_trim = self.TRIM_EVERY
        if ray.get_runtime_context().was_current_actor_reconstructed:
            self.pending_note = (f"engine {engine_id} was restarted after its process died: "
                                 "its namespace is empty")
        self.aborts = AbortBoard()  # where clients mark queued calls to skip
        atexit.register(self.aborts.close)

    def info(self) -> dict:
        ctx = ray.get_runtime_context()
        return {**super().info(), "node_id": ctx.get_node_id(),
                "node_ip": ray.util.get_node_ip_address(), "abort_board": self.aborts.path}


def _running_task_id() -> str:
    return ray.get_runtime_context().get_task_id()


def _sent_as_list(method: Callable[..., Reply]) -> Callable[..., list]:
    name = method.__name__

    @functools.wraps(method)
    def send(self: RayEngine, *args: Any, **kwargs: Any) -> list:
        self._until_trim -= 1
        if self._until_trim == 0:
            # A Ray worker's threads each allocate from their own glibc arena; the holes
            # freed requests leave in them stay the process's, and an engine grew ~10 MiB
            # over 100,000 calls (a raw actor too). Handing the free pages back every
            # thousand requests keeps it flat (docs/performance.md, "Memory"), for
            # about 0.2-0.6 ms each time.
            self._until_trim = self.TRIM_EVERY
            if self._trim is not None:
                self._trim(0)
        if self.aborts.is_marked(_running_task_id):
            return to_wire(self.skipped(name))
        return to_wire(method(self, *args, **kwargs))
    return send


# Replies leave the actor as flat lists of plain values (see to_wire): Ray sends those
# without pickling, a tenth of a small request's round trip with a Reply object.
for _name in ("apply", "map", "execute", "push", "pull", "clear", "import_names"):
    setattr(RayEngine, _name, _sent_as_list(getattr(Engine, _name)))

_RemoteEngine = ray.remote(RayEngine)


def ensure_ray(address: str | None = None, *, join: bool = False, min_cpus: int = 0,
               profile: str | None = None, **init_options: Any) -> bool:
    """Connect to Ray (or start a quiet local instance). True if this call started it.

    ``address=None`` joins the cluster at ``RAY_ADDRESS`` or this machine's (see
    :class:`~.rayjoin.ClusterSearch`; for ``profile``, the head holding its engines first),
    if one runs, else starts one for this process, listening on 127.0.0.1 only
    (``init_options["_node_ip_address"]`` set to this machine's address opens it to the
    network). ``join=True`` never starts one, and also looks at Ray's default port;
    ``"auto"`` likewise. A Ray started here offers at least ``min_cpus`` logical CPUs
    (``init_options["num_cpus"]`` wins); a joined cluster keeps its own resources. The
    client joins in the cluster's authentication mode, or ConnectionError says why not.
    """
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "logging_level": logging.ERROR,
               "log_to_driver": False, **init_options}
    # Ray announces token authentication through its logger at WARNING; we keep auth on
    # and the notebook quiet.
    logging.getLogger("ray").setLevel(logging.ERROR)
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address in (None, "auto"):
        search = rayjoin.ClusterSearch(profile, probe_port=join or address == "auto")
        if search.address is None and (join or address == "auto"):
            raise rayjoin.NoClusterHere(_connection_advice(address, None, search.report()))
        if search.address is None:
            if "num_cpus" not in options:
                # ipyparallel runs one load-balanced task per engine at once, even on a
                # 2-core laptop (sleeping or I/O-bound tasks rely on it); Ray would run one
                # per core.
                options["num_cpus"] = max(os.cpu_count() or 1, min_cpus)
            # "local": a new Ray even if a stale record names one that is gone
            with rayjoin.loopback(not _opened(options)):
                ray.init(address="local", **options)
            return True
        address = search.address
    if not address.startswith("ray://"):
        try:
            rayjoin.join_mode(address)
        except ConnectionError as exc:
            raise ConnectionError(f"could not join the Ray cluster at {address}: {exc}") \
                from None
    retried = False
    while True:
        try:
            with rayjoin.loopback(rayjoin.is_loopback(address)):
                ray.init(address=address, **options)
            return True
        except ConnectionError as exc:
            # A Ray Client server (ray://) starts a process for each client; on a busy
            # machine that start can fail once ("Starting Ray client server failed").
            if not retried and "Starting Ray client server failed" in str(exc):
                retried = True
                continue
            raise ConnectionError(_connection_advice(address, exc)) from exc


def _opened(options: dict) -> bool:
    """Whether ``ray.init`` options ask for a Ray reachable from other machines."""
    ip = options.get("_node_ip_address")
    return ip is not None and not rayjoin.is_loopback(f"{ip}:0")


def _task_options(options: dict) -> dict:
    """Ray's names for rayparallel's task options (see Backend.submit)."""
    opts = {k: v for k, v in options.items() if k in TASK_OPTIONS and v is not None}
    retries = options.get("retries")
    if retries:
        # Tasks whose worker died (none by default: see submit_many). Not
        # retry_exceptions: Ray would print each retried exception's traceback in the
        # notebook; tasks retry failed calls themselves.
        opts["max_retries"] = retries
    return opts


def _connection_advice(address: str | None, exc: BaseException | None,
                       looked_at: str = "") -> str:
    chain = f"{exc} {getattr(exc, '__cause__', '')} " \
            f"{getattr(getattr(exc, '__cause__', None), '__cause__', '')}"
    token_mode = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    if "Authentication" in chain or "AuthToken" in chain or (
            str(address).startswith("ray://") and not token_mode):
        return (f"could not connect to the Ray cluster at {address} ({exc}). Clusters "
                "started by Ray 2.52+ want token authentication: set "
                "RAY_AUTH_MODE=token and make the cluster's token available here "
                "(~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH); see "
                "https://docs.ray.io/en/latest/ray-security/token-auth.html")
    if address in (None, "auto"):
        return ("no Ray cluster is running on this machine"
                + (f" (looked at: {looked_at})" if looked_at else "")
                + ": start one with `rayparallel start` (which starts a head if needed) or "
                "`ray start --head`, or give the address of one")
    return f"could not connect to the Ray cluster at {address}: {exc}"


def start_head(port: int | None = None, *, network: bool = False,
               dashboard: bool = False) -> str:
    """Start a Ray head on this machine with ``ray start`` (it outlives this process, so
    engines started on it stay up) and remember it; returns its address.

    It listens on 127.0.0.1 only unless ``network`` (then on all of this machine's
    addresses, Ray's default); token authentication is on (a token is made in
    ``~/.ray/auth_token`` if there is none) unless ``RAY_AUTH_MODE=disabled`` is set;
    the dashboard is off unless ``dashboard``, and then on 127.0.0.1.
    """
    missing = dashboard and ray._private.utils.get_dashboard_dependency_error()
    if missing:
        raise RuntimeError(f"Ray's dashboard needs ray[default] (pip install 'ray[default]'): "
                           f"{missing}; no head was started")
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
               f"--include-dashboard={str(dashboard).lower()}", "--disable-usage-stats"]
    if dashboard:
        command.append("--dashboard-host=127.0.0.1")
    if port is not None:
        command.append(f"--port={port}")
    env = dict(os.environ)
    if not network:
        env.update(rayjoin.LOOPBACK_ENV)
    if (rayjoin.USER_AUTH_MODE or "").lower() != "disabled":
        # `ray start` turns token authentication on only if a token exists already
        rayjoin.ensure_token()
        env["RAY_AUTH_MODE"] = "token"
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        used = rayjoin.port_user(port or rayjoin.DEFAULT_PORT) if port != 0 else None
        where = (f" Port {port or rayjoin.DEFAULT_PORT} on this machine is in use by {used}: "
                 "if that is a Ray head, join it with --address=HOST:PORT (its token is "
                 "needed); else start the head on another port with --port=N.") \
            if used else ""
        raise RuntimeError(f"`ray start --head` failed.{where}\n"
                           f"{done.stderr.strip() or done.stdout}")
    address = ray._private.utils.read_ray_address()
    if address is None:
        raise RuntimeError("`ray start --head` did not say where it runs")
    rayjoin.remember(address)
    return address


# -------------------------------------------------------------------- profiles
# A profile's engines are detached named actors, "engine-<id>" in the Ray namespace
# "rayparallel-<profile>": any process on the cluster can find them, and they outlive it.

_PROFILE_PREFIX = "rayparallel-"


def profile_options(profile: str, engine_id: int) -> dict:
    """Actor options that make an engine belong to ``profile``."""
    return {"name": f"engine-{engine_id}", "namespace": _PROFILE_PREFIX + profile,
            "lifetime": "detached"}


def _named_engines() -> dict[str, dict[int, str]]:
    found: dict[str, dict[int, str]] = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        namespace, name = actor["namespace"], actor["name"]
        if namespace.startswith(_PROFILE_PREFIX) and name.startswith("engine-"):
            eid = name.removeprefix("engine-")
            if eid.isdigit():
                found.setdefault(namespace.removeprefix(_PROFILE_PREFIX), {})[int(eid)] = name
    return found


class _OutputSink:
    """Holds engines' streamed output until the client polls for it (one per driver).

    A plain synchronous actor: each writer's chunks arrive in the order sent, and calls are
    tiny. Engines never wait on it.
    """

    #: most chunks kept per stream; a client that stopped polling cannot fill the memory
    LIMIT = 10_000

    def __init__(self):
        self._chunks: dict[int, list[tuple[int, int, str, str]]] = defaultdict(list)

    def write(self, key: int, engine_id: int, seq: int, name: str, text: str) -> None:
        chunks = self._chunks[key]
        if len(chunks) < self.LIMIT:
            chunks.append((engine_id, seq, name, text))

    def drain(self, key: int) -> list[tuple[int, int, str, str]]:
        return self._chunks.pop(key, [])

    def discard(self, key: int) -> None:
        self._chunks.pop(key, None)


_RemoteSink = ray.remote(num_cpus=0)(_OutputSink)
_sink_lock = threading.Lock()
_sink: tuple[str, Any] | None = None  # (Ray job id, actor handle): one per driver and Ray
_stream_keys = itertools.count(1)


def _output_sink() -> Any:
    global _sink
    job = ray.get_runtime_context().get_job_id()
    with _sink_lock:
        if _sink is None or _sink[0] != job:
            _sink = (job, _RemoteSink.remote())
        return _sink[1]


class _SinkWriter:
    """What engines call: a fire-and-forget ``write`` to the sink (pickled with the call)."""

    def __init__(self, sink: Any, key: int):
        self.sink = sink
        self.key = key

    def __call__(self, engine_id: int, seq: int, name: str, text: str) -> None:
        self.sink.write.remote(self.key, engine_id, seq, name, text)


class RayOutputStream(OutputStream):
    """Engines write to a small sink actor; :meth:`poll` drains this stream's chunks."""

    #: seconds a poll may take (the first one waits for the sink actor to start)
    TIMEOUT = 60

    def __init__(self, sink: Any):
        self._sink = sink
        self._key = next(_stream_keys)
        self.writer = _SinkWriter(sink, self._key)
        self._next: dict[int, int] = defaultdict(int)  # engine -> seq expected next
        self._early: dict[tuple[int, int], tuple[str, str]] = {}

    def poll(self) -> list[tuple[int, str, str]]:
        arrived = ray.get(self._sink.drain.remote(self._key), timeout=self.TIMEOUT)
        for engine_id, seq, name, text in arrived:
            self._early[engine_id, seq] = (name, text)
        ready = []
        for engine_id in sorted({e for e, _ in self._early}):
            while (engine_id, self._next[engine_id]) in self._early:
                name, text = self._early.pop((engine_id, self._next[engine_id]))
                self._next[engine_id] += 1
                ready.append((engine_id, name, text))
        return ready

    def close(self) -> None:
        self._sink.discard.remote(self._key)


def _raylet_up(node: dict) -> bool:
    """Whether the node's raylet still accepts connections. Ray marks a node dead after
    five failed health checks 3 s apart (15 s); a refused connection says at once that
    its raylet is gone, and the node with it (a raylet never comes back under the same
    node id). A timeout proves nothing (a busy or distant node): that is left to Ray."""
    try:
        socket.create_connection((node["NodeManagerAddress"], node["NodeManagerPort"]),
                                 timeout=1).close()
    except ConnectionRefusedError:
        return False
    except (OSError, KeyError):
        pass
    return True


def _send_signal(pid: int, signum: int) -> None:
    os.kill(pid, signum)


_remote_send_signal = ray.remote(num_cpus=0)(_send_signal)
_remote_mark = ray.remote(num_cpus=0)(mark)


def _outcome_of(ref: Any) -> Outcome:
    try:
        return Outcome(True, ray.get(ref))
    except Exception as exc:  # noqa: BLE001 - reported, translated by error.translate
        return Outcome(False, exc)


class RayBackend(Backend):
    """Engines are Ray actors; ``share`` is ``ray.put``; calls are actor method calls and
    pending handles are ObjectRefs."""

    name = "ray"

    def __init__(self, address: str | None = None, init_options: dict | None = None, *,
                 join: bool = False, min_cpus: int = 0, profile: str | None = None):
        self.started_ray = ensure_ray(address, join=join, min_cpus=min_cpus, profile=profile,
                                      **(init_options or {}))
        for name in serialize.BY_VALUE:
            if name in sys.modules:
                ray.cloudpickle.register_pickle_by_value(sys.modules[name])
        self._tasks: dict[Callable, Any] = {}  # fn -> ray.remote(fn), made once each
        self._slots, self._slots_checked = 1, -math.inf

    def start_engines(self, ids: list[int], options: dict) -> list[Any]:
        opts = {k: v for k, v in options.items() if k in ACTOR_OPTIONS and v is not None}
        opts.setdefault("scheduling_strategy", "SPREAD")
        profile = options.get("profile")
        # Engines follow the client: under the ipyparallel alias, theirs is installed too;
        # otherwise their `import ipyparallel` is the real package, if installed there.
        as_ipyparallel = alias.installed()
        return [_RemoteEngine.options(**opts, **(profile_options(profile, i) if profile else {}))
                .remote(i, False, as_ipyparallel) for i in ids]

    def find_engines(self, profile: str) -> dict[int, Any]:
        """The running engines of ``profile``: ``{id: handle}``."""
        names = _named_engines().get(profile, {})
        return {eid: ray.get_actor(name, namespace=_PROFILE_PREFIX + profile)
                for eid, name in sorted(names.items())}

    def profiles(self) -> dict[str, list[int]]:
        """Profiles with engines running on this cluster, and their engine ids."""
        return {p: sorted(ids) for p, ids in sorted(_named_engines().items())}

    def call(self, engine: Any, method: str, *args: Any) -> Any:
        return getattr(engine, method).remote(*args)

    def submit(self, fn: Callable, args: tuple, options: dict) -> Any:
        return self.submit_many(fn, [args], options)[0]

    def submit_many(self, fn: Callable, args_list: Sequence[tuple], options: dict) -> list[Any]:
        task = self._tasks.get(fn)
        if task is None:
            # A task whose worker dies is not run again unless ``retries`` says so: as
            # ipyparallel (retries=0) reports the lost engine at once, where Ray's own
            # default would run it up to 3 more times.
            task = self._tasks[fn] = ray.remote(max_retries=0)(fn)
        opts = _task_options(options)
        if opts:  # .options() builds a new wrapper: once per batch, not per task
            task = task.options(**opts)
        submitted: list[Any] = []
        try:
            for args in args_list:
                submitted.append(task.remote(*args))
        except BaseException:
            for ref in submitted:  # all or nothing: a bad item must not leave half a map
                self.cancel(ref)
            raise
        return submitted

    def task_slots(self) -> int:
        # Asking the cluster costs a round trip to its control store; the answer only
        # changes when nodes come or go, so it is reused for a few seconds.
        now = time.monotonic()
        if now - self._slots_checked > 5:
            self._slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self._slots_checked = now
        return self._slots

    def fetch(self, pending: Sequence[Any], timeout: float | None) -> list[Outcome | None]:
        refs = list(pending)
        if timeout is None:
            ready = set(refs)
        else:
            ready_list, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout,
                                     fetch_local=True)
            ready = set(ready_list)
        if len(ready) == len(refs):
            try:  # one round trip for the common case where nothing failed
                return [Outcome(True, v) for v in ray.get(refs)]
            except Exception:  # noqa: BLE001 - fall back to one outcome per ref
                pass
        return [_outcome_of(r) if r in ready else None for r in refs]

    def wait_any(self, pending: Sequence[Any], timeout: float | None) -> list[Any]:
        return ray.wait(list(pending), num_returns=1, timeout=timeout, fetch_local=True)[0]

    def when_done(self, pending: Any, callback: Callable[[Outcome], None]) -> None:
        def done(future):
            exc = future.exception()
            callback(Outcome(True, future.result()) if exc is None else Outcome(False, exc))

        pending.future().add_done_callback(done)

    def share(self, obj: Any) -> Any:
        return ray.put(obj)

    def is_shared(self, arg: Any) -> bool:
        return isinstance(arg, ray.ObjectRef)

    def kill(self, engine: Any) -> None:
        try:
            ray.kill(engine, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    loses_engines = True

    def lost_engines(self, infos: dict[int, dict]) -> list[int]:
        # Ray shut down under a client still open (at interpreter exit, say): nothing to
        # ask, and asking would start a new local Ray (get_runtime_context initializes it)
        if not ray.is_initialized():
            return []
        ours = ray.get_runtime_context().get_node_id()  # up: we are here
        nodes = {node["NodeID"]: node for node in ray.nodes()}
        wanted = {info.get("node_id") for info in infos.values()} & set(nodes)
        wanted.discard(ours)
        gone = {n for n in wanted if not nodes[n].get("Alive") or not _raylet_up(nodes[n])}
        return [eid for eid, info in infos.items() if info.get("node_id") in gone]

    def skip_queued(self, engine: Any, info: dict, pending: Sequence[Any]) -> bool:
        # Not ray.cancel: Ray 2.60 cancels a queued actor call on the caller's side only
        # (the engine still runs it). The engine's abort board (see aborts.py) is read by
        # the engine itself before each request.
        board = info.get("abort_board")
        if board is None:
            return False
        task_ids = [p.task_id().hex() for p in pending]
        if info.get("node_id") == ray.get_runtime_context().get_node_id():
            return mark(board, task_ids)
        pinned = NodeAffinitySchedulingStrategy(node_id=info["node_id"], soft=False)
        try:
            return ray.get(_remote_mark.options(scheduling_strategy=pinned)
                           .remote(board, task_ids), timeout=60)
        except Exception:  # noqa: BLE001 - the node is gone: the engine with it
            return False

    def cancel(self, pending: Any, *, engine_call: bool = False) -> bool:
        if engine_call:
            return False  # see skip_queued
        try:
            ray.cancel(pending)
        except Exception:  # noqa: BLE001 - finished, or not cancellable
            return False
        return True

    def open_output_stream(self) -> OutputStream:
        return RayOutputStream(_output_sink())

    def signal_engine(self, engine: Any, info: dict, signum: int) -> None:
        # Same node as this driver: signal it directly. Elsewhere: from a zero-CPU task
        # pinned to the engine's node (the engine unblocked SIGINT when it started).
        if info.get("node_id") == ray.get_runtime_context().get_node_id():
            os.kill(info["pid"], signum)
            return
        pinned = NodeAffinitySchedulingStrategy(node_id=info["node_id"], soft=False)
        ray.get(_remote_send_signal.options(scheduling_strategy=pinned)
                .remote(info["pid"], signum), timeout=60)

    def describe(self) -> dict:
        if not ray.is_initialized():
            return {"address": None, "nodes": 0}
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {"address": ray.get_runtime_context().gcs_address, "nodes": len(nodes),
                "resources": ray.cluster_resources()}

    def shutdown(self) -> None:
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
