"""Dependencies: Dependency's rules, ``after`` and ``follow`` on a LoadBalancedView (what
runs, where, and the errors of impossible or invalid dependencies), @require, @depend."""

from __future__ import annotations

import os
import time

import pytest

import rayparallel
from rayparallel import Dependency, RemoteError, depend, dependent, error, require

MIXED = [str(i) for i in range(10)]
EVEN = [str(i) for i in range(0, 10, 2)]
SUCCEEDED = {str(i) for i in range(0, 25, 2)}
FAILED = {str(i) for i in range(1, 25, 2)}


def fail():
    raise ValueError("no")


@pytest.mark.parametrize("ids, flags, met, unreachable", [
    (MIXED, {}, False, True),
    (MIXED, {"all": False}, True, False),
    (EVEN, {}, True, False),
    (MIXED, {"success": False, "failure": True}, False, True),
    (MIXED, {"success": False, "failure": True, "all": False}, True, False),
    (EVEN, {"success": False, "failure": True}, False, True),
    (EVEN, {"success": False, "failure": True, "all": False}, False, True),
    (MIXED, {"success": True, "failure": True}, True, False),
    ([], {}, True, False),
])
def test_dependency_rules(ids, flags, met, unreachable):
    dep = Dependency(ids, **flags)
    assert dep.check(SUCCEEDED, FAILED) is met
    assert dep.unreachable(SUCCEEDED, FAILED) is unreachable
    assert Dependency(dep.as_dict()) == dep and Dependency(dep.as_dict()).all == dep.all


def test_bad_dependencies_are_named():
    with pytest.raises(ValueError, match="successes, failures or both"):
        Dependency(["a"], success=False, failure=False)
    with pytest.raises(TypeError, match="invalid dependency 5"):
        Dependency([5])


def test_after_waits_and_runs_once_dependencies_succeed(rc, tmp_path):
    lview = rc.load_balanced_view()
    marker = str(tmp_path / "first")

    def first():
        time.sleep(0.3)
        open(marker, "w").close()

    dep = lview.apply_async(first)
    with lview.temp_flags(after=Dependency(dep)):
        waited = lview.apply_async(lambda: os.path.exists(marker))
    assert lview.after is None
    assert waited.get(timeout=30) is True
    assert waited.started >= dep.completed


@pytest.mark.parametrize("targets", [None, [0, 1]])
def test_after_a_failure_is_impossible_and_does_not_run(rc, tmp_path, targets):
    lview = rc.load_balanced_view(targets)
    marker = str(tmp_path / "ran")
    failed = lview.apply_async(fail)
    with lview.temp_flags(after=failed):
        ar = lview.apply_async(lambda: open(marker, "w").close())
    with pytest.raises(error.ImpossibleDependency) as info:
        ar.get(timeout=30)
    assert isinstance(info.value, RemoteError)
    assert info.value.ename == "ImpossibleDependency"
    assert "a request it depends on failed" in str(info.value)
    assert not os.path.exists(marker)
    # Counting failures instead: it runs.
    with lview.temp_flags(after=Dependency([failed], success=False, failure=True)):
        assert lview.apply_sync(lambda: 7) == 7
    # Any of them: one success is enough.
    ok = lview.apply_async(abs, -1)
    with lview.temp_flags(after=Dependency([failed, ok], all=False)):
        assert lview.map_sync(abs, [-1, -2]) == [1, 2]


def test_unknown_msg_id_is_an_invalid_dependency(rc):
    lview = rc.load_balanced_view()
    with lview.temp_flags(after="12345"):
        ar = lview.apply_async(lambda: 1)
    with pytest.raises(error.InvalidDependency, match="'12345' names no result") as info:
        ar.get(timeout=30)
    assert info.value.ename == "InvalidDependency"


def test_after_accepts_msg_ids(rc):
    lview = rc.load_balanced_view()
    dep = lview.apply_async(abs, -3)
    with lview.temp_flags(after=rc.history[-1]):
        assert lview.apply_sync(lambda: 4) == 4
    assert dep.get() == 3


def test_follow_runs_where_the_followed_request_ran(rc, dv):
    rc[2].push({"here": "engine 2"}, block=True)
    origin = rc[2].apply_async(lambda: 1)
    for targets in (None, [1, 2, 3]):
        lview = rc.load_balanced_view(targets, follow=origin)
        ars = [lview.apply_async(lambda: here) for _ in range(4)]  # noqa: F821
        assert [ar.get(timeout=30) for ar in ars] == ["engine 2"] * 4
        assert [ar.engine_id for ar in ars] == [2] * 4


def test_follow_outside_the_targets_is_impossible(rc):
    origin = rc[0].apply_async(lambda: 1)
    lview = rc.load_balanced_view([1, 2], follow=origin)
    with pytest.raises(error.ImpossibleDependency,
                       match="no engine among the targets ran all of the requests"):
        lview.apply_sync(lambda: 1)
    both = rc.load_balanced_view(follow=[origin, rc[1].apply_async(lambda: 1)])
    with pytest.raises(error.ImpossibleDependency, match="no engine ran all"):
        both.apply_sync(lambda: 1)
    either = Dependency([origin, rc[1].apply_async(lambda: 1)], all=False)
    assert rc.load_balanced_view(follow=either).apply_async(abs, -1).get(timeout=30) == 1


def test_following_a_task_constrains_nothing(rc):
    lview = rc.load_balanced_view()
    task = lview.apply_async(abs, -1)
    lview.follow = task
    ar = lview.apply_async(abs, -2)
    assert ar.get(timeout=30) == 2
    assert ar.engine_id is None  # a Ray task again: tasks leave no state to follow


@pytest.mark.ray_only  # local mode runs the dependency as soon as something waits for it
def test_abort_while_waiting_for_dependencies(rc):
    lview = rc.load_balanced_view([0])
    busy = rc[0].apply_async(time.sleep, 0.5)
    with lview.temp_flags(after=busy):
        waiting = lview.apply_async(abs, -1)
    waiting.abort()
    with pytest.raises(error.TaskAborted):
        waiting.get(timeout=30)
    busy.get(timeout=30)


def test_bad_flags_say_what_dependencies_are(rc):
    lview = rc.load_balanced_view()
    with pytest.raises(TypeError, match="follow must be an AsyncResult, a msg_id"):
        lview.set_flags(follow=3.5)


def test_require_modules_functions_and_names(rc, dv):
    import base64

    def square(x):
        return x * x

    @require(base64, square, offset=10)
    @rayparallel.interactive
    def encode(arg):
        return base64.b64encode(arg), square(3) + offset  # noqa: F821

    assert rc[0].apply_sync(encode, b"foo") == (b"Zm9v", 19)
    with pytest.raises(TypeError, match="other objects by keyword"):
        require(5)

    @require("no_such_module_here")
    def needs():
        return 1

    with pytest.raises(error.UnmetDependency, match="requires no_such_module_here"):
        rc.load_balanced_view().apply_sync(needs)


def test_depend_runs_only_where_the_check_passes(rc):
    lview = rc.load_balanced_view([0, 1])

    @depend(lambda: False)
    def never():
        return 1

    with pytest.raises(error.UnmetDependency, match="returned False here"):
        lview.apply_sync(never)
    assert isinstance(never, dependent)
    assert lview.apply_sync(depend(lambda: True)(lambda: "ok")) == "ok"
