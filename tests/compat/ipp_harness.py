"""Stand-in for ``ipyparallel/tests/__init__.py``, loaded as ``ipyparallel.tests``.

Upstream, this package launches a real ``ipcontroller`` and ``ipengine`` processes for the
profile ``iptest``. Here the same roles are played with rayparallel: a profile's engines are
detached Ray actors (``Client(profile="iptest")`` attaches to them), on the Ray the test
session started (``conftest.py``). The package's other modules (``clienttest.py`` and the
test modules) are ipyparallel's real files: ``conftest.py`` points this module's
``__path__`` at the installed ``ipyparallel/tests`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import rayparallel
from rayparallel.error import NoSuchProfile

PROFILE = "iptest"


@dataclass
class EngineHandle:
    """What ``add_engines`` returns per engine: the role of upstream's process launcher.
    ``poll()`` is None while it may run (as ``Popen.poll``); ``clienttest`` only uses that."""

    engine_id: int
    profile: str
    stopped: bool = False

    def poll(self) -> int | None:
        return 0 if self.stopped else None


#: every engine handle started in this session (upstream: every launched process)
launchers: list[EngineHandle] = []


def _attach(profile: str) -> rayparallel.Client | None:
    try:
        return rayparallel.Client(profile=profile)
    except NoSuchProfile:
        return None


def _running(profile: str) -> int:
    """How many engines ``profile`` has: one query of Ray's actor names, much cheaper than
    attaching a client (every ClusterTestCase test asks, usually to learn there are enough)."""
    from rayparallel.backend.ray import _named_engines

    return len(_named_engines().get(profile, {}))


def add_engines(n: int = 1, profile: str = PROFILE, total: bool = False) -> list[EngineHandle]:
    """Start ``n`` engines for ``profile`` (``total=True``: only as many as it takes to have
    ``n``), and wait until they are ready."""
    if total and _running(profile) >= n:
        return []
    client = _attach(profile)
    before = set(client.ids) if client is not None else set()
    wanted = max(n - len(before), 0) if total else n
    if client is None:
        if not wanted:
            return []
        client = rayparallel.Client(profile=profile, num_engines=wanted)
    else:
        client.add_engines(wanted)
    handles = [EngineHandle(eid, profile) for eid in client.ids if eid not in before]
    client.close()  # a profile's engines outlive the client
    launchers.extend(handles)
    return handles


def setup() -> None:
    """A module's cluster: one engine to begin with, as upstream."""
    add_engines(1, total=True)


def teardown() -> None:
    """Stop the profile's engines, so that the next module starts from none, as upstream."""
    client = _attach(PROFILE)
    if client is not None:
        client.shutdown()
    for handle in launchers:
        handle.stopped = True
    launchers.clear()
