"""Ray clusters on this machine, for real.

* Joining a cluster rayparallel did not start (a ``ray.cluster_utils.Cluster`` of one to
  three nodes) by address, by ``"auto"`` and after ``ray.init``, as a new user would: a
  token exists on the machine, RAY_AUTH_MODE is not set, the cluster has no token auth.
  Before the fix, the client turned token authentication on (Ray does so for a cluster it
  finds on this machine whenever a token exists), the cluster's processes could not call it
  back, and every engine was "cancelled before it started running".
* The Ray rayparallel starts: the README's security promises (token authentication on, no
  dashboard unless asked, loopback only, profiles apart), and profiles that stay reachable
  when another Ray on the machine removes Ray's own record of "this machine's cluster".

One head for the module (``rayparallel start --profile a``, in a Ray temp dir, state dir
and home of its own: no token exists there until rayparallel makes one). The short-lived
cluster of the joining test runs in the same Ray temp dir, as a test suite's would, and
removes Ray's record when it stops: the profile test after it starts from there.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import re
import subprocess
import sys

import psutil
import pytest
from isolated_ray import IsolatedRay

from rayparallel.backend import ray as ray_backend

_SCRIPT = """
import subprocess, sys, ray, rayparallel
from ray.cluster_utils import Cluster

def on_its_nodes(rc):  # every engine runs on a node of the cluster
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    return {info["node_id"] for info in rc.engine_info().values()} <= alive

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
try:
    rc = rayparallel.Client(address=cluster.address, num_engines=1)
    print("by address", len(ray.nodes()), on_its_nodes(rc), rc[:].apply_sync(lambda: 7))
    rc.shutdown(hub=True)  # stops the Ray connection it made
    print("let go of the cluster:", not ray.is_initialized())

    # A client whose environment insists on token authentication is told why it cannot
    # join this cluster, at once (not with engines cancelled later).
    env = {**__import__("os").environ, "RAY_AUTH_MODE": "token"}
    done = subprocess.run([sys.executable, "-c", "import rayparallel; rayparallel.Client("
                           f"address={cluster.address!r}, num_engines=1)"],
                          env=env, capture_output=True, text=True, timeout=120)
    print("insists on a token:", done.stderr.strip().splitlines()[-1])

    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    rc = rayparallel.Client(address="auto", num_engines=2)
    print("auto", len(ray.nodes()), on_its_nodes(rc), rc[:].apply_sync(lambda: 7))
    rc.shutdown(hub=True)

    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    rc = rayparallel.Client(num_engines=3)
    print("after ray.init", len(ray.nodes()), on_its_nodes(rc), rc[:].apply_sync(lambda: 7))
    rc.shutdown(hub=True)
    print("ray left connected for whoever connected it:", ray.is_initialized())
finally:
    ray.shutdown()
    cluster.shutdown()
"""

_AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _listening(processes: list[psutil.Process]) -> dict[str, set[str]]:
    """``{process name: addresses it listens on}`` (TCP)."""
    found: dict[str, set[str]] = {}
    for proc in processes:
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN:
                found.setdefault(name, set()).add(conn.laddr.ip)
    return found


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


@pytest.fixture(scope="module")
def head():
    ray = IsolatedRay()
    for name in _AUTH_VARIABLES:
        ray.env.pop(name, None)
    ray.env["HOME"] = os.path.join(ray.dir, "home")  # no ~/.ray/auth_token yet
    try:
        ray.started = ray.cli("start", "--profile", "a", "-n", "1", "--port", "0").stdout
        ray.address = re.search(r"started a Ray head at (\S+) ", ray.started).group(1)
        yield ray
    finally:
        ray.stop()


@pytest.mark.slow
def test_the_head_listens_on_loopback_only_without_a_dashboard(head):
    assert "it listens on 127.0.0.1 only: --network opens it to other machines" in \
        head.started
    assert head.address.startswith("127.0.0.1:")
    listening = _listening(head.processes())
    # the control store, the node manager, the profile's engine: all on loopback
    assert {"gcs_server", "raylet"} <= set(listening), listening
    assert any(name.startswith("ray::RayEngine") for name in listening), listening
    assert {name: ips for name, ips in listening.items()
            if not all(_is_loopback(ip) for ip in ips)} == {}
    ports = {c.laddr.port for c in psutil.net_connections("inet")
             if c.status == psutil.CONN_LISTEN and c.pid in {p.pid for p in head.processes()}}
    assert 8265 not in ports  # Ray's dashboard port


@pytest.mark.slow
def test_the_head_wants_a_token_and_refuses_clients_without_it(head):
    token = os.path.join(head.env["HOME"], ".ray", "auth_token")
    assert os.path.exists(token)  # rayparallel made one: none existed
    code = "import rayparallel; rayparallel.Client(profile='a')"
    no_token = {**head.env, "HOME": os.path.join(head.dir, "elsewhere")}
    wrong_token = {**head.env, "RAY_AUTH_TOKEN": "not-the-token"}
    for env, cause in [
        (no_token, "the cluster wants token authentication and this client has no token"),
        (wrong_token, "the cluster refused this client's credentials: the token from "
                      "RAY_AUTH_TOKEN is not this cluster's"),
    ]:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1
        assert f"ConnectionError: could not join the Ray cluster at {head.address}: " \
               f"{cause}" in done.stderr, done.stderr


@pytest.mark.slow
def test_joining_a_cluster_by_address_auto_and_after_ray_init_on_1_to_3_nodes(head):
    out = head.python(_SCRIPT).splitlines()
    assert out[:2] == ["by address 1 True [7]", "let go of the cluster: True"]
    assert out[2].startswith("insists on a token: ConnectionError: could not join the Ray "
                             "cluster at ")
    assert out[2].endswith(": the cluster does not use token authentication, but "
                           "RAY_AUTH_MODE=token is set here: its processes could not call "
                           "this client back (its engines would be cancelled before they "
                           "start). Unset RAY_AUTH_MODE, or start the cluster with "
                           "RAY_AUTH_MODE=token")
    assert out[3:] == ["auto 2 True [7, 7]", "after ray.init 3 True [7, 7, 7]",
                       "ray left connected for whoever connected it: True"]


@pytest.mark.slow
def test_profiles_stay_reachable_and_apart_when_another_ray_removes_rays_record(head):
    # Any short-lived Ray on the machine (a test suite's cluster) takes Ray's record with it.
    record = os.path.join(head.dir, "ray", "ray_current_cluster")
    if os.path.exists(record):  # the joining test's cluster removed it already
        head.python("""
            from ray.cluster_utils import Cluster
            Cluster(initialize_head=True, head_node_args={"num_cpus": 0}).shutdown()
        """)
    assert not os.path.exists(record)

    started = head.cli("start", "--profile", "c", "-n", "1").stdout
    assert started.startswith("Started 1 engines for profile 'c': <Client: 1 engine on 1 "
                              f"node, profile 'c', ray at {head.address}>")
    out = head.python("""
        import rayparallel
        a, c = rayparallel.Client(profile="a"), rayparallel.Client(profile="c")
        a[:].push({"secret": 42}, block=True)
        print(a[:].pull("secret", block=True))
        try:
            c[:].pull("secret", block=True)
        except rayparallel.RemoteError as exc:
            print(exc.ename)
        print(a.engine_info()[0]["pid"] != c.engine_info()[0]["pid"])
        a.close(), c.close()
    """)
    assert out.splitlines() == ["[42]", "NameError", "True"]
    assert head.cli("stop", "--profile", "a").stdout == "Stopped 1 engines of profile 'a'.\n"


@pytest.mark.slow
def test_the_default_port_is_probed_for_this_temp_dirs_head_only(head):
    """With no record and nothing remembered, a head on Ray's default port is found; one
    of another Ray temp dir is named, not joined."""
    port = head.address.rsplit(":", 1)[1]
    code = ("from rayparallel.backend.rayjoin import ClusterSearch; "
            f"s = ClusterSearch(port={port}); print(s.address); print(s.report())")
    forgetful = {**head.env, "RAYPARALLEL_STATE_DIR": os.path.join(head.dir, "empty")}
    os.makedirs(os.path.join(head.dir, "elsewhere"), exist_ok=True)
    for env, found in [
        (forgetful, f"{head.address}\n"),
        ({**forgetful, "RAY_TMPDIR": os.path.join(head.dir, "elsewhere")}, "None\n"),
    ]:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        assert done.stdout.startswith(found), done.stdout
    assert f"Ray's default port at 127.0.0.1:{port}: the head of another Ray temp dir " \
           f"({os.path.realpath(head.dir)}/ray); join it with --address" in done.stdout


@pytest.mark.slow
def test_the_ray_a_client_starts_listens_on_loopback_only():
    ray = IsolatedRay()
    try:
        out = ray.python("""
            import ipaddress, psutil, rayparallel
            rc = rayparallel.Client(num_engines=1)
            print(rc[:].apply_sync(lambda: "up"))
            me = psutil.Process()
            ips = {c.laddr.ip for p in [me, *me.children(recursive=True)]
                   for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
            def loopback(ip):
                ip = ipaddress.ip_address(ip)
                return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback
            print(len(ips) > 0, sorted(ip for ip in ips if not loopback(ip)))
            rc.shutdown(hub=True)
        """)
    finally:
        ray.stop()
    assert out.splitlines() == ["['up']", "True []"]


def _dashboard_missing() -> str | None:
    import ray._private.utils

    return ray._private.utils.get_dashboard_dependency_error()


@pytest.mark.slow
@pytest.mark.skipif(_dashboard_missing() is not None,
                    reason="Ray's dashboard needs ray[default], not installed")
def test_a_dashboard_asked_for_listens_on_loopback_only():
    ray = IsolatedRay()
    try:
        started = ray.cli("start", "--profile", "d", "-n", "1", "--port", "0",
                          "--dashboard").stdout
        listening = _listening(ray.processes())
        ports = {c.laddr.port for c in psutil.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in {p.pid for p in ray.processes()}}
    finally:
        ray.stop()
    assert "Ray's dashboard: http://127.0.0.1:8265 (this machine only)" in started, started
    assert 8265 in ports, (started, listening)  # the dashboard runs
    assert {name: ips for name, ips in listening.items()
            if not all(_is_loopback(ip) for ip in ips)} == {}


def test_a_dashboard_only_when_asked_and_then_on_loopback(monkeypatch):
    """What rayparallel asks of Ray (also where ray[default], which the dashboard needs, is
    not installed)."""
    commands = []

    def run(command, **kwargs):
        commands.append((command, kwargs["env"]))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(ray_backend.subprocess, "run", run)
    monkeypatch.setattr(ray_backend.ray._private.utils, "read_ray_address",
                        lambda: "127.0.0.1:6379")
    monkeypatch.setattr(ray_backend.rayjoin, "remember", lambda address: None)
    monkeypatch.setattr(ray_backend.rayjoin, "ensure_token", lambda: None)
    dependencies = ray_backend.ray._private.utils
    monkeypatch.setattr(dependencies, "get_dashboard_dependency_error",
                        lambda: "No module named 'aiohttp'")
    with pytest.raises(RuntimeError, match=r"Ray's dashboard needs ray\[default\] \(pip install "
                       r"'ray\[default\]'\): No module named 'aiohttp'; no head was started"):
        ray_backend.start_head(dashboard=True)
    assert commands == []
    monkeypatch.setattr(dependencies, "get_dashboard_dependency_error", lambda: None)
    ray_backend.start_head()
    ray_backend.start_head(dashboard=True, network=True)
    (plain, plain_env), (asked, asked_env) = commands
    assert "--include-dashboard=false" in plain
    assert "--include-dashboard=true" in asked and "--dashboard-host=127.0.0.1" in asked
    assert plain_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # Ray's node IP: 127.0.0.1
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in asked_env or \
        os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    assert plain_env["RAY_AUTH_MODE"] == asked_env["RAY_AUTH_MODE"] == "token"
    # Client(): no dashboard unless ray_init asks; Ray's own default host is loopback
    import ray

    assert inspect.signature(ray.init).parameters["dashboard_host"].default == "127.0.0.1"
