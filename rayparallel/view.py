"""Views: what users send work through. :class:`DirectView` addresses chosen engines.

Every DirectView method turns into one ``Engine`` method call per targeted engine (through
the client's backend) and returns an :class:`~rayparallel.asyncresult.AsyncResult`, or its
value when blocking. A view on one integer target returns single values; a view on a list of
targets returns lists, as in ipyparallel.

>>> dv = rc[:]
>>> dv.push(dict(a=3, b=2), block=True)
[None, None, None, None]
>>> dv.map_sync(lambda x: a * x + b, range(5))
[2, 5, 8, 11, 14]
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import partition, serialize
from .asyncresult import AsyncResult
from .importsync import import_bindings
from .mapresult import AsyncMapResult
from .remotefunction import ParallelFunction, RemoteFunction
from .tracking import check_track
from .viewresults import ViewResults

if TYPE_CHECKING:
    from .backend import OutputStream
    from .session import Session

__all__ = ["View", "DirectView"]

def function_name(f: Any) -> str:
    """The name a result shows for ``f`` (``<lambda>``, ``sum``, a callable's class name,
    a Reference's name)."""
    if isinstance(f, serialize.Reference):
        return f.name
    return getattr(f, "__name__", None) or type(f).__name__


def check_function(f: Any) -> None:
    """A clear TypeError unless ``f`` can be applied: a callable, or a Reference to one
    on the engines."""
    if not callable(f) and not isinstance(f, serialize.Reference):
        raise TypeError(f"apply needs a callable, not {type(f).__name__}")


class View(ViewResults):
    """Common to all views: targets, blocking, flags, the call plumbing, and the results
    sent (:class:`~rayparallel.viewresults.ViewResults`)."""

    _flag_names = ("block", "targets", "copy", "track")

    @property
    def flag_names(self) -> tuple[str, ...]:
        """The flags this view takes (``set_flags``, ``temp_flags``, decorators).

        >>> dv.flag_names
        ('block', 'targets', 'copy', 'track')
        """
        return self._flag_names

    def __init__(self, client: Any, targets: Any = "all", block: bool | None = None):
        #: the Client this view came from (ipyparallel code reads ``view.client``)
        self.client = client
        #: the machinery shared with the client: engines, calls, outstanding results
        self.session: Session = client.session
        self.targets = targets
        self.block = client.block if block is None else block
        #: copy arrays arriving from the object store so engines can write to them
        self.copy = True
        #: ipyparallel's send tracking (see :mod:`~rayparallel.tracking`): results carry a
        #: tracker either way, done once the call returns, as Ray has the data by then
        self.track = False
        self._init_results()

    def __repr__(self) -> str:
        targets = self.targets
        if isinstance(targets, (list, range)) and len(targets) > 6:
            targets = f"{list(targets)[:2]} ... {list(targets)[-2:]}"
        return f"<{type(self).__name__} {targets}>"

    def __len__(self) -> int:
        return len(self._ids()[0])

    # ------------------------------------------------------------------ flags

    def set_flags(self, **flags: Any) -> None:
        """Set view flags (``block``, ``targets``, ``copy``...).

        >>> dv.set_flags(block=True)
        """
        for key, value in flags.items():
            if key not in self._flag_names:
                raise KeyError(f"invalid flag {key!r}; valid flags: {', '.join(self._flag_names)}")
            setattr(self, key, value)

    @contextmanager
    def temp_flags(self, **flags: Any) -> Iterator[View]:
        """Set flags for the duration of a ``with`` block.

        >>> with dv.temp_flags(block=True):
        ...     dv.apply(abs, -1)
        [1, 1, 1, 1]
        """
        saved = {key: getattr(self, key) for key in flags}
        self.set_flags(**flags)
        try:
            yield self
        finally:
            for key, value in saved.items():
                setattr(self, key, value)

    # ------------------------------------------------------------------ plumbing

    def _ids(self, targets: Any = None) -> tuple[list[int], bool]:
        return self.session.resolve_targets(self.targets if targets is None else targets)

    def _serializer(self) -> str:
        return self.session.serializer

    def _finish(self, ar: AsyncResult, block: bool | None) -> Any:
        self._note(ar)
        return ar.get() if (self.block if block is None else block) else ar

    def _copy_flag(self) -> tuple:
        """Extra engine-call argument for ``copy``: none for the default (one less to send)."""
        return () if self.copy else (False,)

    def _shared(self, obj: Any, copies: int) -> Any:
        """What to hand to ``copies`` calls: the object itself, or one object-store copy."""
        if copies > 1 and serialize.looks_large(obj):
            return self.session.share(obj, "the data")
        return obj

    def _function_for_many(self, f: Callable) -> Any:
        """``f`` pickled now, once for all the calls it goes with (Ray would pickle it
        again for each, about 0.2 ms for a notebook's function)."""
        return self._for_one_engine(serialize.pack(f, self._serializer(), "the function"),
                                    "the function")

    def _for_one_engine(self, obj: Any, what: str) -> Any:
        """``obj`` ready to go to one engine, pickled now, so that a bad item stops the call
        before anything is sent. Plain data travels inside the call as a pickled envelope,
        much cheaper than a trip through the object store; data holding buffers (numpy
        arrays...) goes to the object store, which hands buffers over without copying."""
        if serialize.is_packed(obj):  # pickled already, by the chosen library
            return obj
        buffers: list = []
        try:
            data = serialize.dumps_plain(obj, buffers.append)
        except Exception as exc:
            raise serialize.explain_unpicklable({what: obj}, exc) from None
        return self.session.share(obj, what) if buffers else \
            serialize.envelope("cloudpickle", data)


    # ------------------------------------------------------------------ decorators

    def remote(self, block: bool | None = None, **flags: Any) -> Callable:
        """Decorator: calling the function runs it through this view (``apply``), with
        ``block`` and other view ``flags`` for the call.

        >>> @dv.remote(block=True)
        ... def pid():
        ...     import os; return os.getpid()
        """
        return lambda f: RemoteFunction(self, f, block=block, **flags)

    def parallel(self, dist: str = "b", block: bool | None = None, **flags: Any) -> Callable:
        """Decorator: calling the function cuts its sequence arguments over the engines and
        calls it once per engine on its part (DirectView only); ``.map`` maps it elementwise
        (any view).

        >>> @dv.parallel(block=True)
        ... def total(x):
        ...     return sum(x)
        >>> total(range(15))  # with 4 engines
        [6, 22, 38, 39]
        """
        return lambda f: ParallelFunction(self, f, dist=dist, block=block, **flags)

class DirectView(View):
    """Send work to specific engines: ``rc[0]``, ``rc[::2]``, ``rc[[1, 3]]``, ``rc[:]``.

    >>> rc[1:3].apply_sync(lambda x, y: x**2 + y**2, 3, 4)
    [25, 25]
    """

    # ------------------------------------------------------------------ apply

    def _apply(self, f: Callable, args: tuple, kwargs: dict, block: bool | None) -> Any:
        check_function(f)
        check_track(self.track)
        ids, single = self._ids()
        mode = self._serializer()
        request = serialize.pack((f, args, kwargs), mode, "the function and its arguments")
        named = lambda: {"the function": f,  # noqa: E731 - made only to word an error
                         **{f"argument {i}": x for i, x in enumerate(args)},
                         **{f"keyword argument {key!r}": x for key, x in kwargs.items()}}
        if len(ids) > 1:  # one serialization for all engines, not one per engine
            if any(serialize.looks_large(x) for x in (*args, *kwargs.values())):
                request = self.session.share(request, "the arguments")
            elif not serialize.is_packed(request):
                try:
                    request = self._for_one_engine(request, "the request")
                except serialize.SerializationError as exc:
                    raise serialize.explain_unpicklable(named(), exc) from None
        extra = self._copy_flag()
        ar = self.session.send(ids, "apply", lambda i: (request, *extra), function_name(f),
                               single=single, named=named)
        return self._finish(ar, block)

    def apply(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``f(*args, **kwargs)`` on every targeted engine; blocks if ``self.block``.
        Any keyword (even ``f``) goes to ``f``; a :class:`~rayparallel.Reference` (as
        ``f`` or an argument) is looked up on each engine.

        >>> rc[:].apply(lambda x: x + 1, 1).get()
        [2, 2, 2, 2]
        """
        return self._apply(f, args, kwargs, None)

    def apply_sync(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``f(*args, **kwargs)`` on every targeted engine and wait for the results.

        >>> rc[1:3].apply_sync(lambda x, y: x**2 + y**2, x=3, y=4)
        [25, 25]
        """
        return self._apply(f, args, kwargs, True)

    def apply_async(self, f: Callable, /, *args: Any, **kwargs: Any) -> AsyncResult:
        """Call ``f(*args, **kwargs)`` on every targeted engine; returns an AsyncResult.

        >>> rc[0].apply_async(pow, 2, 10).get()
        1024
        """
        return self._apply(f, args, kwargs, False)

    # ------------------------------------------------------------------ map

    def map(self, f: Callable, *sequences: Sequence, block: bool | None = None,
            targets: Any = None) -> Any:
        """``f`` over the sequences, each cut into one contiguous chunk per engine.

        Like built-in ``map``: iterators and generators are taken (made into lists here
        first), and the shortest sequence decides the number of items. ``f`` or items
        may be a :class:`~rayparallel.Reference` to a name on the engines.

        >>> rc[:].map(lambda x, y, z: x + y + z, range(10), range(10), range(10), block=True)
        [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
        """
        return self._partitioned(f, sequences, block, targets, per_item=True)

    def map_sync(self, f: Callable, *sequences: Sequence, targets: Any = None) -> list:
        """:meth:`map`, waiting for the result.

        >>> rc[::2].map_sync(abs, [-1, -2, 3])
        [1, 2, 3]
        """
        return self._partitioned(f, sequences, True, targets, per_item=True)

    def map_async(self, f: Callable, *sequences: Sequence, targets: Any = None) -> AsyncMapResult:
        """:meth:`map`, returning an AsyncMapResult at once.

        >>> rc[:].map_async(abs, [-1, -2]).get()
        [1, 2]
        """
        return self._partitioned(f, sequences, False, targets, per_item=True)

    def map_partitions(self, f: Callable, *sequences: Sequence, dist: str = "b",
                       block: bool | None = None, targets: Any = None) -> Any:
        """Cut the sequences into one contiguous part per engine and call ``f(*parts)``
        once on each engine; the results are joined as the parts were (what
        ``@dv.parallel`` functions do when called).

        >>> rc[:2].map_partitions(sum, range(10), block=True)
        [10, 35]
        """
        return self._partitioned(f, sequences, block, targets, per_item=False, dist=dist)

    def _partitioned(self, f: Callable, sequences: tuple, block: bool | None, targets: Any,
                     per_item: bool, dist: str = "b") -> Any:
        """Partition the sequences over the engines; ``per_item`` runs ``map(f, *parts)``
        on each engine, otherwise ``f(*parts)``."""
        sequences, _ = partition.map_sequences(f, sequences, equal=not per_item)
        ids, _ = self._ids(targets)
        if not ids:
            raise self.session.no_engines()
        chunks = [partition.split(s, len(ids), dist) for s in sequences]
        # Engines whose chunk is empty get no work, as in ipyparallel.
        # An empty map still gives a result (an empty list): one engine maps nothing.
        used = [i for i in range(len(ids)) if len(chunks[0][i]) > 0] or [0]
        mode = self._serializer()
        engine_ids = [ids[i] for i in used]
        extra = self._copy_flag()
        if per_item:
            fn = self._function_for_many(f) if len(used) > 1 else \
                serialize.pack(f, mode, "the function")
            payloads = [self._for_one_engine(
                serialize.pack(tuple(c[i] for c in chunks), mode, "the data"),
                f"the data for engine {ids[i]}") for i in used]
            args_for = lambda j: (fn, payloads[j], *extra)  # noqa: E731
        else:
            # the function travels with the data here: through the backend, which pickles
            # functions as it does everywhere else
            payloads = [self.session.share(
                serialize.pack((f, tuple(c[i] for c in chunks), {}), mode,
                               "the function and data"),
                f"the data for engine {ids[i]}") for i in used]
            args_for = lambda j: (payloads[j], *extra)  # noqa: E731
        ar = self.session.send(engine_ids, "map" if per_item else "apply", args_for,
                               function_name(f), single=False, result_cls=AsyncMapResult,
                               mapping=per_item, named=lambda: {"the function": f},
                               item_counts=[len(chunks[0][i]) for i in used])
        return self._finish(ar, block)

    # ------------------------------------------------------------------ code

    def execute(self, code: str, silent: bool = True, targets: Any = None,
                block: bool | None = None, *, stream: OutputStream | None = None) -> Any:
        """Run ``code`` (IPython syntax, magics included) on the engines; returns the
        AsyncResult (as ipyparallel does), after waiting for it when blocking.

        ``silent=False`` counts it in the engines' execution counts and records the value
        of its last expression (shown as ``Out[engine:count]``). ``stream`` (from the
        backend's ``open_output_stream()``) receives stdout/stderr while the code runs, as
        ``%px`` uses it.

        >>> rc[:].execute("import numpy as np", block=True)
        <AsyncResult: execute:finished>
        """
        if not isinstance(code, str):
            raise TypeError(f"execute needs a string of code, not {type(code).__name__}")
        ids, single = self._ids(targets)
        args = (code, silent) if stream is None else (code, silent, stream.writer)
        ar = self._note(self.session.send(ids, "execute", lambda i: args, "execute",
                                          single=single, execute=True))
        if self.block if block is None else block:
            ar.get()  # raises the engines' errors; the result itself is the AsyncResult
        return ar

    def run(self, filename: str, targets: Any = None, block: bool | None = None) -> Any:
        """Execute the file ``filename`` (read here, on the client) on the engines.

        >>> rc[:].run("setup.py", block=True)  # doctest: +SKIP
        <AsyncResult: execute:finished>
        """
        with open(filename, encoding="utf-8") as fh:
            code = fh.read()
        return self.execute(code, targets=targets, block=block)

    # ------------------------------------------------------------------ data

    def push(self, ns: dict, targets: Any = None, block: bool | None = None,
             track: bool | None = None) -> Any:
        """Update the engines' namespaces with the dict ``ns``. ``track`` is accepted as
        in ipyparallel: the result's ``tracker`` is done once this returns.

        >>> rc[:].push(dict(a=3, b=2), block=True)
        [None, None, None, None]
        """
        if not isinstance(ns, dict):
            raise TypeError(f"push needs a dict of names to values, not {type(ns).__name__}")
        bad = [k for k in ns if not isinstance(k, str) or not
               all(part.isidentifier() for part in k.split("."))]  # "a.b": an attribute
        if bad:
            raise ValueError(f"push: keys must be valid Python names (or a.b), not {bad!r}")
        check_track(track)
        ids, single = self._ids(targets)
        payload = self._shared(ns, len(ids))
        extra = self._copy_flag()
        named = lambda: {f"the value of {k!r}": v for k, v in ns.items()}  # noqa: E731
        ar = self.session.send(ids, "push", lambda i: (payload, *extra), "push", single=single,
                        named=named)
        return self._finish(ar, block)

    def pull(self, names: str | Sequence[str], targets: Any = None,
             block: bool | None = None) -> Any:
        """Values of ``names`` (a name, or a list of names) from each engine.

        >>> rc[:].push(dict(a=3, b=2), block=True)
        [None, None, None, None]
        >>> rc[:].pull(("a", "b"), block=True)
        [[3, 2], [3, 2], [3, 2], [3, 2]]
        """
        if isinstance(names, str):
            keys: Any = names
        elif isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            keys = list(names)
        else:
            raise TypeError(f"pull needs a name or a list of names, not {names!r}")
        ids, single = self._ids(targets)
        ar = self.session.send(ids, "pull", lambda i: (keys,), "pull", single=single)
        return self._finish(ar, block)

    def __getitem__(self, key: str) -> Any:
        """``dv['a']``: pull ``a`` from every engine, waiting for it."""
        if not isinstance(key, str):
            raise TypeError(f"view[key] takes a name, not {type(key).__name__}")
        return self.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        """``dv['a'] = 1``: push ``a`` to every engine, waiting for it."""
        self.update({key: value})

    def update(self, ns: dict) -> Any:
        """Push the dict ``ns`` (honours ``block``)."""
        return self.push(ns)

    def get(self, key_s: str | Sequence[str]) -> Any:
        """Pull ``key_s`` and wait for it."""
        return self.pull(key_s, block=True)

    def scatter(self, key: str, seq: Sequence, dist: str = "b", flatten: bool = False,
                targets: Any = None, block: bool | None = None,
                track: bool | None = None) -> Any:
        """Cut ``seq`` into one contiguous part per engine and push each part as ``key``.

        ``flatten=True`` pushes single-item parts as the item itself; ``track`` as in
        :meth:`push`.

        >>> rc[:].scatter("x", range(8), block=True)
        [None, None, None, None]
        """
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"scatter: key must be a valid Python name, not {key!r}")
        if not partition.is_sequence(seq) and not isinstance(seq, (str, bytes)):
            raise partition.not_a_sequence(seq, "scatter")
        check_track(track)
        ids, _ = self._ids(targets)
        if not ids:
            raise self.session.no_engines()
        parts = partition.split(seq, len(ids), dist)
        payloads = []
        for eid, part in zip(ids, parts):
            value = part[0] if flatten and len(part) == 1 else part
            payloads.append(self._for_one_engine({key: value},
                                                 f"part of {key!r} for engine {eid}"))
        extra = self._copy_flag()
        ar = self.session.send(ids, "push", lambda i: (payloads[i], *extra), "scatter",
                               single=False)
        return self._finish(ar, block)

    def gather(self, key: str, dist: str = "b", targets: Any = None,
               block: bool | None = None) -> Any:
        """Pull ``key`` from each engine and join the parts (the inverse of scatter).

        >>> rc[:].scatter("x", np.arange(8), block=True)
        [None, None, None, None]
        >>> rc[:].gather("x", block=True)
        array([0, 1, 2, 3, 4, 5, 6, 7])
        """
        if not isinstance(key, str):
            raise TypeError(f"gather takes one name, not {type(key).__name__}")
        if dist != "b":
            raise ValueError(f"dist={dist!r} is not supported; only block distribution 'b' is")
        ids, _ = self._ids(targets)
        ar = self.session.send(ids, "pull", lambda i: (key,), "gather", single=False,
                        result_cls=AsyncMapResult, mapping=False)
        return self._finish(ar, block)

    def clear(self, targets: Any = None, block: bool | None = None) -> Any:
        """Empty the engines' namespaces.

        >>> rc[:].clear(block=True)
        [None, None, None, None]
        """
        ids, single = self._ids(targets)
        ar = self.session.send(ids, "clear", lambda i: (), "clear", single=single)
        return self._finish(ar, block)

    # ------------------------------------------------------------------ imports

    @contextmanager
    def sync_imports(self, local: bool = True, quiet: bool = False) -> Iterator[None]:
        """Import modules here and on the engines, under the same names and aliases.

        >>> with dv.sync_imports():
        ...     import numpy as np
        importing numpy on engine(s)
        """
        caller = sys._getframe(2)  # the frame of the with-statement
        before = {**caller.f_globals, **caller.f_locals}
        real_import = builtins.__import__
        imported: list[tuple[str, tuple]] = []

        def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
            if sys._getframe(1) is not caller:
                # Other threads' and modules' own imports pass through unrecorded.
                return real_import(name, globals, locals, fromlist, level)
            builtins.__import__ = real_import  # nested imports are the modules' own business
            try:
                module = real_import(name, globals, locals, fromlist, level)
            finally:
                builtins.__import__ = recording_import
            full = name if not level else f"{module.__name__}"
            imported.append((full, tuple(fromlist or ())))
            if not quiet:
                what = f"{', '.join(fromlist)} from {name}" if fromlist else name
                print(f"importing {what} on engine(s)")
            return module

        builtins.__import__ = recording_import
        try:
            yield
        finally:
            builtins.__import__ = real_import
        after = {**caller.f_globals, **caller.f_locals}
        modules = [name for name, _ in imported]
        bindings = import_bindings(before, after, imported)
        ids, _ = self._ids()
        self.session.send(ids, "import_names", lambda i: (modules, bindings), "sync_imports",
                          single=False).get()

    @property
    def importer(self) -> Any:
        """``with view.importer:``, the same as ``with view.sync_imports():``.

        >>> with dv.importer:
        ...     import re
        importing re on engine(s)
        """
        return self.sync_imports(True)

    def shutdown(self, targets: Any = None, restart: bool = False, hub: bool = False,
                 block: bool | None = None) -> None:
        """Stop this view's engines (or ``targets``); see :meth:`Client.shutdown
        <rayparallel.client.Client.shutdown>`. ``restart`` is not supported on Ray (engines
        are started with ``Client.add_engines``): it raises ValueError.

        >>> rc[3].shutdown(); rc.ids
        [0, 1, 2]
        """
        if restart:
            raise ValueError("shutdown(restart=True) is not supported: stop the engines, "
                             "then start new ones with client.add_engines(n)")
        self.client.shutdown(self.targets if targets is None else targets, hub=hub)

    # ------------------------------------------------------------------ serializers

    def use_cloudpickle(self) -> None:
        """Send functions and data with cloudpickle (the default), for the whole client.

        >>> dv.use_cloudpickle()
        """
        self.session.serializer = "cloudpickle"

    def use_dill(self) -> None:
        """Send data with dill (more types than pickle), for the whole client. Functions
        travel by value with cloudpickle and, as in ipyparallel, see only the engine's
        namespace.

        >>> dv.use_dill()
        """
        self.session.serializer = "dill"

    def use_pickle(self) -> None:
        """Send data with the standard pickle, for the whole client. Functions still travel
        by value (with cloudpickle), but as in ipyparallel they then see only the engine's
        namespace: nothing of the client's globals goes with them.

        >>> dv.use_pickle()
        """
        self.session.serializer = "pickle"

    def activate(self, suffix: str = "") -> None:
        """Register the parallel magics for this view: ``%px``, ``%%px``, ``%pxresult``,
        ``%pxconfig``, ``%autopx``, each name ending in ``suffix``.

        In IPython::

            rc[::2].activate(suffix="_even")
            %px_even import os
        """
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            import warnings

            warnings.warn("the parallel magics (%px, ...) only work within IPython",
                          stacklevel=2)
            return
        from .magics import register_magics  # IPython's magic machinery: only when used

        register_magics(shell, self, suffix)
