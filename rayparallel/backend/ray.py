"""Engines as Ray actors, data through Ray's object store."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

from ..engine import Engine
from . import Backend, Outcome

__all__ = ["RayBackend", "RayEngine", "ensure_ray"]

#: options of Client(...) that are per-engine Ray actor options
ACTOR_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env",
                 "scheduling_strategy", "max_restarts", "name", "namespace", "lifetime")
#: task options passed to Ray under the same name
TASK_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env",
                "scheduling_strategy")


class RayEngine(Engine):
    """An Engine that also knows which Ray node it is on."""

    def info(self) -> dict:
        ctx = ray.get_runtime_context()
        return {**super().info(), "node_id": ctx.get_node_id(),
                "node_ip": ray.util.get_node_ip_address()}


_RemoteEngine = ray.remote(RayEngine)


def ensure_ray(address: str | None = None, **init_options: Any) -> bool:
    """Connect to Ray (or start a quiet local instance). True if this call started it."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "logging_level": logging.ERROR,
               "log_to_driver": False, **init_options}
    # Ray announces token authentication through its logger at WARNING; we keep auth on
    # and the notebook quiet.
    logging.getLogger("ray").setLevel(logging.ERROR)
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), **options)
    return True


def _task_options(options: dict) -> dict:
    """Ray's names for rayparallel's task options (see Backend.submit)."""
    opts = {k: v for k, v in options.items() if k in TASK_OPTIONS and v is not None}
    retries = options.get("retries")
    if retries:
        # Tasks whose worker died. Not retry_exceptions: Ray would print each retried
        # exception's traceback in the notebook; tasks retry failed calls themselves.
        opts["max_retries"] = retries
    return opts


def _outcome_of(ref: Any) -> Outcome:
    try:
        return Outcome(True, ray.get(ref))
    except Exception as exc:  # noqa: BLE001 - reported, translated by error.translate
        return Outcome(False, exc)


class RayBackend(Backend):
    """Engines are Ray actors; ``share`` is ``ray.put``; calls are actor method calls and
    pending handles are ObjectRefs."""

    name = "ray"

    def __init__(self, address: str | None = None, init_options: dict | None = None):
        self.started_ray = ensure_ray(address, **(init_options or {}))
        self._tasks: dict[Callable, Any] = {}  # fn -> ray.remote(fn), made once each
        self._slots, self._slots_checked = 1, -math.inf

    def start_engines(self, ids: list[int], options: dict) -> list[Any]:
        opts = {k: v for k, v in options.items() if k in ACTOR_OPTIONS and v is not None}
        opts.setdefault("scheduling_strategy", "SPREAD")
        return [_RemoteEngine.options(**opts).remote(i) for i in ids]

    def call(self, engine: Any, method: str, *args: Any) -> Any:
        return getattr(engine, method).remote(*args)

    def submit(self, fn: Callable, args: tuple, options: dict) -> Any:
        return self.submit_many(fn, [args], options)[0]

    def submit_many(self, fn: Callable, args_list: Sequence[tuple], options: dict) -> list[Any]:
        task = self._tasks.get(fn)
        if task is None:
            task = self._tasks[fn] = ray.remote(fn)
        opts = _task_options(options)
        if opts:  # .options() builds a new wrapper: once per batch, not per task
            task = task.options(**opts)
        submitted: list[Any] = []
        try:
            for args in args_list:
                submitted.append(task.remote(*args))
        except BaseException:
            for ref in submitted:  # all or nothing: a bad item must not leave half a map
                self.cancel(ref)
            raise
        return submitted

    def task_slots(self) -> int:
        # Asking the cluster costs a round trip to its control store; the answer only
        # changes when nodes come or go, so it is reused for a few seconds.
        now = time.monotonic()
        if now - self._slots_checked > 5:
            self._slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self._slots_checked = now
        return self._slots

    def fetch(self, pending: Sequence[Any], timeout: float | None) -> list[Outcome | None]:
        refs = list(pending)
        if timeout is None:
            ready = set(refs)
        else:
            ready_list, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout,
                                     fetch_local=True)
            ready = set(ready_list)
        if len(ready) == len(refs):
            try:  # one round trip for the common case where nothing failed
                return [Outcome(True, v) for v in ray.get(refs)]
            except Exception:  # noqa: BLE001 - fall back to one outcome per ref
                pass
        return [_outcome_of(r) if r in ready else None for r in refs]

    def when_done(self, pending: Any, callback: Callable[[Outcome], None]) -> None:
        def done(future):
            exc = future.exception()
            callback(Outcome(True, future.result()) if exc is None else Outcome(False, exc))

        pending.future().add_done_callback(done)

    def share(self, obj: Any) -> Any:
        return ray.put(obj)

    def kill(self, engine: Any) -> None:
        try:
            ray.kill(engine, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def cancel(self, pending: Any) -> bool:
        try:
            ray.cancel(pending)
        except Exception:  # noqa: BLE001 - finished, or not cancellable
            return False
        return True

    def describe(self) -> dict:
        if not ray.is_initialized():
            return {"address": None, "nodes": 0}
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {"address": ray.get_runtime_context().gcs_address, "nodes": len(nodes),
                "resources": ray.cluster_resources()}

    def shutdown(self) -> None:
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
