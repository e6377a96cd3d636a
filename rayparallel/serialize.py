"""How functions and data travel to engines, and how they come alive there.

* By default Ray's cloudpickle carries everything: functions defined in a notebook travel by
  value, library functions by reference, numpy arrays out-of-band through the object store.
  ``use_dill()`` / ``use_pickle()`` wrap the function and arguments in a :class:`Pickled`
  envelope made with that library instead, and the engine opens it with the same library.
* Interactive functions (defined in ``__main__``, i.e. a notebook or script, or anything else
  that travelled by value, such as a function nested in another) run on the engine
  with the engine's namespace as their globals, as in ipyparallel: after
  ``dv.push(dict(a=3))`` a notebook function can read ``a``, and ``global x; x = 1`` persists
  on the engine. Names the function used on the client that the engine lacks (a module it
  imported, a helper function) are lent to the namespace for the call and taken back after.
* Arrays arriving from Ray's object store are read-only views of shared memory; engines get
  writable copies unless the caller asks for zero-copy.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FunctionType, ModuleType
from typing import Any

import numpy as np

from .error import SerializationError

__all__ = [
    "MODES",
    "Pickled",
    "pack",
    "unpack",
    "dumps",
    "explain_unpicklable",
    "bind_to_namespace",
    "lend_names",
    "writable",
    "send_by_value",
]

MODES = ("cloudpickle", "dill", "pickle")


def _library(mode: str):
    if mode == "dill":
        try:
            import dill
        except ImportError:
            raise ImportError("use_dill() needs the 'dill' package: pip install dill") from None
        return dill
    if mode == "pickle":
        return pickle
    import ray.cloudpickle as cloudpickle  # the copy Ray itself uses

    return cloudpickle


class Pickled:
    """An object pickled on the client by a chosen library, opened on the engine by the same."""

    __slots__ = ("mode", "data")

    def __init__(self, mode: str, data: bytes):
        self.mode = mode
        self.data = data

    def __reduce__(self):
        return (Pickled, (self.mode, self.data))


def pack(obj: Any, mode: str = "cloudpickle", what: str = "object") -> Any:
    """Prepare ``obj`` for sending: as is for Ray's cloudpickle, else a :class:`Pickled`.

    >>> pack(len, "pickle").mode
    'pickle'
    """
    if mode == "cloudpickle":
        return obj
    if mode not in MODES:
        raise ValueError(f"unknown serializer {mode!r}; choose one of {MODES}")
    try:
        return Pickled(mode, dumps(obj, mode))
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be pickled with {mode}: {exc}. Nothing was sent."
        ) from exc


def dumps(obj: Any, mode: str) -> bytes:
    """``obj`` pickled by the library ``mode`` names (``unpack(Pickled(mode, data))`` opens it).

    >>> len(dumps([1, 2], "pickle")) > 0
    True
    """
    return _library(mode).dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def dumps_plain(obj: Any, buffer_callback: Callable[[Any], Any]) -> bytes:
    """``obj`` pickled by Ray's cloudpickle (protocol 5); its out-of-band buffers (numpy
    arrays...) are handed to ``buffer_callback`` instead of being copied into the bytes."""
    return _library("cloudpickle").dumps(obj, protocol=5, buffer_callback=buffer_callback)


def unpack(obj: Any) -> Any:
    """Open a :class:`Pickled` envelope; pass anything else through."""
    if isinstance(obj, Pickled):
        return _library(obj.mode).loads(obj.data)
    return obj


def explain_unpicklable(named: Mapping[str, Any], cause: BaseException) -> SerializationError:
    """Name the first of ``named`` that cloudpickle cannot pickle (called after sending
    failed, so the normal path pays nothing for it)."""
    cloudpickle = _library("cloudpickle")
    for name, obj in named.items():
        try:
            cloudpickle.dumps(obj)
        except Exception as exc:
            return SerializationError(
                f"{name} cannot be pickled to send to the engines ({type(obj).__name__}: "
                f"{exc}). Nothing was sent."
            )
    return SerializationError(f"the request could not be serialized: {cause}. Nothing was sent.")


#: modules whose functions travel by value (see send_by_value)
BY_VALUE: set[str] = set()


def send_by_value(module: ModuleType) -> None:
    """Send ``module``'s functions by value, as if defined in a notebook: they then run with
    the engine's namespace as globals, and engines need not be able to import the module.
    The pytest plugin does this for test files.

    >>> send_by_value(sys.modules[__name__])
    """
    import cloudpickle  # local mode's pickler

    cloudpickle.register_pickle_by_value(module)
    BY_VALUE.add(module.__name__)
    ray_pickler = sys.modules.get("ray.cloudpickle")
    if ray_pickler is not None:  # else the Ray backend registers BY_VALUE when it starts
        ray_pickler.register_pickle_by_value(module)


# ---------------------------------------------------------------------------------------
# Engine side


def _rebind(fn: FunctionType, namespace: dict) -> FunctionType:
    new = FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    new.__annotations__ = fn.__annotations__
    return new


def bind_to_namespace(fn: Any, namespace: dict) -> tuple[Any, dict]:
    """Give an interactive function ``namespace`` as its globals.

    Returns the function to call and the names it brought from the client (with any
    interactive helpers among them rebound the same way), to be lent with
    :func:`lend_names`. Other callables are returned unchanged.
    """
    rebind = getattr(fn, "_rayparallel_bind", None)
    if rebind is not None:  # our own wrappers (require, ...) bind what they wrap
        return rebind(namespace)
    if not isinstance(fn, FunctionType):
        return fn, {}
    captured = fn.__globals__
    home = sys.modules.get(fn.__module__)
    if home is not None and getattr(home, "__dict__", None) is captured:
        return fn, {}  # a module's function, imported here by reference: leave it be
    if captured is namespace:
        return fn, {}
    brought = {}
    for name, value in captured.items():
        if name.startswith("__") and name.endswith("__"):
            continue
        if isinstance(value, FunctionType) and value.__globals__ is captured:
            value = _rebind(value, namespace)
        brought[name] = value
    return _rebind(fn, namespace), brought


@contextmanager
def lend_names(namespace: dict, names: dict) -> Iterator[None]:
    """Add ``names`` missing from ``namespace`` for the duration of the block.

    The engine's own values win; what the call rebinds itself (``global x; x = ...``) stays.
    """
    added = {k: v for k, v in names.items() if k not in namespace}
    namespace.update(added)
    try:
        yield
    finally:
        for key, value in added.items():
            if namespace.get(key, None) is value:
                del namespace[key]


def writable(obj: Any) -> Any:
    """Copy read-only numpy arrays (also inside lists, tuples and dicts, one level deep)."""
    if isinstance(obj, np.ndarray):
        return obj if obj.flags.writeable else obj.copy()
    if type(obj) in (list, tuple):
        if any(isinstance(x, np.ndarray) and not x.flags.writeable for x in obj):
            return type(obj)(writable(x) for x in obj)
        return obj
    if type(obj) is dict:
        return {k: writable(v) for k, v in obj.items()}
    return obj
