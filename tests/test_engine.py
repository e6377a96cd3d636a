"""The Engine on its own: a real IPython shell hosted in this process."""

from __future__ import annotations

import sys

import pytest

from rayparallel.engine import Engine


@pytest.fixture
def engine():
    return Engine(3, in_process=True)


def test_execute_counts_only_non_silent_runs(engine):
    assert engine.execute("x = 1").error is None
    first = engine.execute("y = 2", silent=False)
    second = engine.execute("x + y", silent=False)
    assert second.execution_count == first.execution_count + 1
    assert second.execute_result["data"]["text/plain"] == "3"
    assert engine.execute("x + y").execute_result is None


def test_magics_and_display_are_captured(engine):
    reply = engine.execute("%time z = 5\nfrom IPython.display import display, HTML\n"
                           "display(HTML('<b>hi</b>'))", silent=False)
    assert reply.error is None
    assert "Wall time" in reply.stdout
    assert reply.outputs[0]["data"]["text/html"] == "<b>hi</b>"
    assert engine.namespace["z"] == 5


def test_errors_come_back_in_the_reply(engine):
    reply = engine.execute("1/0", silent=False)
    assert reply.error.ename == "ZeroDivisionError"
    assert "1/0" in reply.error.traceback
    reply = engine.apply((int, ("x",), {}))
    assert reply.error.ename == "ValueError"
    assert engine.pull("missing").error.evalue == "name 'missing' is not defined on engine 3"


def test_hosted_engine_leaves_the_host_alone(engine):
    main = sys.modules["__main__"]
    saved_stdout = sys.stdout
    engine.execute("print('inside')")
    assert sys.modules["__main__"] is main
    assert sys.stdout is saved_stdout


def test_push_pull_import_names(engine):
    engine.push({"a": 3, "b": 2})
    assert engine.pull(["a", "b"]).value == [3, 2]
    engine.import_names(["os.path"], [("osp", "os.path", None), ("join", "os.path", "join")])
    assert engine.execute("osp.join is join", silent=False).execute_result["data"][
        "text/plain"] == "True"
    engine.clear()
    assert "a" not in engine.namespace
