"""What a load-balanced task runs, anywhere in the cluster: plain Python, no Ray.

A :class:`~rayparallel.loadbalanced.LoadBalancedView` sends each chunk of a map (or one
``apply``) as a task running :func:`run_chunk` (or :func:`run_apply`). The task calls the
function on each item of its chunk, captures what it prints into the chunk's
:class:`~rayparallel.reply.Reply`, and records each failing item's error in place, so the
other items of the chunk are not lost:

>>> blob = pack_function(abs, "cloudpickle")
>>> r = run_chunk(blob, ([-1, "x", 3],), 0, (True, 0, None, None))
>>> r.value[0], type(r.value[1]).__name__, r.value[2]
(1, 'ItemFailure', 3)

Tasks run in fresh worker processes, not on engines: they do not see names pushed to
engines, and a ``NameError`` says so.
"""

from __future__ import annotations

import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from . import error, serialize
from .reply import Reply, recording

__all__ = ["ItemFailure", "pack_function", "run_chunk", "run_apply"]

#: A hint added to a NameError raised in a task.
NAME_HINT = (
    " (load-balanced tasks run in Ray worker processes, not on the engines, so they do not "
    "see names pushed or defined there: pass the value as an argument, import it inside "
    "the function, or balance over engines with client.load_balanced_view(targets=...))"
)

#: Functions already unpickled in this worker: a map sends the same function with each of
#: its chunks, and unpickling it once per worker keeps small chunks cheap.
_FUNCTIONS: OrderedDict[tuple[str, bytes], Callable] = OrderedDict()
_FUNCTIONS_KEPT = 32

#: (copy, retries, deadline, timeout): how a task runs, see :func:`run_chunk`
Settings = tuple[bool, int, "float | None", "float | None"]


class ItemFailure:
    """In a chunk's list of values, the place of an item whose call raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error

    def __reduce__(self):
        return (ItemFailure, (self.error,))

    def __repr__(self) -> str:
        return f"ItemFailure({self.error!r})"


def pack_function(fn: Callable, mode: str) -> serialize.Pickled:
    """Pickle ``fn`` once for all the tasks of a map (with the client's serializer).

    Raises :class:`~rayparallel.error.SerializationError` naming the function if it cannot
    be pickled; nothing is sent then.
    """
    try:
        data = serialize._library(mode).dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise serialize.explain_unpicklable({"the function": fn}, exc) from None
    return serialize.Pickled(mode, data)


def _load_function(blob: serialize.Pickled) -> Callable:
    key = (blob.mode, blob.data)
    fn = _FUNCTIONS.get(key)
    if fn is None:
        fn = _FUNCTIONS[key] = serialize.unpack(blob)
        if len(_FUNCTIONS) > _FUNCTIONS_KEPT:
            _FUNCTIONS.popitem(last=False)
    else:
        _FUNCTIONS.move_to_end(key)
    return fn


def _item_error(exc: BaseException, item: int | None, method: str) -> error.RemoteError:
    # No engine ran it: the label names the item instead, "[ :map[17]] ValueError: ...".
    info: dict[str, Any] = {"method": method}
    if item is not None:
        info.update(method=f"{method}[{item}]", item=item)
    err = error.capture(exc, info)
    if isinstance(exc, NameError):
        err.evalue += NAME_HINT
        err.traceback += NAME_HINT
    return err


def _expired(deadline: float | None, timeout: float | None) -> BaseException | None:
    if deadline is not None and time.time() > deadline:
        return error.TimeoutError(f"the task did not finish within timeout={timeout:g} s")
    return None


def _call(fn: Callable, args: tuple, kwargs: dict, retries: int,
          deadline: float | None, timeout: float | None) -> Any:
    """``fn(*args, **kwargs)``, tried again up to ``retries`` times if it raises."""
    for attempt in range(retries + 1):
        late = _expired(deadline, timeout)
        if late is not None:
            raise late
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - user code may raise anything
            if attempt == retries:
                raise


def run_chunk(fn_blob: serialize.Pickled, sequences: Sequence[Sequence], start: int,
              settings: Settings, *after: Any) -> Reply:
    """Call the function on each item of a chunk: ``map(fn, *sequences)``.

    ``start`` is the chunk's first item's index in the whole map (for error messages);
    ``settings`` is ``(copy, retries, deadline, timeout)``: copy read-only arrays first;
    call an item that raised again, up to ``retries`` times; fail items not started before
    ``deadline`` (a POSIX time, ``timeout`` s after submission). ``after`` are the outcomes
    of calls this one had to wait for; they are not used.
    """
    copy, retries, deadline, timeout = settings
    reply = Reply(engine_id=None, method="map")
    values: list[Any] = []
    with recording(reply, {"engine_id": None, "method": "map"}, (KeyboardInterrupt,)):
        fn = _load_function(fn_blob)
        if copy:
            sequences = [serialize.writable(s) for s in sequences]
        for k, args in enumerate(zip(*sequences)):
            try:
                values.append(_call(fn, args, {}, retries, deadline, timeout)
                              if retries or deadline else fn(*args))
            except KeyboardInterrupt:
                raise  # the task was cancelled: let the backend see it
            except BaseException as exc:  # noqa: BLE001 - user code may raise anything
                err = _item_error(exc, start + k, "map")
                values.append(ItemFailure(err))
                if reply.error is None:
                    reply.error = err
        reply.value = values
    return reply


def run_apply(request: Any, settings: Settings, *after: Any) -> Reply:
    """``fn(*args, **kwargs)`` for ``request = (fn, args, kwargs)`` (packed with the
    client's serializer); ``settings`` and ``after`` as for :func:`run_chunk`."""
    copy, retries, deadline, timeout = settings
    reply = Reply(engine_id=None, method="apply")
    with recording(reply, {"engine_id": None, "method": "apply"}, (KeyboardInterrupt,)):
        try:
            fn, args, kwargs = serialize.unpack(request)
            if copy and (args or kwargs):
                args, kwargs = serialize.writable(tuple(args)), serialize.writable(dict(kwargs))
            reply.value = _call(fn, args, kwargs, retries, deadline, timeout)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything
            reply.error = _item_error(exc, None, "apply")
    return reply
