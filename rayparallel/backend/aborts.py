"""Aborting engine calls that are queued: a board each engine reads before every request.

Ray 2.60 cannot take an actor call back once the actor has it queued: ``ray.cancel``
fails the caller's reference, but the actor still runs the method when it gets there
(checked on the installed version: the cancelled call's side effect happened). So an
abort is delivered out of band: the client marks the call's Ray task id on the engine's
*board*, a directory of the engine's own on its node (one empty file per aborted call),
and the engine skips a call it finds marked there.

The engine reads the board before every request, so reading it must cost next to
nothing: a ``listdir`` per request was 4% of a small request's round trip. So a board has a
*bell*, 8 bytes in a file the engine keeps mapped in memory: whoever marks a call then
writes 8 random bytes there, and the engine lists the directory only when the bell has
changed since its last look (one read of mapped memory otherwise). Random bytes, not a
counter: two clients marking at once cannot write the same value back.

A mark that arrives after the engine started the call does nothing: the call runs and its
result is kept, so an abort never reports as aborted something that ran.

>>> board = AbortBoard()
>>> mark(board.path, ["a1"])
True
>>> board.is_marked(lambda: "b2"), board.is_marked(lambda: "a1"), board.is_marked(lambda: "a1")
(False, True, False)
>>> mark(board.path, ["c3"]), board.is_marked(lambda: "c3")  # a later mark rings again
(True, True)
>>> board.close()
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable

__all__ = ["AbortBoard", "mark"]

#: marks remembered for calls not seen yet, and for how many requests: a mark for a call
#: that had already started (an abort also marks the part it interrupts, in case it had
#: not) is never used, and goes after that many requests or newer marks
MARKS_KEPT = 10_000

#: the bell's file, inside the board (see the module's docstring)
BELL = ".bell"


def _boards_root() -> str:
    return os.path.join(tempfile.gettempdir(), "rayparallel-aborts")


class AbortBoard:
    """An engine's board: the directory clients mark aborted calls in (see module doc)."""

    def __init__(self) -> None:
        root = _boards_root()
        os.makedirs(root, exist_ok=True)
        _sweep(root)
        # the pid in the name lets a later engine on this node remove it if we are killed
        self.path = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
        self._marked: dict[str, int] = {}  # task id -> request count when read, oldest first
        self._requests = 0
        with open(os.path.join(self.path, BELL), "w+b") as fh:
            fh.write(bytes(8))
            fh.flush()
            self._bell = mmap.mmap(fh.fileno(), 8, access=mmap.ACCESS_READ)
        self._heard = bytes(8)  # the bell as it was when the directory was last listed

    def is_marked(self, task_id: Callable[[], str]) -> bool:
        """Whether the call running now (whose id ``task_id()`` gives, asked only when
        some mark is pending) was aborted; its mark is used up."""
        rung = self._bell[:]
        if rung != self._heard:
            # The bell is read before listing: a mark whose bell comes after this read
            # changes it again, so the next request lists it.
            self._heard = rung
            self._read_marks()
        if not self._marked:
            return False
        self._requests += 1
        marks = self._marked
        while marks and (len(marks) > MARKS_KEPT or
                         self._requests - next(iter(marks.values())) > MARKS_KEPT):
            del marks[next(iter(marks))]
        return marks.pop(task_id(), None) is not None

    def _read_marks(self) -> None:
        for name in os.listdir(self.path):
            if name == BELL:
                continue
            self._marked[name] = self._requests
            try:
                os.unlink(os.path.join(self.path, name))
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Remove the board (the engine is stopping)."""
        self._bell.close()
        shutil.rmtree(self.path, ignore_errors=True)


def mark(path: str, task_ids: Iterable[str]) -> bool:
    """Mark ``task_ids`` aborted on the board at ``path`` (on this node); False if that
    board is gone (its engine stopped, or was restarted with a new one)."""
    try:
        for task_id in task_ids:
            with open(os.path.join(path, task_id), "a"):
                pass
        # after the marks: an engine that hears the bell finds them
        fd = os.open(os.path.join(path, BELL), os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        os.pwrite(fd, os.urandom(8), 0)
    finally:
        os.close(fd)
    return True


def _sweep(root: str) -> None:
    """Remove boards of engines on this node whose process is gone (killed engines cannot
    remove their own)."""
    for name in os.listdir(root):
        pid = name.split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
