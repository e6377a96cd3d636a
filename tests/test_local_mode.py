"""Local mode as a product feature: no Ray, same behaviour, debuggable, and polite to the
user's own IPython. (Every API test in the suite also runs against local mode.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from waiting import wait_for_file

import rayparallel
from rayparallel import error


def run_python(code: str, *, env: dict | None = None, stdin: str | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (local mode must not depend on this one's state)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], input=stdin,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_local_mode_starts_no_ray_and_the_environment_variable_selects_it():
    proc = run_python("""
        import sys, psutil, rayparallel
        rc = rayparallel.Client(num_engines=3)
        print(repr(rc), rc.local_mode)
        print(rc[:].apply_sync(lambda x: x + 1, 1))
        print("ray imported:", "ray" in sys.modules)
        print("child processes:", len(psutil.Process().children(recursive=True)))
    """, env={"RAYPARALLEL_LOCAL_MODE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "<Client: 3 engines on 1 node, local> True",
        "[2, 2, 2]",
        "ray imported: False",
        "child processes: 0",
    ]


def test_bad_environment_value_and_address_are_refused(monkeypatch):
    monkeypatch.setenv("RAYPARALLEL_LOCAL_MODE", "maybe")
    with pytest.raises(ValueError, match="RAYPARALLEL_LOCAL_MODE='maybe': use 1 or 0"):
        rayparallel.Client(num_engines=1)
    with pytest.raises(ValueError, match="local_mode=True .* cannot join .*'auto'"):
        rayparallel.Client(num_engines=1, local_mode=True, address="auto")


def test_unpicklable_things_fail_the_same_way_in_both_modes(rayparallel_ray_client,
                                                            rayparallel_local_client):
    def failures(rc):
        seen = []
        with pytest.raises(TypeError) as argument:
            rc[:].apply_sync(lambda lk: lk, threading.Lock())
        seen.append((type(argument.value), str(argument.value)))
        with pytest.raises(rayparallel.RemoteError) as result:
            rc[0].apply_sync(threading.Lock)
        seen.append((type(result.value), result.value.ename))
        with pytest.raises(TypeError) as pushed:
            rc[:].push({"gen": (i for i in range(3))})
        seen.append((type(pushed.value), str(pushed.value)))
        return seen

    local = failures(rayparallel_local_client)
    assert local == failures(rayparallel_ray_client)
    assert local[0] == (error.SerializationError,
                        "argument 0 cannot be pickled to send to the engines (lock: cannot "
                        "pickle '_thread.lock' object). Nothing was sent.")
    assert local[1][1] == "TypeError"


def test_work_runs_in_submission_order_when_a_result_is_needed(rayparallel_local_client):
    rc = rayparallel_local_client
    dv = rc[:2]
    dv.clear(block=True)
    dv.push({"log": []})
    appended = [dv.apply_async(lambda i: log.append(i), i) for i in range(3)]  # noqa: F821
    assert dv.pull("log", block=True) == [[0, 1, 2], [0, 1, 2]]
    assert all(ar.done() for ar in appended)
    ar = rc[0].apply_async(time.sleep, 0.05)
    assert ar.wall_time >= 0.05
    assert ar.submitted <= ar.metadata.started <= ar.metadata.completed <= ar.received


def test_ctrl_c_stops_local_work_and_engines_keep_their_namespace(rayparallel_local_client,
                                                                 ctrl_c):
    rc = rayparallel_local_client
    dv = rc[:]
    dv.clear(block=True)
    dv.push({"kept": 7}, block=True)

    def interrupted():
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
        time.sleep(5)

    ar = dv.apply_async(interrupted)
    with pytest.raises(KeyboardInterrupt):
        ar.get()
    with pytest.raises(rayparallel.CompositeError) as failed:
        ar.get()
    assert [e[0] for e in failed.value.elist] == ["KeyboardInterrupt"] + ["TaskAborted"] * 7
    assert dv.pull("kept", block=True) == [7] * 8


def test_breakpoint_in_a_remote_function_talks_to_the_terminal():
    proc = run_python("""
        import rayparallel
        rc = rayparallel.Client(num_engines=1, local_mode=True)
        def f():
            x = 41
            print("captured, not shown")
            breakpoint()
            return x + 1
        ar = rc[0].apply_async(f)
        print("result", ar.get())
        print("stdout of f:", repr(ar.stdout))
    """, stdin="p x * 2\nc\n", env={"PYTHONBREAKPOINT": ""})
    assert proc.returncode == 0, proc.stderr
    assert "(Pdb) 82" in proc.stdout
    assert "result 42" in proc.stdout
    assert "stdout of f: 'captured, not shown\\n'" in proc.stdout


def test_local_engines_leave_the_users_ipython_alone():
    proc = run_python("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        from IPython import get_ipython
        user = InteractiveShell.instance()
        hook = sys.displayhook
        user.run_cell("import rayparallel; rc = rayparallel.Client(2, local_mode=True)",
                      store_history=True)
        user.run_cell("ar = rc[:].execute('from IPython.display import display, HTML\\\\n"
                      "display(HTML(\\"<b>hi</b>\\"))\\\\n"
                      "shell_name = type(get_ipython()).__name__\\\\n6 * 7', silent=False, "
                      "block=True)", store_history=True)
        print("same shell:", get_ipython() is user)
        print("same displayhook:", sys.displayhook is hook)
        print("user count:", user.execution_count)
        print("engine result:", user.user_ns["ar"].get()[0])
        print("engine shells:", user.user_ns["rc"][:].pull("shell_name", block=True))
        print("engine outputs:", [o["data"]["text/html"] for o in user.user_ns["ar"].outputs[0]])
        print("user history:", [h[2] for h in user.history_manager.get_range()][-1][:9])
        print("leaked names:", sorted({"HTML", "display", "shell_name"} & set(user.user_ns)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "same shell: True",
        "same displayhook: True",
        "user count: 3",
        "engine result: <ExecuteReply[1]: 42>",
        "engine shells: ['EngineShell', 'EngineShell']",
        "engine outputs: ['<b>hi</b>']",
        "user history: ar = rc[:",
        "leaked names: []",
    ]


def _readme_example() -> str:
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## Testing your code with rayparallel", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["local", "ray"])
def test_the_readme_test_file_passes_through_the_plugin(pytester, mode):
    """The plugin loads from its entry point alone, in both modes."""
    example = _readme_example()
    assert example.startswith("# test_scaling.py")
    pytester.makepyfile(test_scaling=example)
    result = pytester.runpytest_subprocess(f"--rayparallel-mode={mode}", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([f"rayparallel: {mode} mode, 4 engines"])
    result.assert_outcomes(passed=3)


def test_plugin_refuses_a_bad_engine_count(pytester):
    pytester.makepyfile(test_x="def test_x(rayparallel_client): pass")
    result = pytester.runpytest_subprocess("--rayparallel-engines=0")
    result.stderr.fnmatch_lines(["*rayparallel engines = 0: give a whole number >= 1*"])


def print_when_released(flag: str) -> str:
    from waiting import wait_for_file

    print("from the request")
    wait_for_file(flag)
    return "done"


def test_a_request_running_in_another_thread_captures_only_its_own_output(tmp_path, capsys):
    # Local mode runs a request in whichever thread waits for it (an imap's feeder, say):
    # what the notebook's own thread prints meanwhile must stay the notebook's.
    rc = rayparallel.Client(num_engines=1, local_mode=True)
    try:
        flag, started = str(tmp_path / "go"), tmp_path / "started"
        ar = rc[0].apply_async(lambda f: open(str(started), "w").close() or
                               print_when_released(f), flag)
        waiter = threading.Thread(target=ar.get)
        waiter.start()
        wait_for_file(str(started))
        print("from the notebook")
        open(flag, "w").close()
        waiter.join(30)
        assert ar.get() == "done" and ar.stdout == "from the request\n"
        assert capsys.readouterr().out == "from the notebook\n"
    finally:
        rc.shutdown()
