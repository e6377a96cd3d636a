"""Every API test runs twice: against engines that are Ray actors (Ray started once per
session) and against local mode. Both clients come from rayparallel's own pytest plugin
(``rayparallel.testing``), 8 engines each; each test gets the engines with empty namespaces.

Tests marked ``ray_only`` need engines in other processes (real concurrency, Ray's nodes or
object store) and run against the Ray client only.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest
import waiting
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from rayparallel.serialize import send_by_value

pytest_plugins = ["pytester"]

# Property-based tests (test_fuzz.py) run the same examples on every run and machine, with
# no example database; each test sets its number of examples. Hypothesis's cache of the
# constants it finds in the source goes to the temporary directory, not the checkout.
settings.register_profile("rayparallel", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.load_profile("rayparallel")
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "rayparallel-hypothesis")

# Engines run the tests' helpers too (waiting for a file a test creates): by value, as the
# plugin sends the test modules themselves.
send_by_value(waiting)


@pytest.fixture(scope="session", params=["ray", "local"])
def rc(request):
    return request.getfixturevalue(f"rayparallel_{request.param}_client")


@pytest.fixture
def ctrl_c():
    """Ctrl-C as a notebook's main thread gets it: SIGINT raising KeyboardInterrupt. The
    tests that press it need Python's own handler, and something earlier in a whole-suite
    run on CI left SIGINT ignored in the test process (its cause is not found yet), so the
    press went unnoticed; set it for the test, and put back what was there."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


@pytest.fixture
def dv(rc):
    view = rc[:]
    view.clear(block=True)
    rc.use_cloudpickle()
    return view


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(item, "callspec", None)
        if item.get_closest_marker("ray_only") and params and params.params.get("rc") == "local":
            item.add_marker(pytest.mark.skip(reason="needs engines in other processes"))


def pytest_collection_finish(session):
    # The multi-node script of test_node_loss.py waits more than it computes: start it now,
    # so that it runs alongside the other tests rather than after them.
    if any(item.path.name == "test_node_loss.py" for item in session.items):
        import test_node_loss

        test_node_loss.start()
