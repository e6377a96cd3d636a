"""rayparallel against raw Ray and ipyparallel: the same workloads, one table of ratios.

Each system runs in a process of its own, in one run: rayparallel, raw Ray (plain actors
and tasks: the floor rayparallel sits on) and ipyparallel (when it is installed:
``pip install -e '.[bench]'``; its cluster is started and stopped by the run). They start
one after the other, then take turns: each workload is timed on one system after the
other before the next workload. The table shows each workload's median time per system
and the ratios rayparallel / raw Ray and rayparallel / ipyparallel, with the project's
targets; a scaling table follows
(round trips and load-balanced throughput over 1, 2, 4, 8 engines, push time against array
size). Run from the repository root:

    python -m benchmarks [--quick] [--engines N] [--json PATH] [--plots DIR]

``--quick`` is a smoke run (small workloads, few repetitions). ``--json`` writes every
number to PATH, ``--plots`` draws PNG plots into DIR (needs matplotlib).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from benchmarks.common import Sizes, markdown_table, write_json
from benchmarks.systems import serve

SYSTEMS = ("rayparallel", "ray", "ipyparallel")
TITLES = {"rayparallel": "rayparallel", "ray": "raw Ray", "ipyparallel": "ipyparallel"}
#: workloads with a target for rayparallel / ipyparallel
IPP_TARGETS = {"apply_one": 0.4, "apply_all": 0.4, "execute_all": 0.4, "push": 0.15,
               "lb_default": 0.1}
#: rayparallel / raw Ray targets (issue 14); other workloads: RAW_TARGET
RAW_TARGETS = {"cold_start": 1.1, "apply_one": 1.1, "apply_all": 1.1, "execute_all": 1.3,
               "push": 1.1, "push_nocopy": 1.05, "scatter": 1.2, "scatter_nocopy": 1.2,
               "gather": 1.2}
RAW_TARGET = 1.15
COLD_STARTS = 3  # cold starts per system in a full run (one in --quick); the median counts


class Child:
    """A system in a process of its own (see :func:`benchmarks.systems.serve`)."""

    def __init__(self, system: str, sizes: Sizes):
        self.system = system
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, nothing inherited
        self.conn, theirs = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(system, sizes, theirs), daemon=True)
        print(f"{system}: starting", file=sys.stderr, flush=True)
        self.process.start()
        self.error: str | None = None
        self.cold_start_ms: float | None = None

    def wait_started(self) -> Child:
        answer = self._answer()
        if self.alive:
            self.cold_start_ms = answer["cold_start_ms"]
        return self

    @property
    def alive(self) -> bool:
        return self.error is None

    def _answer(self) -> Any:
        try:
            answer = self.conn.recv()
        except EOFError:
            answer = {"error": "the process died"}
        if isinstance(answer, dict) and "error" in answer:
            self.error = answer["error"]
            print(f"{self.system} failed:\n{self.error}", file=sys.stderr, flush=True)
            self.stop()
        return answer

    def ask(self, request: str, arg: Any = None) -> Any:
        self.conn.send((request, arg))
        return self._answer()

    def send_stop(self) -> None:
        """Ask the process to stop its system and end (without waiting for it)."""
        if self.process.is_alive() and not self.conn.closed:
            try:
                self.conn.send(("stop", None))
            except OSError:
                pass
            self.conn.close()

    def stop(self) -> None:
        self.send_stop()
        if self.process.is_alive():
            self.process.join(timeout=120)
            if self.process.is_alive():
                self.process.kill()


def collect(sizes: Sizes, systems: Sequence[str]) -> dict[str, Any]:
    """Every system's numbers: ``{system: session dict | "not installed" | "failed"}``.

    The systems start one after the other (cold starts never overlap), then stay up while
    the workloads are timed one at a time, each on every system in turn (the order rotating
    from one workload to the next), so that a change in the machine's load between one
    minute and the next hits all systems alike.
    """
    runnable = [s for s in systems
                if s != "ipyparallel" or importlib.util.find_spec("ipyparallel")]
    colds: dict[str, list[float]] = {s: [] for s in runnable}
    for _ in range(0 if sizes.quick else COLD_STARTS - 1):  # extra rounds of cold starts
        for system in runnable:
            child = Child(system, sizes).wait_started()
            if child.alive:
                colds[system].append(child.cold_start_ms)
            child.stop()
    if sizes.quick:  # a smoke run: start all at once (their cold starts overlap)
        children = [c.wait_started() for c in [Child(s, sizes) for s in runnable]]
    else:
        children = [Child(s, sizes).wait_started() for s in runnable]
    try:
        sessions = {c.system: {"system": c.system} for c in children}
        for phase in ("main", "push_sizes", "scaling"):
            if phase == "scaling":
                for c in children:
                    if c.alive:
                        c.ask("grow", max(sizes.scaling_engines))
            keys: list[str] = []
            for c in children:
                if c.alive:
                    keys = c.ask("plan", phase)
            for i, key in enumerate(keys):
                for c in children[i % len(children):] + children[:i % len(children)]:
                    if c.alive:
                        answer = c.ask("run", key)
                        if c.alive:
                            sessions[c.system].setdefault(phase, {})[key] = answer
    finally:
        for c in children:
            c.send_stop()
        for c in children:
            c.stop()
    results: dict[str, Any] = {s: "not installed" for s in systems if s not in runnable}
    for c in children:
        if not c.alive:
            results[c.system] = "failed"
            continue
        colds[c.system].append(c.cold_start_ms)
        results[c.system] = sessions[c.system] | {
            "cold_starts_ms": colds[c.system],
            "cold_start_ms": statistics.median(colds[c.system])}
    return {s: results[s] for s in systems}


def _ms(session: Any, section: str, key: str) -> float | None:
    if not isinstance(session, dict):
        return None
    if key == "cold_start":
        return session["cold_start_ms"]
    entry = session.get(section, {}).get(key)
    return None if entry is None else entry["median_ms"]


def _cell(session: Any, value: float | None) -> str:
    if isinstance(session, str):
        return session
    return "" if value is None else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _ratio(num: float | None, den: float | None, target: float | None) -> str:
    if num is None or den is None:
        return ""
    ratio = num / den
    shown = f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.3f}"
    return shown + ("" if target is None or ratio <= target else " ✗")


def main_table(results: dict[str, Any], engines: int) -> str:
    rp, raw, ipp = (results.get(s, "not run") for s in SYSTEMS)
    ref = rp if isinstance(rp, dict) else raw
    keys = [("cold_start", f"cold start to {engines} engines ready")]
    if isinstance(ref, dict):
        keys += [(k, v["label"]) for k, v in ref["main"].items()]
    rows = []
    for key, label in keys:
        t = [_ms(s, "main", key) for s in (rp, raw, ipp)]
        target, raw_target = IPP_TARGETS.get(key), RAW_TARGETS.get(key, RAW_TARGET)
        rows.append([label, *(_cell(s, v) for s, v in zip((rp, raw, ipp), t)),
                     _ratio(t[0], t[1], raw_target), _ratio(t[0], t[2], target),
                     f"≤ {raw_target}" + (f" / ≤ {target}" if target else "")])
    header = ["workload", "rayparallel (ms)", "raw Ray (ms)", "ipyparallel (ms)",
              "rayparallel / raw Ray", "rayparallel / ipyparallel", "targets"]
    return markdown_table(header, rows)


def scaling_table(results: dict[str, Any], sizes: Sizes) -> str:
    sessions = {s: r for s, r in results.items() if isinstance(r, dict)}
    rows = []
    for k in sizes.scaling_engines:
        rows.append([f"apply round trip, {k} engines (ms)",
                     *(_cell(r, _ms(r, "scaling", f"apply_{k}")) for r in sessions.values())])
    for k in sizes.scaling_engines:
        rows.append([f"LB map of {sizes.scaling_items:,} tiny items, {k} engines (items/s)",
                     *(_cell(r, _throughput(r, k, sizes)) for r in sessions.values())])
    for mb in sizes.push_sizes_mb:
        rows.append([f"push {mb:,} MB to {sizes.engines} engines (ms)",
                     *(_cell(r, _ms(r, "push_sizes", f"push_{mb}MB")) for r in sessions.values())])
    return markdown_table(["scaling", *(TITLES[s] for s in sessions)], rows)


def _throughput(session: dict, k: int, sizes: Sizes) -> float | None:
    ms = _ms(session, "scaling", f"lb_{k}")
    return None if ms is None else sizes.scaling_items / ms * 1e3


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small workloads, few repetitions (a smoke run of seconds)")
    parser.add_argument("--engines", type=int, default=os.cpu_count() or 2,
                        help="engines for the main workloads (default: one per CPU)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="which systems to run, comma-separated (default: all three)")
    parser.add_argument("--json", metavar="PATH", help="write every number to PATH")
    parser.add_argument("--plots", metavar="DIR", help="draw PNG plots into DIR")
    parser.add_argument("--from-json", metavar="PATH",
                        help="run nothing: print and draw the run saved in PATH")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or args.engines < 1:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}" if unknown
                     else "--engines must be at least 1")
    if args.from_json:  # print and draw a saved run again
        with open(args.from_json, encoding="utf-8") as fh:
            payload = json.load(fh)
    else:
        payload = run(Sizes.make(args.quick, args.engines), systems)
    print(report(payload))
    if args.json:
        write_json(args.json, payload)
    if args.plots:
        from benchmarks.plots import draw

        for path in draw(payload, args.plots):
            print(f"plot: {path}")
    return payload


def run(sizes: Sizes, systems: Sequence[str]) -> dict[str, Any]:
    """Run the systems; everything measured, with the machine, as a JSON-ready dict."""
    started = time.perf_counter()
    results = collect(sizes, systems)
    import ray

    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = (f"{os.cpu_count()} CPUs, {ram_gib:.0f} GiB RAM, {platform.system()} "
               f"{platform.machine()}, Python {platform.python_version()}, Ray {ray.__version__}")
    return {"quick": sizes.quick, "engines": sizes.engines, "machine": machine,
            "seconds": round(time.perf_counter() - started), "sizes": asdict(sizes),
            "results": results}


def report(payload: dict[str, Any]) -> str:
    """The tables of a run, as printed."""
    results, engines = payload["results"], payload["engines"]
    sizes = Sizes(**payload["sizes"])
    quick = " (--quick: a smoke run; the systems started at once)" if payload["quick"] else ""
    parts = [f"\n{engines} engines, medians{quick}; {payload['machine']}\n",
             main_table(results, engines)]
    naps = _ms(results.get("rayparallel"), "main", "lb_naps")
    if naps is not None:
        ideal = results["rayparallel"]["main"]["lb_naps"]["ideal_ms"]
        parts.append(f"\nimbalanced tasks: rayparallel took {naps / ideal:.2f}x the ideal "
                     f"({ideal:.0f} ms: the sum of the naps over the CPUs)")
    parts += ["", scaling_table(results, sizes), f"\n(whole run: {payload['seconds']} s)"]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
