"""Dependencies between load-balanced requests: ``after``, ``follow`` and friends.

A :class:`Dependency` is a set of earlier requests (AsyncResults or their msg_ids) with
ipyparallel's rules: by default met when *all* of them *succeeded*; impossible (the
request fails with :class:`~rayparallel.error.ImpossibleDependency` without running) as
soon as one failed. A LoadBalancedView takes them as flags:

- ``after``: start only once the dependency is met.
- ``follow``: the same, and run on an engine where those requests ran (every one of them
  with ``all=True``, any with ``all=False``), so the work finds the state they left in
  the engine's namespace. Requests that ran as Ray tasks (a load-balanced view without
  ``targets``) ran in no engine and left no state anywhere: they constrain nothing. With
  ``targets``, the engine must be one of them.

The client decides when the dependencies are settled (no Ray worker sits waiting), then
submits the request or fails it.

>>> first = lview.apply_async(abs, -1)
>>> with lview.temp_flags(after=Dependency([first], success=True)):
...     lview.apply_sync(abs, -2)
2
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import error
from .asyncresult import AsyncResult
from .backend import FutureResults, Outcome, ResultSource
from .remotefunction import require

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Dependency", "depend", "dependent", "require", "Gate", "as_dependency",
           "when_settled"]


class Dependency(set):
    """Earlier requests (AsyncResults or msg_ids) a request depends on.

    ``all``: met when all of them (else: any of them) finished as ``success`` and
    ``failure`` say: ``success=True`` counts those that succeeded, ``failure=True`` those
    that failed (at least one must be True).

    >>> dep = Dependency(["a", "b"], all=False)
    >>> dep.check(completed={"a"}, failed={"b"}), dep.unreachable({"a"}, {"b"})
    (True, False)
    >>> Dependency(["a"], success=False, failure=False)
    Traceback (most recent call last):
    ...
    ValueError: a Dependency must count successes, failures or both: both are False
    """

    def __init__(self, dependencies: Any = (), all: bool = True, success: bool = True,
                 failure: bool = False):
        if isinstance(dependencies, dict):  # as_dict() output
            all = dependencies.get("all", all)
            success = dependencies.get("success", success)
            failure = dependencies.get("failure", failure)
            dependencies = dependencies.get("dependencies", ())
        if isinstance(dependencies, (str, AsyncResult)):
            dependencies = [dependencies]
        for d in dependencies:
            if not isinstance(d, (str, AsyncResult)):
                raise TypeError(f"invalid dependency {d!r}: dependencies are AsyncResults "
                                "or msg_ids")
        super().__init__(dependencies)
        if not (success or failure):
            raise ValueError("a Dependency must count successes, failures or both: "
                             "both are False")
        self.all, self.success, self.failure = all, success, failure

    def __repr__(self) -> str:
        return (f"Dependency({sorted(map(str, self))}, all={self.all}, "
                f"success={self.success}, failure={self.failure})")

    def _against(self, completed: set, failed: set | None, counted: bool) -> set:
        """The finished requests that count (``counted``) or that rule it out (not)."""
        against: set = set()
        if self.success is counted:
            against |= set(completed)
        if failed is not None and self.failure is counted:
            against |= set(failed)
        return against

    def check(self, completed: Iterable, failed: Iterable | None = None) -> bool:
        """Whether the dependency is met, given the requests that ``completed``
        (succeeded) and ``failed``.

        >>> Dependency(["a", "b"]).check({"a", "b"}), Dependency(["a", "b"]).check({"a"})
        (True, False)
        """
        if not self:
            return True
        against = self._against(set(completed), None if failed is None else set(failed), True)
        return self.issubset(against) if self.all else not self.isdisjoint(against)

    def unreachable(self, completed: Iterable, failed: Iterable | None = None) -> bool:
        """Whether the dependency can no longer be met.

        >>> Dependency(["a", "b"]).unreachable(completed={"a"}, failed={"b"})
        True
        """
        if not self:
            return False
        against = self._against(set(completed), None if failed is None else set(failed),
                                False)
        return not self.isdisjoint(against) if self.all else self.issubset(against)

    def as_dict(self) -> dict:
        """This dependency as a plain dict (``Dependency(d)`` makes it again); requests
        given as AsyncResults stay AsyncResults.

        >>> Dependency(["a"]).as_dict()
        {'dependencies': ['a'], 'all': True, 'success': True, 'failure': False}
        """
        return {"dependencies": list(self), "all": self.all, "success": self.success,
                "failure": self.failure}


class dependent:  # noqa: N801 - ipyparallel's name
    """``f`` that runs only if ``df(*dargs, **dkwargs)`` does not return False; otherwise
    calling it raises :class:`~rayparallel.error.UnmetDependency` (with ``retries``, a
    load-balanced view then tries again, on another engine when one is free).

    >>> def on_linux():
    ...     import sys
    ...     return sys.platform == "linux"
    >>> dependent(lambda: "ran", on_linux)()
    'ran'
    >>> dependent(abs, lambda: False)(-1)
    Traceback (most recent call last):
    ...
    rayparallel.error.UnmetDependency: abs: its dependency <lambda>() returned False here
    """

    def __init__(self, _wrapped_f: Callable, _wrapped_df: Callable, *dargs: Any,
                 **dkwargs: Any):
        self.f, self.df, self.dargs, self.dkwargs = _wrapped_f, _wrapped_df, dargs, dkwargs
        self.__name__ = getattr(_wrapped_f, "__name__", type(_wrapped_f).__name__)

    def check_dependency(self) -> None:
        """Raise UnmetDependency if the dependency function returns False."""
        if self.df(*self.dargs, **self.dkwargs) is False:
            name = getattr(self.df, "__name__", type(self.df).__name__)
            raise error.UnmetDependency(
                f"{self.__name__}: its dependency {name}() returned False here")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.check_dependency()
        return self.f(*args, **kwargs)


class depend:  # noqa: N801 - ipyparallel's name
    """Decorator: ``@depend(df, *args, **kwargs)`` makes the function :class:`dependent`
    on ``df(*args, **kwargs)``.

    >>> def importable(name):
    ...     import importlib.util
    ...     return importlib.util.find_spec(name) is not None
    >>> @depend(importable, "numpy")
    ... def total(x):
    ...     import numpy
    ...     return int(numpy.sum(x))
    >>> lview.apply_sync(total, [1, 2])
    3
    """

    def __init__(self, _wrapped_f: Callable, *args: Any, **kwargs: Any):
        self.f, self.args, self.kwargs = _wrapped_f, args, kwargs

    def __call__(self, f: Callable) -> dependent:
        return dependent(f, self.f, *self.args, **self.kwargs)


def as_dependency(value: Any) -> Dependency | None:
    """A flag's value (an AsyncResult, a msg_id, a list of those, or a Dependency) as a
    Dependency with ipyparallel's defaults; None stays None.

    >>> as_dependency("12345")
    Dependency(['12345'], all=True, success=True, failure=False)
    """
    if value is None or isinstance(value, Dependency):
        return value
    if isinstance(value, (str, AsyncResult, list, tuple, set, dict)):
        return Dependency(value)
    raise TypeError(f"invalid dependency {value!r}: use an AsyncResult, a msg_id, a list "
                    "of those or a Dependency")


class Gate(FutureResults):
    """The parts of a request waiting for its dependencies: Futures that get the outcomes
    of the real calls once :meth:`open` submits them, or an error from :meth:`fail`.

    >>> gate = Gate(1)
    >>> gate.open(lambda live: (session.backend, [session.backend.submit(abs, (-4,), {})]))
    >>> gate.fetch(gate.parts, None)
    [Outcome(ok=True, value=4)]
    """

    ABORTED = "the request was aborted while it waited for its dependencies"

    def __init__(self, n: int):
        self.parts: list[Future] = [Future() for _ in range(n)]
        self._lock = threading.Lock()
        self._inner: ResultSource | None = None
        self._inner_parts: dict[int, Any] = {}
        self._opened = self._expired = False

    def open(self, start: Callable[[list[int]], tuple[ResultSource, list]]) -> None:
        """Submit the parts not aborted meanwhile: ``start(indices)`` returns the source
        and its pending calls for them."""
        with self._lock:
            if self._expired:
                return
            self._opened = True
        live = [i for i, f in enumerate(self.parts) if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            source, pending = start(live)
        except Exception as exc:  # noqa: BLE001 - e.g. the engines went away meanwhile
            self.fail(error.translate(exc))
            return
        with self._lock:
            self._inner = source
            self._inner_parts = dict(zip(live, pending))
        for i, p in zip(live, pending):
            source.when_done(p, lambda o, f=self.parts[i]: _settle(f, o))

    def expire_at(self, deadline: float, late: Callable[[], BaseException]) -> None:
        """Fail with ``late()`` at ``deadline`` (POSIX time) if still waiting then.

        >>> gate = Gate(1); gate.expire_at(0, lambda: TimeoutError("late"))
        >>> gate.fetch(gate.parts, None)
        [Outcome(ok=False, value=TimeoutError('late'))]
        """
        def expire() -> None:
            with self._lock:
                if self._opened:
                    return
                self._expired = True
            self.fail(late())

        timer = threading.Timer(max(0.0, deadline - time.time()), expire)
        timer.daemon = True
        timer.start()

    def fail(self, exc: BaseException) -> None:
        """End every part not ended yet with ``exc``."""
        for f in self.parts:
            _settle(f, Outcome(False, exc))

    # --- the ResultSource protocol

    def cancel(self, pending: Future, *, engine_call: bool = False) -> bool:
        with self._lock:
            inner = self._inner
            index = self.parts.index(pending)
            real = self._inner_parts.get(index)
        if real is None:
            return pending.cancel()  # still waiting for its dependencies
        if inner.cancel(real, engine_call=engine_call):
            _settle(pending, Outcome(False, error.TaskAborted(
                "the request was aborted before it started")))
            return True
        return False


def _settle(f: Future, outcome: Outcome) -> None:
    if not f.done():
        try:
            f.set_result(outcome)
        except concurrent.futures.InvalidStateError:
            pass  # settled by another thread meanwhile


def as_remote(exc: BaseException, fname: str) -> error.RemoteError:
    """``exc`` reported as ipyparallel's scheduler reports dependency errors: a
    RemoteError that is also an instance of ``exc``'s class."""
    return error.capture(exc, {"engine_id": None, "method": fname}).with_original_type()


def when_settled(session: Session, after: Dependency | None, follow: Dependency | None,
                 targets: list[int] | None, fname: str,
                 on_met: Callable[[list[int] | None], None],
                 on_impossible: Callable[[BaseException], None]) -> None:
    """Call ``on_met(engines)`` once ``after`` and ``follow`` are met (``engines``: where
    ``follow`` or ``targets`` say the request must run, None: anywhere), or
    ``on_impossible(error)`` once one of them cannot be."""
    deps = [d for d in (after, follow) if d]
    requests: dict[Any, AsyncResult] = {}
    for dep in deps:
        for item in dep:
            try:
                requests[item] = session.find(item)[0] if isinstance(item, str) else item
            except KeyError:
                on_impossible(as_remote(error.InvalidDependency(
                    f"{fname}: dependency {item!r} names no result this client knows"),
                    fname))
                return
    lock = threading.Lock()
    decided = False

    def settle(_: Any = None) -> None:
        nonlocal decided
        done = {item: ar for item, ar in requests.items() if ar.done()}
        completed = {item for item, ar in done.items() if ar.successful()}
        failed = set(done) - completed
        impossible = any(d.unreachable(completed, failed) for d in deps)
        met = not impossible and all(d.check(completed, failed) for d in deps)
        with lock:
            if decided or not (met or impossible):
                return
            decided = True
        if impossible:
            on_impossible(as_remote(error.ImpossibleDependency(
                f"{fname}: a request it depends on failed (or succeeded, where failure "
                "was required), so it cannot run"), fname))
            return
        engines = _placement(follow, completed | failed, requests, targets)
        if engines == []:
            on_impossible(as_remote(error.ImpossibleDependency(
                f"{fname}: no engine{' among the targets' if targets is not None else ''} "
                f"ran {'all' if follow.all else 'any'} of the requests it follows"), fname))
            return
        on_met(engines)

    if not requests:
        settle()
    for ar in set(requests.values()):
        ar.add_done_callback(settle)


def _placement(follow: Dependency | None, finished: set, requests: dict[Any, AsyncResult],
               targets: list[int] | None) -> list[int] | None:
    """The engines a request following ``follow`` may run on (None: anywhere in
    ``targets``, or anywhere at all); [] if none can."""
    places = []
    for item in follow or ():
        if item in finished:
            md = requests[item].metadata
            engines = {m.get("engine_id") for m in (md if isinstance(md, list) else [md]) if m}
            engines.discard(None)  # Ray tasks ran in no engine: nothing there to follow
            if engines:
                places.append(engines)
    if not places:
        return targets
    allowed = set.intersection(*places) if follow.all else set.union(*places)
    if targets is not None:
        allowed &= set(targets)
    return sorted(allowed)
