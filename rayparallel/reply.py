"""The one record every engine or task call returns.

``AsyncResult`` and the magics read only this: the value or the error, what the code
printed and displayed, its execution count, and when it ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from .error import RemoteError

__all__ = ["Reply", "Metadata"]


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


class Metadata(dict):
    """A dict whose keys are also attributes: ``md['stdout'] == md.stdout``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None
