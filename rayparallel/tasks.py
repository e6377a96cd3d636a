"""What a load-balanced task runs, anywhere in the cluster: plain Python, no Ray.

A :class:`~rayparallel.loadbalanced.LoadBalancedView` sends each chunk of a map (or one
``apply``) as a task running :func:`run_chunk` (or :func:`run_apply`). The task calls the
function on each item of its chunk, captures what it prints into the chunk's
:class:`~rayparallel.reply.Reply`, and records each failing item's error in place, so the
other items of the chunk are not lost:

>>> mode, data = pack_function(abs, "cloudpickle")
>>> r = from_wire(run_chunk([mode, data, [[-1, "x", 3]], 0, True, 0]))
>>> r.value[0], type(r.value[1]).__name__, r.value[2]
(1, 'ItemFailure', 3)

Tasks run in fresh worker processes, not on engines: they do not see names pushed to
engines, and a ``NameError`` says so.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import error, serialize
from .reply import Reply, from_wire, recording, to_wire

__all__ = ["ItemFailure", "pack_function", "run_chunk", "run_apply", "to_wire", "from_wire"]

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

#: [copy, retries]: how a task runs, see :func:`run_chunk`
Settings = list


class ItemFailure:
    """In a chunk's list of values, the place of an item whose call raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error

    def __reduce__(self):
        return (ItemFailure, (self.error,))

    def __repr__(self) -> str:
        return f"ItemFailure({self.error!r})"


def pack_function(fn: Callable, mode: str) -> tuple[str, bytes]:
    """``(mode, data)``: ``fn`` pickled once for all the tasks of a map, with the client's
    serializer.

    Raises :class:`~rayparallel.error.SerializationError` naming the function if it cannot
    be pickled; nothing is sent then.
    """
    try:
        return mode, serialize.dumps(fn, mode)
    except Exception as exc:
        raise serialize.explain_unpicklable({"the function": fn}, exc) from None


def _load_function(mode: str, data: bytes) -> Callable:
    key = (mode, data)
    fn = _FUNCTIONS.get(key)
    if fn is None:
        fn = _FUNCTIONS[key] = serialize.unpack(serialize.Pickled(mode, data))
        if len(_FUNCTIONS) > _FUNCTIONS_KEPT:
            _FUNCTIONS.popitem(last=False)
    else:
        _FUNCTIONS.move_to_end(key)
    return fn


def _writable(seq: Any) -> Any:
    """:func:`serialize.writable`, skipping lists without arrays at C speed."""
    if type(seq) in (list, tuple) and serialize.ndarray_type() not in set(map(type, seq)):
        return seq
    return serialize.writable(seq)


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


def _call(fn: Callable, args: tuple, kwargs: dict, retries: int) -> Any:
    """``fn(*args, **kwargs)``, tried again at once up to ``retries`` times if it raises."""
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - user code may raise anything
            if attempt == retries:
                raise


def _map_items(fn: Callable, sequences: Sequence[Sequence], start: int, reply: Reply,
               retries: int) -> list:
    """``list(map(fn, *sequences))``, with an ItemFailure for each item that raised."""
    values: list[Any] = []
    append = values.append
    if retries:
        items: Iterator = zip(*sequences)
        call: Callable = lambda args: _call(fn, args, {}, retries)
    elif len(sequences) == 1:
        items, call = iter(sequences[0]), fn
    else:
        items, call = zip(*sequences), lambda args: fn(*args)
    while True:
        try:  # one try around the loop, not one per item: small items stay cheap
            for item in items:
                append(call(item))
            return values
        except KeyboardInterrupt:
            raise  # the task was cancelled: let the backend see it
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything
            err = _item_error(exc, start + len(values), "map")
            append(ItemFailure(err))  # and go on with the next item
            if reply.error is None:
                reply.error = err


def run_chunk(job: list, *after: Any) -> list:
    """Call a function on each item of a chunk: ``map(fn, *sequences)``.

    ``job`` is ``[mode, fn_data, sequences, start, copy, retries]``: the
    function pickled with the serializer ``mode``; the chunk's sequences; its first item's
    index in the whole map (for error messages); copy read-only arrays first; call an item
    that raised again, up to ``retries`` times. One flat list of plain values is one cheap
    argument to send. ``after`` are the outcomes of calls this one
    had to wait for; they are not used. Returns the chunk's Reply as sent by :func:`to_wire`.
    """
    mode, fn_data, sequences, start, copy, retries = job
    reply = Reply(engine_id=None, method="map")
    with recording(reply, {"engine_id": None, "method": "map"}, (KeyboardInterrupt,)):
        fn = _load_function(mode, fn_data)
        if copy:
            sequences = [_writable(s) for s in sequences]
        reply.value = _map_items(fn, sequences, start, reply, retries)
    return to_wire(reply)


def run_apply(job: list, *after: Any) -> list:
    """``fn(*args, **kwargs)`` for ``job = [request, copy, retries]``,
    ``request = (fn, args, kwargs)`` packed with the client's serializer; the rest and
    ``after`` as for :func:`run_chunk`."""
    request, copy, retries = job
    reply = Reply(engine_id=None, method="apply")
    with recording(reply, {"engine_id": None, "method": "apply"}, (KeyboardInterrupt,)):
        try:
            fn, args, kwargs = serialize.unpack(request)
            if copy and (args or kwargs):
                args, kwargs = serialize.writable(tuple(args)), serialize.writable(dict(kwargs))
            reply.value = _call(fn, args, kwargs, retries)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything
            reply.error = _item_error(exc, None, "apply")
    return to_wire(reply)
