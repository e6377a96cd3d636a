"""Function decorators: ``@view.remote``, ``@view.parallel``, ``@require``, ``@interactive``.

>>> @rc[:].remote(block=True)
... def getpid():
...     import os
...     return os.getpid()
>>> len(getpid())
4
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from functools import update_wrapper
from types import FunctionType, ModuleType
from typing import Any

from . import error, serialize

__all__ = ["RemoteFunction", "ParallelFunction", "remote", "parallel", "require", "interactive"]


def _wrap(wrapper: Any, f: Callable) -> None:
    """Name, signature and docstring of ``f`` on ``wrapper``; the docstring says what wraps
    it (``RemoteFunction wrapping: ...``), as in ipyparallel."""
    update_wrapper(wrapper, f)
    try:
        wrapper.__signature__ = inspect.signature(f)
    except (TypeError, ValueError):  # builtins without a signature
        pass
    if getattr(f, "__doc__", None):
        wrapper.__doc__ = f"{type(wrapper).__name__} wrapping:\n{f.__doc__}"


class RemoteFunction:
    """Calling it calls the function through its view (``view.apply``), with this
    function's ``block`` and other view flags (``targets``...) for the call.

    >>> pid = RemoteFunction(rc[:], os.getpid, block=True)
    >>> len(pid())
    4
    """

    def __init__(self, view: Any, f: Callable, block: bool | None = None, **flags: Any):
        if not callable(f):
            raise TypeError(f"a remote function needs a callable, not {type(f).__name__}")
        bad = [name for name in flags if name not in view.flag_names]
        if bad:
            raise KeyError(f"invalid flag {bad[0]!r}; valid flags: "
                           f"{', '.join(view.flag_names)}")
        self.view, self.func, self.block = view, f, block
        self.flags = {k: v for k, v in flags.items() if v is not None}
        _wrap(self, f)

    @property
    def targets(self) -> Any:
        """The targets this function was made for (None: the view's)."""
        return self.flags.get("targets")

    def _flags(self) -> dict:
        block = {} if self.block is None else {"block": self.block}
        return {**self.flags, **block}

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        with self.view.temp_flags(**self._flags()):
            return self.view.apply(self.func, *args, **kwargs)


class ParallelFunction(RemoteFunction):
    """Calling it cuts the sequence arguments into one part per engine and calls the
    function once per engine with its parts; ``.map`` maps it over each element.

    >>> @rc[:].parallel(block=True)
    ... def double(x):
    ...     return [2 * i for i in x]
    >>> double(range(4))
    [0, 2, 4, 6]
    >>> double.map([[1], [2, 3]])
    [[2], [4, 6]]
    """

    def __init__(self, view: Any, f: Callable, dist: str = "b",
                 block: bool | None = None, **flags: Any):
        super().__init__(view, f, block, **flags)
        self.dist = dist

    def __call__(self, *sequences: Sequence) -> Any:
        if not hasattr(self.view, "map_partitions"):
            # tasks do not hold parts of one call: say what works instead
            raise TypeError(f"calling a @parallel function cuts its arguments over engines, "
                            f"which needs a DirectView, not a {type(self.view).__name__}; "
                            f"use {self.__name__}.map(...) to map it over items")
        with self.view.temp_flags(**self.flags):
            return self.view.map_partitions(self.func, *sequences, dist=self.dist,
                                            block=self.block)

    def map(self, *sequences: Sequence) -> Any:
        """Apply the function to each element (like ``view.map``).

        >>> rc[:].parallel(block=True)(lambda x: x * 2).map([1, 2])
        [2, 4]
        """
        with self.view.temp_flags(**self.flags):
            return self.view.map(self.func, *sequences, block=self.block)


def remote(view: Any, block: bool | None = None, **flags: Any
           ) -> Callable[[Callable], RemoteFunction]:
    """Decorator: calling the function runs it through ``view`` (``view.apply``), with
    ``block`` and other view ``flags`` for the call (the same as ``@view.remote(...)``).

    >>> @remote(rc[:2], block=True)
    ... def add(x, y=5):
    ...     return x + y
    >>> add(1), add(x=1, y=1)
    ([6, 6], [2, 2])
    """
    return lambda f: RemoteFunction(view, f, block=block, **flags)


def parallel(view: Any, dist: str = "b", block: bool | None = None, **flags: Any
             ) -> Callable[[Callable], ParallelFunction]:
    """Decorator: calling the function cuts its sequence arguments over the engines of
    ``view`` (``dist='b'``: contiguous blocks); ``.map`` maps it over each item (the same as
    ``@view.parallel(...)``; a load-balanced view supports ``.map``).

    >>> @parallel(rc[:2], block=True)
    ... def double(x):
    ...     return [2 * i for i in x] if isinstance(x, range) else 2 * x
    >>> double(range(5)), double.map([1, 2, 3])
    ([0, 2, 4, 6, 8], [2, 4, 6])
    """
    return lambda f: ParallelFunction(view, f, dist=dist, block=block, **flags)


class Required:
    """A function that imports modules (and defines objects) in its namespace first."""

    def __init__(self, f: Callable, modules: Sequence[str], objects: dict[str, Any],
                 namespace: dict | None = None):
        self.f, self.namespace = f, namespace
        self.modules, self.objects = tuple(modules), dict(objects)
        update_wrapper(self, f)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ns = self.namespace
        if ns is None:
            ns = self.f.__globals__ if isinstance(self.f, FunctionType) else {}
        for name in self.modules:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise error.UnmetDependency(f"{getattr(self.f, '__name__', 'the function')} "
                                            f"requires {name}, which cannot be imported "
                                            f"here: {exc}") from None
            top = name.split(".")[0]
            ns[top] = sys.modules[top]
        ns.update(self.objects)
        return self.f(*args, **kwargs)

    def _rayparallel_bind(self, namespace: dict) -> tuple[Required, dict]:
        f, brought = serialize.bind_to_namespace(self.f, namespace)
        return Required(f, self.modules, self.objects, namespace), brought


def require(*requirements: str | ModuleType | Callable,
            **mapping: Any) -> Callable[[Callable], Required]:
    """Decorator: import the named modules (names or module objects), define the given
    functions under their names and the keyword arguments under theirs, in the engine's
    namespace before the function runs. A module that cannot be imported there raises
    :class:`~rayparallel.error.UnmetDependency`.

    >>> @require("scipy.stats", half=lambda x: x / 2)
    ... def pdf(x):
    ...     return half(scipy.stats.norm(0, 1).pdf(x))
    >>> [round(float(p), 4) for p in rc[:].map_sync(pdf, [0])]
    [0.1995]
    """
    modules, objects = [], {}
    for r in requirements:
        if isinstance(r, ModuleType):
            modules.append(r.__name__)
        elif isinstance(r, str):
            modules.append(r)
        elif hasattr(r, "__name__"):
            objects[r.__name__] = r
        else:
            raise TypeError(f"require takes module names, modules or named functions "
                            f"(other objects by keyword: require(name=obj)), not {r!r}")
    for name in mapping:
        if not name.isidentifier():
            raise ValueError(f"require: {name!r} is not a valid Python name")
    objects.update(mapping)
    return lambda f: Required(f, modules, objects)


def interactive(f: FunctionType) -> FunctionType:
    """Mark a function defined in a module as interactive: it travels by value and runs with
    the engine's namespace as its globals, like a function typed in a notebook.

    >>> @interactive
    ... def get_a():
    ...     return a  # the engine's ``a``
    """
    f.__module__ = "__main__"
    return f
