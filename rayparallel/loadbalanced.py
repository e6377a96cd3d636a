"""The LoadBalancedView: many independent items, each chunk of them a task.

Without ``targets`` each chunk of a map (or each ``apply``) is a Ray task that can run on
any CPU (or GPU) of the cluster, not only where engines are: tasks run
:func:`rayparallel.tasks.run_chunk` in Ray's worker processes, which capture what the
function prints into the result (nothing is streamed to the notebook) and record each
failing item's error in its place. With ``targets=[...]`` the chunks go instead to those
engines, each to the next engine that is free, so functions see the engines' namespaces.

>>> lview = rc.load_balanced_view()
>>> lview.map_sync(lambda x: x * x, range(6))
[0, 1, 4, 9, 16, 25]
>>> ar = lview.map_async(abs, range(-500, 500), chunksize=10)
>>> len(ar), ar.get()[:3]
(1000, [500, 499, 498])
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any

from . import checks, error, partition, serialize, tasks
from .asyncresult import AsyncResult
from .backend import TASK_OPTIONS, ResultSource
from .dependency import Gate, as_dependency, as_remote, when_settled
from .enginequeue import EngineQueue
from .lazymap import LazyMapIterator
from .mapresult import AsyncMapResult
from .view import View, check_function, function_name

__all__ = ["LoadBalancedView", "ViewExecutor", "LazyMapIterator", "auto_chunksize"]

#: Ray resources and placement of each task, as flags (None: Ray's default)
TASK_FLAGS = TASK_OPTIONS

#: the automatic chunk size aims at this many tasks per CPU, so that a slow chunk can be
#: balanced by the others while small items do not pay one task each
TASKS_PER_SLOT = 4
#: ... and at no fewer tasks than this (or than items), to balance few, slow items
MIN_TASKS = 32


def auto_chunksize(n_items: int, slots: int) -> int:
    """Items per task when ``chunksize`` is not given, for ``slots`` CPUs.

    >>> auto_chunksize(2000, 2), auto_chunksize(40, 2), auto_chunksize(5000, 16)
    (63, 2, 79)
    """
    tasks_wanted = max(TASKS_PER_SLOT * slots, min(n_items, MIN_TASKS))
    return max(1, math.ceil(n_items / tasks_wanted))


def _slice(seq: Any, start: int, stop: int) -> Any:
    # pandas objects slice by label with [a:b]; by position with .iloc
    return getattr(seq, "iloc", seq)[start:stop]


class LoadBalancedView(View):
    """Run items wherever there is room: ``rc.load_balanced_view()``.

    Flags (``set_flags``, ``temp_flags``, or keywords of ``load_balanced_view``):
    ``block``; ``retries`` (run a failed task again, up to that many times); ``timeout``
    (seconds a task may wait for its dependencies or, with ``targets``, a free engine: one
    not sent by then fails with :class:`~rayparallel.error.TaskTimeout`, as in ipyparallel;
    a task that was sent is never stopped by it); ``after`` (AsyncResults, msg_ids or a
    :class:`~rayparallel.dependency.Dependency` to wait for before starting) and
    ``follow`` (the same, and run where they ran: see :mod:`rayparallel.dependency`);
    ``copy``; and for tasks ``num_cpus``, ``num_gpus``, ``memory``, ``resources``,
    ``runtime_env``, ``scheduling_strategy`` (Ray's meaning).

    >>> lview = rc.load_balanced_view(num_cpus=2, retries=1)
    >>> lview.apply_sync(sum, [1, 2, 3])
    6
    """

    _flag_names = ("block", "targets", "copy", "retries", "timeout", "after", "follow",
                   *TASK_FLAGS)

    def __init__(self, client: Any, targets: Any = None, **flags: Any):
        super().__init__(client, targets, flags.pop("block", None))
        self.retries = 0
        self.timeout: float | None = None
        self.after: Any = None
        self.follow: Any = None
        for name in TASK_FLAGS:
            setattr(self, name, None)
        self.set_flags(**flags)
        self._executor: ViewExecutor | None = None
        # The engine queue of the latest requests with targets, by engines: requests to
        # the same engines share it, so a request waits here while the engines are busy
        # with an earlier one (and abort() can still drop it), as ipyparallel's scheduler
        self._queue: tuple[tuple, EngineQueue] | None = None

    def __len__(self) -> int:
        """How many items can run at once: the cluster's CPUs, or the targeted engines."""
        if self.targets is None:
            return self.session.backend.task_slots()
        return len(self._ids()[0])

    # ------------------------------------------------------------------ flags

    def set_flags(self, **flags: Any) -> None:
        """Set flags, checking them first (nothing changes if one is bad).

        >>> lview.set_flags(retries=2, timeout=30)
        """
        for key, value in flags.items():
            if key not in self._flag_names:
                raise KeyError(f"invalid flag {key!r}; valid flags: {', '.join(self._flag_names)}")
            _check_flag(self, key, value)
        super().set_flags(**flags)

    # ------------------------------------------------------------------ apply

    def apply(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``f(*args, **kwargs)`` once, wherever there is room; blocks if ``self.block``.
        Any keyword (even ``f``) goes to ``f``.

        >>> lview.apply(pow, 2, 10).get()
        1024
        """
        return self._apply(f, args, kwargs, None)

    def apply_sync(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``f(*args, **kwargs)`` once and wait for its value.

        >>> lview.apply_sync(lambda x, y: x**2 + y**2, 3, y=4)
        25
        """
        return self._apply(f, args, kwargs, True)

    def apply_async(self, f: Callable, /, *args: Any, **kwargs: Any) -> AsyncResult:
        """Call ``f(*args, **kwargs)`` once; returns an AsyncResult at once.

        >>> lview.apply_async(sum, [1, 2]).get()
        3
        """
        return self._apply(f, args, kwargs, False)

    def _apply(self, f: Callable, args: tuple, kwargs: dict, block: bool | None) -> Any:
        check_function(f)
        if self.targets is None:
            _no_references(f, (*args, *kwargs.values()))
        request = serialize.pack((f, args, kwargs), self._serializer(),
                                 "the function and its arguments")
        named = lambda: {"the function": f, **{f"argument {i}": x for i, x in enumerate(args)},
                         **{f"keyword argument {key!r}": x for key, x in kwargs.items()}}
        extra = self._copy_flag()
        ar = self._submit(function_name(f), tasks.run_apply, lambda: [[request]],
                          lambda: [lambda b, h: b.call(h, "apply", request, *extra)], named)
        return self._finish(ar, block)

    # ------------------------------------------------------------------ map

    def map(self, f: Callable, *sequences: Sequence, block: bool | None = None,
            chunksize: int | None = None, ordered: bool = True,
            return_exceptions: bool = False) -> Any:
        """``f`` over the sequences' items, ``chunksize`` items per task (default: chosen
        from the number of items and CPUs); blocks if ``block`` (default ``self.block``).

        Like built-in ``map``: iterators and generators are taken (made into lists here
        first), and the shortest sequence decides the number of items.
        ``ordered=False`` makes iterating over the result yield items as their chunks
        finish; ``return_exceptions=True`` puts a failed item's error in its place instead
        of raising it.

        >>> lview.map(lambda x, y: x + y, range(3), range(3), block=True)
        [0, 2, 4]
        """
        return self._map(f, sequences, block, chunksize, ordered, return_exceptions)

    def map_sync(self, f: Callable, *sequences: Sequence, chunksize: int | None = None,
                 ordered: bool = True, return_exceptions: bool = False) -> list:
        """:meth:`map`, waiting for the list of results.

        >>> lview.map_sync(lambda x: sum(x), np.ones((3, 4)))
        [np.float64(4.0), np.float64(4.0), np.float64(4.0)]
        """
        return self._map(f, sequences, True, chunksize, ordered, return_exceptions)

    def map_async(self, f: Callable, *sequences: Sequence, chunksize: int | None = None,
                  ordered: bool = True, return_exceptions: bool = False) -> AsyncMapResult:
        """:meth:`map`, returning an AsyncMapResult at once (one part per task; ``len``
        counts items).

        >>> out = lview.map_async(abs, range(-50, 50), chunksize=10)
        >>> len(out), out.get()[:3]
        (100, [50, 49, 48])
        """
        return self._map(f, sequences, False, chunksize, ordered, return_exceptions)

    def _map(self, f: Callable, sequences: tuple, block: bool | None, chunksize: int | None,
             ordered: bool, return_exceptions: bool) -> Any:
        sequences, n = partition.map_sequences(f, sequences)
        if self.targets is None:
            _no_references(f, sequences)
        if chunksize is not None:
            checks.whole_number(chunksize, "chunksize", 1, " (or None to choose automatically)")
        else:
            chunksize = auto_chunksize(n, len(self))
        bounds = [(a, min(a + chunksize, n)) for a in range(0, n, chunksize)]
        result_options = {"chunk_sizes": [b - a for a, b in bounds], "ordered": ordered,
                          "return_exceptions": return_exceptions}
        chunks = [[_slice(s, a, b) for s in sequences] for a, b in bounds]
        mode = self._serializer()
        extra = self._copy_flag()

        def jobs() -> list[list]:
            fn = tasks.pack_function(f, mode)
            return [[*fn, chunk, a] for chunk, (a, _) in zip(chunks, bounds)]

        def calls() -> list[Callable]:
            fn = self._function_for_many(f)
            payloads = [serialize.pack(tuple(c), mode, "the data") for c in chunks]
            return [lambda b, h, data=data: b.call(h, "map", fn, data, *extra)
                    for data in payloads]

        ar = self._submit(function_name(f), tasks.run_chunk, jobs, calls,
                          lambda: _named_items(sequences), **result_options)
        return self._finish(ar, block)

    def imap(self, f: Callable, *sequences: Iterable, ordered: bool = True,
             max_outstanding: int | str = "auto", return_exceptions: bool = False
             ) -> LazyMapIterator:
        """A lazy map: takes items from the sequences (any iterables, even endless ones)
        as calls finish, keeping at most ``max_outstanding`` in flight ("auto": twice
        ``len(view)``; 0: no limit), and yields results in order or, with
        ``ordered=False``, as they finish. ``cancel()`` on the returned
        :class:`~rayparallel.lazymap.LazyMapIterator` stops taking input.

        >>> import itertools
        >>> doubled = lview.imap(lambda x: x * 2, itertools.count(), max_outstanding=4)
        >>> for y in doubled:
        ...     if y > 6: break
        >>> doubled.cancel()
        >>> y
        8
        """
        return self._lazy_map(f, sequences, ordered, max_outstanding, return_exceptions)

    def _lazy_map(self, f: Callable, sequences: tuple, ordered: bool,
                  max_outstanding: int | str, return_exceptions: bool,
                  timeout: float | None = None) -> LazyMapIterator:
        if not callable(f) and not isinstance(f, serialize.Reference):
            raise TypeError(f"imap needs a callable, not {type(f).__name__}")
        if not sequences:
            raise TypeError("imap needs at least one iterable")
        if self.targets is None:
            _no_references(f, ())
        if max_outstanding == "auto":
            max_outstanding = 2 * len(self)
        checks.whole_number(max_outstanding, "max_outstanding", 0, " (or 'auto')")
        items = zip(*sequences)
        mode = self._serializer()
        task_fn = tasks.pack_function(f, mode)
        # pickled once for every item, not by Ray once per call
        fn = serialize.envelope(*task_fn)
        extra = self._copy_flag()
        options = {"chunk_sizes": [1], "return_exceptions": return_exceptions}
        index = 0

        def submit(args: tuple) -> AsyncMapResult:
            nonlocal index
            chunk = [[x] for x in args]
            index += 1
            at = index - 1

            def calls() -> list[Callable]:
                data = serialize.pack(tuple(chunk), mode, "the data")
                return [lambda b, h: b.call(h, "map", fn, data, *extra)]

            return self._note(self._submit(
                function_name(f), tasks.run_chunk, lambda: [[*task_fn, chunk, at]], calls,
                lambda: {f"item {at}": args}, **options))

        return LazyMapIterator(items, submit, max_outstanding=max_outstanding,
                               ordered=ordered, value=lambda ar: ar.get()[0],
                               timeout=timeout)

    # ------------------------------------------------------------------ executor, joblib

    @property
    def executor(self) -> ViewExecutor:
        """This view as a :class:`concurrent.futures.Executor`.

        >>> with lview.executor as ex:
        ...     list(ex.map(abs, [-1, -2]))
        [1, 2]
        """
        if self._executor is None:
            self._executor = ViewExecutor(self)
        return self._executor

    def register_joblib_backend(self, name: str = "rayparallel",
                                make_default: bool = False) -> None:
        """Make this view a joblib backend, as ``name`` (default: both "rayparallel" and,
        for code written for ipyparallel, "ipyparallel").

        >>> import joblib
        >>> lview.register_joblib_backend()
        >>> with joblib.parallel_backend("rayparallel"):
        ...     joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3))
        [0, 1, 2]
        """
        try:
            from joblib.parallel import register_parallel_backend
        except ImportError:
            raise ImportError("register_joblib_backend needs joblib: pip install joblib") \
                from None
        backend_cls = joblib_backend_class()
        for alias in ([name, "ipyparallel"] if name == "rayparallel" else [name]):
            register_parallel_backend(alias, lambda **kw: backend_cls(view=self, **kw),
                                      make_default=make_default)

    # ------------------------------------------------------------------ plumbing

    def _settings(self) -> tasks.Settings:
        return [self.copy, self.retries]

    def _submit(self, fname: str, task_fn: Callable, jobs: Callable[[], list[list]],
                calls: Callable[[], list[Callable]], named: Callable[[], dict],
                **result_options: Any) -> AsyncResult:
        """Submit one part per job: as Ray tasks running ``task_fn(job)``, or, with
        ``targets`` (or where ``follow`` leads), as engine ``calls`` (``call(backend,
        engine_handle) -> pending``) queued for the engines; once ``after`` and ``follow``
        are met, if they are given. The form the flags choose is built at once, so that
        what cannot be pickled fails here."""
        after, follow = as_dependency(self.after), as_dependency(self.follow)
        targets = None if self.targets is None else self._ids()[0]
        if targets is not None and not targets:
            raise self.session.no_engines()
        eager_jobs = jobs() if targets is None else None
        eager_calls = calls() if targets is not None else None
        settings, options, retries = self._settings(), self._task_options(), self.retries
        # ipyparallel's timeout: how long a task may wait in the scheduler, for its
        # dependencies or a free engine. A task handed to Ray waits in Ray's queue, as a
        # request sent to an engine waits in the engine's: the timeout does not cover that.
        timeout = self.timeout
        deadline = None if timeout is None else time.time() + timeout
        late = lambda: as_remote(error.TaskTimeout(
            f"{fname}: the task did not start within timeout={timeout:g} s"), fname)

        def resend(i: int) -> AsyncResult:
            """Part ``i`` again, as submitted (for ``Client.resubmit``; its dependencies
            were met the first time)."""
            if targets is None:
                parts, source = self._task_parts(task_fn, [eager_jobs[i]], named,
                                                 self._settings(), options)
            else:
                every = eager_calls if eager_calls is not None else calls()
                source, parts = self._engine_parts([every[i]], targets, retries, None, late)
            return self._result(parts, fname, source, {}, lambda _: resend(i))

        if not after and not follow:
            if targets is None:
                parts, source = self._task_parts(task_fn, eager_jobs, named, settings, options)
            else:
                source, parts = self._engine_parts(eager_calls, targets, retries,
                                                   deadline, late)
            return self._result(parts, fname, source, result_options, resend)
        n = len(eager_jobs if eager_jobs is not None else eager_calls)
        gate = Gate(n)
        ar = self._result(gate.parts, fname, gate, result_options, resend)
        if deadline is not None:  # still waiting for its dependencies then: TaskTimeout
            gate.expire_at(deadline, late)

        def start(engines: list[int] | None) -> None:
            def run(live: list[int]) -> tuple[ResultSource, list]:
                if engines is None:
                    parts, source = self._task_parts(
                        task_fn, [eager_jobs[i] for i in live], named, settings, options)
                    return source, parts
                every = eager_calls if eager_calls is not None else calls()
                return self._engine_parts([every[i] for i in live], engines, retries,
                                          deadline, late)
            gate.open(run)

        when_settled(self.session, after, follow, targets, fname, start, gate.fail)
        return ar

    def _task_options(self) -> dict:
        options = {name: getattr(self, name) for name in TASK_FLAGS}
        options["retries"] = self.retries
        return options

    def _task_parts(self, fn: Callable, jobs: list[list], named: Callable[[], dict],
                    settings: list, options: dict) -> tuple[list, ResultSource]:
        """Submit one task per job (its settings are added); ``named()`` names what might
        not pickle, if something did not."""
        backend = self.session.backend
        try:
            parts = backend.submit_many(fn, [(job + settings,) for job in jobs], options)
        except TypeError as exc:
            if "serializ" not in str(exc):
                raise
            raise serialize.explain_unpicklable(named(), exc) from None
        return parts, backend

    def _engine_parts(self, calls: list[Callable], engines: list[int], retries: int,
                      deadline: float | None, late: Callable[[], BaseException]
                      ) -> tuple[ResultSource, list]:
        """Queue ``calls`` for ``engines``, each to the next that is free; those still
        waiting at ``deadline`` (POSIX time) fail with ``late()``. Requests to the same
        engines share one queue, so one waiting behind another can still be aborted."""
        engines_now = [(eid, self.session.handle(eid)) for eid in engines]
        key = tuple((eid, id(handle)) for eid, handle in engines_now)
        if self._queue is None or self._queue[0] != key:
            self._queue = (key, EngineQueue(self.session.backend, engines_now, retries))
        queue = self._queue[1]
        parts = [queue.add(call, retries) for call in calls]
        if deadline is not None:
            queue.expire_at(deadline, late, parts)
        queue.start(after=[])
        return queue, parts

    def _result(self, parts: list, fname: str, source: ResultSource,
                result_options: dict, resend: Callable[[int], AsyncResult]) -> AsyncResult:
        """The result of a map (``result_options`` given: one part per chunk) or of one
        apply, tracked by the session (``resend(i)`` sends part ``i`` again)."""
        common = {"source": source, "owner": self.session}
        if result_options:
            ar: AsyncResult = AsyncMapResult(parts, fname, [None] * len(parts),
                                             **common, **result_options)
        else:
            ar = AsyncResult(parts, fname, [None], single=True, **common)
        self.session.track(ar, resend)
        return ar


def _check_flag(view: LoadBalancedView, key: str, value: Any) -> None:
    """Raise a clear error for a bad flag value."""
    if key == "retries":
        checks.whole_number(value, "retries")
    elif key == "timeout":
        if value is not None and (not isinstance(value, (int, float)) or
                                  isinstance(value, bool) or value <= 0):
            raise ValueError(f"timeout must be a number of seconds > 0 or None, not {value!r}")
    elif key in ("after", "follow"):
        try:
            as_dependency(value)
        except TypeError:
            raise TypeError(f"{key} must be an AsyncResult, a msg_id, a list of those or a "
                            f"Dependency, not {value!r}") from None
    elif key == "targets":
        if value is not None:
            view.session.resolve_targets(value)
    elif key == "block":
        if not isinstance(value, bool):
            raise TypeError(f"block must be True or False, not {value!r}")


def _no_references(f: Any, args: Any) -> None:
    """Tasks run outside the engines: a Reference (as ``f``, an argument, or an item of a
    sequence) has no namespace to be looked up in there; say so before sending anything."""
    if isinstance(f, serialize.Reference) or serialize.has_reference(args):
        raise TypeError(
            "a Reference names a variable on the engines, but load-balanced tasks run in "
            "Ray worker processes, outside the engines: balance over engines with "
            "client.load_balanced_view(targets=...) or use a DirectView")


def _named_items(sequences: tuple) -> dict:
    """Each item of a map's sequences by name, to say which one cannot be pickled."""
    return {f"item {i} of the sequences": tuple(_slice(s, i, i + 1)[0] for s in sequences)
            for i in range(len(sequences[0]))}


class ViewExecutor(Executor):
    """A :class:`concurrent.futures.Executor` on a LoadBalancedView: ``submit`` is
    ``apply_async`` (its futures are AsyncResults), ``map`` is the view's lazy ``imap``;
    ``shutdown`` waits for what this executor submitted, and never stops engines.

    >>> with rc.executor() as ex:
    ...     ex.submit(pow, 2, 5).result()
    32
    """

    def __init__(self, view: LoadBalancedView):
        self.view = view
        self._submitted: list[AsyncResult] = []
        self._maps: list[LazyMapIterator] = []
        self._shut = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> AsyncResult:
        """Run ``fn(*args, **kwargs)``; returns its future (an AsyncResult)."""
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            ar = self.view.apply_async(fn, *args, **kwargs)
            self._submitted = [a for a in self._submitted if not a.done()] + [ar]
        return ar

    def map(self, fn: Callable, *iterables: Iterable, timeout: float | None = None,
            chunksize: int = 1) -> LazyMapIterator:
        """``fn`` over the iterables' items, lazily (the view's ``imap``): results in order;
        one not there ``timeout`` s after this call raises TimeoutError when reached.
        ``chunksize`` is accepted for the Executor API; each item is one call.

        >>> with lview.executor as ex:
        ...     list(ex.map(pow, [2, 3], [2, 2]))
        [4, 9]
        """
        checks.whole_number(chunksize, "chunksize", 1)
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            results = self.view._lazy_map(fn, iterables, True, "auto", False, timeout)
            self._maps = [m for m in self._maps if not m.done] + [results]
        return results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more work; abort what has not started (and stop the maps taking
        input) if ``cancel_futures``; wait for the rest, maps' items included, if ``wait``."""
        with self._lock:
            self._shut = True
            submitted, self._submitted = self._submitted, []
            maps, self._maps = self._maps, []
        if cancel_futures:
            for ar in submitted:
                ar.abort()
            for lazy in maps:
                lazy.cancel()
        if wait:
            for lazy in maps:
                lazy.wait_submitted()
            for ar in [*submitted, *(ar for lazy in maps for ar in lazy.pending())]:
                ar.wait()


def joblib_backend_class() -> type:
    """joblib's backend class for views (made on first use: joblib is optional)."""
    from joblib.parallel import AutoBatchingMixin, ParallelBackendBase

    class RayParallelBackend(AutoBatchingMixin, ParallelBackendBase):
        """Runs joblib's batches through a LoadBalancedView."""

        supports_retrieve_callback = True

        def __init__(self, view: LoadBalancedView, owns_client: bool = False,
                     **kwargs: Any):
            super().__init__(**kwargs)
            self._view = view
            self._owns_client = owns_client  # started for joblib: closed when it is done

        def terminate(self) -> None:
            if self._owns_client:
                self._view.client.close()

        def effective_n_jobs(self, n_jobs: int | None) -> int:
            return len(self._view)

        def submit(self, func: Callable, callback: Callable | None = None) -> AsyncResult:
            ar = self._view.apply_async(func)
            if callback is not None:
                ar.add_done_callback(callback)
            return ar

        def retrieve_result_callback(self, out: AsyncResult) -> Any:
            return out.get()

    return RayParallelBackend
