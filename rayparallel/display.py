"""Showing what engines printed and displayed, in ipyparallel's format.

``[stdout:0] text`` for output streams, ``[output:1]`` followed by the rich output itself for
``display()`` calls and figures, ``Out[0:3]: value`` for a cell's result. Used by
``AsyncResult.display_outputs`` and the ``%px`` magics; :class:`StreamPrinter` shows output
while requests still run.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from .error import CompositeError
from .reply import Reply

__all__ = ["show_replies", "show_stream", "StreamPrinter", "GROUPINGS", "progress_bar",
           "use_widget"]

#: how ``show_replies`` can order outputs
GROUPINGS = ("type", "engine", "order")
_PARTS = ("stdout", "stderr", "outputs", "result")


def show_stream(text: str, prefix: str, file: TextIO | None = None) -> None:
    """Print ``text`` after ``prefix``; multi-line text starts on its own line.

    >>> show_stream("hi\\n", "[stdout:0] ")
    [stdout:0] hi
    """
    if not text:
        return
    file = file or sys.stdout
    end = "" if text.endswith("\n") else "\n"
    multiline = text.count("\n") > int(text.endswith("\n"))
    if multiline and not text.startswith("\n"):
        prefix += "\n"
    print(f"{prefix}{text}", file=file, end=end)


#: the progress line of ``wait_interactive`` in a terminal, as the seeds show it
PROGRESS_FORMAT = "{n:4d}/{total} tasks finished after {elapsed_s:4.0f} s"


def progress_bar(total: int, *, widget: bool | None = None, interval: float = 0.1,
                 desc: str = "") -> Any:
    """A tqdm progress bar over ``total`` tasks: a notebook widget when ``widget`` (None:
    when running in a Jupyter kernel that has ipywidgets), else the text line
    ``   N/M tasks finished after S s`` on stdout.

    >>> bar = progress_bar(4, widget=False)  # doctest: +NORMALIZE_WHITESPACE
       0/4 tasks finished after    0 s
    >>> bar.update(4); bar.close()  # doctest: +NORMALIZE_WHITESPACE
       4/4 tasks finished after    0 s
    """
    if use_widget(widget):
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(total=total, desc=desc, unit="tasks", mininterval=interval)
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stdout, mininterval=interval, bar_format=PROGRESS_FORMAT)


def use_widget(widget: bool | None = None) -> bool:
    """Whether progress shows as a widget: ``widget`` if given, else whether this runs in
    a Jupyter kernel that has ipywidgets.

    >>> use_widget(), use_widget(True)
    (False, True)
    """
    if widget is None:
        return _in_kernel() and importlib.util.find_spec("ipywidgets") is not None
    return bool(widget)


def _shell():
    from IPython import get_ipython

    return get_ipython()


def _in_kernel() -> bool:
    return getattr(_shell(), "kernel", None) is not None


def _publish(data: dict, metadata: dict | None = None, **kwargs) -> None:
    from IPython.display import publish_display_data

    if _shell() is None:  # plain Python: the text form is all there is
        print(data.get("text/plain", ""))
    else:
        publish_display_data(data, metadata or {}, **kwargs)


def _show_execute_result(reply: Reply) -> None:
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


def _show_output(reply: Reply, output: dict) -> None:
    _raw_label(reply.engine_id)
    _publish(output["data"], output.get("metadata", {}))


def _show(reply: Reply, part: str) -> None:
    if part == "stdout":
        show_stream(reply.stdout, f"[stdout:{reply.engine_id}] ")
    elif part == "stderr":
        show_stream(reply.stderr, f"[stderr:{reply.engine_id}] ", sys.stderr)
    elif part == "outputs":
        for output in reply.outputs:
            _show_output(reply, output)
    else:
        _show_execute_result(reply)


def _show_outputs_labelled_once(reply: Reply, with_result: bool = False) -> None:
    """One ``[output:e]`` label, then all of the engine's displays (and its result)."""
    if reply.outputs or (with_result and reply.execute_result):
        _raw_label(reply.engine_id)
    for output in reply.outputs:
        _publish(output["data"], output.get("metadata", {}))
    if with_result:
        _show_execute_result(reply)


def _raw_label(engine_id: int | None) -> None:
    print(f"[output:{engine_id}]")
    sys.stdout.flush()  # the label before the image, in a notebook too


def show_replies(replies: Iterable[Reply], groupby: str = "type", result_only: bool = False,
                 parts: Sequence[str] = _PARTS) -> None:
    """Show what engines printed, displayed and returned, as ipyparallel does.

    ``groupby``: ``type`` (all stdout, then all stderr, then each engine's displays under
    one ``[output:e]``, then the ``Out[e:n]`` results), ``engine`` (engine by engine: its
    streams, one ``[output:e]`` over its displays and result) or ``order`` (as ``type``,
    but displays are collated, each under its own label: every engine's first display,
    then every second...). ``result_only`` shows only the results; ``parts`` picks among
    ``stdout``, ``stderr``, ``outputs`` and ``result``.

    >>> show_replies(rc[:2].execute("print(1)", silent=False).finished_replies())
    [stdout:0] 1
    [stdout:1] 1
    """
    replies = list(replies)
    if groupby not in GROUPINGS:
        raise ValueError(f"groupby must be one of {', '.join(GROUPINGS)}, not {groupby!r}")
    if result_only:
        parts = ("result",)
    if groupby == "engine":
        for r in replies:
            for part in ("stdout", "stderr"):
                if part in parts:
                    _show(r, part)
            if "outputs" in parts:
                _show_outputs_labelled_once(r, with_result="result" in parts)
            elif "result" in parts:
                _show_execute_result(r)
        return
    for part in parts:
        if part == "outputs" and groupby == "order":
            longest = max((len(r.outputs) for r in replies), default=0)
            for i in range(longest):
                for r in replies:
                    if i < len(r.outputs):
                        _show_output(r, r.outputs[i])
        elif part == "outputs":
            for r in replies:
                _show_outputs_labelled_once(r)
        else:
            for r in replies:
                _show(r, part)


class StreamPrinter:
    """Shows chunks of engines' stdout/stderr as they arrive, then what the chunks missed.

    In a notebook each engine's stream is one ``[stdout:e]`` display that grows in place
    (as ipyparallel does); in a terminal chunks are printed as they come, with the
    ``[stdout:e]`` prefix whenever the engine or stream changes.
    """

    def __init__(self) -> None:
        self.in_kernel = _in_kernel()
        self.shown: dict[tuple[int, str], str] = {}
        self._display_ids: dict[tuple[int, str], str] = {}
        self._last_prefix = ""
        self._at_line_start = True
        self._run = uuid.uuid4().hex[:12]
        #: engines whose finished reply was shown, and how many errors were
        self.finished: set[int | None] = set()
        self.errors_shown = 0

    @property
    def streamed(self) -> bool:
        """Whether anything was shown."""
        return bool(self.shown or self.finished)

    def feed(self, engine_id: int, name: str, text: str) -> None:
        """Show a chunk ``text`` that engine ``engine_id`` wrote to ``name``."""
        if not text or engine_id in self.finished:
            return  # a finished engine's reply had all of its output
        key = (engine_id, name)
        self.shown[key] = self.shown.get(key, "") + text
        if self.in_kernel:
            self._update_display(key)
            return
        file = sys.stderr if name == "stderr" else sys.stdout
        prefix = f"[{name}:{engine_id}] "
        if prefix != self._last_prefix or self._at_line_start:
            if not self._at_line_start:
                print(file=file)
            text = prefix + text
        file.write(text)
        file.flush()
        self._last_prefix = prefix
        self._at_line_start = text.endswith("\n")

    def _update_display(self, key: tuple[int, str]) -> None:
        engine_id, name = key
        update = key in self._display_ids
        display_id = self._display_ids.setdefault(key, f"rayparallel-{self._run}-{engine_id}"
                                                  f"-{name}")
        text = self.shown[key]
        _publish({"text/plain": f"[{name}:{engine_id}] " + text.rstrip("\n")},
                 transient={"display_id": display_id}, update=update)

    def finish_reply(self, reply: Reply) -> None:
        """Show the rest of a finished reply, as ipyparallel streams it: what of its
        stdout/stderr no chunk brought, each display under its own ``[output:e]``, its
        ``Out[e:n]``, and its error's traceback on stderr (the first ``tb_limit`` errors
        in full, later ones in a line). Each reply is shown once."""
        if reply.engine_id in self.finished:
            return
        for name in ("stdout", "stderr"):
            full = getattr(reply, name)
            seen = self.shown.get((reply.engine_id, name), "")
            if full == seen or not full:
                continue
            rest = full[len(seen):] if full.startswith(seen) else full
            if self.in_kernel:
                self.shown[reply.engine_id, name] = full
                self._update_display((reply.engine_id, name))
            else:
                self.feed(reply.engine_id, name, rest)
        self.finished.add(reply.engine_id)
        self._end_line()
        for output in reply.outputs:
            _show_output(reply, output)
        _show_execute_result(reply)
        if reply.error is not None:
            self.errors_shown += 1
            if self.errors_shown <= CompositeError.tb_limit:
                text = "\n".join(reply.error.render_traceback())
            else:
                text = str(reply.error)
            print(text, file=sys.stderr)
            self._last_prefix = ""

    def finish(self, replies: Iterable[Reply]) -> None:
        """Show the rest of each reply not shown yet (see :meth:`finish_reply`)."""
        for reply in replies:
            self.finish_reply(reply)
        self._end_line()

    def _end_line(self) -> None:
        if not self._at_line_start:
            print()
            self._at_line_start = True


def compact_ids(ids: list[int]) -> str:
    """Engine ids in short: ``[0, 1, 2, 3, 7]`` as ``0-3, 7``.

    >>> compact_ids([0, 1, 2, 3, 7])
    '0-3, 7'
    """
    parts: list[str] = []
    start = prev = None
    for i in [*ids, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)
