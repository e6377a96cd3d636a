"""The pytest plugin: fixtures for testing code that uses rayparallel.

Installed with rayparallel (a ``pytest11`` entry point); nothing to import or configure::

    def test_scaled(rayparallel_view):
        rayparallel_view.push({"factor": 3}, block=True)
        assert rayparallel_view.map_sync(lambda x: factor * x, [1, 2]) == [3, 6]

Fixtures
--------
``rayparallel_client``
    One client for the whole session, in the mode chosen by ``--rayparallel-mode``
    (``local``, the default: engines in the test process, ready in a fraction of a second;
    or ``ray``: Ray started once per session, engines as Ray actors).
``rayparallel_view``
    ``rayparallel_client[:]``, with every engine's namespace emptied before the test.
``rayparallel_local_client``, ``rayparallel_ray_client``
    One of each mode regardless of the option, for tests that need a particular one.

Options (command line, or ``[tool.pytest.ini_options]``)
--------------------------------------------------------
``--rayparallel-mode=local|ray`` / ``rayparallel_mode``
    Which client ``rayparallel_client`` gives. Given on the command line it also sets
    ``RAYPARALLEL_LOCAL_MODE`` for the session, so clients the code under test creates itself
    follow it too.
``--rayparallel-engines=N`` / ``rayparallel_engines``
    Engines per client (default 4).

Functions defined in test files travel to engines by value, like a notebook's: they see the
engines' namespaces (names pushed there) and engines need not import the test module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest run: import the library when used
    from .client import Client
    from .view import DirectView

MODES = ("local", "ray")
_ENV = "RAYPARALLEL_LOCAL_MODE"
#: the value RAYPARALLEL_LOCAL_MODE had before --rayparallel-mode set it
_SAVED_ENV = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rayparallel")
    group.addoption("--rayparallel-mode", choices=MODES, default=None,
                    help="engines for the rayparallel_client fixture: 'local' (in the test "
                         "process, the default) or 'ray' (Ray actors)")
    group.addoption("--rayparallel-engines", type=int, default=None,
                    help="engines per rayparallel client (default 4)")
    parser.addini("rayparallel_mode", "default of --rayparallel-mode", default="local")
    parser.addini("rayparallel_engines", "default of --rayparallel-engines", default="4")


def _mode(config: pytest.Config) -> str:
    mode = config.getoption("--rayparallel-mode") or config.getini("rayparallel_mode")
    if mode not in MODES:
        raise pytest.UsageError(f"rayparallel_mode = {mode!r}: choose one of {MODES}")
    return mode


def _engines(config: pytest.Config) -> int:
    n = config.getoption("--rayparallel-engines")
    if n is None:
        n = config.getini("rayparallel_engines")
    try:
        n = int(n)
    except ValueError:
        n = -1
    if n < 1:
        raise pytest.UsageError(f"rayparallel engines = {n!r}: give a whole number >= 1")
    return n


def pytest_configure(config: pytest.Config) -> None:
    _mode(config), _engines(config)  # refuse bad settings before any test runs
    chosen = config.getoption("--rayparallel-mode")
    if chosen is not None:
        config.stash[_SAVED_ENV] = os.environ.get(_ENV)
        os.environ[_ENV] = "1" if chosen == "local" else "0"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SAVED_ENV in config.stash:
        saved = config.stash[_SAVED_ENV]
        if saved is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = saved


def pytest_collection_finish(session: pytest.Session) -> None:
    # Test modules are often not importable where engines run: send their functions by value.
    modules = {getattr(item, "module", None) for item in session.items} - {None}
    if modules:
        from . import serialize

        for module in modules:
            serialize.send_by_value(module)


def pytest_report_header(config: pytest.Config) -> str:
    return f"rayparallel: {_mode(config)} mode, {_engines(config)} engines"


@pytest.fixture(scope="session")
def rayparallel_local_client(pytestconfig: pytest.Config) -> Iterator[Client]:
    """A local-mode client (engines in this process) shared by the session."""
    from .client import Client

    client = Client(num_engines=_engines(pytestconfig), local_mode=True)
    yield client
    client.shutdown()


@pytest.fixture(scope="session")
def rayparallel_ray_client(pytestconfig: pytest.Config) -> Iterator[Client]:
    """A client whose engines are Ray actors; Ray is started once for the session (or the
    Ray this process already joined is used) and stopped at its end if it was started here."""
    from .client import Client

    client = Client(num_engines=_engines(pytestconfig), local_mode=False)
    yield client
    client.shutdown(hub=True)


@pytest.fixture(scope="session")
def rayparallel_client(request: pytest.FixtureRequest) -> Client:
    """The session's client, in the mode ``--rayparallel-mode`` chose."""
    return request.getfixturevalue(f"rayparallel_{_mode(request.config)}_client")


@pytest.fixture
def rayparallel_view(rayparallel_client: Client) -> DirectView:
    """A view on all engines, whose namespaces are emptied before the test."""
    view = rayparallel_client[:]
    view.clear(block=True)
    rayparallel_client.use_cloudpickle()
    return view
