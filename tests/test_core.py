"""Client, DirectView and AsyncResult behaviour beyond the seeds: errors, timeouts,
targets, serialization, the Future protocol."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest

import rayparallel
from rayparallel import CompositeError, RemoteError, error


def test_client_ids_len_repr_and_indexing(rc):
    assert rc.ids == list(range(8))
    assert len(rc) == 8
    if rc.local_mode:
        assert repr(rc) == "<Client: 8 engines on 1 node, local>"
    else:
        assert repr(rc).startswith("<Client: 8 engines on 1 node, ray at ")
    assert rc[::2].targets == [0, 2, 4, 6]
    assert rc[1:3].targets == [1, 2]
    assert rc[[1, 3]].targets == [1, 3]
    assert rc[-1].targets == 7
    assert len(rc.direct_view("all")) == 8
    info = rc.engine_info()[0]
    assert {"pid", "hostname"} <= set(info)
    assert ("node_id" in info) is not rc.local_mode


@pytest.mark.parametrize("bad, exc, message", [
    (99, IndexError, "engine 99 is not registered"),
    ([0, 42], IndexError, "engine 42 is not registered"),
    ("x", TypeError, "targets must be 'all', an int, a slice or a list of ints"),
    ([0, "1"], TypeError, "engine ids are ints, not str"),
])
def test_bad_targets_name_the_problem(rc, bad, exc, message):
    with pytest.raises(exc, match=message):
        rc[bad]


def test_single_target_returns_value_list_target_returns_list(rc):
    assert rc[0].apply_sync(lambda: 1) == 1
    assert rc[[0]].apply_sync(lambda: 1) == [1]


def test_interactive_function_writes_engine_globals(dv):
    def set_x(v):
        global x
        x = v
        return v

    dv.apply_sync(set_x, 7)
    assert dv.pull("x", block=True) == [7] * 8


def test_engine_value_wins_over_client_value_of_same_name(dv):
    dv.push({"threshold": 1}, block=True)
    notebook = {"__name__": "__main__", "threshold": 100}  # a notebook's globals
    exec("def over(v):\n    return v > threshold\n", notebook)
    assert dv.map_sync(notebook["over"], [0, 5]) == [False, True]


def test_helper_functions_travel_and_do_not_stay(rc):
    def helper(v):
        return v + 1

    def uses_helper(v):
        return helper(v)

    assert rc[0].apply_sync(uses_helper, 1) == 2
    assert rc[0].apply_sync(lambda: "helper" in globals()) is False


def test_pushed_arrays_are_writable_copies(dv):
    big = np.zeros(1_000_000)
    dv.push({"big": big}, block=True)
    replies = dv.execute("big[0] = 1\nbig.flags.writeable and big[0]", silent=False, block=True)
    assert [r.data["text/plain"] for r in replies] == ["np.float64(1.0)"] * 8
    assert big[0] == 0  # the client's array is untouched


def test_scatter_flatten_and_non_sequence(dv):
    dv.scatter("v", list(range(8)), flatten=True, block=True)
    assert dv.pull("v", block=True) == list(range(8))
    with pytest.raises(TypeError, match="scatter needs a sequence"):
        dv.scatter("v", 5)


def test_remote_error_single_engine_is_also_the_original_type(rc):
    def boom():
        return 1 / 0

    with pytest.raises(ZeroDivisionError) as info:
        rc[0].apply_sync(boom)
    err = info.value
    assert isinstance(err, RemoteError)
    assert err.ename == "ZeroDivisionError"
    assert err.evalue == "division by zero"
    assert err.engine_info == {"engine_id": 0, "engine_uuid": rc.engine_info()[0]["engine_uuid"],
                               "method": "apply"}
    assert str(err) == "[0:apply] ZeroDivisionError: division by zero"
    assert "return 1 / 0" in err.traceback
    assert "rayparallel" not in err.traceback and "site-packages/ray" not in err.traceback


def test_composite_error_names_each_engine_and_keeps_other_results(rc):
    def fail_on_odd(i):
        if i % 2:
            raise ValueError(f"odd {i}")
        return i

    ar = rc[0:4].map_async(fail_on_odd, range(4))
    with pytest.raises(CompositeError) as info:
        ar.get()
    err = info.value
    assert [e[3]["engine_id"] for e in err.elist] == [1, 3]
    assert "[1:map] ValueError: odd 1" in str(err)
    with pytest.raises(ValueError, match="odd 3"):
        err.raise_exception(1)
    assert ar.successful() is False
    assert repr(ar) == "<AsyncMapResult: fail_on_odd:failed>"


def test_engine_side_exception_class_unknown_to_client(rc):
    code = "class LocalOnly(Exception):\n    pass\n"

    def raise_local():
        raise LocalOnly("only here")  # noqa: F821

    rc[0].execute(code, block=True)
    with pytest.raises(RemoteError, match="LocalOnly: only here"):
        rc[0].apply_sync(raise_local)


def test_execute_syntax_error_is_a_remote_error(rc):
    with pytest.raises(SyntaxError) as info:
        rc[0].execute("def (:", block=True)
    assert info.value.ename == "SyntaxError"


@pytest.mark.ray_only  # in local mode work runs when asked for, so it is never late
def test_timeout_then_value_later(rc):
    ar = rc[0].apply_async(time.sleep, 0.5)
    with pytest.raises(error.TimeoutError, match="not ready after 0.01 s"):
        ar.get(timeout=0.01)
    assert ar.get(timeout=30) is None  # time.sleep returns None; nothing was lost
    assert issubclass(error.TimeoutError, TimeoutError)
    assert ar.wall_time >= 0.5
    assert 0.5 <= ar.serial_time < 5


def test_unpicklable_argument_fails_at_submission_and_names_it(rc):
    before = rc[0].apply_sync(lambda: globals().get("sent"))
    with pytest.raises(TypeError, match=r"argument 0 cannot be pickled .*lock.*Nothing was sent"):
        rc[:].apply_sync(lambda lk: lk, threading.Lock())
    assert rc[0].apply_sync(lambda: globals().get("sent")) == before
    with pytest.raises(TypeError, match="the value of 'lk' cannot be pickled"):
        rc[:].push({"lk": threading.Lock()})


def test_unpicklable_result_is_a_remote_error(rc):
    with pytest.raises(RemoteError, match="pickle"):
        rc[0].apply_sync(threading.Lock)


def test_bad_input_errors(rc, dv, tmp_path):
    with pytest.raises(TypeError, match="push needs a dict"):
        dv.push([1, 2])
    with pytest.raises(NameError, match="name 'nope' is not defined on engine 0"):
        rc[0].pull("nope", block=True)
    with pytest.raises(TypeError, match=r"map: argument 1 \(int\) is not iterable"):
        dv.map(abs, 5)
    with pytest.raises(TypeError, match="execute needs a string"):
        dv.execute(42)
    with pytest.raises(FileNotFoundError):
        dv.run(str(tmp_path / "missing.py"))
    with pytest.raises(TypeError, match="apply needs a callable"):
        dv.apply(5)


def test_run_file(rc, tmp_path):
    script = tmp_path / "setup_engine.py"
    script.write_text("ran = 'yes'\n")
    rc[0].run(str(script), block=True)
    assert rc[0].pull("ran", block=True) == "yes"


def test_metadata_stdout_and_get_dict(rc):
    ar = rc[0:2].apply_async(lambda: print("hello") or 5)
    assert ar.get_dict() == {0: 5, 1: 5}
    assert ar.stdout == ["hello\n", "hello\n"]
    assert ar.engine_id == [0, 1]
    md = ar.metadata[0]
    assert md["status"] == "ok" and md.stdout == "hello\n"
    assert md["completed"] >= md["started"]
    assert ar.progress == 2 and len(ar) == 2


def test_future_protocol_wait_callbacks_and_await(rc):
    ar = rc[:].apply_async(lambda: 3)
    done, _ = concurrent.futures.wait([ar], timeout=30)
    assert done == {ar}
    seen = []
    ar2 = rc[0].apply_async(lambda: 4)
    event = threading.Event()
    ar2.add_done_callback(lambda f: (seen.append(f.result()), event.set()))
    assert event.wait(30)
    assert seen == [4]

    async def main():
        return await rc[1].apply_async(lambda: 5)

    assert asyncio.run(main()) == 5
    assert list(concurrent.futures.as_completed([rc[2].apply_async(lambda: 6)]))[0].result() == 6


def test_iteration_in_order(dv):
    assert list(dv.map_async(lambda x: x * 10, range(12))) == [x * 10 for x in range(12)]
    assert list(dv.apply_async(lambda: 1)) == [1] * 8


def test_client_wait_and_outstanding(rc):
    jobs = [rc[i].apply_async(time.sleep, 0.05) for i in range(4)]
    assert rc.wait(jobs, timeout=30) is True
    assert rc.wait(timeout=30) is True


def test_wait_interactive_prints_progress(rc, capsys):
    ar = rc[0:2].apply_async(lambda: 1)
    ar.wait_interactive()
    out = capsys.readouterr().out
    assert "   2/2 tasks finished after    0 s" in out
    assert out.endswith("done\n")


def test_temp_flags_and_set_flags(rc):
    v = rc[0:2]
    with v.temp_flags(block=True):
        assert v.apply(lambda: 1) == [1, 1]
    assert v.block is False
    with pytest.raises(KeyError, match="invalid flag 'nope'"):
        v.set_flags(nope=1)


@pytest.mark.parametrize("mode", ["dill", "pickle"])
def test_other_serializers(rc, mode):
    rc.use_dill() if mode == "dill" else rc.use_pickle()
    try:
        assert rc[0:2].apply_sync(max, 3, 9) == [9, 9]
        if mode == "dill":  # plain pickle cannot send notebook functions; dill can
            notebook = {"__name__": "__main__"}
            exec("def inc(x):\n    return x + 1\n", notebook)
            assert rc[0].apply_sync(notebook["inc"], 1) == 2
    finally:
        rc.use_cloudpickle()


def test_execute_display_outputs(rc, capsys):
    ar = rc[0:2].execute("print('hi')\n6 * 7", silent=False, block=False)
    ar.get()
    ar.display_outputs()
    out = capsys.readouterr().out
    assert "[stdout:0] hi\n[stdout:1] hi\n" in out
    assert "Out[0:" in out and "]: 42" in out


def test_shutdown_client_then_calls_fail_clearly():
    with rayparallel.Client(num_engines=1) as c:
        assert c[0].apply_sync(lambda: 2) == 2
    with pytest.raises(rayparallel.error.RayParallelError, match="has been shut down"):
        c[:]
