"""One Ray instance and one 8-engine client for the whole session (Ray costs seconds to
start); each test gets the engines with empty namespaces."""

from __future__ import annotations

import pytest

import rayparallel


@pytest.fixture(scope="session")
def rc():
    client = rayparallel.Client(num_engines=8)
    yield client
    client.shutdown(hub=True)


@pytest.fixture
def dv(rc):
    view = rc[:]
    view.clear(block=True)
    rc.use_cloudpickle()
    return view


def pytest_collection_finish(session):
    # Test modules are not importable on Ray workers: send their functions by value, as a
    # notebook's are.
    import ray.cloudpickle

    for module in {item.module for item in session.items if hasattr(item, "module")}:
        ray.cloudpickle.register_pickle_by_value(module)
