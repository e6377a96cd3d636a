"""The %px magics in a real in-process IPython shell, on the session's engines."""

from __future__ import annotations

import _thread
import io
import os
import re
import threading
import time
from contextlib import redirect_stdout
from types import SimpleNamespace

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from rayparallel.magics import register_magics
from waiting import wait_for_entries

from rayparallel import AsyncResult
from rayparallel.engine import Engine
from rayparallel.error import AlreadyDisplayedError, CompositeError, RemoteError


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()  # later tests run outside IPython again


@pytest.fixture
def px(ip, rc):
    """``%px`` and friends on engines 0-3, with empty namespaces and default settings."""
    view = rc.activate(targets=[0, 1, 2, 3])
    view.clear(block=True)
    return view


def run(ip, code: str) -> SimpleNamespace:
    """Run a cell; what it printed, displayed and raised."""
    with capture_output() as cap:
        result = ip.run_cell(code)
    return SimpleNamespace(out=cap.stdout, err=cap.stderr, outputs=cap.outputs,
                           error=result.error_in_exec or result.error_before_exec,
                           value=result.result)


def ok(ip, code: str) -> SimpleNamespace:
    res = run(ip, code)
    assert res.error is None, res.out + res.err
    return res


# ---------------------------------------------------------------------------- %px basics


def test_px_line_shows_results_with_engine_and_execution_count(ip, px):
    ok(ip, "%px a = 3")
    first = ok(ip, "%px a * 2")
    assert re.fullmatch(r"(Out\[\d:\d+\]: 6\n){4}", first.out), first.out
    assert first.value is None  # blocking %px returns nothing
    second = ok(ip, "%px a * 2")
    counts = [re.findall(r"Out\[(\d):(\d+)\]", res.out) for res in (first, second)]
    assert [e for e, _ in counts[0]] == ["0", "1", "2", "3"]
    # Out[engine:count]: each engine's own count, one more per %px
    assert [int(n) for _, n in counts[1]] == [int(n) + 1 for _, n in counts[0]]


def test_px_shows_stdout_and_stderr_per_engine(ip, px):
    res = ok(ip, "%%px --no-stream\nprint('hi')\nimport sys; print('oops', file=sys.stderr)")
    assert res.out == "".join(f"[stdout:{e}] hi\n" for e in range(4))
    assert res.err == "".join(f"[stderr:{e}] oops\n" for e in range(4))
    res = ok(ip, "%%px --no-stream --targets 0\nprint('one')\nprint('two')")
    assert res.out == "[stdout:0] \none\ntwo\n"


@pytest.mark.parametrize("targets, engines", [
    ("all", [0, 1, 2, 3, 4, 5, 6, 7]),
    ("2", [2]),
    ("::2", [0, 2, 4, 6]),
    ("1:3", [1, 2]),
    ("[1, 3]", [1, 3]),
    ("[5,7]", [5, 7]),
])
def test_targets_forms(ip, px, targets, engines):
    res = ok(ip, f"%%px --targets {targets}\nprint('here')")
    assert sorted(int(e) for e in re.findall(r"\[stdout:(\d+)\] here", res.out)) == engines
    res = ok(ip, f"%%px --target {targets}\nprint('here')")  # ipyparallel's spelling too
    assert sorted(int(e) for e in re.findall(r"\[stdout:(\d+)\] here", res.out)) == engines


def test_px_line_takes_leading_options(ip, px):
    # a slice counts over all of the client's engines, as in ipyparallel
    res = ok(ip, "%px --targets ::3 --no-stream print('x  y')")
    assert res.out == "[stdout:0] x  y\n[stdout:3] x  y\n[stdout:6] x  y\n"


def test_bad_targets_are_usage_errors_and_nothing_runs(ip, px):
    res = run(ip, "%%px --targets foo\nprint('ran')")
    assert isinstance(res.error, UsageError)
    assert "--targets 'foo'" in str(res.error)
    res = run(ip, "%px --targets 42 print('ran')")
    assert isinstance(res.error, UsageError)
    assert "engine 42 is not registered" in str(res.error)
    assert "ran" not in res.out


def test_noblock_returns_the_result_and_pxresult_shows_it(ip, px):
    res = ok(ip, "%%px --targets [1,3] --noblock\nprint('later')\n7")
    assert isinstance(res.value, AsyncResult)
    assert re.fullmatch(r"Out\[\d+\]: <AsyncResult: execute(:finished)?>\n", res.out), res.out
    res = ok(ip, "%pxresult")
    assert re.fullmatch(r"\[stdout:1\] later\n\[stdout:3\] later\n"
                        r"Out\[1:\d+\]: 7\nOut\[3:\d+\]: 7\n", res.out), res.out
    assert ok(ip, "%result").out == res.out  # ipyparallel's older name


def test_pxresult_before_any_px_is_a_usage_error(ip, rc):
    register_magics(ip, rc[:2], "_fresh")
    res = run(ip, "%pxresult_fresh")
    assert isinstance(res.error, UsageError)
    assert "%pxresult" in str(res.error)


def test_save_name_stores_the_async_result(ip, px):
    ok(ip, "%%px --save-name saved --targets 0\n40 + 2")
    assert ip.user_ns["saved"].get().data["text/plain"] == "42"  # one engine: one reply
    ok(ip, "%%px -o saved2 --noblock --targets 1\n1")
    assert isinstance(ip.user_ns["saved2"], AsyncResult)
    ok(ip, "%pxresult --out saved3")
    assert ip.user_ns["saved3"] is ip.user_ns["saved2"]


def test_local_runs_the_cell_here_too(ip, px):
    ok(ip, "%%px --local\nboth_here_and_there = 7")
    assert ip.user_ns["both_here_and_there"] == 7
    assert px.pull("both_here_and_there", block=True) == [7, 7, 7, 7]


def test_verbose_says_where(ip, px):
    res = ok(ip, "%%px --verbose --targets [0,1]\npass")
    assert res.out == "Parallel execution on engine(s): [0, 1]\n"


# ---------------------------------------------------------------------------- grouping


def test_group_outputs(ip, px):
    cell = ("%%px --targets [0,1] --no-stream {flag}\nfrom IPython.display import display, HTML\n"
            "print('p')\ndisplay(HTML('<i>first</i>'))\ndisplay(HTML('<i>second</i>'))\n5")
    res = ok(ip, cell.format(flag="--group-outputs type"))
    assert re.sub(r"(Out\[\d+):\d+\]", r"\1]", res.out) == (
        "[stdout:0] p\n[stdout:1] p\n[output:0]\n[output:1]\nOut[0]: 5\nOut[1]: 5\n")
    assert [o.data["text/html"] for o in res.outputs] == ["<i>first</i>", "<i>second</i>"] * 2
    # engine: one [output:e] over an engine's displays and its result
    res = ok(ip, cell.format(flag="--group-outputs engine"))
    assert re.sub(r"(Out\[\d+):\d+\]", r"\1]", res.out) == (
        "[stdout:0] p\n[output:0]\nOut[0]: 5\n[stdout:1] p\n[output:1]\nOut[1]: 5\n")
    assert ok(ip, "%%px --targets [0,1] --no-stream -e\n5").out.count("[output:") == 2
    res = ok(ip, cell.format(flag="-r"))  # order: each engine's first display, then second
    assert re.sub(r"(Out\[\d+):\d+\]", r"\1]", res.out) == (
        "[stdout:0] p\n[stdout:1] p\n[output:0]\n[output:1]\n[output:0]\n[output:1]\n"
        "Out[0]: 5\nOut[1]: 5\n")
    assert [o.data["text/html"] for o in res.outputs] == [
        "<i>first</i>", "<i>first</i>", "<i>second</i>", "<i>second</i>"]


@pytest.mark.ray_only  # matplotlib's backend is per process: in-process engines share the host's
def test_matplotlib_inline_figures_come_back_as_images(ip, px):
    res = ok(ip, "%%px --targets [1,3] --progress-after -1\n%matplotlib inline\n"
                 "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]);")
    # streamed: each engine's figure as it finishes
    assert sorted(res.out.splitlines()) == ["[output:1]", "[output:3]"]
    assert len(res.outputs) == 2
    for output in res.outputs:
        assert output.data["image/png"]
        assert output.data["text/plain"].startswith("<Figure")


# ---------------------------------------------------------------------------- errors


def test_errors_fail_the_cell_with_each_engines_traceback(ip, px):
    res = run(ip, "%%px --targets [0,1] --no-stream\nx = 1\n1/0")
    assert isinstance(res.error, CompositeError)
    for eid in (0, 1):
        assert f"[{eid}:execute]:" in res.out
    assert res.out.count("ZeroDivisionError: division by zero") == 2
    assert "----> 2 1/0" in res.out
    assert "rayparallel/" not in res.out and "ray/" not in res.out  # user code only
    assert res.err == ""


def test_streamed_errors_are_shown_once_and_the_cell_fails_with_already_displayed(ip, px):
    res = run(ip, "%%px --targets [0,1]\nx = 1\n1/0")
    # streaming showed each engine's traceback on stderr as it failed...
    assert res.err.count("ZeroDivisionError: division by zero") == 2
    assert "[0:execute]" in res.err and "[1:execute]" in res.err
    assert "----> 2 1/0" in res.err
    # ...so the cell's error only counts them, and is still a RemoteError
    assert isinstance(res.error, AlreadyDisplayedError) and isinstance(res.error, RemoteError)
    assert res.error.render_traceback() == ["2 errors"]
    assert "2 errors" in res.out and "ZeroDivisionError" not in res.out
    assert isinstance(res.error.original_error, CompositeError)
    assert len(res.error.original_error.errors) == 2


def test_streamed_errors_beyond_the_traceback_limit_take_a_line_each(ip, px):
    res = run(ip, "%%px --targets [0,1,2,3,4,5]\nraise RuntimeError('oops')")
    assert isinstance(res.error, AlreadyDisplayedError)
    assert str(res.error) == "6 errors"
    assert res.err.count("RuntimeError: oops") == 6
    assert res.err.count("----> 1 raise RuntimeError('oops')") == CompositeError.tb_limit


def test_single_engine_error_is_the_remote_exception(ip, px):
    res = run(ip, "%%px --targets 1\nprint('before')\nundefined_name")
    assert isinstance(res.error, RemoteError)
    assert isinstance(res.error, NameError)
    assert "[stdout:1] before" in res.out
    assert "[1:execute]" in res.out and "NameError" in res.out


def test_outputs_of_other_engines_still_show_when_one_fails(ip, px):
    px.scatter("fail", [False, True], targets=[0, 1], flatten=True, block=True)
    res = run(ip, "%%px --targets [0,1] --no-stream\nprint('ok')\nif fail: raise ValueError('one')")
    assert isinstance(res.error, CompositeError)
    assert "[stdout:0] ok" in res.out and "[stdout:1] ok" in res.out
    assert "[1:execute]" in res.out and "ValueError: one" in res.out
    assert "[0:execute]" not in res.out


# ---------------------------------------------------------------------------- streaming


class _Watch(io.StringIO):
    """stdout that creates ``path`` once ``marker`` has been written to it."""

    def __init__(self, marker: str, path):
        super().__init__()
        self.marker, self.path = marker, path

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.marker in self.getvalue() and not self.path.exists():
            self.path.touch()
        return n


_WAIT_FOR_FILE = """%%px --targets 0 {flags}
import os, time
print('waiting', flush=True)
deadline = time.time() + {limit}
while not os.path.exists({path!r}) and time.time() < deadline:
    time.sleep(0.01)
print('released' if os.path.exists({path!r}) else 'timed out')
"""


@pytest.mark.ray_only  # local mode has no engine running while the cell waits, so nothing to stream
def test_output_streams_while_the_cell_runs(ip, px, tmp_path):
    # The engine goes on only once the client has shown its first line.
    go = tmp_path / "go"
    watch = _Watch("[stdout:0] waiting", go)
    with redirect_stdout(watch):
        result = ip.run_cell(_WAIT_FOR_FILE.format(flags="", limit=60, path=str(go)))
    assert result.error_in_exec is None
    assert watch.getvalue() == "[stdout:0] waiting\n[stdout:0] released\n"


def test_no_stream_shows_output_only_at_the_end(ip, px, tmp_path):
    go = tmp_path / "go"
    watch = _Watch("waiting", go)
    with redirect_stdout(watch):
        result = ip.run_cell(_WAIT_FOR_FILE.format(flags="--no-stream --progress-after -1",
                                                   limit=2, path=str(go)))
    assert result.error_in_exec is None
    assert watch.getvalue() == "[stdout:0] \nwaiting\ntimed out\n"


def test_engine_forwards_output_in_order_while_running():
    engine = Engine(0, in_process=True)
    chunks = []
    reply = engine.execute("import sys\nfor i in range(3):\n    print(i)\n"
                           "print('e', file=sys.stderr)", stream=lambda *c: chunks.append(c))
    assert [c[1] for c in chunks] == list(range(len(chunks)))  # numbered in order
    assert "".join(t for _, _, name, t in chunks if name == "stdout") == reply.stdout == "0\n1\n2\n"
    assert "".join(t for _, _, name, t in chunks if name == "stderr") == reply.stderr == "e\n"
    assert {c[0] for c in chunks} == {0}


# ---------------------------------------------------------------------------- Ctrl-C


def _interrupt_once(folder, count: int) -> None:
    """Ctrl-C in this (the notebook's) main thread once ``count`` engines started."""
    def interrupt():
        wait_for_entries(str(folder), count)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()


_BUSY = """%%px --targets [0,1] {flags}
import os, time
open(os.path.join({folder!r}, str(os.getpid()) + '-' + str(id(os))), 'w').close()
print('Entering...', flush=True)
for _ in range(12000):  # 120 s in short sleeps: Ctrl-C lands between them in local mode
    time.sleep(0.01)
print('Exiting...')
"""


@pytest.mark.parametrize("flags, sent", [("", "SIGINT"), ("--signal-on-interrupt 2", "2"),
                                         ("--no-stream --signal-on-interrupt SIGINT",
                                          "SIGINT")])
def test_ctrl_c_sends_the_signal_and_ends_the_cell(ip, px, tmp_path, flags, sent, ctrl_c):
    ok(ip, "%px kept = 42")
    local = px.session.ids and rc_is_local(px)
    # local mode runs engines one after the other in this process: only engine 0 starts
    _interrupt_once(tmp_path, 1 if local else 2)
    t0 = time.monotonic()
    res = run(ip, _BUSY.format(flags=flags, folder=str(tmp_path)))
    assert time.monotonic() - t0 < 60
    # as in ipyparallel: the cell ends quietly once the signal is sent...
    assert res.error is None, res.err
    assert f"Received Keyboard Interrupt. Sending signal {sent} to engines...\n" in res.err
    assert "Exiting..." not in res.out
    # ...and the interrupted result stays for %pxresult, with each engine's traceback
    res = run(ip, "%pxresult")
    assert isinstance(res.error, CompositeError)
    names = [e.ename for e in res.error.errors]
    assert names == (["KeyboardInterrupt", "TaskAborted"] if local
                     else ["KeyboardInterrupt", "KeyboardInterrupt"])
    # the traceback points into the cell's loop (on its sleep, or between two sleeps)
    assert "time.sleep(0.01)" in res.out or "for _ in range(12000)" in res.out
    res = ok(ip, "%px --targets [0,1] kept")  # the engines kept their namespaces
    assert re.fullmatch(r"Out\[0:\d+\]: 42\nOut\[1:\d+\]: 42\n", res.out)


def test_ctrl_c_with_signal_none_raises_here(ip, px, tmp_path, ctrl_c):
    local = rc_is_local(px)
    _interrupt_once(tmp_path, 1 if local else 2)
    res = run(ip, _BUSY.format(flags="--signal-on-interrupt none", folder=str(tmp_path)))
    assert isinstance(res.error, KeyboardInterrupt)
    assert "Received Keyboard Interrupt" not in res.err
    if not local:  # the engines were not told: stop them for the next tests
        px.session.send_signal("SIGINT", targets=[0, 1])
    ip.find_magic("pxresult").__self__.last_result.wait()


def rc_is_local(view) -> bool:
    """Whether the view's engines run in this process (local mode)."""
    return view.client.engine_info()[0]["pid"] == os.getpid()


def test_send_signal_checks_its_arguments(rc):
    with pytest.raises(ValueError, match="unknown signal 'SIGNOPE'"):
        rc.send_signal("SIGNOPE")
    with pytest.raises(TypeError, match="signal number or name"):
        rc.send_signal(2.5)
    with pytest.raises(IndexError, match="engine 99"):
        rc.send_signal("SIGINT", targets=99)
    rc.send_signal("SIGINT", targets=0)  # an idle engine ignores it
    assert rc[0].apply_sync(lambda: "alive") == "alive"


# ---------------------------------------------------------------------------- %pxconfig, %autopx


def test_pxconfig_sets_targets_blocking_and_verbosity(ip, px):
    ok(ip, "%pxconfig --targets [0,1] --verbose")
    res = ok(ip, "%px 1 + 1")
    assert re.fullmatch(r"Parallel execution on engine\(s\): \[0, 1\]\n"
                        r"Out\[0:\d+\]: 2\nOut\[1:\d+\]: 2\n", res.out), res.out
    ok(ip, "%pxconfig --noblock --no-verbose")
    res = ok(ip, "%px 3")
    assert isinstance(res.value, AsyncResult)
    assert "[stdout" not in res.out and "Out[0:" not in res.out
    assert [r.data["text/plain"] for r in res.value.get()] == ["3", "3"]
    res = run(ip, "%pxconfig --targets nope")
    assert isinstance(res.error, UsageError)


def test_pxconfig_slices_pick_among_the_clients_engines(ip, rc):
    view = rc.activate(-1, "_cfg")
    try:
        ok(ip, "%pxconfig_cfg -t ::2")
        assert view.targets == rc.ids[::2]
        ok(ip, "%pxconfig_cfg -t 1")
        assert view.targets == 1
        ok(ip, "%pxconfig_cfg --targets all --block")
        assert view.targets == "all" and view.block is True
        magics = ip.find_magic("px_cfg").__self__
        ok(ip, "%pxconfig_cfg --progress-after 0.5 --signal-on-interrupt 9 --no-stream")
        assert (magics.progress_after, magics.signal_on_interrupt, magics.stream_output) == (
            0.5, 9, False)
        res = run(ip, "%pxconfig_cfg --signal-on-interrupt SIGNOPE")
        assert isinstance(res.error, UsageError) and "SIGNOPE" in str(res.error)
        res = run(ip, "%pxconfig_cfg --progress-after soon")
        assert isinstance(res.error, UsageError) and "soon" in str(res.error)
    finally:
        register_magics(ip, None, "_cfg")


@pytest.mark.ray_only  # local mode runs the cell inside the first wait: nothing to show then
@pytest.mark.parametrize("after, shown", [("0", True), ("-1", False), ("30", False)])
def test_progress_after_shows_a_bar_for_long_cells(ip, px, after, shown):
    res = ok(ip, f"%%px --targets [0,1] --progress-after {after}\n"
                 "import time; time.sleep(0.5)")  # the cell's work, longer than a poll
    assert ("%px: 100%" in res.out and "2/2" in res.out) is shown, res.out


def test_streaming_shows_each_engines_displays_and_result_as_it_finishes(ip, px):
    res = ok(ip, "%%px --targets [0,1]\nfrom IPython.display import display, HTML\n"
                 "print('p')\ndisplay(HTML('<i>a</i>'))\ndisplay(HTML('<i>b</i>'))\n5")
    for e in (0, 1):  # each display under its own label, as ipyparallel streams them
        lines = [line for line in res.out.splitlines() if f":{e}]" in line or f"[{e}:" in line]
        assert [re.sub(r"(Out\[\d+):\d+\]", r"\1]", line) for line in lines] == [
            f"[stdout:{e}] p", f"[output:{e}]", f"[output:{e}]", f"Out[{e}]: 5"], res.out
    assert [o.data["text/html"] for o in res.outputs] == ["<i>a</i>", "<i>b</i>"] * 2


def test_autopx_sends_cells_to_the_engines_until_toggled_off(ip, px):
    assert ok(ip, "%autopx").out == "%autopx enabled\n"
    try:
        ok(ip, "auto_x = 3")
        res = ok(ip, "print(auto_x * 2)")
        assert res.out == "".join(f"[stdout:{e}] 6\n" for e in range(4))
        assert "auto_x" not in ip.user_ns
        res = run(ip, "1/0")
        assert isinstance(res.error, AlreadyDisplayedError)  # streaming showed them
        assert res.err.count("ZeroDivisionError: division by zero") == 4
    finally:
        assert ok(ip, "%autopx").out == "%autopx disabled\n"
    assert ok(ip, "local_again = 1").out == ""
    assert ip.user_ns["local_again"] == 1
    assert px.pull("auto_x", block=True) == [3, 3, 3, 3]


# ---------------------------------------------------------------------------- activation


def test_view_activate_with_a_suffix(ip, rc, px):
    view = rc[[2, 3]]
    view.block = True
    view.activate(suffix="_a")
    res = ok(ip, "%px_a print('suffixed')")
    assert res.out == "[stdout:2] suffixed\n[stdout:3] suffixed\n"
    res = ok(ip, "%%px_a --targets 3\nprint('cell')")
    assert res.out == "[stdout:3] cell\n"
    assert ok(ip, "%pxresult_a").out == "[stdout:3] cell\n"
    assert ok(ip, "%autopx_a").out == "%autopx enabled\n"
    assert ok(ip, "%autopx_a").out == "%autopx disabled\n"
    # %px still means the default view
    assert ok(ip, "%px print('plain')").out.count("plain") == 4


def test_load_ext_and_magics_without_a_client(ip, rc, px):
    ok(ip, "%load_ext rayparallel")
    assert ok(ip, "%px print('still')").out.count("still") == 4
    register_magics(ip, None, "_none")
    res = run(ip, "%px_none 1")
    assert isinstance(res.error, UsageError)
    assert "rayparallel.Client(num_engines=" in str(res.error)


def test_a_client_created_in_ipython_registers_the_magics(ip, rc):
    register_magics(ip, None)  # a fresh session (or %load_ext rayparallel): no client yet
    ok(ip, "import rayparallel\nrc_in_ipython = rayparallel.Client(num_engines=0)")
    client = ip.user_ns.pop("rc_in_ipython")
    second = None
    try:
        res = run(ip, "%px 1")
        assert isinstance(res.error, UsageError)
        assert "requires engines" in str(res.error)
        client.add_engines(1)  # %px follows the client's engines as they come
        res = ok(ip, "%px import os; print(os.getpid())")
        assert res.out == f"[stdout:0] {client.engine_info()[0]['pid']}\n"
        # As in ipyparallel, %px stays with the first client while it is open...
        ok(ip, "rc_second = rayparallel.Client(num_engines=2)")
        second = ip.user_ns.pop("rc_second")
        assert ok(ip, "%px print(1)").out == "[stdout:0] 1\n"
        client.shutdown()
        # ...and a client made after it closed takes over.
        ok(ip, "rc_third = rayparallel.Client(num_engines=0)")
        third = ip.user_ns.pop("rc_third")
        assert isinstance(run(ip, "%px 1").error, UsageError)
        third.shutdown()
    finally:
        client.shutdown()
        if second is not None:
            second.shutdown()


# ---------------------------------------------------------------------------- HTML reprs


def test_html_reprs(rc):
    html = rc._repr_html_()
    assert "8 engines" in html and "<table>" in html and "0-7" in html
    ar = rc[:2].apply_async(lambda: 1)
    ar.get()
    assert "finished in" in ar._repr_html_() and "engines 0, 1" in ar._repr_html_()
    bad = rc[0].apply_async(lambda: 1 / 0)
    bad.wait()
    assert "failed: " in bad._repr_html_() and "ZeroDivisionError" in bad._repr_html_()
