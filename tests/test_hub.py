"""msg_ids per part and the task database (ipyparallel's hub records) in the client:
``history``, ``outstanding``, ``get_result``, ``resubmit``, ``db_query``, ``hub_history``,
``results`` and the ``purge_*`` methods."""

from __future__ import annotations

import gc
import time
from datetime import datetime

import pytest

import rayparallel
from rayparallel import error
from rayparallel.hub import AsyncHubResult, TaskDatabase, matches


def test_each_part_has_a_msg_id_in_the_history(rc, dv):
    ar = dv.apply_async(abs, -1)
    assert len(ar.msg_ids) == len(rc.ids) == len(set(ar.msg_ids))
    assert rc.history[-len(ar.msg_ids):] == ar.msg_ids
    assert [part.msg_ids for part in ar.split()] == [[m] for m in ar.msg_ids]
    lb = rc.load_balanced_view().map_async(abs, range(6), chunksize=2)
    assert len(lb.msg_ids) == 3  # one per chunk
    assert lb.get(timeout=30) == list(range(6))
    assert ar.get(timeout=30) == [1] * len(rc.ids)


def test_the_histories_keep_the_newest_msg_ids(rc, dv):
    # so that a long imap does not fill memory
    history, view = rc.session.history, rc[0]
    kept = history.limit
    try:
        history.limit = view.history.limit = 5
        ars = [view.apply_async(abs, -i) for i in range(12)]
        assert rc.history == view.history == [ar.msg_ids[0] for ar in ars[-5:]]
        assert rc.get_result(-1) is ars[-1] and rc.get_result(-1).get(timeout=30) == 11
        assert [ar.get(timeout=30) for ar in ars] == list(range(12))
    finally:
        history.limit = kept


def test_get_result_by_msg_ids_joins_parts(rc, dv):
    ar = dv.apply_async(lambda: 7)
    assert rc.get_result(ar.msg_ids) is ar  # all of one request: the request itself
    two = rc.get_result(ar.msg_ids[:2])
    assert two.msg_ids == ar.msg_ids[:2] and two.get(timeout=30) == [7, 7]
    assert rc.get_result(ar.msg_ids[1]).get(timeout=30) == 7  # one part: one value


def test_db_query_operators_and_keys(rc, dv):
    first = rc[0].apply_async(abs, -1)
    first.get(timeout=30)
    second = rc[:2].execute("x = 1", block=True)
    ids = first.msg_ids + second.msg_ids
    records = rc.db_query({"msg_id": {"$in": ids}})
    assert [r["msg_id"] for r in records] == ids
    assert all("buffers" not in r and "result_buffers" not in r for r in records)
    by_id = {r["msg_id"]: r for r in records}
    assert by_id[ids[0]]["header"]["msg_type"] == "apply_request"
    assert by_id[ids[1]]["header"]["msg_type"] == "execute_request"
    assert by_id[ids[1]]["engine_uuid"] == rc._engines[0]
    assert all(r["result_content"] == {"status": "ok"} for r in records)
    assert all(isinstance(r["completed"], datetime) for r in records)
    tic = by_id[ids[1]]["submitted"]
    before = rc.db_query({"msg_id": {"$in": ids}, "submitted": {"$lt": tic}}, keys="submitted")
    assert before == [{"msg_id": ids[0], "submitted": by_id[ids[0]]["submitted"]}]
    others = rc.db_query({"msg_id": {"$in": ids, "$nin": ids[1:]}}, keys=["msg_id"])
    assert others == [{"msg_id": ids[0]}]
    with pytest.raises(ValueError, match=r"unknown query operator '\$near' for 'msg_id'"):
        rc.db_query({"msg_id": {"$near": 1}})
    with pytest.raises(KeyError, match="records have no key 'colour'"):
        rc.db_query({}, keys=["colour"])
    with pytest.raises(TypeError, match="a query is a dict"):
        rc.db_query(["msg_id"])


def test_matches_compares_what_compares():
    assert matches({"n": None}, {"n": {"$exists": False}})
    assert not matches({"n": None}, {"n": {"$lt": 3}})  # None does not compare: no match
    assert matches({"name": "abc"}, {"name": {"$glob": "a*"}})


def test_the_database_keeps_the_newest_records(rc, dv):
    db = TaskDatabase(max_records=3)
    for i in range(5):
        ar = rc[0].apply_async(abs, -i)
        db.add(ar, [f"m{i}"], None, "apply", "me")
    assert db.history() == ["m2", "m3", "m4"]
    db.max_records = 1
    assert db.history() == ["m4"]
    with pytest.raises(ValueError, match="max_records must be a whole number >= 1, not 0"):
        db.max_records = 0


def test_dropped_records_are_gone(rc, dv):
    hub = rc.session.hub
    kept = hub.max_records
    try:
        hub.max_records = 2
        first = rc[0].apply_async(abs, -1)
        msg_id = first.msg_ids[0]
        assert first.get(timeout=30) == 1
        del first
        rc[0].apply_sync(abs, -2)
        rc[0].apply_sync(abs, -3)
        gc.collect()  # nothing holds the first result now
        assert msg_id not in rc.hub_history()
        with pytest.raises(KeyError, match="the task database keeps the newest 2 records"):
            rc.get_result(msg_id)
    finally:
        hub.max_records = kept


def test_records_of_large_data_last_as_long_as_their_result(rc, dv):
    # Large results, and arguments sent to many engines through the object store, stay in
    # the task database only while their result is held, so dropping it frees the data.
    small = rc[0].apply_async(abs, -1)
    big = rc[0].apply_async(bytes, 200_000)
    pushed = dv.push({"blob": bytes(200_000)})
    assert small.get(timeout=30) == 1 and pushed.get(timeout=30) == [None] * len(rc.ids)
    assert big.get(timeout=30) == bytes(200_000)
    small_id, big_ids = small.msg_ids[0], big.msg_ids + pushed.msg_ids
    assert set(big_ids) <= set(rc.hub_history())  # held: queried, resubmitted as any other
    assert rc.resubmit(big).get(timeout=30) == [bytes(200_000)]
    assert rc.get_result(big_ids[0]) is big
    del small, big, pushed
    gc.collect()
    kept = rc.hub_history()
    assert small_id in kept and not set(big_ids) & set(kept)
    with pytest.raises(KeyError, match="those of large data while their result is held"):
        rc.resubmit(big_ids[1])


def test_another_clients_request_comes_from_the_database():
    # Clients of one profile share their task database; two local clients made to share
    # one stand in for them.
    with rayparallel.Client(num_engines=2, local_mode=True) as mine, \
            rayparallel.Client(num_engines=1, local_mode=True) as other:
        other.session.hub = mine.session.hub
        ar = other[0].execute("6 * 7", silent=False)
        hub_result = mine.get_result(ar.msg_ids[0], owner=False)
        assert isinstance(hub_result, AsyncHubResult)
        assert hub_result.get(timeout=30) == ar.get(timeout=30)  # the same reply
        assert mine.results[ar.msg_ids[0]].execute_result["data"]["text/plain"] == "42"
        assert mine.metadata[ar.msg_ids[0]]["status"] == "ok"
        again = mine.get_result(ar.msg_ids[0])  # fetched already: no hub result
        assert not isinstance(again, AsyncHubResult)
        assert hub_result.wall_time <= ar.wall_time  # the original request's timings
        owned = mine.get_result(ar.msg_ids, owner=True)
        owned.get(timeout=30)
        mine.purge_local_results(ar.msg_ids[0])
        assert mine.results == {} and len(mine.metadata) == 0
        assert hub_result.msg_ids == ar.msg_ids


def test_resubmit_runs_the_request_again(rc, dv):
    lview = rc.load_balanced_view()
    ar = lview.apply_async(lambda: time.perf_counter_ns())
    first = ar.get(timeout=30)
    again = rc.resubmit(ar.msg_ids)
    assert isinstance(again, AsyncHubResult)
    (second,) = again.get(timeout=30)
    assert second != first and again.msg_ids != ar.msg_ids
    old, new = rc.db_query({"msg_id": {"$in": ar.msg_ids + again.msg_ids}},
                           keys=["header", "resubmitted"])
    assert old["resubmitted"] == new["msg_id"]
    assert {k: v for k, v in old["header"].items() if k not in ("msg_id", "date")} == \
        {k: v for k, v in new["header"].items() if k not in ("msg_id", "date")}
    direct = rc[0].apply_async(abs, -3)
    assert rc.resubmit(direct).get(timeout=30) == [3]
    with pytest.raises(KeyError, match="'nope': the task database has no record of it") as e:
        rc.resubmit(["nope"])
    assert isinstance(e.value, error.RemoteError) and e.value.ename == "KeyError"


def test_purging(rc, dv):
    rc[:2].apply_sync(abs, -1)
    rc.results["made-up"] = 5
    rc.metadata["made-up"]["status"] = "ok"
    rc.purge_local_results("made-up")
    assert "made-up" not in rc.results and "made-up" not in rc.metadata
    last = rc.hub_history()[-1]
    rc.purge_hub_results(last)
    assert last not in rc.hub_history()
    rc.purge_hub_results(targets=[0])
    assert rc.db_query({"engine_uuid": rc._engines[0]}) == []
    rc.purge_everything()
    assert rc.history == [] and rc.hub_history() == [] and rc.results == {}


@pytest.mark.ray_only  # a request is outstanding only while an engine runs it elsewhere
def test_outstanding_names_parts_not_replied(rc, dv):
    ar = rc[0].apply_async(time.sleep, 0.5)
    (msg_id,) = ar.msg_ids
    assert msg_id in rc.outstanding
    assert msg_id in rc._outstanding_dict[rc._engines[0]]
    with pytest.raises(RuntimeError, match="can't purge the records of requests still running"):
        rc.purge_hub_results(msg_id)
    ar.get(timeout=30)
    assert msg_id not in rc.outstanding
    assert msg_id not in rc._outstanding_dict[rc._engines[0]]


@pytest.mark.ray_only  # the engine must be busy while the second request waits for it
def test_with_targets_a_request_waits_for_the_busy_engine_and_can_be_aborted(rc, dv):
    view = rc.load_balanced_view(targets=[rc.ids[-1]])
    busy = view.apply_async(time.sleep, 0.5)
    queued = view.apply_async(abs, -1)  # waits in the view's queue for the engine
    view.abort(queued.msg_ids)
    with pytest.raises(error.TaskAborted):
        queued.get(timeout=30)
    busy.get(timeout=30)
    assert view.apply_sync(abs, -2) == 2  # the engine is free again
