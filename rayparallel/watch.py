"""The client's heartbeat: noticing engines that are gone when nothing is sent to them.

ipyparallel's hub notices a dead engine by its missing heartbeats and drops it from
``rc.ids`` even if no request ever goes to it. With Ray, an engine whose node has left
the cluster is gone with it, and the cluster says which nodes are alive; a thread of the
client asks every :data:`PERIOD` seconds (one small call to Ray's control store) and has
the session drop those engines, or wait for Ray to restart them elsewhere
(``restart_engines=True``).

>>> watch = EngineWatch(session, period=60)
>>> watch.stop()
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["EngineWatch", "PERIOD"]

#: seconds between two looks at the cluster: a lost node's engines leave ``rc.ids`` within
#: this plus the time Ray takes to mark the node dead
PERIOD = 2.0


class EngineWatch:
    """A daemon thread calling ``session.check_engines()`` every ``period`` s until the
    session is closed or dropped (it holds the session weakly)."""

    def __init__(self, session: Any, period: float = PERIOD):
        self.period = period
        self._session = weakref.ref(session)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rayparallel-engine-watch",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.period):
            session = self._session()
            if session is None or session.closed:
                return
            try:
                session.check_engines()
            except Exception:  # noqa: BLE001 - Ray going away: calls report it themselves
                pass
            del session  # not held while waiting: a dropped client can go

    def stop(self) -> None:
        """End the thread (at its next look at the latest)."""
        self._stopped.set()
