"""Errors users see, and the one place where failures are translated into them.

User code that raises on an engine becomes a :class:`RemoteError` carrying the remote
exception's name, message and traceback (the user's frames only). Calls on several engines
that fail collect into a :class:`CompositeError`. Infrastructure failures (an engine process
that died, Ray going away) become :class:`EngineError`; Ray's own exception wrappers never
reach the user.

When the remote exception's class can be imported on the client, the ``RemoteError`` raised
is also an instance of it, so both ipyparallel-style and plain Python handlers work:

>>> try:
...     rc[0].apply_sync(lambda: 1 / 0)
... except ZeroDivisionError as e:
...     print(e.ename, isinstance(e, RemoteError))
ZeroDivisionError True
"""

from __future__ import annotations

import builtins
import importlib
import linecache
import os
import sys
import traceback as _tb
from typing import Any

__all__ = [
    "RayParallelError",
    "RemoteError",
    "CompositeError",
    "AlreadyDisplayedError",
    "EngineError",
    "EngineLostError",
    "EngineRestarted",
    "TimeoutError",
    "UnmetDependency",
    "ImpossibleDependency",
    "InvalidDependency",
    "NoEnginesRegistered",
    "NoSuchProfile",
    "SerializationError",
    "TaskAborted",
    "TaskTimeout",
    "capture",
    "translate",
    "as_raised",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _internal_dirs() -> tuple[str, ...]:
    """Directories whose frames are plumbing, not the user's code (ours and Ray's)."""
    dirs = [_PACKAGE_DIR]
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "__file__", None):
        dirs.append(os.path.dirname(os.path.abspath(ray.__file__)))
    return tuple(dirs)


class RayParallelError(Exception):
    """Base class of rayparallel's own errors."""


class EngineError(RayParallelError):
    """An engine could not run the request: its process died, or it could not be reached.
    ``engine_id`` names it (None for a load-balanced task)."""

    def __init__(self, message: str, engine_id: int | None = None):
        super().__init__(message)
        self.engine_id = engine_id

    def __reduce__(self):
        return (type(self), (str(self), self.engine_id))


class EngineRestarted(RuntimeWarning):
    """An engine died and was restarted (``Client(restart_engines=True)``): its namespace
    is empty."""


class NoSuchProfile(RayParallelError, LookupError):
    """``Client(profile=...)`` found no engines running for that profile."""


class NoEnginesRegistered(RayParallelError):
    """The operation needs engines and there are none."""

    def __str__(self) -> str:
        return self.args[0] if self.args else (
            "This operation requires engines. Start some with Client(num_engines=N) or "
            "client.add_engines(N)."
        )


class TimeoutError(RayParallelError, builtins.TimeoutError):  # noqa: A001 - ipyparallel's name
    """A result was not ready in time. Nothing is lost: ask for it again later."""


class TaskTimeout(TimeoutError):
    """A load-balanced task was not sent within its ``timeout`` flag: it waited that long
    for its dependencies or a free engine, and did not run. (A task sent in time is never
    stopped by the flag.)"""


class TaskAborted(RayParallelError):
    """The request was aborted before it ran."""


class UnmetDependency(RayParallelError):
    """A task's requirement (``@require``, ``@depend``) is not met on the engine it reached;
    with ``retries``, a load-balanced view tries again (on another engine when one is free)."""


class ImpossibleDependency(UnmetDependency):
    """A load-balanced task's ``after``/``follow`` dependencies can no longer be met (a
    result it needed to succeed failed, or no targeted engine ran what it follows); the
    task did not run."""


class InvalidDependency(ImpossibleDependency):
    """A dependency names no result this client knows (an unknown msg_id)."""


class SerializationError(RayParallelError, TypeError):
    """Something could not be pickled to send to the engines; nothing was sent."""


class RemoteError(RayParallelError):
    """An exception raised by user code on an engine.

    Attributes ``ename``, ``evalue``, ``traceback`` (text) and ``engine_info``
    (``{'engine_id': ..., 'method': ...}``), as in ipyparallel.

    >>> err = RemoteError("ValueError", "bad", "Traceback ...", {"engine_id": 0, "method": "apply"})
    >>> str(err)
    '[0:apply] ValueError: bad'
    """

    def __init__(
        self,
        ename: str,
        evalue: str,
        traceback: str = "",
        engine_info: dict | None = None,
        exc_type: tuple[str, str] | None = None,
    ):
        # BaseException directly: in a hybrid with the remote class, that class's own
        # __init__ (e.g. SyntaxError's) would want other arguments.
        BaseException.__init__(self, ename, evalue)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.engine_info = dict(engine_info or {})
        # (module, qualname) of the remote exception class, to re-create it here if we can.
        self.exc_type = exc_type

    def __reduce__(self):
        return (_rebuild_remote_error,
                (self.ename, self.evalue, self.traceback, self.engine_info, self.exc_type))

    @property
    def engine_id(self) -> int | None:
        return self.engine_info.get("engine_id")

    def _label(self) -> str:
        if not self.engine_info:
            return "[Engine Exception]"
        return f"[{self.engine_info.get('engine_id', ' ')}:{self.engine_info.get('method', '?')}]"

    def __str__(self) -> str:
        return f"{self._label()} {self.ename}: {self.evalue}"

    def __repr__(self) -> str:
        eid = self.engine_info.get("engine_id", " ")
        return f"<RemoteError[{eid}]:{self.ename}({self.evalue})>"

    def render_traceback(self) -> list[str]:
        """The remote traceback as lines, headed by the engine label."""
        return [self._label()] + (self.traceback or "No traceback available").splitlines()

    # IPython shows this instead of the local traceback.
    _render_traceback_ = render_traceback

    def print_traceback(self) -> None:
        """Print the remote traceback."""
        print("\n".join(self.render_traceback()))

    def with_original_type(self) -> RemoteError:
        """This error, made an instance of the remote exception class too when it can be;
        the same object each time it is asked for (a failed item shows, and compares, as
        one error however often a result is read).

        >>> err = RemoteError("KeyError", "'x'", "", {}, ("builtins", "KeyError"))
        >>> err.with_original_type() is err.with_original_type()
        True
        """
        made = self.__dict__.get("_with_original_type")
        if made is not None:
            return made
        cls = _import_exception_class(self.exc_type)
        if cls is None or isinstance(self, cls):
            return self
        try:
            hybrid = _hybrid_class(type(self), cls)
            err = hybrid.__new__(hybrid, self.ename, self.evalue)
            RemoteError.__init__(err, self.ename, self.evalue, self.traceback,
                                 self.engine_info, self.exc_type)
        except Exception:  # exotic exception classes: keep the plain RemoteError
            return self
        self.__dict__["_with_original_type"] = err
        return err


class EngineLostError(RemoteError, EngineError):
    """An engine's process died (or became unreachable) while it had the request: an
    :class:`EngineError`, and, as in ipyparallel, a :class:`RemoteError` whose ``ename`` is
    ``'EngineError'`` (so ``except RemoteError`` and composite errors cover it too).

    >>> err = EngineLostError("engine 3 died", 3, "apply")
    >>> str(err), err.ename, err.engine_id, isinstance(err, EngineError)
    ('engine 3 died', 'EngineError', 3, True)
    """

    def __init__(self, message: str, engine_id: int | None = None, method: str = ""):
        RemoteError.__init__(self, "EngineError", message, "",
                             {"engine_id": engine_id, "method": method or "?"},
                             (__name__, "EngineError"))

    def __reduce__(self):
        return (type(self), (self.evalue, self.engine_id, self.engine_info["method"]))

    def __str__(self) -> str:
        return self.evalue


def _rebuild_remote_error(ename, evalue, traceback, engine_info, exc_type):
    return RemoteError(ename, evalue, traceback, engine_info, exc_type)


_HYBRIDS: dict[tuple[type, type], type] = {}


def _hybrid_class(base: type, cause: type) -> type:
    key = (base, cause)
    if key not in _HYBRIDS:
        _HYBRIDS[key] = type(
            f"RemoteError({cause.__name__})",
            (base, cause),
            {"__init__": RemoteError.__init__, "__str__": RemoteError.__str__,
             "__reduce__": RemoteError.__reduce__, "__module__": __name__},
        )
    return _HYBRIDS[key]


def _import_exception_class(exc_type: tuple[str, str] | None) -> type | None:
    if not exc_type:
        return None
    module, qualname = exc_type
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    if not (isinstance(obj, type) and issubclass(obj, Exception)):
        return None
    # Only plain exception classes: ones that need their own __init__ arguments or
    # metaclasses could misbehave as a hybrid's base.
    return obj if type(obj) is type else None


class CompositeError(RemoteError):
    """Errors from several engines of one call.

    ``elist`` holds one ``(ename, evalue, traceback, engine_info)`` per failing engine;
    ``raise_exception(i)`` raises the i-th as a :class:`RemoteError`.
    """

    tb_limit = 4

    def __init__(self, message: str, errors: list[RemoteError]):
        Exception.__init__(self, message, [e.ename for e in errors])
        self.msg = message
        self.errors = list(errors)
        self.elist = [(e.ename, e.evalue, e.traceback, e.engine_info) for e in errors]
        first = errors[0] if errors else RemoteError("", "")
        self.ename, self.evalue, self.traceback = first.ename, first.evalue, first.traceback
        self.engine_info, self.exc_type = first.engine_info, first.exc_type

    def __reduce__(self):
        return (CompositeError, (self.msg, self.errors))

    def __str__(self) -> str:
        lines = [self.msg]
        for err in self.errors[: self.tb_limit]:
            lines.append(f"{err._label()} {err.ename}: {err.evalue}")
        if len(self.errors) > self.tb_limit:
            lines.append(f".... {len(self.errors) - self.tb_limit} more exceptions ...")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CompositeError({len(self.errors)})"

    def render_traceback(self, excid: int | None = None) -> list[str]:
        """Tracebacks of the first ``tb_limit`` engines (or of error ``excid``) as lines."""
        chosen = self.errors[: self.tb_limit] if excid is None else [self._pick(excid)]
        lines: list[str] = []
        for err in chosen:
            lines.append(err._label() + ":")
            lines.extend((err.traceback or "No traceback available").splitlines())
            lines.append("")
        if excid is None and len(self.errors) > self.tb_limit:
            lines.append(f"... {len(self.errors) - self.tb_limit} more exceptions ...")
        return lines

    _render_traceback_ = render_traceback

    def print_traceback(self, excid: int | None = None) -> None:
        print("\n".join(self.render_traceback(excid)))

    def _pick(self, excid: int) -> RemoteError:
        try:
            return self.errors[excid]
        except IndexError:
            raise IndexError(f"an exception with index {excid} does not exist") from None

    def raise_exception(self, excid: int = 0) -> None:
        """Raise the ``excid``-th engine's error as a :class:`RemoteError`.

        >>> try:
        ...     rc[:].apply_sync(lambda: 1 / 0)
        ... except CompositeError as e:
        ...     try:
        ...         e.raise_exception()
        ...     except ZeroDivisionError as first:
        ...         print(first)
        [0:apply] ZeroDivisionError: division by zero
        """
        raise self._pick(excid).with_original_type()


class AlreadyDisplayedError(RemoteError):
    """A ``%px`` cell failed on several engines whose tracebacks streaming already showed.

    ``original_error`` is the :class:`CompositeError`; IPython shows only ``N errors``
    instead of the tracebacks a second time.

    >>> err = AlreadyDisplayedError(CompositeError("failed", [RemoteError("E", "x"),
    ...                                                      RemoteError("E", "y")]))
    >>> err.render_traceback(), err.n
    (['2 errors'], 2)
    """

    def __init__(self, original_error: CompositeError):
        RemoteError.__init__(self, original_error.ename, original_error.evalue,
                             original_error.traceback, original_error.engine_info,
                             original_error.exc_type)
        self.original_error = original_error
        self.n = len(original_error.elist)

    def __reduce__(self):
        return (AlreadyDisplayedError, (self.original_error,))

    def __str__(self) -> str:
        return f"{self.n} errors"

    def __repr__(self) -> str:
        return f"<AlreadyDisplayedError({self.n} errors)>"

    def render_traceback(self) -> list[str]:
        """``['N errors']``: the tracebacks were shown already."""
        return [str(self)]

    _render_traceback_ = render_traceback


def as_raised(exc: BaseException) -> BaseException:
    """An error as raised to users: a RemoteError is also an instance of the remote
    exception's class, where that class can be imported here.

    >>> isinstance(as_raised(RemoteError("KeyError", "'x'", "", {}, ("builtins", "KeyError"))),
    ...            KeyError)
    True
    """
    return exc.with_original_type() if isinstance(exc, RemoteError) else exc


def raisable(kept: BaseException) -> BaseException:
    """A copy of an error a result keeps, to raise in its place.

    Raising the kept error itself would add the caller's frames to its traceback, and with
    them everything those frames hold (arrays, ...), for as long as the result is kept (the
    task database keeps results); and its traceback would grow with every ``get()``.

    >>> kept = KeyError("x")
    >>> raised = raisable(kept)
    >>> raised is kept, type(raised), raised.args
    (False, <class 'KeyError'>, ('x',))
    """
    cls = type(kept)
    try:
        fresh = cls.__new__(cls, *kept.args)  # no __init__: it may want other arguments
        fresh.args = kept.args
        fresh.__dict__.update(kept.__dict__)
    except Exception:  # noqa: BLE001 - an exotic class: raise the kept one after all
        return kept
    fresh.__cause__, fresh.__context__ = kept.__cause__, kept.__context__
    fresh.__suppress_context__ = kept.__suppress_context__
    return fresh.with_traceback(kept.__traceback__)


# ---------------------------------------------------------------------------------------
# Engine side: turning an exception raised by user code into a RemoteError


def _user_frames(tb) -> list[_tb.FrameSummary]:
    """The traceback's frames, less rayparallel's own (and what calls into them)."""
    frames = _tb.extract_tb(tb)
    internal = _internal_dirs()
    keep = [f for f in frames if not f.filename.startswith(internal)]
    return keep or frames


def capture(exc: BaseException, engine_info: dict) -> RemoteError:
    """Build the RemoteError describing ``exc``, raised by user code on an engine."""
    lines = ["Traceback (most recent call last):\n"]
    lines += _tb.format_list(_user_frames(exc.__traceback__))
    lines += _tb.format_exception_only(type(exc), exc)
    cls = type(exc)
    return RemoteError(cls.__name__, str(exc), "".join(lines).rstrip("\n"), engine_info,
                       (cls.__module__, cls.__qualname__))


def fill_source_lines(error: RemoteError) -> None:
    """Fill in source lines the engine could not show (code typed in the client's notebook
    is in the client's linecache, not the engine's)."""
    out = []
    lines = error.traceback.splitlines()
    for i, line in enumerate(lines):
        out.append(line)
        stripped = line.strip()
        if stripped.startswith('File "') and ", line " in stripped:
            next_is_code = i + 1 < len(lines) and lines[i + 1].startswith("    ") and not \
                lines[i + 1].strip().startswith('File "')
            if not next_is_code:
                try:
                    filename = stripped.split('"')[1]
                    lineno = int(stripped.split(", line ")[1].split(",")[0])
                except (IndexError, ValueError):
                    continue
                src = linecache.getline(filename, lineno).strip()
                if src:
                    out.append("    " + src)
    error.traceback = "\n".join(out)


# ---------------------------------------------------------------------------------------
# Client side: Ray's failures into our errors


#: Ray's ways of saying an actor's process is gone
_ENGINE_GONE = frozenset(["RayActorError", "ActorDiedError", "ActorUnavailableError",
                          "ActorUnschedulableError", "WorkerCrashedError", "NodeDiedError"])


def translate(exc: BaseException, engine_id: int | None = None, method: str = "") -> BaseException:
    """Map an infrastructure exception (from Ray or the backend) to a rayparallel error."""
    if isinstance(exc, (RayParallelError, KeyboardInterrupt)):
        return exc
    name = type(exc).__name__
    where = f"engine {engine_id}" if engine_id is not None else "the worker running it"
    if name in _ENGINE_GONE or name in ("OwnerDiedError", "ObjectLostError",
                                        "LocalRayletDiedError", "RaySystemError"):
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else name
        return EngineLostError(f"{where} died or became unreachable during "
                               f"{method or 'a request'}: {cause}", engine_id, method)
    if name == "TaskCancelledError":
        return TaskAborted(f"the request to {where} was aborted before it finished")
    if name in ("RayTaskError",) or name.startswith("RayTaskError("):
        cause = getattr(exc, "cause", None)
        if cause is not None and not type(cause).__name__.startswith("RayTaskError"):
            return translate_cause(cause, engine_id, method)
        return EngineError(f"{where} failed internally during {method}: {exc}", engine_id)
    return exc


def engine_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (from the backend) means the engine's process is gone."""
    return type(exc).__name__ in _ENGINE_GONE or (
        isinstance(exc, EngineError) and "was stopped" in str(exc))


def translate_cause(cause: BaseException, engine_id: int | None, method: str) -> BaseException:
    """An exception raised inside an engine method outside user code (e.g. a result that
    cannot be pickled back): report it as a RemoteError from that engine."""
    return capture(cause, {"engine_id": engine_id, "method": method}).with_original_type()
