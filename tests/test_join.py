"""Joining a Ray cluster that rayparallel did not start: by address, by ``"auto"`` and after
``ray.init``, on one to three nodes of a ``ray.cluster_utils.Cluster``, as a new user would
(a token exists on the machine, RAY_AUTH_MODE is not set, the cluster has no token auth).

Before the fix, ``Client(address=cluster.address)`` turned token authentication on in the
client (Ray does so for a cluster it finds on this machine when a token exists), so the
cluster's processes could not call it back and every engine was "cancelled before it
started running".
"""

from __future__ import annotations

import secrets

import pytest
from isolated_ray import IsolatedRay

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


@pytest.mark.slow
def test_joining_a_cluster_by_address_auto_and_after_ray_init_on_1_to_3_nodes():
    ray = IsolatedRay()
    # A new user's machine: a token exists (any ray.init() makes ~/.ray/auth_token), no
    # RAY_AUTH_MODE is set, and the cluster runs without token authentication.
    ray.env.pop("RAY_AUTH_MODE", None)
    ray.env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        out = ray.python(_SCRIPT).splitlines()
    finally:
        ray.stop()
    assert out[:2] == ["by address 1 True [7]", "let go of the cluster: True"]
    assert out[2].startswith("insists on a token: ConnectionError: could not join the Ray "
                             "cluster at ")
    assert out[2].endswith(": the cluster does not use token authentication, but "
                           "RAY_AUTH_MODE=token is set here: its processes could not call "
                           "this client back (its engines would be cancelled before they "
                           "start). Unset RAY_AUTH_MODE, or start the cluster with "
                           "RAY_AUTH_MODE=token")
    assert out[3:] == ["auto 2 True [7, 7]",
                       "after ray.init 3 True [7, 7, 7]",
                       "ray left connected for whoever connected it: True"]
