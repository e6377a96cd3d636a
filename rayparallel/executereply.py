"""What users hold of an ``execute`` reply: the value's representations, shown as IPython
shows ``Out[n]``. Apart from :mod:`reply` because it builds on IPython's ``RichOutput``,
which load-balanced tasks (they import :mod:`reply`) should not have to import.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from IPython.utils.capture import RichOutput

from .reply import Metadata, Reply

__all__ = ["ExecuteReply"]


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
        self.execution_count = reply.execution_count
        self.transient, self.update = {}, False

    @cached_property
    def metadata(self) -> Metadata:
        """The reply's metadata (made on first use: a blocking ``execute`` makes one of
        these per engine and mostly never looks).

        >>> rc[0].execute("1", silent=False).get().metadata.status
        'ok'
        """
        return self._reply.metadata()

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
