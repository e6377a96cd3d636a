"""``can`` / ``uncan``: ipyparallel's way to ready functions for pickling and bring them to
life in a given namespace (``from ipyparallel.serialize import can, uncan``).

rayparallel pickles with cloudpickle and needs no canning to send anything; these exist for
code written for ipyparallel that cans by hand. :func:`can` pickles functions (and
``@require``/``@interactive`` wrappers) by value into a :class:`CannedFunction`, in
containers too (dict values, list/tuple/set items, one level deep); :func:`uncan` opens
them, and with a namespace ``g`` makes it the function's globals, as ipyparallel does on
engines: the function then sees ``g``'s names, not the client's.

>>> ns = {"scale": 10}
>>> f = uncan(can(lambda x: scale * x), ns)  # noqa: F821 - scale lives in ns
>>> f(2)
20
"""

from __future__ import annotations

from types import FunctionType
from typing import Any

from . import serialize

__all__ = ["CannedFunction", "can", "uncan"]


class CannedFunction:
    """A function pickled by value (cloudpickle), opened by :func:`uncan`."""

    __slots__ = ("data", "name")

    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name

    def __reduce__(self):
        return (CannedFunction, (self.data, self.name))

    def __repr__(self) -> str:
        return f"<CannedFunction {self.name}>"

    def get_object(self, g: dict | None = None) -> Any:
        """The function, with ``g`` as its globals if given (ipyparallel's name)."""
        fn = serialize.unpack(serialize.Pickled("cloudpickle", self.data))
        if g is None:
            return fn
        if not isinstance(g, dict):
            raise TypeError(f"uncan's namespace must be a dict, not {type(g).__name__}")
        return serialize.bind_to_namespace(fn, g)[0]


def _is_function(obj: Any) -> bool:
    return isinstance(obj, FunctionType) or hasattr(obj, "_rayparallel_bind")


def can(obj: Any) -> Any:
    """``obj`` ready for pickling: a function (or our wrapper of one) as a
    :class:`CannedFunction`, containers with their items canned; other objects as they are.

    >>> can([abs, lambda: 1, 3])[1]
    <CannedFunction <lambda>>
    """
    if _is_function(obj):
        try:
            data = serialize.dumps(obj, "cloudpickle")
        except Exception as exc:
            raise serialize.explain_unpicklable({"the function": obj}, exc) from None
        return CannedFunction(data, getattr(obj, "__name__", type(obj).__name__))
    if type(obj) is dict:
        return {key: can(value) for key, value in obj.items()}
    if type(obj) in (list, tuple, set):
        return type(obj)(can(item) for item in obj)
    return obj


def uncan(obj: Any, g: dict | None = None) -> Any:
    """Undo :func:`can`; a function gets ``g`` (if given) as its globals.

    >>> uncan(can({"f": len}))["f"]("abc")
    3
    """
    if isinstance(obj, CannedFunction):
        return obj.get_object(g)
    if type(obj) is dict:
        return {key: uncan(value, g) for key, value in obj.items()}
    if type(obj) in (list, tuple, set):
        return type(obj)(uncan(item, g) for item in obj)
    return obj
