"""The ``%px`` family: run code on engines from an IPython session.

``%px CODE`` / ``%%px`` run code on the view's engines and show what they printed
(``[stdout:0] ...``), displayed (``[output:1]`` + the figure) and returned (``Out[0:3]: ...``);
``%pxresult`` shows a non-blocking run's outputs; ``%pxconfig`` sets defaults; ``%autopx``
sends every following cell to the engines until it is called again.
"""

from __future__ import annotations

import ast
import re
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, no_var_expand

from .. import checks
from ..display import GROUPINGS, StreamPrinter, show_replies
from ..error import AlreadyDisplayedError, CompositeError, RayParallelError

if TYPE_CHECKING:
    from ..asyncresult import AsyncResult

__all__ = ["ParallelMagics", "parse_targets"]

NO_CLIENT = ("no rayparallel engines yet: create a client first, e.g. "
             "rc = rayparallel.Client(num_engines=4)")
NO_LAST_RESULT = "%pxresult recalls the last %px result, and there has been none yet"

#: seconds between looks for streamed output while a cell runs
POLL_INTERVAL = 0.1


def parse_targets(text: str) -> Any:
    """Engine targets from a magic's ``--targets``: ``all``, an int (``3``), a slice
    (``::2``, ``1:3``) or a list (``[1,3]``).

    >>> parse_targets("::2"), parse_targets("[1,3]"), parse_targets("0")
    (slice(None, None, 2), [1, 3], 0)
    """
    text = text.strip()
    if text == "all":
        return "all"
    if ":" in text and not text.startswith(("[", "(")):
        bounds = text.split(":")
        if len(bounds) <= 3 and all(re.fullmatch(r"\s*(-?\d+)?\s*", b) for b in bounds):
            return slice(*(int(b) if b.strip() else None for b in bounds))
    else:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError):  # deep nesting too
            value = None
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, list) and value and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
    raise UsageError(f"--targets {text!r}: expected 'all', an engine id (0), a slice (::2, "
                     "1:3) or a list of ids ([1,3])")


def _signal_arg(text: str) -> int | str | None:
    """``--signal-on-interrupt``'s value: a number, a name shown as ``SIGINT``, or None."""
    text = text.strip()
    if text.lower() in ("none", "off"):
        return None
    if re.fullmatch(r"-?[0-9]+", text):  # not str.isdigit: it takes "²", int() does not
        return int(text)
    try:
        return signal.Signals(checks.signal_number(text)).name
    except ValueError:
        raise UsageError(f"--signal-on-interrupt {text!r}: not a signal name or number") \
            from None


def _parse(magic: Any, line: str) -> Any:
    """``magic``'s options in ``line``; any mistake in them (an unclosed quote too) is a
    UsageError naming it."""
    try:
        return magic_arguments.parse_argstring(magic, line)
    except ValueError as exc:  # shlex: "No closing quotation"
        raise UsageError(f"{line!r}: {exc}") from None


def _exec_args(f):
    """Options about how to run: targets, blocking, streaming, verbosity, Ctrl-C."""
    for decorator in (
        magic_arguments.argument("-b", "--block", action="store_const", const=True,
                                 dest="block", help="wait for the engines (the default)"),
        magic_arguments.argument("-a", "--noblock", action="store_const", const=False,
                                 dest="block", help="return an AsyncResult at once"),
        magic_arguments.argument("--stream", action="store_const", const=True, dest="stream",
                                 help="show engines' output while the cell runs (default)"),
        magic_arguments.argument("--no-stream", action="store_const", const=False,
                                 dest="stream", help="show engines' output at the end"),
        magic_arguments.argument("-t", "--targets", "--target", dest="targets", nargs="+",
                                 help="engines: all, an id, a slice like ::2, a list like "
                                      "[1,3]"),
        magic_arguments.argument("--verbose", action="store_const", const=True,
                                 dest="verbose", help="say where each cell runs"),
        magic_arguments.argument("--no-verbose", action="store_const", const=False,
                                 dest="verbose", help="do not say where each cell runs"),
        magic_arguments.argument("--progress-after", dest="progress_after", type=float,
                                 help="seconds a blocking cell may run before a progress "
                                      "bar shows how many engines finished (default 2; "
                                      "0: at once; -1: never)"),
        magic_arguments.argument("--signal-on-interrupt", dest="signal_on_interrupt",
                                 help="signal sent to the engines on Ctrl-C (default SIGINT; "
                                      "'none' to only stop waiting)"),
    ):
        f = decorator(f)
    return f


def _output_args(f):
    """Options about showing the outputs."""
    for decorator in (
        magic_arguments.argument("-r", action="store_const", dest="groupby", const="order",
                                 help="collate outputs in order (--group-outputs=order)"),
        magic_arguments.argument("-e", action="store_const", dest="groupby", const="engine",
                                 help="group outputs by engine (--group-outputs=engine)"),
        magic_arguments.argument("--group-outputs", dest="groupby", choices=GROUPINGS,
                                 help="type: all stdout, then stderr, displays, results; "
                                      "engine: each engine's together; order: as type, with "
                                      "each engine's n-th display together"),
        magic_arguments.argument("-o", "--out", "--save-name", dest="save_name",
                                 help="store the AsyncResult under this name"),
    ):
        f = decorator(f)
    return f


#: options of a %px line that take a value (the code follows the options)
_VALUED = {"-t", "--targets", "--target", "--group-outputs", "-o", "--out", "--save-name",
           "--signal-on-interrupt", "--progress-after"}


def _split_line(line: str) -> tuple[str, str]:
    """``--targets 0 --noblock a = 1`` -> (``--targets 0 --noblock``, ``a = 1``)."""
    options: list[str] = []
    rest = line.lstrip()
    while rest.startswith("-"):
        token, _, after = rest.partition(" ")
        if token in _VALUED:
            value, _, after = after.lstrip().partition(" ")
            options += [token, value]
        else:
            options.append(token)
        rest = after.lstrip()
    return " ".join(options), rest


def _describe_targets(targets: Any) -> str:
    """Targets as ``--verbose`` names them: long lists shortened, as in ipyparallel.

    >>> _describe_targets(list(range(12)))
    '[0, 1, 2, 3, ..., 8, 9, 10, 11]'
    """
    if isinstance(targets, list) and len(targets) > 10:
        return f"{str(targets[:4])[:-1]}, ..., {str(targets[-4:])[1:]}"
    return str(targets)


def _progress_bar(total: int) -> Any:
    """tqdm's bar of engines finished: a widget in a notebook (with ipywidgets), else
    text on stdout, as ipyparallel shows it."""
    from IPython import get_ipython

    if getattr(get_ipython(), "kernel", None) is not None:
        try:
            from tqdm.notebook import tqdm_notebook

            return tqdm_notebook(total=total, desc="%px", unit="tasks")
        except ImportError:  # no ipywidgets: the text bar
            pass
    from tqdm import tqdm

    return tqdm(total=total, desc="%px", unit="tasks", file=sys.stdout)


def _show_chunks(output: Any, printer: StreamPrinter | None) -> Any:
    """Show the output chunks that arrived; returns the stream, or None once it failed."""
    if output is None or printer is None:
        return output
    try:
        chunks = output.poll()
    except Exception as exc:  # noqa: BLE001 - the replies have it all
        print(f"(output streaming stopped: {exc})", file=sys.stderr)
        output.close()
        return None
    for chunk in chunks:
        printer.feed(*chunk)
    return output


def _in_engine_order(ar: AsyncResult) -> list:
    """The finished replies that can be shown now: those of the engines, in order, up to
    the first still running (quick cells then show as ipyparallel lists them, by engine;
    what an engine prints while running streams at once all the same)."""
    finished = {r.engine_id: r for r in ar.finished_replies()}
    ready = []
    for eid in ar.engine_ids:
        if eid not in finished:
            break
        ready.append(finished[eid])
    return ready


class ParallelMagics(Magics):
    """``%px``, ``%%px``, ``%pxresult``, ``%pxconfig``, ``%autopx`` for one view."""

    registered = True

    def __init__(self, shell: Any, view: Any, suffix: str = ""):
        self._view = view
        self.suffix = suffix
        #: the last %px result, for %pxresult
        self.last_result: AsyncResult | None = None
        self.verbose = False
        self.stream_output = True
        self.signal_on_interrupt: int | str | None = "SIGINT"
        #: seconds before a blocking cell shows progress (ipyparallel's default)
        self.progress_after = 2.0
        self.default_groupby = "type"
        self._autopx = False
        px = "px" + suffix
        # Names depend on the suffix: bind them here rather than by class decorators.
        self.magics = {
            "line": {px: self.px, "pxresult" + suffix: self.pxresult,
                     "pxconfig" + suffix: self.pxconfig, "auto" + px: self.autopx},
            "cell": {px: self.cell_px},
        }
        if not suffix:
            self.magics["line"]["result"] = self.pxresult  # ipyparallel's legacy name
        super().__init__(shell=shell)

    @property
    def bound_view(self) -> Any:
        """The view these magics run code on, or None until a client exists."""
        return self._view

    @property
    def view(self) -> Any:
        """The DirectView the magics run code on."""
        if self._view is None:
            raise UsageError(NO_CLIENT)
        return self._view

    # ---------------------------------------------------------------- magics

    @magic_arguments.magic_arguments()
    @_exec_args
    def pxconfig(self, line: str = "") -> None:
        """Set defaults of the %px magics: targets, blocking, streaming, verbosity, progress
        and the signal Ctrl-C sends. A slice of targets picks among the client's engines
        now (``-t ::2`` sets the view's targets to ``[0, 2, ...]``), as in ipyparallel.

        >>> %pxconfig --targets ::2 --noblock --no-stream --progress-after 5
        """
        args = _parse(self.pxconfig, line)
        if args.targets:
            targets = parse_targets(" ".join(args.targets))
            try:  # refused now, not at the next %px
                ids, _ = self.view.session.resolve_targets(targets)
            except (IndexError, TypeError, ValueError, RayParallelError) as exc:
                raise UsageError(str(exc)) from None
            if not ids:
                raise UsageError(f"--targets {' '.join(args.targets)}: no engines match; "
                                 f"engines: {self.view.session.ids}")
            if isinstance(targets, slice):
                targets = ids
            self.view.targets = targets
        if args.block is not None:
            self.view.block = args.block
        if args.verbose is not None:
            self.verbose = args.verbose
        if args.stream is not None:
            self.stream_output = args.stream
        if args.signal_on_interrupt is not None:
            self.signal_on_interrupt = _signal_arg(args.signal_on_interrupt)
        if args.progress_after is not None:
            self.progress_after = args.progress_after

    @magic_arguments.magic_arguments()
    @_output_args
    def pxresult(self, line: str = "") -> None:
        """Show the outputs of the last %px run (e.g. a ``--noblock`` one), waiting for it.

        >>> %px --noblock import time; time.sleep(1); print("done")
        >>> %pxresult
        [stdout:0] done
        """
        args = _parse(self.pxresult, line)
        ar = self.last_result
        if ar is None:
            raise UsageError(NO_LAST_RESULT)
        if args.save_name:
            self.shell.user_ns[args.save_name] = ar
            return
        ar.wait()
        show_replies(ar.finished_replies(), args.groupby or self.default_groupby)
        ar.get()  # an engine's error fails the cell, after what the others printed

    @no_var_expand
    def px(self, line: str = "") -> Any:
        """Run one line of code on the engines; leading options as for ``%%px``.

        >>> %px a = 5
        >>> %px --targets ::2 print(a)
        [stdout:0] 5
        [stdout:2] 5
        """
        options, code = _split_line(line)
        if not options:
            return self.parallel_execute(code)
        return self._run_with_options(options, code)

    @magic_arguments.magic_arguments()
    @_exec_args
    @_output_args
    @magic_arguments.argument("--local", action="store_const", const=True, dest="local",
                              help="run the cell here too (after sending it)")
    def cell_px(self, line: str = "", cell: str | None = None) -> Any:
        """Run the cell on the engines.

        >>> %%px --targets [1,3]
        ... %matplotlib inline
        ... import matplotlib.pyplot as plt
        ... plt.plot([1, 2, 3])
        [output:1]
        <Figure ...>
        [output:3]
        <Figure ...>
        """
        return self._run_with_options(line, cell or "")

    def _run_with_options(self, line: str, code: str) -> Any:
        args = _parse(self.cell_px, line)
        return self.parallel_execute(
            code,
            targets=parse_targets(" ".join(args.targets)) if args.targets else None,
            block=args.block,
            groupby=args.groupby,
            save_name=args.save_name,
            stream=args.stream,
            verbose=args.verbose,
            local=bool(args.local),
            progress_after=args.progress_after,
            signal_on_interrupt=(_signal_arg(args.signal_on_interrupt)
                                 if args.signal_on_interrupt is not None else "default"),
        )

    # ---------------------------------------------------------------- running

    def parallel_execute(self, code: str, *, targets: Any = None, block: bool | None = None,
                         groupby: str | None = None, save_name: str | None = None,
                         stream: bool | None = None, verbose: bool | None = None,
                         local: bool = False, signal_on_interrupt: Any = "default",
                         progress_after: float | None = None) -> Any:
        """Send ``code`` to the engines; with blocking, wait and show the outputs (each
        engine's as it comes by default); otherwise return the AsyncResult.

        >>> magics = get_ipython().find_magic("px").__self__
        >>> magics.parallel_execute("x = 1", block=False)
        <AsyncResult: execute>
        """
        view = self.view
        block = view.block if block is None else block
        stream = self.stream_output if stream is None else stream
        groupby = groupby or self.default_groupby
        verbose = self.verbose if verbose is None else verbose
        progress_after = self.progress_after if progress_after is None else progress_after
        if signal_on_interrupt == "default":
            signal_on_interrupt = self.signal_on_interrupt
        shown_targets = view.targets if targets is None else targets
        try:
            ids, _ = view.session.resolve_targets(shown_targets)
            if not ids:
                raise view.session.no_engines()
        except (IndexError, TypeError, ValueError, RayParallelError) as exc:
            raise UsageError(str(exc)) from None
        if verbose:
            print(f"{'Parallel' if block else 'Async parallel'} execution on engine(s): "
                  f"{_describe_targets(shown_targets)}")
        output = view.session.open_output_stream() if block and stream else None
        try:
            ar = view.execute(code, silent=False, targets=targets, block=False, stream=output)
        except BaseException:
            if output is not None:
                output.close()
            raise
        self.last_result = ar
        if save_name:
            self.shell.user_ns[save_name] = ar
        if local:
            self.shell.run_cell(code)
        if not block:
            return ar
        self._wait_and_show(ar, output, StreamPrinter() if stream else None, groupby,
                            signal_on_interrupt, progress_after)
        return None

    def _wait_and_show(self, ar: AsyncResult, output: Any, printer: StreamPrinter | None,
                       groupby: str, signal_on_interrupt: Any, progress_after: float) -> None:
        """Wait for ``ar``; with a ``printer``, show output chunks and each engine's reply
        as they come, else everything at the end. An error fails the cell; one streaming
        showed already fails it as :class:`AlreadyDisplayedError` (``N errors``)."""
        bar = None
        start = time.monotonic()
        try:
            try:
                # On Ctrl-C, %px sends its own (configurable) signal below.
                while not ar.wait(POLL_INTERVAL, interrupt=False):
                    output = _show_chunks(output, printer)
                    if printer is not None:
                        for reply in _in_engine_order(ar):
                            printer.finish_reply(reply)
                    if bar is None and 0 <= progress_after <= time.monotonic() - start:
                        bar = _progress_bar(len(ar))
                    if bar is not None:
                        bar.update(ar.progress - bar.n)
                # Done: what no chunk brought yet is shown from the replies, engine by engine
                # (chunks still in flight would show in arrival order).
                if bar is not None:
                    bar.update(ar.progress - bar.n)
            except KeyboardInterrupt:
                self._send_interrupt(ar, signal_on_interrupt)
                if printer is None:  # what finished before Ctrl-C, as ipyparallel shows it
                    show_replies(ar.finished_replies(), groupby)
                return  # the engines' errors stay in the result (%pxresult shows them)
        finally:
            if bar is not None:
                bar.close()
            if output is not None:
                output.close()
        replies = ar.finished_replies()
        if printer is None:
            show_replies(replies, groupby)
        else:
            printer.finish(replies)
        try:
            ar.get()  # an engine's error fails the cell, showing each engine's traceback
        except CompositeError as exc:
            if printer is not None and printer.errors_shown == len(exc.errors):
                raise AlreadyDisplayedError(exc) from None
            raise

    def _send_interrupt(self, ar: AsyncResult, sig: Any) -> None:
        """Ctrl-C while a cell waits: send ``sig`` to the engines still running it (as
        ipyparallel does, the cell then ends; its result stays available to %pxresult)."""
        if sig is None:
            raise KeyboardInterrupt
        print(f"Received Keyboard Interrupt. Sending signal {sig} to engines...",
              file=sys.stderr)
        ar.done()  # collect what finished, so only engines still at work get the signal
        engines = ar.running_engines
        if not engines:
            return
        try:
            self.view.session.send_signal(sig, targets=engines)
        except (ValueError, RayParallelError) as exc:
            # e.g. local mode, whose in-process engines only ever get Ctrl-C itself
            print(f"signal {sig} not sent: {exc}", file=sys.stderr)

    # ---------------------------------------------------------------- %autopx

    def autopx(self, line: str = "") -> None:
        """Toggle sending every cell to the engines (as if each began with ``%%px``).

        >>> %autopx
        %autopx enabled
        >>> a = 10
        >>> print(a)
        [stdout:0] 10
        [stdout:1] 10
        >>> %autopx
        %autopx disabled
        """
        if self._autopx:
            self.disable_autopx()
        else:
            self.view  # noqa: B018 - fail now, not on the next cell, if there is no client
            self.shell.input_transformers_cleanup.append(self._to_px)
            self._autopx = True
            print("%autopx enabled")

    def disable_autopx(self, quiet: bool = False) -> None:
        """Stop sending cells to the engines."""
        if not self._autopx:
            return
        transformers = self.shell.input_transformers_cleanup
        if self._to_px in transformers:
            transformers.remove(self._to_px)
        self._autopx = False
        if not quiet:
            print("%autopx disabled")

    def _to_px(self, lines: list[str]) -> list[str]:
        """Input transformer of %autopx: the cell becomes a ``%%px`` call, except the
        ``%autopx`` that ends it (and empty cells)."""
        cell = "".join(lines)
        if not cell.strip() or re.match(rf"\s*%auto(px{re.escape(self.suffix)})\b", cell):
            return lines
        return [f"get_ipython().run_cell_magic({'px' + self.suffix!r}, '', {cell!r})\n"]
