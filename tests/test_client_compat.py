"""ipyparallel's Client and DirectView API beyond the basics: clear, abort, get_result,
queue_status, purge_*, history, broadcast views, view.importer, ipyparallel's Client
arguments, and targets as views keep them."""

from __future__ import annotations

import time

import pytest

import rayparallel
from rayparallel import BroadcastView, DirectView, RemoteError, error


def test_clear_empties_the_targeted_namespaces(rc, dv):
    dv.push({"a": 5}, block=True)
    last = rc.ids[-1]
    rc.clear(targets=last, block=True)
    assert rc[:-1].get("a") == [5] * (len(rc) - 1)
    with pytest.raises(RemoteError, match="NameError: name 'a' is not defined"):
        rc[last].get("a")
    rc.clear(block=True)
    with pytest.raises(RemoteError, match="name 'a' is not defined"):
        rc[0].get("a")


def test_views_keep_resolved_targets(rc):
    ids = rc.ids
    assert rc.direct_view().targets == "all"
    assert rc.direct_view(-1).targets == ids[-1]
    assert rc.direct_view(slice(1, 3)).targets == ids[1:3]
    assert rc[-1].targets == ids[-1]
    assert rc.load_balanced_view(-1).targets == [ids[-1]]
    assert rc.load_balanced_view().targets is None
    with pytest.raises(IndexError, match="engine 99 is not registered"):
        rc.direct_view(99)


def test_get_result_finds_results_this_client_holds(rc, dv):
    view = rc[0]
    ar = view.apply_async(abs, -5)
    assert rc.get_result() is ar
    msg_id = rc.history[-1]
    assert rc.get_result(msg_id) is ar
    assert rc.get_result(ar) is ar
    assert rc.get_result([msg_id], block=True).get() == 5
    assert view.get_result() is ar
    with pytest.raises(IndexError, match="this view has sent no requests yet"):
        rc[0].get_result()
    with pytest.raises(KeyError, match="the task database keeps the newest"):
        rc.get_result("not-a-msg-id")
    other = rc[1].apply_async(abs, -6)
    both = rc.get_result([ar, other])  # one result over the parts of both
    assert both.get(timeout=30) == [5, 6]
    assert both.msg_ids == ar.msg_ids + other.msg_ids
    with pytest.raises(TypeError, match="get_result takes msg_ids, history indices or "
                                        "AsyncResults, not 1.5"):
        rc.get_result([1.5])


def test_history_of_client_and_view(rc):
    view = rc[0]
    ar = view.apply_async(abs, -1)
    ar2 = view.execute("x = 1")
    assert view.history[-2:] == rc.history[-2:]
    assert len(view.history) == 2
    assert view.wait(timeout=30) is True
    assert view.outstanding == set()
    assert ar.get() == 1 and ar2.successful()


def test_abort_by_result_msg_id_and_view(rc, dv):
    view = rc[-1]
    busy = view.apply_async(time.sleep, 0.3)
    first = view.apply_async(lambda: 2)
    second = view.apply_async(lambda: 3)
    view.abort(first)
    rc.abort(rc.history[-1])  # second, by msg_id
    with pytest.raises(error.TaskAborted):
        first.get(timeout=30)
    with pytest.raises(error.TaskAborted):
        second.get(timeout=30)
    busy.get(timeout=30)
    with pytest.raises(TypeError, match="jobs must be AsyncResults, msg_ids or history"):
        rc.abort(jobs=object())


@pytest.mark.ray_only  # local mode runs work when asked whether it is outstanding
def test_abort_without_jobs_aborts_the_views_outstanding_requests(rc, dv):
    view = rc[-1]
    # the first keeps the engine busy long enough that the others are surely still queued
    # when abort() comes, however slow the machine
    later = [view.apply_async(time.sleep, 30)] + \
        [view.apply_async(time.sleep, 0.2) for _ in range(5)]
    view.abort()  # this view's outstanding requests
    assert view.wait(timeout=30)
    assert not any(ar.successful() for ar in later)  # interrupted or aborted
    for ar in later[1:]:
        with pytest.raises(error.TaskAborted):
            ar.get()


def test_queue_status_in_ipyparallels_shape(rc, dv):
    eid = rc.ids[0]
    before = rc.queue_status(targets=eid)
    assert sorted(before) == ["completed", "queue", "tasks"]
    rc[eid].apply_sync(abs, -1)
    after = rc.queue_status(eid)
    assert after["completed"] == before["completed"] + 1
    assert after["queue"] == 0 and after["tasks"] == 0
    everything = rc.queue_status()
    assert sorted(k for k in everything if k != "unassigned") == rc.ids
    assert everything["unassigned"] == 0
    assert rc[0:2].queue_status(verbose=True)[eid]["queue"] == []


@pytest.mark.ray_only  # a request is outstanding only while engines run it elsewhere
def test_queue_status_counts_what_is_waiting(rc, dv):
    eid = rc.ids[0]
    busy = rc[eid].apply_async(time.sleep, 0.5)
    queued = rc[eid].apply_async(abs, -1)
    status = rc.queue_status(eid, verbose=True)
    assert status["queue"] == [*rc.session.msg_ids(busy), *rc.session.msg_ids(queued)]
    with pytest.raises(RuntimeError, match="can't purge outstanding results"):
        rc.purge_local_results(queued)
    with pytest.raises(RuntimeError, match="can't purge outstanding results"):
        rc.purge_results("all")
    assert queued.get(timeout=30) == 1


def test_purging_forgets_finished_results(rc):
    ar = rc[0].apply_async(abs, -1)
    ar.get(timeout=30)
    msg_id = rc.history[-1]
    rc.purge_local_results(ar)
    assert rc.get_result(msg_id).get() == 1  # the task database still has it
    rc.purge_hub_results(msg_id)
    with pytest.raises(KeyError, match=msg_id):
        rc.get_result(msg_id)
    rc.purge_local_results(msg_id)  # already forgotten: nothing to do
    rc.purge_hub_results("all")
    assert rc.hub_history() == []
    with pytest.raises(ValueError, match="purge needs jobs"):
        rc.purge_results()
    kept = rc[0].apply_async(abs, -2)
    kept.get(timeout=30)
    rc.purge_everything()
    assert rc.history == []
    with pytest.raises(IndexError, match="history has 0 entries"):
        rc.get_result(-1)
    assert kept.get() == 2  # the AsyncResult itself still works


def test_broadcast_view_is_a_direct_view(rc, dv):
    view = rc.broadcast_view([1, 0], is_coalescing=True)
    assert isinstance(view, BroadcastView) and isinstance(view, DirectView)
    assert view.is_coalescing is True and view.targets == [1, 0]
    view.scatter("rank", [1, 0], flatten=True, block=True)
    assert view.pull("rank", block=True) == [1, 0]
    assert rc.broadcast_view(block=True).apply(lambda: 1) == [1] * len(rc)
    with pytest.raises(TypeError, match="is_coalescing must be True or False"):
        rc.broadcast_view(is_coalescing="yes")


def test_importer_imports_here_and_on_the_engines(rc, dv, capsys):
    view = rc[-1]
    with view.importer:
        import re  # noqa: F401

    assert capsys.readouterr().out == "importing re on engine(s)\n"

    @rayparallel.interactive
    def findall(pat, s):
        return globals()["re"].findall(pat, s)

    assert view.apply_sync(findall, r"\w+", "hello world") == ["hello", "world"]


def test_ipyparallel_client_arguments(rc):
    with pytest.raises(TypeError, match="connection files .*Client\\(address=...\\)"):
        rayparallel.Client(url_file="ipcontroller-client.json")
    with pytest.raises(TypeError, match="'ipcontroller-client.json'"):
        rayparallel.Client("ipcontroller-client.json")
    with rayparallel.Client(num_engines=1, local_mode=True, context=object()) as other:
        assert other[:].apply_sync(abs, -1) == [1]
    with pytest.raises(ValueError, match=r"shutdown\(restart=True\) is not supported"):
        rc[0].shutdown(restart=True)
