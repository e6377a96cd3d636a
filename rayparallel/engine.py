"""An engine: one IPython shell and its namespace. Plain Python; it knows nothing of Ray.

The backend hosts it (a Ray actor, or an object in this process for local mode) and calls
its methods; each returns a :class:`~rayparallel.reply.Reply` with the value or the error,
what the code printed or displayed, and when it ran. User errors never escape a method:
they are returned in the reply.

>>> e = Engine(0)
>>> e.push({"a": 2}).error is None
True
>>> e.execute("a * 21", silent=False).execute_result["data"]["text/plain"]
'42'
"""

from __future__ import annotations

import _signal
import importlib
import io
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from types import FunctionType, ModuleType
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from . import error, serialize
from .reply import Reply, recording
from .shell import EngineShell, shell_config

__all__ = ["Engine"]

#: seconds between forwarded chunks of a streaming request's output
STREAM_INTERVAL = 0.1



class _Request:
    """The context every request runs in (see :meth:`Engine._request`). A class, not a
    generator: it runs for every request, and with many engines sharing a node's cores the
    interpreter's work per request is what a round trip waits for."""

    __slots__ = ("engine", "reply", "forwarder", "recording", "saved")

    def __init__(self, engine: Engine, method: str, stream: Callable | None):
        self.engine = engine
        self.reply = Reply(engine_id=engine.id, method=method, note=engine.pending_note,
                           engine_uuid=engine.uuid)
        engine.pending_note = ""
        self.forwarder = streams = None
        if stream is not None:
            self.forwarder = forwarder = _Forwarder(
                lambda seq, name, text: stream(engine.id, seq, name, text))
            streams = _TeeStream("stdout", forwarder), _TeeStream("stderr", forwarder)
        where = {"engine_id": engine.id, "engine_uuid": engine.uuid, "method": method}
        self.recording = recording(self.reply, where, streams=streams)

    def __enter__(self) -> Reply:
        engine = self.engine
        if engine.in_process:
            self.saved = InteractiveShell._instance, EngineShell._instance, sys.breakpointhook
            InteractiveShell._instance = EngineShell._instance = engine.shell
            sys.breakpointhook = _debug_on((sys.stdout, sys.stderr))
        engine.shell.current_reply = self.reply
        self.recording.__enter__()
        # see _accept_interrupts; _signal: signal.signal's enum conversions cost more than
        # the call, twice per request
        if engine._interruptible:
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        return self.reply

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        engine = self.engine
        try:
            if engine._interruptible:
                _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
            return self.recording.__exit__(kind, exc, tb)
        finally:
            if engine.in_process:
                InteractiveShell._instance, EngineShell._instance, sys.breakpointhook = \
                    self.saved
            engine.shell.current_reply = None
            if self.forwarder is not None:
                self.forwarder.close()

class _Forwarder:
    """Sends what a request writes to ``send(seq, name, text)`` while it runs.

    Writes are gathered and sent by a helper thread at most every ``STREAM_INTERVAL`` s,
    so a loop of prints costs a few sends a second, and text printed just before a long
    computation still goes out. ``seq`` numbers the chunks so the receiver can order them.
    """

    def __init__(self, send: Callable[[int, str, str], None]):
        self._send = send
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rayparallel-stream",
                                        daemon=True)
        self._thread.start()

    def add(self, name: str, text: str) -> None:
        with self._lock:
            self._pending.append((name, text))

    def _run(self) -> None:
        while not self._stop.wait(STREAM_INTERVAL):
            self.flush()

    def flush(self) -> None:
        # One flusher at a time (the helper thread, then close() after joining it), so
        # sending outside the lock keeps the order; writers only wait for the swap.
        with self._lock:
            pending, self._pending = self._pending, []
        chunks: list[list[str]] = []
        for name, text in pending:  # merge neighbours of the same stream
            if chunks and chunks[-1][0] == name:
                chunks[-1][1] += text
            else:
                chunks.append([name, text])
        for name, text in chunks:
            try:
                self._send(self._seq, name, text)
            except Exception:  # noqa: BLE001 - streaming is best effort; the reply has all
                pass
            self._seq += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


class _TeeStream(io.StringIO):
    """Keeps what is written (for the reply) and hands it to a forwarder too."""

    def __init__(self, name: str, forwarder: _Forwarder):
        super().__init__()
        self._name = name
        self._forwarder = forwarder

    def write(self, text: str) -> int:
        n = super().write(text)
        if text:
            self._forwarder.add(self._name, text)
        return n


def _debug_on(streams: tuple[Any, Any]) -> Callable[..., None]:
    """A ``breakpoint()`` for code run by an in-process engine: pdb talks to the host's
    terminal, not to the reply's captured output. ``PYTHONBREAKPOINT=0`` still disables it."""

    def hook(*args: Any, **kwargs: Any) -> None:
        if os.environ.get("PYTHONBREAKPOINT", None) == "0":
            return
        import pdb

        pdb.Pdb(stdout=streams[0]).set_trace(sys._getframe(1))

    return hook


def _may_be_read_only(sent: Any, copy: bool) -> bool:
    """Whether data sent with ``copy`` needs looking through for read-only arrays to copy:
    only what Ray deserialized (arrays from its object store) can hold them; an envelope
    the engine unpickles itself (see :func:`serialize.envelope`) is the engine's own, and
    looking costs a pass over every item."""
    return copy and not serialize.is_packed(sent)


class Engine:
    """One engine's namespace and the requests it serves.

    ``in_process=True`` hosts it inside another program (local mode): the shell then leaves
    the host's ``__main__`` module and IPython instance alone. ``as_ipyparallel=True``
    makes ``import ipyparallel`` give rayparallel in the engine's own process (engines of
    a client running under :mod:`rayparallel.ipyparallel`, so that code written for
    ipyparallel, ``from ipyparallel.datapub import publish_data``, works there too).
    """

    def __init__(self, engine_id: int, in_process: bool = False, as_ipyparallel: bool = False):
        self.id = engine_id
        #: names this engine's life (ipyparallel's ``engine_uuid``): a restarted engine,
        #: or another engine given the same id later, has another
        self.uuid = uuid.uuid4().hex
        if as_ipyparallel and not in_process:  # hosted: the host's own imports decide
            from . import ipyparallel as alias  # only engines that ask load it

            alias.install()
        module = ModuleType("__main__")
        self.shell = EngineShell(
            replace_main_module=not in_process,
            config=shell_config(),
            user_module=module,
        )
        self.in_process = in_process
        #: a message for the user, given with the next reply (e.g. "this engine restarted")
        self.pending_note = ""
        self._interruptible = False
        if not in_process:
            # Make this the process's IPython, so get_ipython()/display() on the engine
            # reach it even outside requests.
            InteractiveShell._instance = self.shell
            EngineShell._instance = self.shell
            # IPython's builtins (get_ipython, exit) in place for good: entered once here,
            # the trap every cell enters only counts (putting them in and taking them out
            # again cost each request microseconds). The display hook stays per cell:
            # whatever hosts the process may print values through sys.displayhook.
            self.shell.builtin_trap.__enter__()
            self._accept_interrupts()

    def _accept_interrupts(self) -> None:
        """In its own process, SIGINT interrupts the running request like Ctrl-C in a
        kernel: KeyboardInterrupt in the user's code, the engine and namespace stay.

        Hosts may start workers with SIGINT blocked (Ray does). The signal is ignored
        between requests, so a late one cannot hit the host's own loop, and raises
        KeyboardInterrupt during them (Python's own C handler: no extra frame in the
        traceback). Only the main thread receives signals: requests must run there (a
        plain synchronous actor).
        """
        self._interruptible = threading.current_thread() is threading.main_thread()
        if self._interruptible:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])

    @property
    def namespace(self) -> dict:
        return self.shell.user_ns

    # ---------------------------------------------------------------- request plumbing

    def skipped(self, method: str) -> Reply:
        """The reply to a request aborted before it started: it does not run.

        >>> Engine(0).skipped("apply").error.ename
        'TaskAborted'
        """
        where = {"engine_id": self.id, "engine_uuid": self.uuid, "method": method}
        message = f"the request was aborted before it started on engine {self.id}; it did not run"
        return Reply(engine_id=self.id, method=method, engine_uuid=self.uuid,
                     error=error.RemoteError("TaskAborted", message, "", where,
                                             ("rayparallel.error", "TaskAborted")))

    def _request(self, method: str, stream: Callable | None = None) -> _Request:
        """Run a request: capture its output and turn its exception into the reply's error.

        With ``stream``, output is also sent as it is written, as
        ``stream(engine_id, seq, name, text)`` calls (see :class:`_Forwarder`).
        Hosted in another process's interpreter (local mode), the engine's shell is made the
        process's IPython for the request, and the host's put back after.
        """
        return _Request(self, method, stream)

    def _function(self, fn: Any) -> tuple[Any, dict]:
        """The function to call (a Reference is looked up here) and the names to lend."""
        if isinstance(fn, serialize.Reference):
            return fn.resolve(self.namespace), {}
        return serialize.bind_to_namespace(fn, self.namespace)

    def _call(self, fn: Any, args: Sequence, kwargs: dict, copy: bool) -> Any:
        if copy and (args or kwargs):
            args, kwargs = serialize.writable(tuple(args)), serialize.writable(dict(kwargs))
        # after copying: a Reference's value is the engine's own object, not a copy
        args, kwargs = serialize.resolve_references(args, kwargs, self.namespace)
        fn, brought = self._function(fn)
        with serialize.lend_names(self.namespace, brought):
            return fn(*args, **kwargs)

    # ---------------------------------------------------------------- requests

    def apply(self, request: tuple[Callable, Sequence, dict], copy: bool = True) -> Reply:
        """Call ``fn(*args, **kwargs)`` in this engine's namespace, for
        ``request = (fn, args, kwargs)`` (one argument: one serialization, or one
        object-store reference shared by many engines). A :class:`~serialize.Reference`
        as ``fn`` or among the arguments is replaced by its value here.

        >>> Engine(0).apply((pow, (2, 10), {})).value
        1024
        """
        with self._request("apply") as reply:
            fn, args, kwargs = serialize.unpack(request)
            reply.value = self._call(fn, args, kwargs, _may_be_read_only(request, copy))
        return reply

    def map(self, fn: Callable, sequences: Sequence[Sequence], copy: bool = True) -> Reply:
        """``list(map(fn, *sequences))`` in this engine's namespace; ``fn`` and items that
        are a :class:`~serialize.Reference` are replaced by their value here.

        >>> Engine(0).map(abs, ([-1, 2],)).value
        [1, 2]
        """
        with self._request("map") as reply:
            fn = serialize.unpack(fn)
            seqs = serialize.unpack(sequences)
            if _may_be_read_only(sequences, copy):
                seqs = [serialize.writable(s) for s in seqs]
            if serialize.has_reference(seqs):  # items that are References
                seqs = list(serialize.resolve_references(seqs, {}, self.namespace)[0])
            fn, brought = self._function(fn)
            with serialize.lend_names(self.namespace, brought):
                reply.value = list(map(fn, *seqs))
        return reply

    def execute(self, code: str, silent: bool = True, stream: Callable | None = None) -> Reply:
        """Run ``code`` through IPython (magics work). Only non-silent runs count
        executions and produce an ``execute_result``. ``stream(engine_id, seq, name, text)``,
        if given, receives stdout/stderr while the code runs (the reply has it all too).

        >>> Engine(0).execute("print('hi')").stdout
        'hi\\n'
        """
        with self._request("execute", stream) as reply:
            self.shell.last_traceback = None
            result = self.shell.run_cell(code, store_history=not silent, silent=silent)
            reply.execution_count = result.execution_count
            exc = result.error_before_exec or result.error_in_exec
            if exc is not None:
                tb = "\n".join(self.shell.last_traceback or []) or str(exc)
                cls = type(exc)
                where = {"engine_id": self.id, "engine_uuid": self.uuid, "method": "execute"}
                reply.error = error.RemoteError(cls.__name__, str(exc), tb, where,
                                                (cls.__module__, cls.__qualname__))
            if silent:
                reply.execute_result = None
        return reply

    def push(self, namespace: dict, copy: bool = True) -> Reply:
        """Update the namespace with ``namespace``. A pushed interactive function gets this
        namespace as its globals, as in ipyparallel (it sees names defined here later);
        the client names it uses that are not defined here come along.

        >>> e = Engine(0); _ = e.push({"x": 1}); e.namespace["x"]
        1
        """
        with self._request("push") as reply:
            sent, namespace = namespace, serialize.unpack(namespace)
            if _may_be_read_only(sent, copy):
                namespace = serialize.writable(namespace)
            # "a.b" sets attribute b of the engine's a, as in ipyparallel
            dotted = {k: namespace.pop(k) for k in [k for k in namespace if "." in k]}
            brought: dict = {}
            for name, value in namespace.items():
                # functions, and our wrappers of one (looked up on the type: a pushed
                # object answering any attribute is not one)
                if isinstance(value, FunctionType) or hasattr(type(value), "_rayparallel_bind"):
                    namespace[name], needs = serialize.bind_to_namespace(value, self.namespace)
                    brought.update(needs)
            self.namespace.update({k: v for k, v in brought.items()
                                   if k not in self.namespace and k not in namespace})
            self.namespace.update(namespace)
            for name, value in dotted.items():
                owner, _, attr = name.rpartition(".")
                setattr(self._lookup(owner), attr, value)
        return reply

    def pull(self, names: str | Sequence[str]) -> Reply:
        """The value of one name, or a list of values for a list of names; a dotted name
        (``"a.b"``) is the attribute ``b`` of the engine's ``a``.

        >>> e = Engine(0); _ = e.push({"a": 3, "b": 2}); e.pull(["a", "b"]).value
        [3, 2]
        """
        with self._request("pull") as reply:
            if isinstance(names, str):
                reply.value = self._lookup(names)
            else:
                reply.value = [self._lookup(n) for n in names]
        return reply

    def _lookup(self, name: str) -> Any:
        first, *attributes = name.split(".")
        try:
            value = self.namespace[first]
        except KeyError:
            raise NameError(f"name {first!r} is not defined on engine {self.id}") from None
        for attr in attributes:
            value = getattr(value, attr)  # AttributeError names the object and attribute
        return value

    def clear(self) -> Reply:
        """Empty the namespace (the execution count goes on)."""
        with self._request("clear") as reply:
            self.shell.reset(new_session=False)
        return reply

    def import_names(self, modules: Sequence[str],
                     bindings: Sequence[tuple[str, str, str | None]]) -> Reply:
        """Import ``modules``, then bind each ``alias`` to a module (or to its attribute
        ``attr``) for each ``(alias, module, attr)``: the engine side of ``sync_imports``.

        >>> e = Engine(0); _ = e.import_names(["math"], [("m", "math", None)])
        >>> e.namespace["m"].pi > 3
        True
        """
        with self._request("sync_imports") as reply:
            for module in modules:
                importlib.import_module(module)
            for alias, module, attr in bindings:
                obj = importlib.import_module(module)
                self.namespace[alias] = getattr(obj, attr) if attr else obj
        return reply

    def info(self) -> dict:
        """Where this engine runs (id, pid, hostname) and how many names its namespace holds."""
        hidden = self.shell.user_ns_hidden
        names = sum(1 for k in self.namespace if not k.startswith("_") and k not in hidden)
        return {"engine_id": self.id, "engine_uuid": self.uuid, "pid": os.getpid(),
                "hostname": socket.gethostname(), "names": names}
