"""Results of maps: :class:`AsyncMapResult`, one list of items joined from the parts.

The parts are engines' partitions (DirectView ``map``, ``@parallel``) or load-balanced
chunks; the result iterates item by item, in order or as parts arrive.

>>> ar = rc[:].map_async(lambda x: x * x, range(6))
>>> list(ar)
[0, 1, 4, 9, 16, 25]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from . import error, partition
from .asyncresult import AsyncResult
from .reply import Reply
from .tasks import ItemFailure

__all__ = ["AsyncMapResult"]


class AsyncMapResult(AsyncResult):
    """The result of a map: parts are chunks, ``get()`` joins them, iteration yields items
    as their chunks complete: in order, or, for a load-balanced map with ``ordered=False``,
    chunk by chunk as they arrive.

    >>> list(rc[:].map_async(lambda x: x * 2, range(5)))
    [0, 2, 4, 6, 8]

    ``len`` and ``progress`` count items, as ipyparallel does (the parts are chunks of
    them: engines' partitions, or load-balanced tasks). An item that failed does not lose
    the others: ``get()`` raises its error (a CompositeError if the map has several
    items), or, with ``return_exceptions=True``, returns it in the item's place.
    """

    _parts_are_lists = True

    def __init__(self, parts: list[Any], fname: str, engine_ids: list[int | None], *,
                 joiner: Callable[[list], Any] = partition.join, mapping: bool = True,
                 chunk_sizes: list[int] | None = None, ordered: bool = True,
                 return_exceptions: bool = False, item_counts: list[int] | None = None,
                 **kw):
        self._joiner = joiner
        self._mapping = mapping  # parts return lists of items (map) or one object (parallel)
        #: load-balanced: items in each part, whose replies mark failed items in place
        self._chunk_sizes = chunk_sizes
        self.ordered = ordered
        self._return_exceptions = return_exceptions
        super().__init__(parts, fname, engine_ids, item_counts=item_counts or chunk_sizes,
                         **kw)

    def _combine(self, values: list) -> Any:
        return self._joiner(values)

    def _items(self, i: int) -> list:
        """Part ``i``'s item values, with an ItemFailure in the place of each that failed."""
        r = self._reply(i)
        size = self._chunk_sizes[i]
        if isinstance(r, BaseException):  # aborted, timed out, the worker died...
            return [ItemFailure(self._naming_items(i, r))] * size
        if r.error is None:
            return r.value
        if isinstance(r.value, list) and len(r.value) == size:
            for v in r.value:
                if isinstance(v, ItemFailure):
                    error.fill_source_lines(v.error)
            return r.value
        error.fill_source_lines(r.error)  # the whole chunk failed (e.g. on an engine)
        return [ItemFailure(r.error)] * size

    def _naming_items(self, i: int, exc: BaseException) -> BaseException:
        """The error that took part ``i`` (a chunk) as a whole, saying which items it had,
        for an error whose message does not (a lost worker's)."""
        if not isinstance(exc, error.EngineLostError):
            return exc
        if "_chunk_starts" not in self.__dict__:
            self._chunk_starts = [0, *itertools.accumulate(self._chunk_sizes)]
        first, end = self._chunk_starts[i], self._chunk_starts[i + 1]
        items = f"item {first}" if end - first == 1 else f"items {first}-{end - 1}"
        return error.EngineLostError(f"{items} of {self._fname} lost: {exc}", exc.engine_id,
                                     exc.engine_info.get("method", ""))

    def _compute_outcome(self) -> tuple[bool, Any]:
        if self._chunk_sizes is None:
            return super()._compute_outcome()
        values = self._plain_values()
        if values is not None:  # every chunk succeeded: its items as they came
            return True, [v for chunk in values for v in chunk]
        values, errors = [], []
        for i in range(len(self._parts)):
            items = self._items(i)
            r = self._reply(i)
            if isinstance(r, Reply) and r.error is None:
                values.extend(items)  # the common case: no item to look at
                continue
            for v in items:
                if isinstance(v, ItemFailure):
                    errors.append(v.error)
                    values.append(error.as_raised(v.error))
                else:
                    values.append(v)
        if not errors or self._return_exceptions:
            return True, values
        return False, self._error_of(errors, len(values) == 1)

    def _with_errors(self) -> Any:
        if self._chunk_sizes is not None:
            saved, self._return_exceptions = self._return_exceptions, True
            try:
                return self._compute_outcome()[1]
            finally:
                self._return_exceptions = saved
        # a DirectView map: a failed engine's whole partition is one exception
        values: list = []
        for part in super()._with_errors():
            if isinstance(part, BaseException):
                values.append(part)
            else:
                values.extend(part if self._mapping else [part])
        return values

    def _part_values(self, i: int) -> list:
        if self._chunk_sizes is None:
            (value,) = super()._part_values(i)
            return list(value) if self._mapping else [value]
        self._wait_part(i)
        values = self._items(i)
        for v in values:
            if isinstance(v, ItemFailure):
                if not self._return_exceptions:
                    raise error.raisable(error.as_raised(v.error))
                values = [error.as_raised(x.error) if isinstance(x, ItemFailure) else x
                          for x in values]
                break
        return values

    def __iter__(self) -> Iterator:
        if self.ordered:
            for i in range(len(self._parts)):
                yield from self._part_values(i)
            return
        self._watch()  # each part reports its end by itself; take them as they come
        for n in range(len(self._parts)):
            with self._arrived:
                while len(self._arrivals) <= n:
                    self._arrived.wait()
                i = self._arrivals[n]
            yield from self._part_values(i)
