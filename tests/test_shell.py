"""The engine's IPython shell: silent cells of plain Python take a short road (compiled once,
run directly) with the outcome IPython's own road gives; anything IPython would change goes
its road."""

from __future__ import annotations

import gc
import linecache

import pytest

from rayparallel.engine import Engine
from rayparallel.shell import PLAIN_CELLS_KEPT


@pytest.fixture
def engine():
    return Engine(5, in_process=True)


@pytest.fixture
def ipython_road(engine):
    """How many cells went through IPython's input transformation."""
    calls = []
    original = engine.shell.transform_cell

    def counting(cell):
        calls.append(cell)
        return original(cell)

    engine.shell.transform_cell = counting
    return calls


def test_plain_silent_cells_run_without_input_transformation(engine, ipython_road):
    for _ in range(3):
        reply = engine.execute("x = 6 * 7\nprint('x is', x)")
    assert (reply.error, reply.stdout, engine.namespace["x"]) == (None, "x is 42\n", 42)
    assert reply.execution_count == engine.execute("y = 1").execution_count
    assert ipython_road == []


def test_errors_on_the_short_road_show_the_cell_source(engine, ipython_road):
    reply = engine.execute("def f():\n    return 1 / 0\nf()")
    assert reply.error.ename == "ZeroDivisionError"
    assert "return 1 / 0" in reply.error.traceback and "f()" in reply.error.traceback
    assert ipython_road == []


@pytest.mark.parametrize("cell, check", [
    ("%time z = 5", lambda e, r: "Wall time" in r.stdout and e.namespace["z"] == 5),
    ("    z = 7", lambda e, r: r.error is None and e.namespace["z"] == 7),  # dedented
    ("import asyncio\nawait asyncio.sleep(0)\nz = 8",
     lambda e, r: r.error is None and e.namespace["z"] == 8),
    ("pwd", lambda e, r: r.error is None),  # automagic: a magic, not a NameError
    ("x = (", lambda e, r: r.error.ename == "SyntaxError"),
])
def test_cells_ipython_would_change_take_its_road(engine, ipython_road, cell, check):
    reply = engine.execute(cell)
    assert check(engine, reply), reply
    assert ipython_road[0] == cell


def test_a_name_shadowing_a_magic_runs_as_python(engine):
    engine.execute("pwd = 'mine'")
    assert engine.execute("pwd", silent=False).execute_result["data"]["text/plain"] == \
        "'mine'"


def test_short_road_fires_execute_events(engine):
    # %matplotlib inline shows figures from a post_execute callback
    engine.execute("seen = []\nget_ipython().events.register("
                   "'post_execute', lambda: seen.append(1))")
    engine.execute("a = 1")
    engine.execute("b = 2")
    assert len(engine.namespace["seen"]) >= 2


def test_engines_do_not_keep_what_cells_print_or_return(engine):
    kept = engine.shell.history_manager.outputs  # IPython's, shared by the process
    before = sum(map(len, kept.values()))
    for _ in range(50):
        assert engine.execute("print('x' * 1000)").stdout == "x" * 1000 + "\n"
        assert engine.execute("'y' * 1000", silent=False).execute_result is not None
    assert sum(map(len, kept.values())) == before


def test_compiled_cells_kept_are_bounded(engine):
    for i in range(PLAIN_CELLS_KEPT + 20):
        engine.execute(f"v = {i}")
    assert engine.namespace["v"] == PLAIN_CELLS_KEPT + 19
    assert len(engine.shell._plain_cells) <= PLAIN_CELLS_KEPT


def test_sources_of_cells_no_longer_kept_go_unless_they_defined_code(engine):
    engine.execute("def early():\n    return 1 / 0")
    for i in range(2 * PLAIN_CELLS_KEPT):
        engine.execute(f"evicted_probe = {i}")
    ran = {f"evicted_probe = {i}\n" for i in range(2 * PLAIN_CELLS_KEPT)}
    kept = [entry for entry in linecache.cache.values() if len(entry) == 4
            and len(entry[2]) == 1 and entry[2][0] in ran]
    assert PLAIN_CELLS_KEPT // 2 < len(kept) <= PLAIN_CELLS_KEPT
    reply = engine.execute("early()")  # the old cell's function still shows its source
    assert "return 1 / 0" in reply.error.traceback


def test_hosted_engines_clear_without_sweeping_the_hosts_heap(engine):
    engine.execute("x = [1]", silent=False)
    engine.execute("x", silent=False)
    full_sweeps = []

    def watch(phase, info):
        if phase == "start" and info["generation"] == 2:
            full_sweeps.append(info)

    gc.callbacks.append(watch)
    try:
        assert engine.clear().error is None
    finally:
        gc.callbacks.remove(watch)
    assert full_sweeps == []
    assert "x" not in engine.namespace and "_2" not in engine.namespace
    assert engine.namespace["_oh"] == {}
