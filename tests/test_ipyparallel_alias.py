"""``import ipyparallel`` giving rayparallel (rayparallel/ipyparallel.py): only in processes
that ask for it, through each entry point; missing names fail naming what is missing.

Each case runs in a fresh interpreter, so this test process never has the alias installed
(the compatibility runner in tests/compat installs it in its own way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def python(*args: str, env: dict | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_install_maps_ipyparallel_names_to_rayparallel():
    out = python("-c", textwrap.dedent("""
        import rayparallel, rayparallel.ipyparallel as alias
        alias.install()
        import ipyparallel as ipp
        from ipyparallel.client.view import DirectView, LoadBalancedView
        from ipyparallel.client import client as clientmod
        from ipyparallel.util import interactive
        from ipyparallel import error
        assert ipp.Client is rayparallel.Client is clientmod.Client
        assert DirectView is rayparallel.DirectView
        assert LoadBalancedView is rayparallel.LoadBalancedView
        assert interactive is rayparallel.interactive and ipp.require is rayparallel.require
        assert error.CompositeError is rayparallel.CompositeError
        print("ok")
    """)).stdout
    assert out.strip() == "ok"


def test_missing_names_fail_naming_them():
    out = python("-c", textwrap.dedent("""
        import rayparallel.ipyparallel as alias
        alias.install()
        import ipyparallel as ipp
        for statement in ["ipp.NoSuchThing", "from ipyparallel.util import no_such_helper",
                          "import ipyparallel.no_such_module"]:
            try:
                exec(statement)
            except (AttributeError, ImportError) as exc:
                print(type(exc).__name__, exc)
    """)).stdout.splitlines()
    assert out[0].startswith("AttributeError ipyparallel.NoSuchThing has no rayparallel")
    assert "no_such_helper" in out[1] and out[1].startswith("ImportError")
    assert "ipyparallel.no_such_module" in out[2]


def test_other_processes_and_uninstall_get_the_real_ipyparallel():
    pytest.importorskip("ipyparallel")  # the real one: a test dependency
    real = python("-c", "import ipyparallel; print(ipyparallel.__name__, "
                        "hasattr(ipyparallel, 'Cluster'))").stdout.split()
    assert real == ["ipyparallel", "True"]
    out = python("-c", textwrap.dedent("""
        import rayparallel.ipyparallel as alias
        alias.install()
        import ipyparallel
        assert ipyparallel.Client.__module__ == "rayparallel.client"
        alias.uninstall()
        import ipyparallel
        print(ipyparallel.Client.__module__)
    """)).stdout
    assert out.strip() == "ipyparallel.client.client"


def test_python_m_runs_a_script_with_its_arguments(tmp_path):
    script = tmp_path / "old_notebook.py"
    script.write_text("import sys, ipyparallel\n"
                      "print(ipyparallel.Client.__module__, sys.argv)\n")
    out = python("-m", "rayparallel.ipyparallel", str(script), "a", "--b").stdout
    assert out.strip() == f"rayparallel.client {[str(script), 'a', '--b']}"


def test_python_m_runs_a_module_with_its_arguments(tmp_path):
    (tmp_path / "uses_ipp.py").write_text("import sys, ipyparallel\n"
                                          "print(ipyparallel.Client.__module__, sys.argv[1:])\n")
    out = python("-m", "rayparallel.ipyparallel", "-m", "uses_ipp", "x",
                 env={"PYTHONPATH": str(tmp_path)}).stdout
    assert out.strip() == "rayparallel.client ['x']"


def test_load_ext_installs_the_alias():
    out = python("-c", textwrap.dedent("""
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        ip.run_line_magic("load_ext", "rayparallel.ipyparallel")
        ip.run_cell("import ipyparallel; print(ipyparallel.Client.__module__)")
    """)).stdout
    assert out.strip().endswith("rayparallel.client")


def test_kernelspec_runs_ipykernel_with_the_alias(tmp_path):
    from rayparallel.ipyparallel import install_kernelspec

    where = Path(install_kernelspec(prefix=str(tmp_path)))
    spec = json.loads((where / "kernel.json").read_text())
    assert spec["argv"][1:] == ["-m", "rayparallel.ipyparallel", "-m", "ipykernel_launcher",
                                "-f", "{connection_file}"]
    assert where.is_relative_to(tmp_path)


def test_env_var_hook_acts_only_when_the_variable_is_set(tmp_path):
    from rayparallel.ipyparallel import install_env_hook

    install_env_hook(site_dir=str(tmp_path))
    probe = (f"import site; site.addsitedir({str(tmp_path)!r}); import sys; "
             "print('ipyparallel' in sys.modules and "
             "type(sys.modules['ipyparallel']).__name__)")
    # the hook only installs the finder; importing shows which package answers
    check = probe.replace("print(", "import ipyparallel; print(")
    assert python("-c", check, env={"RAYPARALLEL_AS_IPYPARALLEL": "1"}).stdout.strip() == \
        "AliasModule"
    if os.environ.get("RAYPARALLEL_AS_IPYPARALLEL"):
        pytest.skip("the variable is set for this whole test run")
    env = {k: v for k, v in os.environ.items() if k != "RAYPARALLEL_AS_IPYPARALLEL"}
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.stdout.strip() in ("module", "")  # the real package, or none installed
