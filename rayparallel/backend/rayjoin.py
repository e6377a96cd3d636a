"""Finding and joining a Ray cluster: which one runs on this machine, whether it wants a
token, and keeping the Ray rayparallel starts on the loopback address.

Ray 2.60 decides a driver's authentication from where the address came from, not from the
cluster: it turns token authentication on for a cluster it finds on this machine whenever a
token exists here (``~/.ray/auth_token`` is made by any earlier ``ray.init()``), and never
for an address given to it. A driver whose mode differs from its cluster's connects, but the
cluster's processes then cannot call it back, and its actors are "cancelled before they
started". So rayparallel asks the cluster itself (one unauthenticated call to its control
store) and joins in the cluster's mode, or says why it cannot.

Heads that ``rayparallel start`` starts are remembered in a small file (see
:func:`state_dir`), with the profiles started on them: Ray keeps only one record of "this
machine's cluster" (``ray_current_cluster``), which any other Ray started and stopped on
the machine overwrites or removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import ray
import ray._common.utils
import ray._private.ray_constants as ray_constants
import ray._private.utils
from ray._raylet import AuthenticationTokenLoader, Config

__all__ = ["ClusterSearch", "NoClusterHere", "gcs_status", "join_mode", "loopback", "remember",
           "state_dir", "token_source"]

#: the port ``ray start --head`` uses unless told otherwise
DEFAULT_PORT = ray_constants.DEFAULT_PORT
#: RAY_AUTH_MODE as the user's environment had it before Ray could change it (ray.init()
#: starting a local Ray sets it to "token" in this process)
USER_AUTH_MODE = os.environ.get("RAY_AUTH_MODE")
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

OK, WANTS_TOKEN, SILENT = "ok", "wants a token", "silent"


class NoClusterHere(ConnectionError):
    """No Ray cluster answers on this machine where one was looked for."""


def gcs_status(address: str, token: str | None = None, timeout: float = 3.0) -> str:
    """Ask the Ray control store (GCS) at ``host:port`` for its cluster id, sending
    ``token`` if given: ``"ok"``, ``"wants a token"`` (it refused the call: no token, or
    not its token) or ``"silent"`` (nothing answers there).

    >>> gcs_status("127.0.0.1:1", timeout=0.5)
    'silent'
    """
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout,
                              metadata=metadata, wait_for_ready=False)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return WANTS_TOKEN
            return SILENT
    return OK


def _token() -> str | None:
    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    if not loader.has_token(ignore_auth_mode=True):
        return None
    return loader.get_raw_token(ignore_auth_mode=True)


def ensure_token() -> None:
    """Make a token in ``~/.ray/auth_token`` if this process has none (as ``ray.init()``
    does for the Ray it starts)."""
    if _token() is None:
        from ray._private.authentication.authentication_token_setup import (
            generate_and_save_token,
        )

        generate_and_save_token()
        AuthenticationTokenLoader.instance().reset_cache()


def token_source() -> str:
    """Where Ray takes this process's token from (for messages)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
    return "~/.ray/auth_token"


def _set_auth_mode(mode: str) -> None:
    os.environ["RAY_AUTH_MODE"] = mode
    Config.initialize("")  # Ray reads its config (and so the mode) again, as it does itself


def join_mode(address: str) -> None:
    """Put this process in the authentication mode of the cluster whose control store is at
    ``address`` (token or none), as its own processes are; ConnectionError naming the cause
    if it cannot join: nothing answers, it refused this client's credentials, no token
    here, or this environment insists on a mode the cluster does not use."""
    status = gcs_status(address)
    asked = (USER_AUTH_MODE or "").lower()
    if status == SILENT:
        raise ConnectionError("nothing answers there: no Ray cluster runs at that address "
                              "(or a firewall is in the way)")
    if status == OK:
        if asked == "token":
            raise ConnectionError(
                "the cluster does not use token authentication, but "
                "RAY_AUTH_MODE=token is set here: its processes could not call this client "
                "back (its engines would be cancelled before they start). Unset "
                "RAY_AUTH_MODE, or start the cluster with RAY_AUTH_MODE=token")
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
            _set_auth_mode("disabled")  # Ray turned it on in this process, not the user
        return
    token = _token()
    if asked == "disabled":
        raise ConnectionError(
            "the cluster wants token authentication, but RAY_AUTH_MODE="
            "disabled is set here: unset it and make the cluster's token available "
            "(~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)")
    if token is None:
        raise ConnectionError(
            "the cluster wants token authentication and this client has "
            "no token: copy the cluster's token (`ray get-auth-token` on its head) to "
            "~/.ray/auth_token here, or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH")
    if gcs_status(address, token) != OK:
        raise ConnectionError(
            "the cluster refused this client's credentials: the token "
            f"from {token_source()} is not this cluster's. Use the cluster's token "
            "(`ray get-auth-token` on its head)")
    _set_auth_mode("token")


def is_loopback(address: str | None) -> bool:
    """Whether ``host:port`` names this machine's loopback address.

    >>> is_loopback("127.0.0.1:6379"), is_loopback("10.0.0.2:6379")
    (True, False)
    """
    return address is not None and address.rsplit(":", 1)[0] in _LOOPBACK


@contextlib.contextmanager
def loopback(on: bool = True) -> Iterator[None]:
    """Within it, Ray takes this machine's address to be 127.0.0.1 (as it does on macOS
    and Windows): a Ray started here listens on loopback only, and a loopback address given
    to ``ray.init`` stays one (Ray otherwise swaps 127.0.0.1 for the machine's network
    address, where a loopback-only head does not answer)."""
    if not on:
        yield
        return
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


#: for ``ray start --head``: environment that makes the head's processes use 127.0.0.1
LOOPBACK_ENV = {ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0"}


# ------------------------------------------------------------------ remembered heads

def state_dir() -> Path:
    """Where rayparallel keeps what it must remember between commands:
    ``RAYPARALLEL_STATE_DIR``, else ``$XDG_STATE_HOME/rayparallel``, else
    ``~/.local/state/rayparallel``."""
    if os.environ.get("RAYPARALLEL_STATE_DIR"):
        return Path(os.environ["RAYPARALLEL_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "rayparallel"


def _heads_file() -> Path:
    return state_dir() / "heads.json"


def _temp_dir() -> str:
    return os.path.realpath(ray._common.utils.get_default_ray_temp_dir())


def _load() -> list[dict]:
    try:
        heads = json.loads(_heads_file().read_text())
    except (OSError, ValueError):
        return []
    return [h for h in heads if isinstance(h, dict) and "address" in h] \
        if isinstance(heads, list) else []


def _save(heads: list[dict]) -> None:
    path = _heads_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(heads, indent=1))
    os.replace(tmp, path)  # whole or not at all, even with two commands at once


def remember(address: str, profile: str | None = None) -> None:
    """Remember a head rayparallel started at ``address`` (in this Ray temp dir), or that
    ``profile``'s engines run there."""
    heads = [h for h in _load() if h["address"] != address or h.get("temp_dir") != _temp_dir()]
    old = next((h for h in _load() if h["address"] == address
                and h.get("temp_dir") == _temp_dir()), None)
    entry = old or {"address": address, "temp_dir": _temp_dir(), "started": time.time(),
                    "profiles": []}
    if profile is not None and profile not in entry["profiles"]:
        entry["profiles"].append(profile)
    _save([*heads, entry])


def forget_profile(profile: str) -> None:
    """The profile's engines were stopped."""
    heads = _load()
    for h in heads:
        if profile in h.get("profiles", ()):
            h["profiles"].remove(profile)
    _save(heads)


class ClusterSearch:
    """The Ray cluster this machine runs, looked for in order: Ray's own record
    (``ray_current_cluster``), the heads rayparallel started (the one holding ``profile``
    first, then the newest), and, if ``probe_port``, Ray's default port on this machine.
    :attr:`address` is the first whose control store answers (None if none does);
    :meth:`report` says what was looked at.

    >>> search = ClusterSearch(profile="nb")  # doctest: +SKIP
    >>> search.address  # doctest: +SKIP
    '127.0.0.1:6379'
    """

    def __init__(self, profile: str | None = None, probe_port: bool = True,
                 port: int = DEFAULT_PORT):
        self.seen: list[str] = []
        self.address: str | None = None
        record = ray._private.utils.read_ray_address()
        candidates: list[tuple[str, str]] = []
        if record:
            candidates.append((record, "Ray's record of this machine's cluster"))
        else:
            self.seen.append(f"Ray's record ({ray._common.utils.get_ray_address_file(None)})"
                             ": none")
        heads = [h for h in _load() if h.get("temp_dir") == _temp_dir()]
        heads.sort(key=lambda h: (profile in h.get("profiles", ()), h.get("started", 0)),
                   reverse=True)
        if profile is not None and heads and profile in heads[0].get("profiles", ()):
            candidates.insert(0, (heads[0]["address"], f"the head holding profile {profile!r}"))
        candidates += [(h["address"], "a head rayparallel started") for h in heads]
        if not heads:
            self.seen.append("heads rayparallel started: none remembered")
        if probe_port:
            candidates.append((f"127.0.0.1:{port}", "Ray's default port"))
        dead: set[str] = set()
        tried: set[str] = set()
        for address, what in candidates:
            if address in tried:
                continue
            tried.add(address)
            if what == "Ray's default port":
                other = _other_temp_dir(port)
                if other:
                    self.seen.append(f"{what} at {address}: the head of another Ray temp dir "
                                     f"({other}); join it with --address")
                    continue
            status = gcs_status(address, timeout=2.0)
            if status == SILENT:
                user = port_user(port) if what == "Ray's default port" else None
                self.seen.append(f"{what} at {address}: " + (
                    f"{user} listens there, not a Ray head" if user else "nothing answers"))
                dead.add(address)
                continue
            self.seen.append(f"{what} at {address}: a Ray cluster answers")
            self.address = address
            break
        gone = [h for h in heads if h["address"] in dead]
        if gone:  # heads that stopped (`ray stop`, a reboot) are forgotten
            _save([h for h in _load() if h not in gone])

    def report(self) -> str:
        """What was looked at, for an error message."""
        return "; ".join(self.seen)


def _other_temp_dir(port: int) -> str | None:
    """The Ray temp dir of the control store listening on ``port`` here, if it is not this
    process's (as Ray's record, a cluster is "this machine's" per temp dir)."""
    import psutil

    try:
        for conn in psutil.net_connections("inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                for arg in psutil.Process(conn.pid).cmdline():
                    if arg.startswith("--session-dir="):
                        temp = os.path.dirname(os.path.realpath(arg.split("=", 1)[1]))
                        return temp if temp != _temp_dir() else None
    except (psutil.Error, OSError):
        pass
    return None


def port_user(port: int) -> str | None:
    """Who listens on TCP ``port`` on this machine (``"name (pid N)"``), if anyone."""
    import psutil

    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", port)) != 0:
            return None
    try:
        for conn in psutil.net_connections("inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return "another process"
