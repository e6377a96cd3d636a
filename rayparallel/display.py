"""Showing what engines printed and displayed, in ipyparallel's format.

``[stdout:0] text`` for output streams, ``[output:1]`` followed by the rich output itself for
``display()`` calls and figures, ``Out[0:3]: value`` for a cell's result.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from .reply import Reply

__all__ = ["show_replies", "show_stream"]


def show_stream(text: str, prefix: str, file: TextIO | None = None) -> None:
    """Print ``text`` after ``prefix``; multi-line text starts on its own line."""
    if not text:
        return
    file = file or sys.stdout
    end = "" if text.endswith("\n") else "\n"
    multiline = text.count("\n") > int(text.endswith("\n"))
    if multiline and not text.startswith("\n"):
        prefix += "\n"
    print(f"{prefix}{text}", file=file, end=end)


def _publish(data: dict, metadata: dict) -> None:
    from IPython import get_ipython
    from IPython.display import publish_display_data

    if get_ipython() is None:  # plain Python: the text form is all there is
        print(data.get("text/plain", ""))
    else:
        publish_display_data(data, metadata)


def show_execute_result(reply: Reply) -> None:
    result = reply.execute_result
    if not result:
        return
    data = dict(result["data"])
    text = data.get("text/plain", "")
    prompt = f"Out[{reply.engine_id}:{result.get('execution_count', reply.execution_count)}]: "
    data["text/plain"] = prompt + ("\n" + text if "\n" in text else text)
    if len(data) == 1:
        print(data["text/plain"])
    else:
        _publish(data, result.get("metadata", {}))


def show_outputs(reply: Reply) -> None:
    if reply.outputs:
        print(f"[output:{reply.engine_id}]")
        for out in reply.outputs:
            _publish(out["data"], out.get("metadata", {}))


def show_replies(replies: Iterable[Reply], groupby: str = "type",
                 result_only: bool = False) -> None:
    """Show replies grouped by ``type`` (all stdout, then stderr, outputs, results),
    ``engine`` (everything of engine 0, then 1, ...) or ``order`` (as ``engine``)."""
    replies = list(replies)
    if groupby not in ("type", "engine", "order"):
        raise ValueError(f"groupby must be 'type', 'engine' or 'order', not {groupby!r}")
    if groupby == "type":
        if not result_only:
            for r in replies:
                show_stream(r.stdout, f"[stdout:{r.engine_id}] ")
            for r in replies:
                show_stream(r.stderr, f"[stderr:{r.engine_id}] ", sys.stderr)
            for r in replies:
                show_outputs(r)
        for r in replies:
            show_execute_result(r)
        return
    for r in replies:
        if not result_only:
            show_stream(r.stdout, f"[stdout:{r.engine_id}] ")
            show_stream(r.stderr, f"[stderr:{r.engine_id}] ", sys.stderr)
            show_outputs(r)
        show_execute_result(r)
