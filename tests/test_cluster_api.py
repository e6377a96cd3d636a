"""``rayparallel.Cluster``, ipyparallel 8+'s way of starting engines: on the test session's
Ray (a Cluster made in this process joins it) and in local mode; ``from_file`` on a Ray of
its own started with ``ray start``, as profiles need."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings

import pytest
from isolated_ray import IsolatedRay

import rayparallel
from rayparallel import Cluster, error


@pytest.fixture(params=["ray", "local"])
def options(request):
    """Cluster options of each mode; in Ray mode the session's Ray is up first."""
    if request.param == "ray":
        request.getfixturevalue("rayparallel_ray_client")
        return {}
    return {"local_mode": True}


@pytest.fixture
def on_ray(rayparallel_ray_client):
    return {}


def _profile_is_gone(cluster: Cluster) -> bool:
    with pytest.raises(error.NoSuchProfile):
        rayparallel.Client(profile=cluster.ray_profile)
    return True


def test_start_and_connect_then_apply(options):
    cluster = Cluster(n=2, **options)
    assert repr(cluster) == f"<Cluster(cluster_id={cluster.cluster_id!r}, profile='default')>"
    rc = cluster.start_and_connect_sync()
    assert rc.ids == [0, 1]
    assert rc.cluster is cluster
    assert rc[:].apply_sync(lambda x: 2 * x, 21) == [42, 42]
    (set_id,) = cluster.engines
    assert cluster.engine_set.ids == [0, 1] and cluster.engine_set.n == 2
    assert repr(cluster).endswith(f"controller=<running>, engine_sets=[{set_id!r}])>")
    cluster.stop_cluster_sync()
    assert cluster.engines == {} and cluster.controller is None
    assert rc.ids == []
    if not options:  # the engines are really gone, for every client
        assert _profile_is_gone(cluster)


def test_with_starts_connects_and_stops_everything(options):
    cluster = Cluster(n=2, **options)
    with cluster as rc:
        assert rc.ids == [0, 1]
        rc[:]["a"] = 5
        assert rc[:]["a"] == [5, 5]
    assert cluster.engines == {} and cluster.controller is None
    if not options:
        assert _profile_is_gone(cluster)


def test_async_with_and_a_second_engine_set(on_ray):
    async def main():
        cluster = Cluster(n=2)
        async with cluster as rc:
            first = rc[:].apply_sync(lambda: "first")
            second = await cluster.start_engines(1)
            await cluster.wait_for_engines(3)
            rc.wait_for_engines(3, timeout=30)  # a client picks up new engines, as in ipp
            return cluster, second, first, rc.ids, rc[:].apply_sync(lambda: "all")

    cluster, second, first, ids, everywhere = asyncio.run(main())
    assert first == ["first", "first"]
    assert ids == [0, 1, 2] and everywhere == ["all"] * 3
    assert second not in cluster.engines and cluster.engines == {}
    assert _profile_is_gone(cluster)


def test_sync_methods_work_inside_a_running_event_loop(on_ray):
    """As in Jupyter, whose cells run inside an event loop."""
    async def cell():
        cluster = Cluster(n=1)
        rc = cluster.start_and_connect_sync()
        try:
            return rc[:].apply_sync(lambda: "from a notebook")
        finally:
            cluster.stop_cluster_sync()

    assert asyncio.run(cell()) == ["from a notebook"]


def test_start_stop_controller_and_engine_sets(on_ray):
    cluster = Cluster()
    with pytest.raises(RuntimeError, match="the cluster is not running"):
        cluster.connect_client_sync()
    cluster.start_controller_sync()
    with pytest.raises(RuntimeError, match="the controller is already running"):
        cluster.start_controller_sync()
    with pytest.raises(error.NoEnginesRegistered, match="call start_engines"):
        cluster.connect_client_sync()
    first = cluster.start_engines_sync(2)
    second = cluster.start_engines_sync(1)
    assert [es.ids for es in cluster.engines.values()] == [[0, 1], [2]]
    rc = cluster.connect_client_sync()
    assert rc.ids == [0, 1, 2]

    cluster.stop_engines_sync(first)
    assert list(cluster.engines) == [second]
    assert rc.ids == [2] and rc[:].apply_sync(lambda: "left") == ["left"]
    with pytest.raises(KeyError):
        cluster.stop_engines_sync(first)
    rc.close()  # leaves the cluster's engines running
    assert cluster.connect_client_sync()[:].apply_sync(lambda: 1) == [1]
    cluster.stop_cluster_sync()
    cluster.stop_controller_sync()  # idempotent
    assert _profile_is_gone(cluster)


def test_restart_engines_gives_new_engines_with_empty_namespaces(options):
    with Cluster(n=2, **options) as rc:
        rc[:].push({"a": 1}, block=True)
        before = rc[:].apply_sync(os.getpid)
        rc.cluster.restart_engines_sync()
        assert rc.ids == [2, 3]
        assert rc[:].apply_sync(lambda: "a" in globals()) == [False, False]
        if not options:  # new processes
            assert set(rc[:].apply_sync(os.getpid)).isdisjoint(before)


def test_signal_engines_interrupts_running_code(on_ray, tmp_path):
    def nap(path):
        open(path, "w").close()  # running now: the test may signal
        time.sleep(120)

    with Cluster(n=2) as rc:
        ar = rc[:].map_async(nap, [str(tmp_path / "0"), str(tmp_path / "1")])
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 2:
            assert time.monotonic() < deadline, "the engines did not start the work"
            time.sleep(0.05)
        rc.cluster.signal_engines_sync(signal.SIGINT)
        with pytest.raises(rayparallel.CompositeError) as info:
            ar.get(timeout=60)  # well before the 120 s nap ends
        assert str(info.value).count("KeyboardInterrupt") == 2
        assert rc[:].apply_sync(lambda: "still here") == ["still here"] * 2


def test_n_defaults_to_the_cpu_count():
    with Cluster(local_mode=True) as rc:
        assert len(rc) == os.cpu_count()


def test_cluster_ids_are_unique_unless_given():
    assert len({Cluster().cluster_id for _ in range(3)}) == 3
    cluster = Cluster(profile="nb", cluster_id="abc")
    assert (cluster.profile, cluster.cluster_id, cluster.ray_profile) == ("nb", "abc", "nb-abc")
    assert Cluster(profile="nb", cluster_id="").ray_profile == "nb"


def test_ipyparallel_options_without_meaning_warn_once():
    with pytest.warns(UserWarning) as record:
        Cluster(n=1, controller_ip="0.0.0.0", log_level=10, controller_args=["--debug"],
                engines="local", delay=0)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("Cluster ignores ipyparallel options that have no meaning on Ray")
    for name in ("controller_ip", "log_level", "controller_args", "engines='local'", "delay"):
        assert name in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # honoured options do not warn
        Cluster(n=1, engine_timeout=5, shutdown_atexit=False, num_cpus=1)


def test_launchers_that_matter_are_refused():
    for engines in ("mpi", "MPI", "MPIEngineSetLauncher"):
        with pytest.raises(ValueError, match="MPI engines are not available") as info:
            Cluster(engines=engines)
        assert "ray.util.collective" in str(info.value)
    with pytest.raises(ValueError, match=r"engines='slurm': rayparallel does not launch "
                                         r"engine processes.*ray start --address=HEAD"):
        Cluster(engines="slurm")
    with pytest.raises(ValueError, match=r"controller='ssh': the controller is the Ray "
                                         r"cluster's head.*Cluster\(address=\.\.\.\)"):
        Cluster(controller="ssh")
    with pytest.raises(TypeError, match="unexpected keyword arguments: enignes"):
        Cluster(enignes="mpi")


@pytest.mark.slow
def test_from_file_attaches_to_a_profile_and_clusters_stop_at_exit():
    """Against a Ray of its own (``ray start``), as profiles need: about 30 s."""
    ray = IsolatedRay(token=True)
    try:
        ray.ray("start", "--head", "--port=0", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                "--include-dashboard=false", "--disable-usage-stats")
        ray.cli("start", "--profile", "nb", "-n", "2")
        # Attaching leaves the profile's engines running at exit...
        assert ray.python("""
            import rayparallel
            cluster = rayparallel.Cluster.from_file(profile="nb")
            print([es.ids for es in cluster.engines.values()])
            rc = cluster.connect_client_sync()
            print(rc[:].apply_sync(lambda: 7))
            # ...a cluster started here stops its engines when the process exits
            mine = rayparallel.Cluster(n=1, profile="mine", cluster_id="")
            mine.start_cluster_sync()
            print(sorted(rayparallel.Client(profile="mine").ids))
        """).splitlines() == ["[[0, 1]]", "[7, 7]", "[0]"]
        listed = ray.cli("list").stdout.splitlines()
        assert [line.split()[:2] for line in listed[1:]] == [["nb", "2"]]

        assert ray.python("""
            import rayparallel
            cluster = rayparallel.Cluster.from_file(profile="nb")
            cluster.stop_cluster_sync()
            print(cluster)
            try:
                rayparallel.Cluster.from_file(profile="nb")
            except rayparallel.error.NoSuchProfile as exc:
                print(exc)
        """).splitlines()[1].startswith("no engines are running for profile 'nb'")
        assert "No profiles are running" in ray.cli("list").stdout
    finally:
        ray.stop()
