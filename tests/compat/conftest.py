"""ipyparallel's own test suite, run against rayparallel.

The ``test_ipp_*.py`` files here import the test modules of the *installed* ipyparallel
package (its real files, unchanged) with ``import ipyparallel`` giving rayparallel
(:mod:`rayparallel.ipyparallel`). Their helpers (``clienttest.py``) are the real files too;
only the package ``ipyparallel.tests`` itself, whose ``__init__`` launches ipcontroller and
ipengine processes, is ours (``ipp_harness.py``: engines of the rayparallel profile
``iptest``). The fixtures below play the roles of ipyparallel's ``conftest.py``.

Tests that do not pass are listed with their reason in ``expected_failures.py``; they are
marked ``xfail(strict=True)``, so a test that starts passing is noticed.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import inspect
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rayparallel.ipyparallel as alias

sys.path.insert(0, str(Path(__file__).parent))
import expected_failures  # noqa: E402
import ipp_harness  # noqa: E402

#: each test's limit. A thread, not SIGALRM: ClusterTestCase takes SIGALRM for its own 30 s
#: alarm, whose TimeoutError a waiting loop may swallow. A hang ends the run naming the
#: test (list it in expected_failures.SKIPPED), never stalls CI.
TEST_TIMEOUT = 60


class MissingInRayparallel(Exception):
    """A test used an ipyparallel name that rayparallel does not have."""


class _MissingMeta(type):
    """Placeholder for a name rayparallel lacks: using it in any way raises
    :class:`MissingInRayparallel` naming it, so each test fails on exactly the names it
    uses (a module importing the name still loads). It is an exception class that nothing
    raises, so an ``except`` clause naming it catches nothing, as it must."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise MissingInRayparallel(f"{cls.__qualname__}: not in rayparallel")

    def __instancecheck__(cls, instance: Any) -> bool:
        raise MissingInRayparallel(f"{cls.__qualname__}: not in rayparallel")

    def __subclasscheck__(cls, subclass: Any) -> bool:
        if isinstance(subclass, _MissingMeta):  # Python's own checks of except clauses
            return subclass is cls
        raise MissingInRayparallel(f"{cls.__qualname__}: not in rayparallel")

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return missing_name(f"{cls.__qualname__}.{attr}")

    def __iter__(cls) -> Iterator[Any]:
        raise MissingInRayparallel(f"{cls.__qualname__}: not in rayparallel")


def missing_name(qualified_name: str) -> type:
    return _MissingMeta(qualified_name.rsplit(".", 1)[-1], (Exception,),
                        {"__qualname__": qualified_name, "__module__": "missing"})


def _wire_ipyparallel_tests() -> None:
    """``ipyparallel.tests`` = our harness, whose submodules are the installed files."""
    alias.install(on_missing=missing_name)
    real = importlib.machinery.PathFinder.find_spec("ipyparallel")
    if real is None or real.origin is None:
        raise pytest.UsageError("tests/compat needs ipyparallel installed: "
                                "pip install -e '.[test]'")
    ipp_harness.__path__ = [str(Path(real.origin).parent / "tests")]
    sys.modules["ipyparallel.tests"] = ipp_harness


_wire_ipyparallel_tests()


def upstream_id(item: pytest.Item) -> str:
    """``test_view.py::TestView::test_push_pull``: the test's id in ipyparallel's tree."""
    module = item.path.name.replace("test_ipp_", "test_", 1)
    return "::".join([module, *item.nodeid.split("::")[1:]])


def _is_compat(item: pytest.Item) -> bool:
    return item.path.parent == Path(__file__).parent and item.path.name.startswith("test_ipp_")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    failing = expected_failures.by_test(expected_failures.EXPECTED_FAILURES)
    skipped = expected_failures.by_test(expected_failures.SKIPPED)
    keep, dropped = [], []
    for item in items:
        if not _is_compat(item):
            keep.append(item)
            continue
        test_id = upstream_id(item)
        if expected_failures.out_of_scope(test_id):
            dropped.append(item)
            continue
        keep.append(item)
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT, method="thread"))
        if test_id in skipped:
            item.add_marker(pytest.mark.skip(reason=skipped[test_id]))
        elif test_id in failing:
            item.add_marker(pytest.mark.xfail(strict=True, reason=failing[test_id]))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    # Engines cannot import ipyparallel's test modules as our alias sees them: send their
    # functions by value, as the rayparallel plugin does for our own test files.
    from rayparallel import serialize

    for name, module in list(sys.modules.items()):
        if name.startswith("ipyparallel.tests.") and module is not None:
            serialize.send_by_value(module)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Upstream runs its ``async def`` tests with pytest-asyncio; one event loop each."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


# ------------------------------------------------------------------ fixtures (upstream's roles)


@pytest.fixture(scope="session")
def compat_ray() -> Iterator[None]:
    """One private Ray for the session (or the one this process joined already)."""
    import ray

    started = not ray.is_initialized()
    if started:
        # "local": a Ray of this process's own, never one `ray start` runs on the machine
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def ipython_dir() -> Iterator[str]:
    """A fresh IPython directory per module, so profiles and history stay out of ~."""
    with tempfile.TemporaryDirectory(suffix=".ipython") as folder:
        saved = os.environ.get("IPYTHONDIR")
        os.environ["IPYTHONDIR"] = folder
        try:
            yield folder
        finally:
            if saved is None:
                os.environ.pop("IPYTHONDIR", None)
            else:
                os.environ["IPYTHONDIR"] = saved


@pytest.fixture(scope="module")
def cluster(compat_ray: None, ipython_dir: str) -> Iterator[None]:
    """The engines of profile ``iptest`` for one module (upstream: ipcontroller and
    ipengine processes)."""
    ipp_harness.setup()
    try:
        yield
    finally:
        ipp_harness.teardown()


@pytest.fixture(scope="module")
def ipython(ipython_dir: str) -> Iterator[Any]:
    """The IPython shell of this process, as a notebook user would have."""
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from traitlets.config import Config

    config = Config()
    config.TerminalInteractiveShell.simple_prompt = True
    config.TerminalInteractiveShell.colors = "nocolor"
    config.HistoryManager.hist_file = ":memory:"
    shell = TerminalInteractiveShell.instance(config=config)
    yield shell
    TerminalInteractiveShell.clear_instance()


@pytest.fixture
def ipython_interactive(ipython: Any) -> Iterator[Any]:
    """The shell with its builtins in place (``get_ipython`` and friends) during the test."""
    with ipython.builtin_trap:
        yield ipython


@pytest.fixture
def Cluster(request: pytest.FixtureRequest, compat_ray: None) -> Any:  # noqa: N802
    """``Cluster(**kwargs)``: ``ipyparallel.Cluster``, i.e. rayparallel's, stopped after
    the test."""
    import ipyparallel

    def make(**kwargs: Any) -> Any:
        made = ipyparallel.Cluster(**kwargs)
        request.addfinalizer(made.stop_cluster_sync)
        return made

    return make
