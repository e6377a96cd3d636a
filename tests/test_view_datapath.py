"""DirectView data-path behaviour ipyparallel code relies on: send tracking (``track``),
dotted names in pull/push, and text scattered as pieces of text."""

from __future__ import annotations

import math

import pytest
import zmq

from rayparallel import error
from rayparallel.tracking import SendTracker, send_tracker


def test_tracked_results_are_sent_once_the_call_returns(dv):
    one = dv.client[0]
    ar = one.push({"x": "x" * 100_000}, block=False, track=True)
    assert ar.sent and ar.wait_for_send(0)
    assert isinstance(ar.tracker, zmq.MessageTracker) and ar.tracker.done
    assert ar.get() is None
    with one.temp_flags(track=True, block=False):
        ar = one.apply(len, "abc")
    assert ar.tracker.done and ar.get() == 3
    ar = dv.scatter("s", list(range(8)), block=False, track=True)
    assert ar.tracker.done and ar.get() == [None] * len(dv)


def test_track_flag_is_a_view_flag_and_checked(dv):
    assert "track" in dv.flag_names and dv.track is False
    with pytest.raises(TypeError, match="track must be True or False, not 'yes'"):
        dv.push({"a": 1}, track="yes")
    with dv.temp_flags(track=1), pytest.raises(TypeError, match="not 1"):
        dv.apply(abs, -1)


def test_send_tracker_without_pyzmq_waits_for_its_events():
    import threading

    sent = threading.Event()
    tracker = SendTracker(sent)
    assert not tracker.done
    with pytest.raises(error.TimeoutError, match="not sent after 0 s"):
        tracker.wait(0)
    sent.set()
    tracker.wait(0)
    assert tracker.done and send_tracker(sent).done
    with pytest.raises(TypeError, match="threading.Events, not int"):
        SendTracker(1)


def test_scatter_of_text_sends_pieces_of_text(dv):
    two = dv.client[[0, 1]]
    two.scatter("t", "abcde", block=True)
    assert two.pull("t", block=True) == ["abc", "de"]
    assert two.gather("t", block=True) == ["abc", "de"]  # as ipyparallel: parts as a list


def test_dotted_names_reach_attributes_on_the_engines(dv):
    one = dv.client[0]
    one.execute("class A: pass\na = A()\na.b = 128", block=True)
    assert one["a.b"] == 128 and one.pull(["a.b", "a"], block=True)[0] == 128
    one["a.b"] = 0
    assert one.apply_sync(lambda: a.b) == 0  # noqa: F821 - the engine's a
    with pytest.raises(error.RemoteError, match="NameError.*'nothing' is not defined"):
        one.pull("nothing.b", block=True)
    with pytest.raises(error.RemoteError, match="AttributeError.*'A' object has no attribute 'c'"):
        one.pull("a.c", block=True)
    with pytest.raises(ValueError, match=r"valid Python names \(or a.b\), not \['a.1'\]"):
        one.push({"a.1": 2})


@pytest.mark.ray_only
def test_engines_of_a_client_under_the_ipyparallel_alias_have_it_too(rc):
    import rayparallel.ipyparallel as alias

    ours = not alias.installed()  # the compat runner, in the same session, installs it
    if ours:
        alias.install()
    try:
        [new] = rc.add_engines(1)
    finally:
        if ours:
            alias.uninstall()
    try:
        ar = rc[new].execute("from ipyparallel.datapub import publish_data\n"
                             "import ipyparallel\n"
                             "publish_data({'client': ipyparallel.Client.__module__})",
                             block=True)
        assert ar.data == {"client": "rayparallel.client"}
    finally:
        rc.shutdown(targets=[new])


@pytest.mark.ray_only
def test_engines_of_a_plain_client_import_the_real_ipyparallel(rc):
    import rayparallel.ipyparallel as alias

    if alias.installed():
        pytest.skip("the ipyparallel alias is installed in this process (tests/compat ran)")
    [new] = rc.add_engines(1)
    try:
        kind = rc[new].apply_sync(lambda: type(__import__("ipyparallel").Client).__module__)
        assert kind == "traitlets.traitlets"  # ipyparallel's Client is a traitlets class
    finally:
        rc.shutdown(targets=[new])


def fail_on_2(n):
    if n == 2:
        raise ValueError("two!")
    return n


def test_a_failed_item_is_the_same_error_each_time_it_is_read(rc):
    amr = rc.load_balanced_view().map(fail_on_2, range(4), return_exceptions=True)
    first = list(amr)
    assert isinstance(first[2], ValueError) and isinstance(first[2], error.RemoteError)
    assert list(amr) == first == amr.get() and amr.get()[2] is first[2]
    ar = rc[0:2].apply_async(fail_on_2, 2)
    assert ar.get(return_exceptions=True)[0] is ar.get(return_exceptions=True)[0]


def crash(runs_file):
    import os

    with open(runs_file, "a") as fh:
        fh.write("ran\n")
    os._exit(1)


@pytest.mark.ray_only
def test_a_task_whose_worker_dies_fails_at_once_as_a_lost_engine(rc, tmp_path):
    runs = tmp_path / "runs"
    ar = rc.load_balanced_view().apply_async(crash, str(runs))
    with pytest.raises(error.RemoteError) as caught:
        ar.get(timeout=30)
    assert runs.read_text() == "ran\n"  # not run again: retries is 0, as in ipyparallel
    lost = caught.value
    assert isinstance(lost, error.EngineError) and isinstance(lost, error.EngineLostError)
    assert lost.ename == "EngineError" and lost.engine_id is None
    assert str(lost).startswith("the worker running it died or became unreachable during crash")
    assert "EngineError" in repr(lost)


def test_each_part_says_which_engine_ran_it(rc):
    ar = rc.broadcast_view([2, 0], is_coalescing=True).pull("__name__", block=False)
    ar.get(timeout=30)
    uuids = ar.engine_uuid
    info = rc.engine_info()
    assert uuids == [info[2]["engine_uuid"], info[0]["engine_uuid"]]
    assert len(set(uuids)) == 2 and all(len(u) == 32 for u in uuids)
    ar = rc[1].apply_async(abs, 1)
    ar.get(timeout=30)  # known once the part replied, as in ipyparallel
    assert ar.engine_uuid == info[1]["engine_uuid"]
    assert rc.load_balanced_view().apply_async(abs, 1).get() == 1


def uses_a_and_math():
    return a + math.floor(1.5)  # noqa: F821 - a: the engine's


def sets_total():
    global total
    total = 7


def test_a_pushed_function_sees_the_engine_namespace_and_brings_what_it_uses(dv):
    one = dv.client[0]
    one.push({"f": uses_a_and_math, "g": sets_total}, block=True)
    with pytest.raises(error.RemoteError, match="NameError.*'a' is not defined"):
        one.execute("b = f()", block=True)
    one.execute("a = 5\nb = f()\ng()", block=True)
    assert one.pull(["b", "total"], block=True) == [6, 7]
    assert one.apply_sync(lambda: "math" in globals())  # math came along, a module it uses


def test_pushed_objects_that_answer_any_attribute_stay_as_they_are(dv):
    from unittest import mock

    one = dv.client[0]
    one.push({"m": mock.Mock(name="m")}, block=True)
    assert one.apply_sync(lambda: type(m).__name__) == "Mock"  # noqa: F821
