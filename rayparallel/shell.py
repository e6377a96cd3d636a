"""The IPython shell inside an engine: output goes into replies, not to a terminal.

Code sent with ``execute`` (and ``%px``) runs in an :class:`EngineShell`, a real
``InteractiveShell``: magics, ``!commands``, ``Out[n]``, display capture all work. What IPython
adds costs about 0.3 ms a cell (transforming the input, checking for top-level ``await``,
parsing and compiling each statement apart); a silent cell of plain Python, which uses none of
it, takes a shorter road with the same outcome (see :meth:`EngineShell.run_cell`).

>>> shell = EngineShell(replace_main_module=False, config=shell_config())
>>> shell.run_cell("a = 6 * 7", silent=True).success, shell.user_ns["a"]
(True, 42)
"""

from __future__ import annotations

import builtins
import linecache
from contextlib import nullcontext
from types import CodeType
from typing import Any

from IPython.core.async_helpers import _pseudo_sync_runner, _should_be_async
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult, InteractiveShell
from traitlets.config import Config

from .reply import Reply

__all__ = ["EngineShell", "shell_config"]

#: plain cells whose compiled code an engine keeps (a loop sending the same cell compiles
#: it once); past this, the oldest go
PLAIN_CELLS_KEPT = 256


class _CapturingDisplayPublisher(DisplayPublisher):
    """display(...) on an engine appends to the current reply instead of printing."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        reply = self.shell.current_reply
        if reply is not None:
            reply.outputs.append({"data": data, "metadata": metadata or {},
                                  "transient": transient or {}})

    def clear_output(self, wait=False):
        reply = self.shell.current_reply
        if reply is not None:
            reply.outputs.clear()


class _CapturingDisplayHook(DisplayHook):
    """The value of a cell's last expression becomes the reply's ``execute_result``."""

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        reply = self.shell.current_reply
        if reply is not None:
            reply.execute_result = {"data": format_dict, "metadata": md_dict or {},
                                    "execution_count": self.prompt_count}

    def finish_displayhook(self):
        pass

    def flush(self):
        """Forget the cached outputs (``_1``..., ``_oh``, ``_``), as ``%reset`` and
        ``clear()`` ask. IPython then collects the garbage of the whole process: cheap in an
        engine's own process, but an engine hosted in another program (local mode) would
        sweep the host's whole heap once per engine (0.2 s each in a test suite), so those
        leave cycles to Python's own collector."""
        if self.shell.replace_main_module:
            return super().flush()
        ns, hidden = self.shell.user_ns, self.shell.user_ns_hidden
        for n in range(1, self.prompt_count + 1):
            ns.pop(f"_{n}", None)
            hidden.pop(f"_{n}", None)
        if ns.get("_oh") is not None:
            ns["_oh"].clear()
        self._ = self.__ = self.___ = ""
        if "_" not in builtins.__dict__:
            ns.update({"_": "", "__": "", "___": ""})

    def log_output(self, format_dict):
        # IPython logs every result into one dict shared by all shells of the process
        # and never emptied; engines keep no history (the reply carries the result).
        pass


def shell_config() -> Config:
    """The engines' shell settings: no history file, plain-text tracebacks with context."""
    cfg = Config()
    cfg.HistoryManager.enabled = False  # no sqlite file per engine
    cfg.InteractiveShell.colors = "nocolor"
    cfg.InteractiveShell.xmode = "Context"
    return cfg


class EngineShell(InteractiveShell):
    """An InteractiveShell whose output goes into replies rather than to a terminal."""

    current_reply: Reply | None = None
    last_traceback: list[str] | None = None

    def __init__(self, *, replace_main_module: bool = True, **kwargs: Any):
        self.replace_main_module = replace_main_module
        #: (cell, execution count, compiler flags) -> compiled code, or None: not plain
        self._plain_cells: dict[tuple, Any] = {}
        kwargs.setdefault("displayhook_class", _CapturingDisplayHook)
        kwargs.setdefault("display_pub_class", _CapturingDisplayPublisher)
        super().__init__(**kwargs)

    def init_sys_modules(self):
        # In its own process an engine is the __main__ (so pickles of interactive objects
        # resolve into its namespace); hosted in someone else's process it must not be.
        if self.replace_main_module:
            super().init_sys_modules()

    def _showtraceback(self, etype, evalue, stb):
        self.last_traceback = stb

    def atexit_operations(self):  # nothing to save: history is off
        pass

    def _tee(self, channel):
        # IPython keeps every cell's printed output for its history, under the cell's
        # execution count; silent cells all share one count, so an engine running prints
        # in a loop would grow without end. Engines send output in replies instead.
        return nullcontext()

    def enable_gui(self, gui=None):
        # No event loop to hook: figures go out as images (`%matplotlib inline`).
        if gui not in (None, "inline"):
            raise NotImplementedError(f"engines show figures inline only, not with {gui!r}")

    # ------------------------------------------------------------------ plain cells

    def run_cell(self, raw_cell, store_history=False, silent=False, shell_futures=True,
                 cell_id=None, cell_meta=None):
        """Run a cell as IPython does. A silent cell of plain Python (nothing for IPython's
        input transformers to change, no top-level ``await``, no AST transformers
        registered) runs its cached, compiled code directly, with the same events, traps,
        error display and result, at a fraction of the cost."""
        if silent and shell_futures and cell_id is None and cell_meta is None:
            result = self._run_plain(raw_cell)
            if result is not None:
                return result
        return super().run_cell(raw_cell, store_history, silent, shell_futures,
                                cell_id, cell_meta)

    def _run_plain(self, cell: str) -> ExecutionResult | None:
        """Run ``cell`` silently without IPython's input processing, or return None if
        the cell needs it (or if anything registered may change how cells run)."""
        if self.ast_transformers or self.input_transformers_post or self.trio_runner \
                or not cell or cell.isspace():
            return None
        key = (cell, self.execution_count, self.compile.flags)
        if key in self._plain_cells:
            code = self._plain_cells[key]
        else:
            code = self._plain_cells[key] = self._compile_plain(cell)
            if len(self._plain_cells) > PLAIN_CELLS_KEPT:
                self._forget_source(self._plain_cells.pop(next(iter(self._plain_cells))))
        if code is None:
            return None
        # One-line cells also go through the prefilter, which depends on the namespace
        # (automagic, autocall): if it would change the line, IPython's road runs it.
        line = cell.rstrip("\n")
        if "\n" not in line and self.prefilter_manager.prefilter_lines(line) != line:
            return None
        result = ExecutionResult(ExecutionInfo(cell, False, True, True, None, None,
                                               transformed_cell=cell))
        result.execution_count = self.execution_count
        self.events.trigger("pre_execute")
        try:
            with self.builtin_trap, self.display_trap:
                failed = _pseudo_sync_runner(self.run_code(code, result))
            self.last_execution_succeeded = not failed
            self.last_execution_result = result
            return result
        finally:
            self.events.trigger("post_execute")

    def _forget_source(self, code: Any) -> None:
        """Drop the source IPython keeps of a cell no longer kept here, if nothing it made
        can raise later (no functions, classes, lambdas or comprehensions: their
        tracebacks would show its lines). IPython keeps every cell's source for good; an
        engine running many distinct cells (``y = 1``, ``y = 2``...) grew by it."""
        if code is None or any(isinstance(c, CodeType) for c in code.co_consts):
            return
        linecache.cache.pop(code.co_filename, None)
        getattr(self.compile, "_filename_map", {}).pop(code.co_filename, None)

    def _compile_plain(self, cell: str) -> Any:
        """``cell`` compiled as the shell compiles it (its source kept for tracebacks), or
        None if IPython's input transformers would change it or it does not compile."""
        try:
            if self.input_transformer_manager.transform_cell(cell).rstrip("\n") != \
                    cell.rstrip("\n") or _should_be_async(cell):
                return None
            name = self.compile.cache(cell, self.execution_count, raw_code=cell)
            return self.compile(self.compile.ast_parse(cell, filename=name), name, "exec")
        except Exception:  # noqa: BLE001 - IPython's own road reports it
            return None
