"""How functions and data travel to engines, and how they come alive there.

* By default Ray's cloudpickle carries everything: functions defined in a notebook travel by
  value, library functions by reference, numpy arrays out-of-band through the object store.
  ``use_dill()`` / ``use_pickle()`` wrap the function and arguments in a :class:`Pickled`
  envelope made with that library instead, and the engine opens it with the same library.
  As in ipyparallel, those choose how *data* is pickled: functions (lambdas, closures,
  functions nested in other objects such as ``require`` wrappers or ``partial``) still
  travel by value with cloudpickle, whatever the data serializer.
* A :class:`Reference` argument (or function) stands for a name in the engine's namespace,
  resolved there just before the call (:func:`resolve_references`).
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

import io
import pickle
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import FunctionType, ModuleType
from typing import Any

from .error import SerializationError

__all__ = [
    "MODES",
    "Reference",
    "resolve_references",
    "has_reference",
    "Pickled",
    "pack",
    "unpack",
    "envelope",
    "is_packed",
    "dumps",
    "load_function",
    "explain_unpicklable",
    "bind_to_namespace",
    "lend_names",
    "writable",
    "send_by_value",
    "ndarray_type",
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
    if "ray" not in sys.modules:  # local mode: the same library, without importing Ray
        import cloudpickle
    else:
        import ray.cloudpickle as cloudpickle  # the copy Ray itself uses
    return cloudpickle


#: functions that arrived by value under the ``pickle`` or ``dill`` serializer: as in
#: ipyparallel, they see only the engine's namespace (nothing of the client's globals)
_ENGINE_GLOBALS_ONLY: weakref.WeakSet = weakref.WeakSet()


def load_function(data: bytes) -> Any:
    """A function sent by :func:`dumps` with the ``pickle`` or ``dill`` serializer."""
    fn = _library("cloudpickle").loads(data)
    home = sys.modules.get(getattr(fn, "__module__", None) or "")
    if isinstance(fn, FunctionType) and getattr(home, "__dict__", None) is not fn.__globals__:
        _ENGINE_GLOBALS_ONLY.add(fn)
    return fn


def _function_reducer(obj: Any) -> Any:
    """``reducer_override`` for the data picklers: a function goes by cloudpickle (by value
    if it lives in a notebook or a test module, by reference if it can be imported), so
    choosing ``pickle`` or ``dill`` for data never makes lambdas or closures unusable."""
    if isinstance(obj, FunctionType) and obj is not load_function:  # that one by name
        cloudpickle = _library("cloudpickle")
        _register_by_value(cloudpickle)
        return load_function, (cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL),)
    return NotImplemented


_PICKLERS: dict[str, type] = {}


def _data_pickler(mode: str) -> type:
    """The pickler class of ``mode`` (``pickle`` or ``dill``) with functions by cloudpickle."""
    cls = _PICKLERS.get(mode)
    if cls is None:
        base = _library(mode).Pickler
        cls = _PICKLERS[mode] = type(f"{mode.capitalize()}DataPickler", (base,),
                                     {"reducer_override": staticmethod(_function_reducer)})
    return cls


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
    if mode == "cloudpickle":
        return _library(mode).dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out = io.BytesIO()
    _data_pickler(mode)(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def dumps_plain(obj: Any, buffer_callback: Callable[[Any], Any]) -> bytes:
    """``obj`` pickled by Ray's cloudpickle (protocol 5); its out-of-band buffers (numpy
    arrays...) are handed to ``buffer_callback`` instead of being copied into the bytes."""
    return _library("cloudpickle").dumps(obj, protocol=5, buffer_callback=buffer_callback)


def envelope(mode: str, data: bytes) -> Any:
    """``data`` pickled by the library ``mode`` as it travels to an engine: for Ray's own
    cloudpickle, the bytes themselves (Ray sends bytes as they are, where a
    :class:`Pickled` costs it a pickling of its own, 20 µs per engine called); for
    another library, a :class:`Pickled` naming it. :func:`unpack` opens either.

    >>> unpack(envelope("cloudpickle", dumps([1, 2], "cloudpickle")))
    [1, 2]
    """
    return data if mode == "cloudpickle" else Pickled(mode, data)


def is_packed(obj: Any) -> bool:
    """Whether ``obj`` is pickled already (an :func:`envelope`)."""
    return type(obj) is bytes or isinstance(obj, Pickled)


def unpack(obj: Any) -> Any:
    """Open an :func:`envelope`; pass anything else through. Only what the client packed
    arrives as bytes where this is called (requests, functions and chunks of data, never
    a bare user value)."""
    if type(obj) is bytes:
        return _library("cloudpickle").loads(obj)
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
    The pytest plugin does this for test files; a conftest can do it for test helpers
    (it lasts for the process, so never for a module of rayparallel itself)::

        import my_test_helpers
        send_by_value(my_test_helpers)
    """
    import cloudpickle  # local mode's pickler

    cloudpickle.register_pickle_by_value(module)
    BY_VALUE.add(module.__name__)
    ray_pickler = sys.modules.get("ray.cloudpickle")
    if ray_pickler is not None:  # else registered when first used (_register_by_value)
        ray_pickler.register_pickle_by_value(module)


def _register_by_value(cloudpickle: ModuleType) -> None:
    """Register :data:`BY_VALUE` with ``cloudpickle`` (Ray's copy may be imported after
    :func:`send_by_value` ran)."""
    for name in BY_VALUE:
        if name in sys.modules:
            cloudpickle.register_pickle_by_value(sys.modules[name])


class Reference:
    """An argument that stands for a name (or expression) in the engine's namespace: each
    engine passes its own value of it. It can stand for the function too.

    >>> dv.scatter("rank", range(4), flatten=True, block=True)
    [None, None, None, None]
    >>> dv.apply_sync(lambda r: r * 10, Reference("rank"))
    [0, 10, 20, 30]

    Load-balanced tasks run outside the engines and cannot resolve it (a clear error says
    so); a load-balanced view with ``targets`` can.
    """

    __slots__ = ("name",)

    def __init__(self, name: str):
        if not isinstance(name, str):
            raise TypeError(f"Reference needs the name of a variable on the engines, "
                            f"not {type(name).__name__}")
        self.name = name

    def __repr__(self) -> str:
        return f"<Reference: {self.name!r}>"

    def __reduce__(self):
        return (Reference, (self.name,))

    def resolve(self, namespace: dict) -> Any:
        """The value of the name (or expression) in ``namespace``.

        >>> Reference("g[0]").resolve({"g": [5, 6]})
        5
        """
        try:
            # an expression, as ipyparallel allows ('a.b', 'g[0]'): the engine's own code
            return eval(self.name, namespace)  # noqa: S307
        except NameError as exc:
            raise NameError(f"{exc} (for {self!r})") from None


def _containers(obj: Any) -> Any:
    """The items of a list, tuple or dict (Reference is looked for one level deep, as
    ipyparallel does), else None."""
    if type(obj) in (list, tuple):
        return obj
    if type(obj) is dict:
        return obj.values()
    return None


def has_reference(objs: Any) -> bool:
    """True if ``objs`` (or any of their items, one level deep) is a :class:`Reference`.

    >>> has_reference([1, [Reference("a")]]), has_reference([1, [2]])
    (True, False)
    """
    for obj in objs:
        if type(obj) is Reference:
            return True
        items = _containers(obj)
        # by type, in C: a map's chunk of thousands of items is looked through per request
        # (three times as fast as isinstance in a generator; Reference has no subclasses)
        if items is not None and Reference in map(type, items):
            return True
    return False


def _resolve_one(obj: Any, namespace: dict) -> Any:
    if isinstance(obj, Reference):
        return obj.resolve(namespace)
    items = _containers(obj)
    if items is None or not any(isinstance(x, Reference) for x in items):
        return obj
    if type(obj) is dict:
        return {k: _resolve_one(v, namespace) if isinstance(v, Reference) else v
                for k, v in obj.items()}
    return type(obj)(x.resolve(namespace) if isinstance(x, Reference) else x for x in obj)


def resolve_references(args: Sequence, kwargs: Mapping, namespace: dict
                       ) -> tuple[tuple, dict]:
    """``args`` and ``kwargs`` with each :class:`Reference` among them (or in their lists,
    tuples and dicts) replaced by its value in ``namespace``.

    >>> resolve_references((Reference("a"), [Reference("a"), 2]), {"k": Reference("a")},
    ...                    {"a": 1})
    ((1, [1, 2]), {'k': 1})
    """
    if not has_reference((*args, *kwargs.values())):
        return tuple(args), dict(kwargs)
    return (tuple(_resolve_one(x, namespace) for x in args),
            {k: _resolve_one(v, namespace) for k, v in kwargs.items()})


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
    :func:`lend_names`; none under the ``pickle`` and ``dill`` serializers, as in
    ipyparallel. Other callables are returned unchanged.
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
    if fn in _ENGINE_GLOBALS_ONLY:
        return _rebind(fn, namespace), {}
    brought = {}
    for name, value in captured.items():
        if name.startswith("__") and name.endswith("__"):
            continue
        if isinstance(value, FunctionType) and value.__globals__ is captured:
            value = _rebind(value, namespace)
        brought[name] = value
    return _rebind(fn, namespace), brought


def lend_names(namespace: dict, names: dict) -> AbstractContextManager[None]:
    """Add ``names`` missing from ``namespace`` for the duration of the block.

    The engine's own values win; what the call rebinds itself (``global x; x = ...``) stays.
    Nothing to lend (a builtin, a module's function) costs next to nothing: every request
    of most workloads takes that road.
    """
    return _lending(namespace, names) if names else nullcontext()


@contextmanager
def _lending(namespace: dict, names: dict) -> Iterator[None]:
    added = {k: v for k, v in names.items() if k not in namespace}
    namespace.update(added)
    try:
        yield
    finally:
        for key, value in added.items():
            if namespace.get(key, None) is value:
                del namespace[key]


def ndarray_type() -> type | None:
    """numpy's ndarray if numpy is loaded in this process, else None (then no object here
    is an array). Engines and tasks that never see an array skip importing numpy.

    >>> import numpy
    >>> ndarray_type() is numpy.ndarray
    True
    """
    numpy = sys.modules.get("numpy")
    return getattr(numpy, "ndarray", None)


#: bigger than this (bytes, or items for containers) goes to the object store once
LARGE_BYTES = 64 * 1024
LARGE_ITEMS = 5_000


def looks_large(obj: Any) -> bool:
    """Whether ``obj`` is worth one copy in Ray's object store shared by many calls, rather
    than one serialization per call.

    >>> looks_large(b"x" * 100_000), looks_large([1, 2])
    (True, False)
    """
    ndarray = ndarray_type() or ()
    if isinstance(obj, ndarray):
        return obj.nbytes > LARGE_BYTES
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj) > LARGE_BYTES
    if isinstance(obj, (list, tuple, dict, set)):
        if len(obj) > LARGE_ITEMS:
            return True
        items = obj.values() if isinstance(obj, dict) else obj
        return any(isinstance(x, (ndarray, bytes, list, dict)) and looks_large(x)
                   for x in items)
    return hasattr(obj, "memory_usage") or hasattr(obj, "__array__") and not callable(obj)


def writable(obj: Any) -> Any:
    """Copy read-only numpy arrays (also inside lists, tuples and dicts, one level deep)."""
    ndarray = ndarray_type()
    if ndarray is None:
        return obj
    if isinstance(obj, ndarray):
        return obj if obj.flags.writeable else obj.copy()
    if type(obj) in (list, tuple):
        if any(isinstance(x, ndarray) and not x.flags.writeable for x in obj):
            return type(obj)(writable(x) for x in obj)
        return obj
    if type(obj) is dict:
        return {k: writable(v) for k, v in obj.items()}
    return obj
