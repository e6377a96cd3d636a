"""What a result tells besides its value: metadata, timings, published data, progress and
output display (:class:`ResultInfo`, the part of :class:`~rayparallel.asyncresult.AsyncResult`
that reads its parts' replies).

>>> ar = rc[:2].execute("print('hi')")
>>> ar.stdout
['hi\\n', 'hi\\n']
>>> ar.display_outputs()
[stdout:0] hi
[stdout:1] hi
"""

from __future__ import annotations

import html
import threading
import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED
from typing import Any

from . import checks, error
from .display import progress_bar, show_replies, show_stream, use_widget
from .reply import Metadata, Reply
from .tracking import send_tracker

__all__ = ["ResultInfo", "METADATA_KEYS"]

#: what ``ar.<key>`` / ``ar['<key>']`` read from each part's metadata
METADATA_KEYS = frozenset(
    ["engine_id", "method", "error", "stdout", "stderr", "outputs", "execute_result",
     "execution_count", "started", "completed", "status", "note", "data", "engine_uuid"]
)
#: what a part that has not replied yet shows for a key (None for the others)
_PENDING = {"stdout": "", "stderr": "", "outputs": [], "data": {}, "status": "pending"}


class ResultInfo:
    """Metadata, timings, data, progress and display of a result's parts.

    Mixed into :class:`~rayparallel.asyncresult.AsyncResult`, whose parts' replies it
    reads; nothing here waits for the result unless it says so.
    """

    # Provided by AsyncResult: the parts, their engines, outcomes and timings.
    _engine_ids: list[int | None]
    _outcomes: list[Any]
    _fname: str
    _single: bool
    _t_submitted: float
    _t_received: float | None
    _linked: dict
    #: the msg_ids the client gave the parts (None: not sent through a client)
    _assigned_msg_ids: list[str] | None = None
    #: ``resend(i)`` sends part i again (set by the task database, for ``resubmit``): kept
    #: here, it lives exactly as long as the result
    _resend: Any = None

    # ------------------------------------------------------------------ metadata

    @property
    def engine_ids(self) -> list[int | None]:
        """The engine each part was sent to (None for a load-balanced task's parts).

        >>> rc[:2].apply_async(abs, -1).engine_ids
        [0, 1]
        """
        return list(self._engine_ids)

    @property
    def msg_ids(self) -> list[str]:
        """One message id per part (per engine, or per load-balanced task or chunk), as
        the client's ``history`` and ``get_result`` know them; a part of :meth:`split`
        has its part's id.

        >>> ar = rc[:2].apply_async(abs, -1)
        >>> len(ar.msg_ids), [p.msg_ids for p in ar.split()] == [[m] for m in ar.msg_ids]
        (2, True)
        """
        if self._assigned_msg_ids is None:
            parent = self._linked.get(0) if len(self._outcomes) == 1 else None
            if parent is not None:  # a part of split(): the part's id in its parent
                whole, i = parent
                return whole.msg_ids[i:i + 1]
            return []
        return list(self._assigned_msg_ids)

    @msg_ids.setter
    def msg_ids(self, ids: list[str]) -> None:
        if len(ids) != len(self._outcomes):
            raise ValueError(f"{len(ids)} msg_ids for a result of {len(self._outcomes)} parts")
        self._assigned_msg_ids = list(ids)

    @property
    def running_engines(self) -> list[int]:
        """Engines whose part of this request has not replied yet (queued or running).

        >>> rc[0].apply_async(time.sleep, 0.1).running_engines
        [0]
        """
        return [eid for eid, o in zip(self._engine_ids, self._outcomes)
                if o is None and eid is not None]


    def _metadata_list(self) -> list[Metadata | None]:
        self.done()
        out = []
        for i, outcome in enumerate(self._outcomes):
            r = self._reply(i) if outcome is not None else None
            out.append(r.metadata() if isinstance(r, Reply) else None)
        return out

    @property
    def metadata(self) -> Metadata | list[Metadata | None]:
        """Per-part metadata dicts (engine_id, engine_uuid, started, completed, stdout,
        stderr, outputs, execute_result, execution_count, status, data); one dict for a
        single-engine request. A part not finished yet has None.

        >>> rc[0].apply_async(print, "hi").metadata["stdout"]
        'hi\\n'
        """
        mds = self._metadata_list()
        return mds[0] if self._single else mds

    def _metadata_values(self, key: str) -> Any:
        values = []
        for eid, md in zip(self._engine_ids, self._metadata_list()):
            if md is not None:
                values.append(md.get(key))
            elif key == "engine_id":
                values.append(eid)  # known before the part replies
            else:
                value = _PENDING.get(key)
                values.append(type(value)() if isinstance(value, dict | list) else value)
        return values[0] if self._single else values

    def __getattr__(self, key: str) -> Any:
        if key in METADATA_KEYS:
            return self._metadata_values(key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | METADATA_KEYS)

    @property
    def data(self) -> dict | list[dict]:
        """What each part's code published with
        :func:`~rayparallel.datapub.publish_data`, merged: a dict for a single-engine
        request, else a list of them. A part's data arrives with its reply (empty until
        then).

        >>> code = "from rayparallel.datapub import publish_data; publish_data({'n': 1})"
        >>> rc[:2].execute(code, block=True).data
        [{'n': 1}, {'n': 1}]
        """
        return self._metadata_values("data")

    # ------------------------------------------------------------------ timings

    def _check_ready(self, what: str) -> None:
        if not self.done():
            raise error.TimeoutError(f"{self._fname}: {what} is known once the result is "
                                     "ready; wait() for it first")

    @property
    def elapsed(self) -> float:
        """Seconds since submission; once done, the :attr:`wall_time`.

        >>> ar = rc[0].apply_async(abs, -1); ar.get(); ar.elapsed == ar.wall_time
        1
        True
        """
        end = self._t_received if self.done() else time.perf_counter()
        return end - self._t_submitted

    @property
    def wall_time(self) -> float:
        """Seconds from submission to the last reply. TimeoutError while not ready.

        >>> ar = rc[0].apply_async(time.sleep, 0.01); ar.wait(); ar.wall_time >= 0.01
        True
        True
        """
        self._check_ready("wall_time")
        return self._t_received - self._t_submitted

    @property
    def serial_time(self) -> float:
        """Sum of the seconds each part spent running. TimeoutError while not ready.

        >>> ar = rc[:2].apply_async(time.sleep, 0.01); ar.wait(); ar.serial_time >= 0.02
        True
        True
        """
        self._check_ready("serial_time")
        return sum(r.completed - r.started for r in self.finished_replies())

    # ------------------------------------------------------------------ sending, output

    def wait_for_output(self, timeout: float | None = -1) -> bool:
        """Wait until the engines' output is complete (at most ``timeout`` s; -1: no limit);
        returns whether it is. Output comes with each part's reply, so it is complete
        exactly when the result is done (ipyparallel's output can lag behind the result).

        >>> rc[0].execute("print(1)").wait_for_output(5)
        True
        """
        return self.wait(timeout)

    @property
    def _sent(self) -> threading.Event:
        """Set once the request is sent. Arguments are serialized when a call is made (Ray
        copies them into its store), so a request is sent as soon as its result exists;
        views that send later clear it first (:meth:`mark_sent`). Made on first use."""
        made = threading.Event()
        made.set()
        return self.__dict__.setdefault("_sent_flag", made)  # one, even if raced

    @property
    def sent(self) -> bool:
        """Whether the request has been sent, so its arguments may be changed in place.
        Arguments are serialized when the call is made, so this is True once
        ``apply_async`` and friends return.

        >>> rc[0].apply_async(abs, -1).sent
        True
        """
        return self._sent.is_set()

    @property
    def tracker(self) -> Any:
        """Done once the request's data has left (``track=True``; see
        :mod:`~rayparallel.tracking`): a ``zmq.MessageTracker`` when pyzmq is installed.

        >>> rc[0].apply_async(abs, -1).tracker.done
        True
        """
        tracker = self.__dict__.get("_send_tracker")
        if tracker is None:
            tracker = self.__dict__["_send_tracker"] = send_tracker(self._sent)
        return tracker

    # ipyparallel's names for the two, which code written for it reads
    _tracker = tracker

    @property
    def _sent_event(self) -> threading.Event:
        return self._sent

    def mark_sent(self, sent: bool = True) -> None:
        """For views whose sending ends after the result exists: say whether it is sent."""
        if sent:
            self._sent.set()
        else:
            self._sent.clear()

    def wait_for_send(self, timeout: float | None = -1) -> bool:
        """Wait until the request is sent (see :attr:`sent`); TimeoutError after
        ``timeout`` s (-1: no limit).

        >>> rc[0].apply_async(abs, -1).wait_for_send(0)
        True
        """
        if not self._sent.wait(checks.seconds(timeout)):
            raise error.TimeoutError(f"{self._fname}: not sent after {timeout} s")
        return True

    # ------------------------------------------------------------------ progress

    @property
    def parts_done(self) -> tuple[int, int]:
        """``(finished, all)`` of the request's parts: its engines' calls, or a map's
        chunks (each a Ray task) — what ``wait_interactive`` reports as tasks.

        >>> ar = rc[:].map_async(abs, range(10)); ar.get()[:2], ar.parts_done
        ([0, 1], (4, 4))
        """
        self.done()
        return sum(o is not None for o in self._outcomes), len(self._outcomes)

    def wait_interactive(self, interval: float = 0.1, timeout: float | None = -1,
                         widget: bool | None = None, return_when: str | None = None) -> None:
        """Wait, showing progress: a progress bar widget in a notebook (``widget``: None
        chooses, True/False forces it), else ``   N/M tasks finished after S s`` and then
        ``done`` once finished. Tasks are the request's parts (its engines' calls, or a
        map's chunks: ``parts_done``), as ipyparallel notebooks show them; ``progress``
        counts a map's items. ``timeout`` (-1: none) stops waiting (no error: the result
        stays pending); ``return_when`` as in :meth:`wait`.

        The text line is redrawn in place (``\\r``); a log shows each state:

        >>> rc[:].apply_async(abs, -1).wait_interactive()  # doctest: +NORMALIZE_WHITESPACE
           0/4 tasks finished after    0 s   4/4 tasks finished after    0 s
        done
        """
        limit = checks.seconds(timeout)
        widget = use_widget(widget)
        bar = progress_bar(self.parts_done[1], widget=widget, interval=interval,
                           desc=self._fname)
        start = time.perf_counter()
        finished = self.done()
        try:
            while not finished:
                left = None if limit is None else limit - (time.perf_counter() - start)
                if left is not None and left <= 0:
                    break
                step = interval if left is None else min(interval, left)
                if return_when is None or return_when == ALL_COMPLETED:
                    finished = self.wait(step)
                else:
                    done, pending = self.wait(step, return_when=return_when)
                    finished = not pending or (bool(done) if return_when == FIRST_COMPLETED
                                               else any(not ar.successful() for ar in done))
                bar.update(self.parts_done[0] - bar.n)
            bar.update(self.parts_done[0] - bar.n)
        finally:
            bar.close()
        if self.done():
            if widget:  # the bar is a display: leave the line in the output too, as text
                done_parts, total = self.parts_done
                print(f"{done_parts:4d}/{total} tasks finished after "
                      f"{time.perf_counter() - start:4.0f} s")
            print("done")

    # ------------------------------------------------------------------ display

    def display_outputs(self, groupby: str = "type", result_only: bool = False) -> None:
        """Show what the engines printed and displayed, ipyparallel style:
        ``[stdout:0] ...``, ``[output:1]`` + rich output, ``Out[0:3]: ...``; a
        single-engine result shows its output as it is, without the prefixes.
        Waits for the result first.

        ``groupby`` is ``type``, ``engine`` or ``order`` (see
        :func:`rayparallel.display.show_replies`).

        >>> rc[:2].execute("print('hi')").display_outputs()
        [stdout:0] hi
        [stdout:1] hi
        >>> rc[0].execute("print('hi')").display_outputs()
        hi
        """
        self.wait()
        replies = self.finished_replies()
        if self._single and replies and not result_only:
            import sys

            show_stream(replies[0].stdout, "")
            show_stream(replies[0].stderr, "", sys.stderr)
            show_replies(replies, groupby=groupby, parts=("outputs", "result"))
            return
        show_replies(replies, groupby=groupby, result_only=result_only)

    def finished_replies(self) -> list[Reply]:
        """Replies of the parts that have finished so far (not those that failed to run):
        each with ``value``, ``error``, ``stdout``, ``outputs``, ``execute_result``, ...

        >>> [r.stdout for r in rc[:2].execute("print(1)", block=True).finished_replies()]
        ['1\\n', '1\\n']
        """
        self.done()
        done = [self._reply(i) for i, o in enumerate(self._outcomes) if o is not None]
        return [r for r in done if isinstance(r, Reply)]

    def _repr_html_(self) -> str:
        done = self.done()
        if not done:
            state = f"running: {self.progress}/{len(self)} done after {self.elapsed:.1f} s"
        elif self.successful():
            state = f"finished in {self.wall_time:.3g} s"
        else:
            state = "failed: " + html.escape(str(self.exception()).splitlines()[0])
        engines = [e for e in self._engine_ids if e is not None]
        where = f" on engine{'s' if len(engines) != 1 else ''} " + \
            html.escape(", ".join(map(str, engines))) if engines else ""
        return (f"<b>{type(self).__name__}</b>: <code>{html.escape(self._fname)}</code>"
                f"{where}; {state}")
