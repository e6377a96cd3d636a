"""Doctests of the package (``pytest rayparallel``): every docstring example runs against
a fresh local-mode client of 4 engines, named as the examples name it (``rc``, ``dv``,
``lview``), so examples stay true without Ray starting for them."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_engines(request: pytest.FixtureRequest, doctest_namespace: dict,
                     monkeypatch: pytest.MonkeyPatch):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import rayparallel

    monkeypatch.setenv("RAYPARALLEL_LOCAL_MODE", "1")  # clients the examples make, too
    rc = rayparallel.Client(num_engines=4, local_mode=True)
    doctest_namespace.update(
        rayparallel=rayparallel, Client=rayparallel.Client, rc=rc, dv=rc[:],
        lview=rc.load_balanced_view(), session=rc.session, np=np, os=os, time=time,
        cluster=rayparallel.Cluster(n=2))
    yield
    rc.shutdown()
    doctest_namespace["cluster"].stop_cluster_sync()
