"""The one record every engine or task call returns.

``AsyncResult`` and the magics read only this: the value or the error, what the code
printed and displayed, its execution count, and when it ran.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from IPython.utils.capture import RichOutput

from . import error
from .error import RemoteError

__all__ = ["Reply", "Metadata", "ExecuteReply", "recording", "current_reply"]


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

    def __reduce__(self):
        # A flat tuple pickles in a fraction of the time of a dataclass's __dict__ state.
        return (Reply, tuple(getattr(self, f.name) for f in _FIELDS))

    def metadata(self) -> Metadata:
        """This reply's bookkeeping as an ipyparallel-style metadata dict."""
        md = {f.name: getattr(self, f.name) for f in _FIELDS if f.name != "value"}
        for key in ("started", "completed"):
            md[key] = datetime.fromtimestamp(md[key], timezone.utc) if md[key] else None
        md["status"] = "ok" if self.error is None else "error"
        return Metadata(md)


_FIELDS = fields(Reply)

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


@contextmanager
def recording(reply: Reply, engine_info: dict,
              passthrough: tuple[type[BaseException], ...] = (),
              streams: tuple[io.StringIO, io.StringIO] | None = None) -> Iterator[Reply]:
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
    out, err = streams or (io.StringIO(), io.StringIO())
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    reply.started = time.time()
    token = _current.set(reply)
    try:
        yield reply
    except passthrough:
        raise
    except BaseException as exc:  # noqa: BLE001 - reported in the reply
        reply.error = error.capture(exc, engine_info)
    finally:
        reply.completed = time.time()
        _current.reset(token)
        sys.stdout, sys.stderr = saved
        reply.stdout, reply.stderr = out.getvalue(), err.getvalue()


class ExecuteReply(RichOutput):
    """The reply of one engine to ``execute``: shows as ``Out[engine:count]: value``, and
    as the rich forms of that value (``_repr_html_``, ``_repr_png_``, ...) in a notebook.

    >>> er = rc[0].execute("6 * 7", silent=False).get()
    >>> er
    <ExecuteReply[1]: 42>
    >>> er.data
    {'text/plain': '42'}
    """

    def __init__(self, reply: Reply):
        self._reply = reply
        self.metadata = reply.metadata()
        self.execution_count = reply.execution_count
        self.transient, self.update = {}, False

    @property
    def data(self) -> dict:
        """The value's representations by MIME type (``{"text/plain": ..., ...}``).

        >>> rc[0].execute("'hi'", silent=False).get().data
        {'text/plain': "'hi'"}
        """
        return (self._reply.execute_result or {}).get("data", {})

    @property
    def _display_metadata(self) -> dict:
        return (self._reply.execute_result or {}).get("metadata", {})

    def _repr_mime_(self, mime: str) -> Any:
        # RichOutput's _repr_png_ & co. come here; a MIME type's display metadata (an
        # image's width, say) is in the execute_result, not in the reply's metadata.
        if mime not in self.data:
            return None
        md = self._display_metadata
        return (self.data[mime], md[mime]) if mime in md else self.data[mime]

    def _plaintext(self) -> str:
        text = self.data.get("text/plain", "")
        prompt = f"Out[{self._reply.engine_id}:{self.execution_count}]: "
        return prompt + ("\n" + text if "\n" in text else text)

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = dict(self.data)
        if "text/plain" in data:
            data["text/plain"] = self._plaintext()
        return data, self._display_metadata

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self._plaintext())

    def display(self) -> None:
        """Show the value as the engine's shell would have (``Out[e:n]`` and rich forms)."""
        from IPython.display import display

        display(self)

    def __eq__(self, other: object) -> bool:
        # the same engine's reply, however many results it was fetched through
        return isinstance(other, ExecuteReply) and self._reply == other._reply

    def __hash__(self) -> int:
        return hash((self._reply.engine_id, self.execution_count))

    def __getitem__(self, key: str) -> Any:
        return self.metadata[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key not in self.metadata:
            raise AttributeError(key)
        return self.metadata[key]

    def __repr__(self) -> str:
        text = self.data.get("text/plain", "")
        if len(text) > 32:
            text = text[:29] + "..."
        return f"<ExecuteReply[{self.execution_count}]: {text}>"
