"""Clusters for real: the ``rayparallel`` command and profiles shared between processes, a
two-node Ray cluster, and the Ray Client (``ray://``).

Each cluster here runs in its own Ray temp dir (``RAY_TMPDIR``), so it is invisible to the
test session's own Ray and to anything else on the machine, and is stopped by killing just
its processes (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import os
import socket
import sys

import pytest
from isolated_ray import IsolatedRay


@pytest.mark.slow
def test_cli_profiles_are_shared_between_processes_and_outlive_clients():
    ray = IsolatedRay()
    try:
        listed = ray.cli("list", check=False)
        assert listed.returncode == 1
        assert "rayparallel list: no Ray cluster is running on this machine" in listed.stderr

        started = ray.cli("start", "--profile", "nb", "-n", "2", "--port", "0")
        assert "No Ray cluster was running on this machine: started a Ray head at" in \
            started.stdout
        assert "Started 2 engines for profile 'nb': <Client: 2 engines on 1 node, " \
               "profile 'nb', ray at " in started.stdout
        again = ray.cli("start", "--profile", "nb", "-n", "2", check=False)
        assert again.returncode == 1
        assert "profile 'nb' already runs 2 engines (ids [0, 1])" in again.stderr

        # One process leaves state on the engines and closes its client...
        assert ray.python("""
            import rayparallel
            rc = rayparallel.Client(profile="nb")
            rc[:].push({"shared": 42}, block=True)
            rc.close()
            print(rc)
        """) == "<Client: closed>\n"
        # ...another finds it there.
        assert ray.python("""
            import rayparallel
            with rayparallel.Client(profile="nb") as rc:
                print(rc.ids, rc[:].pull("shared", block=True))
        """) == "[0, 1] [42, 42]\n"

        assert "Added engines [2] to profile 'nb'; it has 3 now." in \
            ray.cli("engines", "add", "1", "--profile", "nb").stdout
        assert "Removed engines [0] from profile 'nb'; 2 remain: [1, 2]" in \
            ray.cli("engines", "remove", "0", "--profile", "nb").stdout
        status = ray.cli("status", "--profile", "nb").stdout.splitlines()
        assert status[1].split() == ["id", "node", "pid", "state", "names"]
        rows = [line.split() for line in status[2:]]
        assert [(r[0], r[3], r[4]) for r in rows] == [("1", "idle", "1"), ("2", "idle", "0")]
        assert ray.cli("list").stdout.splitlines()[1].split() == ["nb", "2", "[1,", "2]"]

        assert ray.cli("stop", "--profile", "nb").stdout == "Stopped 2 engines of profile 'nb'.\n"
        gone = ray.run(sys.executable, "-c", "import rayparallel; "
                       "rayparallel.Client(profile='nb')", check=False)
        assert "NoSuchProfile: no engines are running for profile 'nb' on the Ray cluster" in \
            gone.stderr
        assert "start them with `rayparallel start --profile nb -n 4`" in gone.stderr
    finally:
        ray.stop()


def test_cli_refuses_bad_arguments_before_touching_ray():
    ray = IsolatedRay()
    try:
        for args, message in [
            (["start", "-n", "0"], "argument -n: expected a whole number >= 1, not '0'"),
            (["start", "--memory", "lots"], "'lots' is not an amount of memory"),
            (["start", "--runtime-env", "[1]"], "expected a JSON object, not '[1]'"),
            (["engines", "remove"], "the following arguments are required: ids"),
        ]:
            done = ray.cli(*args, check=False)
            assert done.returncode == 2 and message in done.stderr, done.stderr
    finally:
        ray.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray head and a second node on this machine, with a Ray Client server."""
    ray = IsolatedRay(token=True)
    client_port = _free_port()
    try:
        ray.ray("start", "--head", "--port=0", "--num-cpus=1",
                f"--ray-client-server-port={client_port}", "--include-dashboard=false",
                "--disable-usage-stats")
        with open(os.path.join(ray.dir, "ray", "ray_current_cluster")) as f:
            address = f.read().strip()
        ray.ray("start", f"--address={address}", "--num-cpus=1")
        ray.client_address = f"ray://127.0.0.1:{client_port}"
        yield ray
    finally:
        ray.stop()


@pytest.mark.slow
def test_engines_and_work_spread_over_both_nodes(two_nodes):
    out = two_nodes.python("""
        import ray, rayparallel
        rc = rayparallel.Client(num_engines=4)
        print(rc)
        nodes = {info["node_id"] for info in rc.engine_info().values()}
        print("engine nodes", len(nodes), len(ray.nodes()))
        ran_on = set(rc[:].apply_sync(lambda: ray.get_runtime_context().get_node_id()))
        print("apply ran on the engines' nodes", ran_on == nodes)
        rc.shutdown()
    """)
    assert out.splitlines()[0].startswith("<Client: 4 engines on 2 nodes, ray at ")
    assert out.splitlines()[1:] == ["engine nodes 2 2", "apply ran on the engines' nodes True"]


@pytest.mark.slow
def test_the_ray_client_path(two_nodes):
    out = two_nodes.python(f"""
        import numpy as np, rayparallel
        rc = rayparallel.Client(address={two_nodes.client_address!r}, num_engines=2)
        dv = rc[:]
        dv.push({{"a": np.arange(4)}}, block=True)
        print(dv.pull("a", block=True))
        print(dv.map_sync(lambda x: int(a.sum()) * x, range(4)))
        ar = dv.apply_async(lambda: a.max())
        print(ar.get(timeout=60), ar.engine_id)
        rc.shutdown()
    """)
    assert out.splitlines() == [
        "[array([0, 1, 2, 3]), array([0, 1, 2, 3])]",
        "[0, 6, 12, 18]",
        "[np.int64(3), np.int64(3)] [0, 1]",
    ]


@pytest.mark.slow
def test_a_node_that_goes_away_fails_only_its_engines(two_nodes):
    """Last in this module: it takes the second node down for good."""
    out = two_nodes.python("""
        import time, psutil, ray, rayparallel
        rc = rayparallel.Client(num_engines=4)
        here = ray.get_runtime_context().get_node_id()  # the driver's node stays up
        info = rc.engine_info()
        doomed = sorted(e for e, i in info.items() if i["node_id"] != here)
        kept = sorted(e for e, i in info.items() if i["node_id"] == here)
        rc[doomed].push({"nap": 60}, block=True)
        rc[kept].push({"nap": 1}, block=True)
        ar = rc[:].apply_async(lambda: time.sleep(nap))
        raylet = psutil.Process(info[doomed[0]]["pid"]).parent()
        for proc in [raylet, *raylet.children(recursive=True)]:  # the node, gone
            proc.kill()
        outcomes = ar.get(timeout=10, return_exceptions=True)  # within 10 s
        print("=", len(doomed) > 0, len(kept) > 0)  # SPREAD: engines on both nodes
        print("=", all(isinstance(outcomes[e], rayparallel.EngineError) for e in doomed))
        print("=", all(outcomes[e] is None for e in kept))
        print("=", rc.ids == kept)
    """)
    # (Ray itself also reports the raylet's death on stdout.)
    assert [line for line in out.splitlines() if line.startswith("= ")] == [
        "= True True", "= True", "= True", "= True"]
