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
import sys
from collections.abc import Callable, Sequence
from functools import update_wrapper
from types import FunctionType
from typing import TYPE_CHECKING, Any

from . import serialize

if TYPE_CHECKING:
    from .view import DirectView

__all__ = ["RemoteFunction", "ParallelFunction", "require", "interactive"]


class RemoteFunction:
    """Calling it calls the function on every engine of the view (``view.apply``)."""

    def __init__(self, view: DirectView, f: Callable, block: bool | None = None,
                 targets: Any = None):
        self.view, self.func, self.block, self.targets = view, f, block, targets
        update_wrapper(self, f)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.view._apply(self.func, args, kwargs, self.block, self.targets)


class ParallelFunction(RemoteFunction):
    """Calling it cuts the sequence arguments into one part per engine and calls the
    function once per engine with its parts; ``.map`` maps it over each element.

    >>> @rc[:].parallel(block=True)
    ... def double(x):
    ...     return [2 * i for i in x]
    >>> double(range(4))
    [0, 2, 4, 6]
    """

    def __init__(self, view: DirectView, f: Callable, dist: str = "b",
                 block: bool | None = None, targets: Any = None):
        super().__init__(view, f, block, targets)
        self.dist = dist

    def __call__(self, *sequences: Sequence) -> Any:
        return self.view._map(self.func, sequences, self.block, self.targets, mapping=False,
                              dist=self.dist)

    def map(self, *sequences: Sequence) -> Any:
        """Apply the function to each element (like ``view.map``).

        >>> double.map([1, 2])
        [[2], [4]]
        """
        return self.view._map(self.func, sequences, self.block, self.targets, mapping=True,
                              dist=self.dist)


class Required:
    """A function that imports modules (and defines objects) in its namespace first."""

    def __init__(self, f: Callable, modules: Sequence[str], objects: Sequence[Any],
                 namespace: dict | None = None):
        self.f, self.namespace = f, namespace
        self.modules, self.objects = tuple(modules), tuple(objects)
        update_wrapper(self, f)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ns = self.namespace
        if ns is None:
            ns = self.f.__globals__ if isinstance(self.f, FunctionType) else {}
        for name in self.modules:
            importlib.import_module(name)
            top = name.split(".")[0]
            ns[top] = sys.modules[top]
        for obj in self.objects:
            ns[obj.__name__] = obj
        return self.f(*args, **kwargs)

    def _rayparallel_bind(self, namespace: dict) -> tuple[Required, dict]:
        f, brought = serialize.bind_to_namespace(self.f, namespace)
        return Required(f, self.modules, self.objects, namespace), brought


def require(*requirements: str | Callable) -> Callable[[Callable], Required]:
    """Decorator: import the named modules (and define the given functions) in the engine's
    namespace before the function runs.

    >>> @require("scipy.stats")
    ... def pdf(x):
    ...     return scipy.stats.norm(0, 1).pdf(x)
    >>> rc[:].map_sync(pdf, [0])
    [0.3989422804014327]
    """
    modules, objects = [], []
    for r in requirements:
        if isinstance(r, str):
            modules.append(r)
        elif hasattr(r, "__name__"):
            objects.append(r)
        else:
            raise TypeError(f"require takes module names or named functions, not {r!r}")
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
