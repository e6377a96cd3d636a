"""What every benchmark shares: the workload sizes, timing by medians, tables and JSON.

A workload is a zero-argument callable plus a repetition count; :func:`measure` times one or
more *sides* of it (rayparallel, raw Ray, ...) with their repetitions interleaved, alternating
which side goes first, so that noise on a shared machine hits every side alike, and reports
medians. The ratios in the tables are ratios of those medians.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

MB = 1_000_000


@dataclass(frozen=True)
class Sizes:
    """How big each workload is, and how often it repeats; ``quick`` is the smoke run."""

    quick: bool
    engines: int
    map_items: int          # DirectView map
    lb_small: int           # load-balanced map at chunksize 1 and at the default
    lb_large: int           # load-balanced map at chunksize 100
    naps: int               # imbalanced tasks of 0.05-0.15 s
    array_bytes: int        # push / pull / scatter / gather
    roundtrip_reps: int     # apply and execute round trips
    map_reps: int           # DirectView map, load-balanced maps of tiny items
    slow_reps: int          # maps of one task per item, the imbalanced tasks
    array_reps: int         # the big array moves
    scaling_engines: tuple[int, ...] = (1, 2, 4, 8)
    scaling_items: int = 1_000   # load-balanced throughput over k engines, chunksize 10
    push_sizes_mb: tuple[int, ...] = (1, 10, 100, 1000)
    #: seconds after which a workload stops repeating (at least 3 repetitions are kept),
    #: so that a slow system does not make the run take an hour
    budget_s: float = 30.0

    @classmethod
    def make(cls, quick: bool, engines: int) -> Sizes:
        if quick:
            return cls(True, engines, 200, 20, 200, 4, 1 * MB, 3, 2, 1, 2,
                       scaling_engines=(1, 2), scaling_items=20, push_sizes_mb=(1,),
                       budget_s=1.0)
        return cls(False, engines, 20_000, 2_000, 20_000, 40, 100 * MB, 200, 21, 5, 11)


@dataclass
class Timing:
    """The repetitions of one side of one workload, in milliseconds."""

    samples_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)


def measure(sides: dict[str, Callable[[], Any]], reps: int, warmup: int = 1,
            budget_s: float | None = None) -> dict[str, Timing]:
    """Median timings of each side over ``reps`` interleaved repetitions.

    With ``budget_s``, repetitions stop once that many seconds have passed (after at least
    three, or ``reps`` if fewer). Results are dropped as soon as they arrive.
    """
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    names = list(sides)
    timings = {name: Timing() for name in names}
    started = time.perf_counter()
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            sides[name]()
            timings[name].samples_ms.append((time.perf_counter() - t0) * 1e3)
        if budget_s is not None and rep >= 2 and time.perf_counter() - started > budget_s:
            break
    return timings


def blocks(length: int, parts: int) -> list[slice]:
    """Contiguous block partition, the first ``length % parts`` blocks one item longer."""
    base, extra = divmod(length, parts)
    edges = [0]
    for i in range(parts):
        edges.append(edges[-1] + base + (1 if i < extra else 0))
    return [slice(a, b) for a, b in pairwise(edges)]


def chunks(items: Sequence, size: int) -> list:
    return [items[i:i + size] for i in range(0, len(items), size)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column, l or r (default: l then r...)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join(rule)}|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | Path, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")


def compare(ours: Sequence[Any], raw: Sequence[Any], warmup: int = 1) -> list[dict[str, Any]]:
    """Time rayparallel's workloads against raw Ray's of the same keys, interleaved in one
    process; each row has the label, both medians, their ratio and the repetitions."""
    raw_by_key = {w.key: w for w in raw}
    rows = []
    for w in ours:
        other = raw_by_key[w.key]
        for side in (w, other):
            if side.check is not None:
                assert side.check(side.run()), f"{side.label}: wrong result"
        t = measure({"rayparallel": w.run, "raw": other.run}, w.reps, warmup)
        rp_ms, raw_ms = t["rayparallel"].median_ms, t["raw"].median_ms
        row = {"workload": w.label, "rayparallel_ms": rp_ms, "raw_ms": raw_ms,
               "ratio": rp_ms / raw_ms, "reps": w.reps}
        if w.ideal_s is not None:
            row |= {"ideal_ms": w.ideal_s * 1e3, "vs_ideal": rp_ms / (w.ideal_s * 1e3)}
        rows.append(row)
    return rows


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of :func:`compare` as a Markdown table (with the ideal, where known)."""
    header = ["workload", "rayparallel (ms)", "raw Ray (ms)", "ratio"]
    with_ideal = any("ideal_ms" in r for r in rows)
    header += ["ideal (ms)", "vs ideal"] * with_ideal
    lines = []
    for r in rows:
        line = [r["workload"], f"{r['rayparallel_ms']:.2f}", f"{r['raw_ms']:.2f}",
                f"{r['ratio']:.2f}"]
        if with_ideal:
            line += [f"{r['ideal_ms']:.0f}", f"{r['vs_ideal']:.2f}"] if "ideal_ms" in r \
                else ["", ""]
        lines.append(line)
    return markdown_table(header, lines)
