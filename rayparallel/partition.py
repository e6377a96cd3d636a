"""Cutting sequences into contiguous parts for map/scatter, and joining them back for gather.

Partitions keep the type of what was cut: a ``range`` gives ranges, an ndarray gives
ndarrays, a list gives lists; joined back, lists and tuples give one list, and ranges
the list of ranges, as ipyparallel's gather does. Block distribution gives the first
``len(seq) % n`` parts one extra item, as ipyparallel does:

>>> [len(p) for p in split(list(range(10)), 8)]
[2, 2, 1, 1, 1, 1, 1, 1]
>>> split(range(5), 2)
[range(0, 3), range(3, 5)]
>>> join([[1, 2], [3]])
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from .serialize import Reference

__all__ = ["split", "join", "is_sequence", "not_a_sequence", "bounds", "map_sequences"]


def is_sequence(obj: Any) -> bool:
    """True for what can be partitioned: sliceable and sized (not str/bytes/dict)."""
    if isinstance(obj, (str, bytes, bytearray, dict)):
        return False
    if isinstance(obj, np.ndarray):
        return obj.ndim > 0
    return hasattr(obj, "__len__") and hasattr(obj, "__getitem__")


def not_a_sequence(obj: Any, what: str) -> TypeError:
    """The TypeError for ``what`` (``"scatter"``...) given ``obj``, which has no parts: a
    0-d array or a single value.

    >>> print(not_a_sequence(np.array(5), "scatter"))
    scatter needs a sequence to cut into parts, not a 0-d numpy array (one value, shape ());
    push one value as it is, or give a 1-d array (np.atleast_1d)
    """
    if isinstance(obj, np.ndarray):
        return TypeError(f"{what} needs a sequence to cut into parts, not a 0-d numpy array "
                         f"(one value, shape ()); push one value as it is, or give a 1-d "
                         f"array (np.atleast_1d)")
    shown = repr(obj)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return TypeError(f"{what} needs a sequence to cut into parts (list, tuple, range, numpy "
                     f"array...), not {type(obj).__name__} ({shown})")


def bounds(length: int, parts: int, dist: str = "b") -> list[tuple[int, int]]:
    """Start/stop of each of ``parts`` contiguous blocks of ``length`` items.

    >>> bounds(15, 8)
    [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14), (14, 15)]
    """
    if dist != "b":
        raise ValueError(f"dist={dist!r} is not supported; only block distribution 'b' is")
    if parts < 1:
        raise ValueError(f"cannot partition into {parts} parts")
    base, extra = divmod(length, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def _as_sliceable(seq: Any) -> Any:
    # Pandas objects slice by label with [a:b]; positional slicing needs .iloc.
    return seq.iloc if hasattr(seq, "iloc") else seq


def split(seq: Sequence, parts: int, dist: str = "b") -> list:
    """Cut ``seq`` into ``parts`` contiguous pieces of the same type (some may be empty).

    >>> split(np.arange(5), 2)
    [array([0, 1, 2]), array([3, 4])]
    >>> split("abcde", 2)  # text is cut into pieces of text, as ipyparallel's scatter does
    ['abc', 'de']
    """
    if not is_sequence(seq) and not isinstance(seq, (str, bytes)):
        raise not_a_sequence(seq, "partitioning")
    sliceable = _as_sliceable(seq)
    return [sliceable[a:b] for a, b in bounds(len(seq), parts, dist)]


def join(parts: list) -> Any:
    """Rebuild one object from partitions: arrays concatenate, lists and tuples add up to
    one list, anything else (ranges too) stays a list of the parts, as ipyparallel's
    gather does.

    >>> join([np.arange(2), np.arange(2)])
    array([0, 1, 0, 1])
    >>> join(split(np.arange(3, dtype=">i2"), 2)).dtype
    dtype('>i2')
    >>> join([(1, 2), (3,)]), join([range(0, 2), range(2, 3)])
    ([1, 2, 3], [range(0, 2), range(2, 3)])
    """
    if not parts:
        return []
    first = parts[0]
    if isinstance(first, np.ndarray):
        # Parts of one array keep its dtype: left to itself, concatenate makes big-endian
        # numbers (and structured fields) native-endian.
        same = all(isinstance(p, np.ndarray) and p.dtype == first.dtype for p in parts)
        return np.concatenate(parts, dtype=first.dtype if same else None)
    if isinstance(first, (list, tuple)):
        return list(chain.from_iterable(parts))
    if hasattr(first, "iloc"):  # pandas Series / DataFrame
        import pandas as pd

        return pd.concat(parts)
    return list(parts)


def map_sequences(f: Any, sequences: tuple, equal: bool = False) -> tuple[list, int]:
    """Check a map's arguments and make its sequences ready to cut: iterators and
    generators (anything iterable that is not a sequence) become lists, and, as with
    built-in ``map``, the shortest sequence decides the number of items (``equal=True``
    asks for equal lengths instead, as calling a ``@parallel`` function does). Returns the
    sequences and the number of items.

    >>> map_sequences(pow, (iter([1, 2, 3]), [3, 4]))
    ([[1, 2], [3, 4]], 2)
    """
    if not callable(f) and not isinstance(f, Reference):  # Reference: a function there
        raise TypeError(f"map needs a callable, not {type(f).__name__}")
    if not sequences:
        raise TypeError("map needs at least one sequence")
    out = []
    for n, seq in enumerate(sequences):
        if isinstance(seq, np.ndarray) and seq.ndim == 0:
            raise not_a_sequence(seq, f"map (argument {n + 1})")
        if not is_sequence(seq):
            try:
                seq = list(seq)
            except TypeError:
                raise TypeError(f"map: argument {n + 1} ({type(seq).__name__}) is not "
                                f"iterable; map needs lists, tuples, ranges, arrays, "
                                f"iterators...") from None
        out.append(seq)
    lengths = [len(s) for s in out]
    n = min(lengths)
    if equal and len(set(lengths)) > 1:
        raise ValueError(f"all sequences must have equal length, but have {lengths}")
    # keep each sequence's type (an array stays an array) when cutting it short
    return [s if len(s) == n else _as_sliceable(s)[:n] for s in out], n
