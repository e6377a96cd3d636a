"""Send tracking: ``track=True`` on ``apply``/``push``/``scatter`` (ipyparallel's ``track``).

In ipyparallel, a tracked request's result carries a ``zmq.MessageTracker`` that is done
once zmq has sent the request's buffers, so the caller may change the arrays it sent in
place. On Ray, a call's arguments are serialized (large ones put into the object store)
before the call returns, so a request is sent by the time its AsyncResult exists: tracked
or not, ``ar.sent`` is True and the tracker done. The tracker is a real
``zmq.MessageTracker`` when pyzmq is installed (code written for ipyparallel may check its
type), else a :class:`SendTracker` with the same ``done`` and ``wait``.

>>> ar = rc[0].push({"x": 1}, block=False, track=True)
>>> ar.sent, ar.tracker.done
(True, True)
"""

from __future__ import annotations

import threading
from typing import Any

from . import checks, error

__all__ = ["SendTracker", "send_tracker", "check_track"]


class SendTracker:
    """Done once a request's data has left (ipyparallel's ``zmq.MessageTracker`` API).

    >>> sent = threading.Event(); tracker = SendTracker(sent); tracker.done
    False
    >>> sent.set(); tracker.wait(1); tracker.done
    True
    """

    def __init__(self, *events: threading.Event):
        for event in events:
            if not isinstance(event, threading.Event):
                raise TypeError(f"SendTracker watches threading.Events, not "
                                f"{type(event).__name__}")
        self.events = set(events)

    @property
    def done(self) -> bool:
        """Whether every watched send is finished."""
        return all(event.is_set() for event in self.events)

    def wait(self, timeout: float | None = -1) -> None:
        """Wait until :attr:`done` (``timeout`` s at most, -1 or None: no limit); raises
        TimeoutError if it is not done in time."""
        limit = checks.seconds(timeout)
        for event in self.events:
            if not event.wait(limit):
                raise error.TimeoutError(f"data not sent after {timeout} s")


def send_tracker(sent: threading.Event) -> Any:
    """A tracker done when ``sent`` is set: a ``zmq.MessageTracker`` if pyzmq is
    installed, else a :class:`SendTracker`.

    >>> ev = threading.Event(); ev.set(); send_tracker(ev).done
    True
    """
    try:
        import zmq  # optional: only to hand ipyparallel code the type it knows
    except ImportError:
        return SendTracker(sent)
    return zmq.MessageTracker(sent)



def check_track(track: Any) -> None:
    """A clear TypeError unless ``track`` is True, False or None (a view's flag).

    >>> check_track("yes")
    Traceback (most recent call last):
    ...
    TypeError: track must be True or False, not 'yes'
    """
    if track is not None and not isinstance(track, bool):
        raise TypeError(f"track must be True or False, not {track!r}")
