"""The one record every engine or task call returns.

``AsyncResult`` and the magics read only this: the value or the error, what the code
printed and displayed, its execution count, and when it ran.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from . import error
from .error import RemoteError

__all__ = ["Reply", "Metadata", "recording", "current_reply", "capture_per_thread", "to_wire",
           "from_wire", "payload", "plain_value", "holds_little"]


@dataclass(slots=True)
class Reply:
    """Outcome of one request on one engine (or one load-balanced task)."""

    engine_id: int | None
    method: str
    value: Any = None
    error: RemoteError | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict] = field(default_factory=list)  # display_data: {"data", "metadata"}
    execute_result: dict | None = None  # {"data", "metadata", "execution_count"}
    execution_count: int | None = None
    started: float = 0.0  # POSIX timestamps: cheaper to send than datetimes
    completed: float = 0.0
    note: str = ""  # a message from the engine for the user (e.g. it was restarted)
    data: dict = field(default_factory=dict)  # what the code published (publish_data)
    engine_uuid: str | None = None  # which engine (process) ran it; None for a task

    def __reduce__(self):
        # A flat tuple pickles in a fraction of the time of a dataclass's __dict__ state.
        return (Reply, _field_values(self))

    def metadata(self) -> Metadata:
        """This reply's bookkeeping as an ipyparallel-style metadata dict."""
        md = {f.name: getattr(self, f.name) for f in _FIELDS if f.name != "value"}
        for key in ("started", "completed"):
            md[key] = datetime.fromtimestamp(md[key], timezone.utc) if md[key] else None
        md["status"] = "ok" if self.error is None else "error"
        return Metadata(md)


_FIELDS = fields(Reply)
_field_values = attrgetter(*(f.name for f in _FIELDS))  # a tuple, in C


def to_wire(reply: Reply) -> list:
    """``reply`` as a flat list, the form engines and tasks send it in: Ray sends a list of
    plain values without pickling it, which for a small request is a good part of the cost
    of sending a Reply.

    >>> from_wire(to_wire(Reply(0, "apply", value=3))).value
    3
    """
    return list(_field_values(reply))


def from_wire(sent: list | Reply) -> Reply:
    """The Reply sent as :func:`to_wire` made it (a Reply passes through)."""
    return Reply(*sent) if type(sent) is list else sent


#: what the code made (its value, output and data), and where it is in the wire form
def plain_value(sent: Any) -> tuple[bool, Any]:
    """``(True, value)`` if ``sent`` (a reply in wire form) succeeded with nothing else to
    tell (no error, no note), without making the Reply; ``(False, None)`` otherwise.

    >>> plain_value(to_wire(Reply(0, "apply", value=3))), plain_value(Reply(0, "apply"))
    ((True, 3), (False, None))
    """
    if type(sent) is list and sent[_ERROR] is None and not sent[_NOTE]:
        return True, sent[_VALUE]
    return False, None


def holds_little(sent: Any) -> bool:
    """Whether ``sent`` (a reply in wire form) carries a bare scalar: no output, displays
    or data. A quick look, for callers that must not walk a large reply to size it.

    >>> holds_little(to_wire(Reply(0, "apply", value=3))), holds_little(to_wire(Reply(
    ...     0, "apply", value=3, stdout="hi")))
    (True, False)
    """
    return (type(sent) is list and type(sent[_VALUE]) in SCALAR_TYPES and not sent[_STDOUT]
            and not sent[_STDERR] and not sent[_OUTPUTS] and sent[_EXECUTE_RESULT] is None
            and not sent[_DATA])


_VALUE, _ERROR, _NOTE, _STDOUT, _STDERR, _OUTPUTS, _EXECUTE_RESULT, _DATA = (
    next(i for i, f in enumerate(_FIELDS) if f.name == name)
    for name in ("value", "error", "note", "stdout", "stderr", "outputs", "execute_result",
                 "data"))
#: types whose values are small whatever they hold (the task database sizes by them too)
SCALAR_TYPES = frozenset({int, float, bool, complex, type(None)})

_PAYLOAD_FIELDS = ("value", "stdout", "stderr", "outputs", "execute_result", "data")
_PAYLOAD = tuple(i for i, f in enumerate(_FIELDS) if f.name in _PAYLOAD_FIELDS)
_payload_values = attrgetter(*_PAYLOAD_FIELDS)


def payload(sent: Any) -> Any:
    """What the code behind a reply made (value, output, displays, data), as a tuple,
    from a Reply or its wire form, without making the Reply; anything else as it is.

    >>> payload(to_wire(Reply(0, "apply", value=3, stdout="hi")))
    (3, 'hi', '', [], None, {})
    """
    if type(sent) is list:
        return tuple(sent[i] for i in _PAYLOAD)
    if type(sent) is Reply:
        return _payload_values(sent)
    return sent

#: the reply of the request running in this context (see :func:`current_reply`)
_current: ContextVar[Reply | None] = ContextVar("rayparallel_current_reply", default=None)


def current_reply() -> Reply | None:
    """The reply that the request running here is filling, if any (inside
    :func:`recording`).

    >>> current_reply() is None
    True
    >>> with recording(Reply(None, "apply"), {}) as r:
    ...     inside = current_reply() is r
    >>> inside
    True
    """
    return _current.get()


class Metadata(dict):
    """A dict whose keys are also attributes: ``md['stdout'] == md.stdout``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


# ------------------------------------------------------------------ output capture
# An engine process runs one request at a time, so a request swaps sys.stdout/stderr for
# the whole process (threads its code starts are captured too). Local mode runs requests in
# whichever thread of the host waits for them (an imap's feeder, say) while the host's
# other threads go on printing: there, capture_per_thread() makes the swap a router that
# sends each thread's output to its own request's capture, or to the host's stream.

_per_thread = False
_capture: ContextVar[tuple | None] = ContextVar("rayparallel_capture", default=None)
_routing_lock = threading.Lock()
_routing_depth = 0  # requests running with the routers in place
_host_streams: tuple[Any, Any] | None = None


class _Router:
    """sys.stdout (``index`` 0) or sys.stderr (1) while requests run in a shared process."""

    def __init__(self, index: int, host: Any):
        self._index, self._host = index, host

    def _target(self) -> Any:
        capture = _capture.get()
        return self._host if capture is None else capture[self._index]

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


def capture_per_thread() -> None:
    """Capture each request's output in the thread running it, leaving other threads'
    output alone (for hosts that run requests among threads of their own: local mode).

    >>> capture_per_thread()
    """
    global _per_thread
    _per_thread = True


def _route_to(out: Any, err: Any) -> Any:
    """Send this thread's output to ``out``/``err`` (per-thread capture); returns what
    :func:`_unroute` needs to undo it."""
    global _routing_depth, _host_streams
    with _routing_lock:
        if _routing_depth == 0:
            _host_streams = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = _Router(0, sys.stdout), _Router(1, sys.stderr)
        _routing_depth += 1
    return _capture.set((out, err))


def _unroute(token: Any) -> None:
    global _routing_depth
    _capture.reset(token)
    with _routing_lock:
        _routing_depth -= 1
        if _routing_depth == 0:  # the last request out puts the host's streams back
            sys.stdout, sys.stderr = _host_streams


class _Recording:
    """What :func:`recording` returns. A class rather than a generator-based context
    manager: every request runs in one, and on a busy node each frame less counts."""

    __slots__ = ("reply", "engine_info", "passthrough", "out", "err", "token", "undo")

    def __init__(self, reply: Reply, engine_info: dict,
                 passthrough: tuple[type[BaseException], ...],
                 streams: tuple[io.StringIO, io.StringIO] | None):
        self.reply, self.engine_info, self.passthrough = reply, engine_info, passthrough
        self.out, self.err = streams or (io.StringIO(), io.StringIO())

    def __enter__(self) -> Reply:
        self.reply.started = time.time()
        self.token = _current.set(self.reply)
        if _per_thread:
            self.undo = _route_to(self.out, self.err)
        else:
            self.undo = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = self.out, self.err
        return self.reply

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        reply = self.reply
        if _per_thread:
            _unroute(self.undo)
        else:
            sys.stdout, sys.stderr = self.undo
        # recorded with the output captured so far; not under the capture (as before)
        swallow = exc is not None and not isinstance(exc, self.passthrough)
        if swallow:  # user code may raise anything: reported in the reply
            reply.error = error.capture(exc, self.engine_info)
        reply.completed = time.time()
        _current.reset(self.token)
        reply.stdout, reply.stderr = self.out.getvalue(), self.err.getvalue()
        return swallow


def recording(reply: Reply, engine_info: dict,
              passthrough: tuple[type[BaseException], ...] = (),
              streams: tuple[io.StringIO, io.StringIO] | None = None) -> _Recording:
    """Fill ``reply`` with what the block prints, when it runs, and the exception it raises
    (user code may raise anything), which is not propagated unless it is one of
    ``passthrough``. ``streams`` replace the default capture (e.g. ones that also forward
    what is written as it comes).

    Engines run each request in one; a load-balanced task runs its chunk in one.

    >>> with recording(Reply(None, "apply"), {}) as r:
    ...     print("hi")
    >>> r.stdout
    'hi\\n'
    """
    return _Recording(reply, engine_info, passthrough, streams)
