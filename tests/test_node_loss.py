"""Nodes leaving a multi-node Ray cluster (``ray.cluster_utils.Cluster``) while engines and
load-balanced maps use them: what is lost, what is done again, what users see.

One cluster of its own (a head and worker nodes on this machine, in an isolated Ray
temp dir) runs one script, started early in the session; each test checks one promise
against what the script saw.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from isolated_ray import IsolatedRay

pytestmark = pytest.mark.slow

SCRIPT = """
import json, os, tempfile, time, warnings
import ray
from ray.cluster_utils import Cluster
import rayparallel

seen = {}
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
cluster.add_node(num_cpus=2)
cluster.wait_for_nodes()
rc = rayparallel.Client(address=cluster.address, num_engines=3)
kept = rayparallel.Client(address=cluster.address, num_engines=3, restart_engines=True)
head = ray.get_runtime_context().get_node_id()
workers = {n.node_id: n for n in cluster.worker_nodes}

def on(client):  # asks each engine where it is now
    return {e: i["node_id"] for e, i in client.engine_status(timeout=10).items()}

def shared():
    return [n for n in workers if n in on(rc).values() and n in on(kept).values()]

for _ in range(4):  # engines are spread over the nodes, not always as needed here
    if shared():
        break
    rc.add_engines(1)
    kept.add_engines(1)
victim = shared()[0]
kept_ids = kept.ids
lost = sorted(e for e, n in on(rc).items() if n == victim)
survivors = [e for e in rc.ids if e not in lost]
lost_kept = sorted(e for e, n in on(kept).items() if n == victim)
pending = rc[lost].apply_async(time.sleep, 60)
cluster.remove_node(workers[victim], allow_graceful=False)
start, answers = time.monotonic(), []
while set(lost) & set(rc.ids) and time.monotonic() - start < 30:
    answers.append(rc[survivors].apply_sync(os.getpid) is not None)  # work goes on
seen["drop"] = {"lost": lost, "seconds": time.monotonic() - start, "ids": rc.ids,
                "survivors": survivors, "answered": all(answers)}
try:
    pending.get(timeout=1)
except rayparallel.CompositeError as exc:
    seen["drop"]["pending"] = [e[1] for e in exc.elist]
except rayparallel.error.EngineLostError as exc:
    seen["drop"]["pending"] = [str(exc)]
start, told = time.monotonic(), []
while time.monotonic() - start < 90:  # a call sent before the client noticed fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            values = kept[:].apply_sync(lambda: 7)
        except rayparallel.CompositeError as exc:
            values = str(exc)
    told += [str(w.message) for w in caught]
    # the engines' old processes may answer a moment after their node is gone
    if isinstance(values, list) and victim not in on(kept).values():
        break
seen["restart"] = {"ids": kept.ids, "ids_before": kept_ids, "values": values,
                   "lost": lost_kept,
                   "warnings": told,
                   "victim_gone": all(n != victim for n in on(kept).values()),
                   "states": {e: i["state"] for e, i in kept.engine_status().items()}}

def item(x, victim, flag):
    import os, time, ray
    if ray.get_runtime_context().get_node_id() == victim:
        open(flag, "a").close()
        time.sleep(3)  # surely still running when its node goes
    else:  # the other nodes wait for the victim to take items (its workers start slowly)
        deadline = time.monotonic() + 60
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(0.01)
    return x * x

def lose_a_node_during_map(retries, n):
    node = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    flag = os.path.join(tempfile.mkdtemp(), "started")
    lview = rc.load_balanced_view(scheduling_strategy="SPREAD", retries=retries)
    ar = lview.map_async(item, range(n), [node.node_id] * n, [flag] * n,
                         return_exceptions=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(flag):
        assert time.monotonic() < deadline, "no item reached the node to remove"
        time.sleep(0.01)
    cluster.remove_node(node, allow_graceful=False)
    return ar.get(timeout=120)

values = lose_a_node_during_map(2, 300)
seen["retried"] = {"right": values == [x * x for x in range(300)]}
values = lose_a_node_during_map(0, 150)
failed = {i: f"{type(v).__name__}: {v}" for i, v in enumerate(values)
          if isinstance(v, BaseException)}
seen["not_retried"] = {"failed": failed,
                       "others_right": all(v == i * i for i, v in enumerate(values)
                                           if i not in failed)}
rc.shutdown()
kept.shutdown()
ray.shutdown()
cluster.shutdown()
print(json.dumps(seen))
"""


class _Run:
    """The script, run in its own Ray: started as soon as these tests are collected
    (see conftest.py), so that its minute, mostly spent waiting for nodes to come and go,
    overlaps the rest of the session."""

    def __init__(self) -> None:
        self.ray = IsolatedRay(token=True)
        self.process = subprocess.Popen([sys.executable, "-c", SCRIPT], env=self.ray.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)

    def seen(self) -> dict:
        try:
            out, err = self.process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self.ray.stop()
        assert self.process.returncode == 0, err[-5000:]
        return json.loads(out.splitlines()[-1])


_run: _Run | None = None


def start() -> None:
    """Start the script now (once)."""
    global _run
    if _run is None:
        _run = _Run()


@pytest.fixture(scope="module")
def seen() -> dict:
    start()
    return _run.seen()


def test_engines_of_a_lost_node_leave_ids_within_10_s_while_the_rest_work(seen):
    drop = seen["drop"]
    assert drop["lost"] and drop["seconds"] < 10
    assert drop["ids"] == drop["survivors"]
    assert drop["answered"]
    assert drop["pending"] == [  # what they had failed then too, not when Ray noticed
        f"engine {e} died or became unreachable during sleep: its node left the Ray cluster"
        for e in drop["lost"]]


def test_with_restart_engines_they_come_back_on_other_nodes_empty(seen):
    restart = seen["restart"]
    assert restart["ids"] == restart["ids_before"]
    assert restart["values"] == [7] * len(restart["ids"])
    assert restart["victim_gone"], restart
    assert [w for w in restart["warnings"] if "was restarted after its process died: its "
            "namespace is empty" in w] == \
        [f"[engine {e}] engine {e} was restarted after its process died: its namespace is "
         "empty" for e in restart["lost"]]


def test_with_retries_every_result_of_a_map_arrives_once_in_order(seen):
    assert seen["retried"]["right"]


def test_without_retries_the_lost_items_fail_by_name_and_the_rest_are_kept(seen):
    failed = seen["not_retried"]["failed"]
    assert failed
    for i, message in failed.items():  # the chunk's items are named
        named = re.match(r"EngineLostError: items? (\d+)(?:-(\d+))? of item lost: the worker "
                         r"running it died or became unreachable during item: ", message)
        assert named, message
        first, last = int(named[1]), int(named[2] or named[1])
        assert first <= int(i) <= last
    assert seen["not_retried"]["others_right"]


def test_the_engine_watch_does_not_start_a_ray_when_ray_is_gone():
    # At interpreter exit Ray may be shut down under a client still open; the watch's
    # next look must not start a new local Ray (Ray's calls initialize it on first use).
    code = ("import ray\nfrom rayparallel.backend.ray import RayBackend\n"
            "backend = RayBackend()\nray.shutdown()\n"
            "print(backend.lost_engines({0: {'node_id': 'n'}}), ray.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[] False", out.stderr
