"""DirectView overhead: rayparallel against the same work on raw Ray actors, in one process.

Each workload of :func:`benchmarks.workloads.directview_workloads` runs through a
rayparallel DirectView on 4 engines and through 4 plain Ray actors called directly, in
one process that shares one ``ray.init``. Unlike ``python -m benchmarks`` (one process per
system), the repetitions of the two sides are interleaved here, alternating which goes
first, so machine noise hits both alike: the sharpest rayparallel / raw Ray ratio, for
chasing an overhead. Run from the repository root:

    python -m benchmarks.bench_directview [--quick] [--json PATH]

``--quick`` is a smoke run of a few seconds (small workloads, few repetitions).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import ray

import rayparallel
from benchmarks.common import Sizes, compare, comparison_table, write_json
from benchmarks.workloads import (
    directview_workloads,
    raw_directview_workloads,
    ship_by_value,
    start_raw_actors,
)

N_ENGINES = 4


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    sizes = Sizes.make(args.quick, N_ENGINES)
    ship_by_value()
    rc = rayparallel.Client(num_engines=N_ENGINES)  # starts Ray unless it is running
    actors = start_raw_actors(N_ENGINES)
    try:
        rows = compare(directview_workloads(rc, sizes), raw_directview_workloads(actors, sizes),
                       warmup=1 if args.quick else 2)
    finally:
        for a in actors:
            ray.kill(a)
        rc.shutdown(hub=True)
    print(f"{N_ENGINES} engines vs {N_ENGINES} raw actors, Ray {ray.__version__}, medians of "
          f"interleaved repetitions{' (--quick)' if args.quick else ''}\n")
    print(comparison_table(rows))
    if args.json:
        write_json(args.json, {"quick": args.quick, "engines": N_ENGINES,
                               "ray": ray.__version__, "results": rows})
    return rows


if __name__ == "__main__":
    main()
