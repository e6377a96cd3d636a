"""AsyncResult as ipyparallel users see it: split/join, wait(return_when=...), published
data, output, timings, progress, engine info on errors, ExecuteReply's rich forms."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

import pytest
from waiting import wait_for_file

from rayparallel import AsyncResult, CompositeError, RemoteError, error
from rayparallel.datapub import publish_data
from rayparallel.display import use_widget


@pytest.fixture
def lview(rc):
    return rc.load_balanced_view()


@pytest.fixture
def marker(tmp_path):
    """A file path engines wait for; the test creates it to let them go on (and so does
    teardown, so a failing test leaves no engine waiting)."""
    path = str(tmp_path / f"go-{uuid.uuid4().hex}")
    yield path
    touch(path)


def fail_first_then_wait(i, path):
    if i == 0:
        raise ValueError("first!")
    wait_for_file(path)
    return i


def touch(path):
    open(path, "w").close()


# ------------------------------------------------------------------ split / join


def test_split_gives_one_result_per_engine_and_join_puts_them_back(dv):
    parent = dv.apply_async(lambda: 7)
    children = parent.split()
    assert len(children) == len(dv) and parent.split() is children
    assert [type(c) for c in children] == [AsyncResult] * len(dv)
    assert [c.get(timeout=30) for c in children] == parent.get(timeout=30) == [7] * len(dv)
    assert [c.engine_ids for c in children] == [[e] for e in dv.targets]
    assert children[0].split() == (children[0],)
    assert AsyncResult.join(*children).get(timeout=30) == [7] * len(dv)
    with pytest.raises(ValueError, match="at least one AsyncResult"):
        AsyncResult.join()


def test_split_of_a_map_keeps_each_part_a_list(lview):
    amr = lview.map_async(lambda x: x * 10, range(5), chunksize=1)
    parts = amr.split()
    assert amr.get(timeout=30) == [0, 10, 20, 30, 40]
    assert all(type(p) is AsyncResult and p.done() for p in parts)
    assert [p.get() for p in parts] == [[[0]], [[10]], [[20]], [[30]], [[40]]]


# ------------------------------------------------------------------ wait / get


def test_wait_with_return_when_gives_done_and_pending_sets(dv):
    ar = dv.apply_async(lambda: 1)
    done, pending = ar.wait(30, return_when=ALL_COMPLETED)
    assert pending == set() and done == set(ar.split())
    done, pending = ar.wait(0, return_when=FIRST_EXCEPTION)
    assert len(done) == len(dv) and not pending
    assert ar.wait(0) is True
    with pytest.raises(ValueError, match="return_when must be one of ALL_COMPLETED, "
                                         "FIRST_COMPLETED, FIRST_EXCEPTION .*'SOON'"):
        ar.wait(1, return_when="SOON")


@pytest.mark.ray_only  # local mode runs the parts one after another
def test_first_exception_returns_while_the_others_still_run(dv, marker):
    amr = dv.map_async(fail_first_then_wait, range(len(dv)), [marker] * len(dv))
    done, pending = amr.wait(timeout=30, return_when=FIRST_EXCEPTION)
    assert len(done) == 1 and len(pending) == len(dv) - 1
    (first,) = done
    assert first.engine_ids == [dv.targets[0]] and first.successful() is False
    with pytest.raises(ValueError, match="first!"):
        amr.get(timeout=30, return_when=FIRST_EXCEPTION)
    assert not amr.done()
    with pytest.raises(error.TimeoutError, match="wall_time is known once the result"):
        _ = amr.wall_time
    with pytest.raises(error.TimeoutError, match="serial_time"):
        _ = amr.serial_time
    assert amr.elapsed > 0
    assert amr.engine_id == dv.targets  # known before the parts reply
    touch(marker)
    assert amr.get(timeout=30, return_exceptions=True)[1:] == list(range(1, len(dv)))
    assert amr.elapsed == amr.wall_time


@pytest.mark.ray_only
def test_first_completed(dv, marker):
    ar = dv.map_async(fail_first_then_wait, range(len(dv)), [marker] * len(dv))
    done, pending = ar.wait(30, return_when=FIRST_COMPLETED)
    assert [d.engine_ids for d in done] == [[dv.targets[0]]]
    with pytest.warns(UserWarning, match=r"FIRST_COMPLETED\) is not supported"):
        with pytest.raises(error.TimeoutError):
            ar.get(0.1, return_when=FIRST_COMPLETED)
    touch(marker)
    assert ar.wait(30)


def test_wait_for_output_and_sent(rc):
    ar = rc[0].execute("print('out')")
    assert ar.wait_for_output(30) is True
    assert ar.stdout == "out\n"
    assert ar.sent is True and ar.wait_for_send(0) is True


def test_get_dict_needs_one_part_per_engine(lview):
    with pytest.raises(ValueError, match="get_dict.. needs one part per engine; <lambda> "
                                         "has parts on load-balanced tasks"):
        lview.map_async(lambda x: x, range(4), chunksize=1).get_dict()


# ------------------------------------------------------------------ published data


PUBLISHING = ("from rayparallel.datapub import publish_data\n"
              "for i in range(5):\n"
              "    publish_data(dict(i=i, first=i == 0))")


def test_data_published_by_one_engine_is_a_dict(rc):
    ar = rc[0].execute(PUBLISHING)
    assert isinstance(ar.data, dict)
    ar.get(timeout=30)
    assert ar.data == {"i": 4, "first": False}  # later calls update earlier ones


def test_data_published_by_several_engines_is_a_list(dv):
    ar = dv.execute(PUBLISHING)
    assert all(isinstance(d, dict) for d in ar.data)
    ar.get(timeout=30)
    assert ar.data == [{"i": 4, "first": False}] * len(dv)
    assert ar.metadata[0]["data"] == {"i": 4, "first": False}


def test_data_from_apply_and_load_balanced_tasks(dv, lview):
    def publish(x):
        from rayparallel.datapub import publish_data

        publish_data({"x": x})
        return x

    ar = dv.apply_async(publish, 3)
    assert ar.get(timeout=30) == [3] * len(dv) and ar.data == [{"x": 3}] * len(dv)
    ar = lview.apply_async(publish, 5)
    assert ar.get(timeout=30) == 5 and ar.data == {"x": 5}


def test_publish_data_outside_engines_and_bad_data_are_named():
    with pytest.raises(RuntimeError, match="publishes from code that engines run"):
        publish_data({"x": 1})
    with pytest.raises(TypeError, match="publish_data needs a dict .names to values., not list"):
        publish_data([1])


# ------------------------------------------------------------------ progress


def test_len_and_progress_count_items_of_maps(dv, lview):
    amr = dv.map_async(abs, range(2 * len(dv)))
    assert len(amr) == 2 * len(dv)
    assert amr.wait(30) and amr.progress == len(amr)
    lb = lview.map_async(abs, range(10), chunksize=4)
    assert len(lb) == 10 and len(lb.stdout) == 3  # 3 tasks of up to 4 items
    assert lb.wait(30) and lb.progress == 10
    assert len(lview.apply_async(abs, 1)) == 1
    assert len(dv.apply_async(abs, 1)) == len(dv)


def test_wait_interactive_text_and_widget_choice(dv, capsys):
    amr = dv.map_async(abs, range(2 * len(dv)))
    amr.wait_interactive(widget=False)
    out = capsys.readouterr().out
    tasks = len(dv)  # one part per engine; progress counts the map's items
    assert out.replace("\r", "\n").splitlines()[-2] == \
        f"{tasks:4d}/{tasks} tasks finished after    0 s"
    assert out.endswith("done\n") and amr.progress == 2 * len(dv)
    assert use_widget() is False and use_widget(True) is True  # no Jupyter kernel here


@pytest.mark.ray_only
def test_wait_interactive_returns_at_first_exception(dv, marker, capsys):
    amr = dv.map_async(fail_first_then_wait, range(len(dv)), [marker] * len(dv))
    amr.wait_interactive(timeout=30, return_when=FIRST_EXCEPTION)
    assert not amr.done()
    assert "done" not in capsys.readouterr().out
    touch(marker)
    assert amr.wait(30)


# ------------------------------------------------------------------ output and errors


def test_display_outputs_of_a_single_result_has_no_prefix(rc, capsys):
    ar = rc[0].execute("print(5555)")
    ar.get(timeout=30)
    ar.display_outputs()
    assert capsys.readouterr() == ("5555\n", "")
    rc[0].execute("a = 5").display_outputs()
    assert capsys.readouterr() == ("", "")
    rc[0].execute("print(5555)\n1/0").display_outputs()
    assert capsys.readouterr().out == "5555\n"


def test_display_outputs_of_several_engines_prefixes_each(dv, capsys):
    dv.execute("print(5555)").display_outputs("engine")
    out = capsys.readouterr().out
    assert out.splitlines() == [f"[stdout:{e}] 5555" for e in dv.targets]


@pytest.mark.parametrize("method, run", [
    ("apply", lambda view: view.apply_async(lambda: 1 / 0)),
    ("execute", lambda view: view.execute("1 / 0")),
])
def test_errors_name_engine_and_method(dv, method, run):
    with pytest.raises(CompositeError) as info:
        run(dv).get(timeout=30)
    infos = [e[-1] for e in info.value.elist]
    assert [(i["engine_id"], i["method"]) for i in infos] == [(e, method) for e in dv.targets]
    with pytest.raises(RemoteError) as one:
        run(dv.client[dv.targets[0]]).get(timeout=30)
    assert one.value.engine_info["engine_id"] == dv.targets[0]
    assert one.value.engine_info["method"] == method


def test_execute_reply_rich_forms(rc):
    e0 = rc[0]
    e0.execute("from IPython.display import Image, HTML", block=True)
    er = e0.execute("Image(data=b'garbage', format='png', width=10)", silent=False).get(30)
    data, metadata = er._repr_png_()
    assert data.strip() == base64.b64encode(b"garbage").decode("ascii")
    assert metadata == {"width": 10}
    er = e0.execute("HTML('<b>bold</b>')", silent=False).get(timeout=30)
    assert er._repr_html_() == "<b>bold</b>"
    assert er._repr_png_() is None
    bundle, _ = er._repr_mimebundle_()
    assert bundle["text/html"] == "<b>bold</b>"
    assert bundle["text/plain"].startswith(f"Out[{rc.ids[0]}:{er.execution_count}]: ")
    er = e0.execute("5", silent=False).get(timeout=30)
    assert str(er) == f"<ExecuteReply[{er.execution_count}]: 5>"


def test_dir_lists_metadata_keys(rc):
    ar = rc[0].apply_async(lambda: 1)
    ar.get(timeout=30)
    assert {"stdout", "data", "engine_id", "get", "split"} <= set(dir(ar))
