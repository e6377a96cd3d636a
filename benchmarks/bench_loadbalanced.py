"""LoadBalancedView overhead: rayparallel against the same work as raw Ray tasks, in one
process.

Each workload of :func:`benchmarks.workloads.loadbalanced_workloads` runs through
``rc.load_balanced_view().map_sync`` and through plain ``@ray.remote`` tasks (one per item
or per chunk, the same chunks rayparallel cuts), in one process sharing one ``ray.init``,
with the repetitions of the two sides interleaved (see ``bench_directview``). The
imbalanced workload is also compared with the ideal: the sum of the sleeps over the CPUs.
Run from the repository root:

    python -m benchmarks.bench_loadbalanced [--quick] [--json PATH]

``--quick`` is a smoke run of a few seconds (small workloads, few repetitions).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import ray

import rayparallel
from benchmarks.common import Sizes, compare, comparison_table, write_json
from benchmarks.workloads import loadbalanced_workloads, raw_loadbalanced_workloads, ship_by_value


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    ship_by_value()
    rc = rayparallel.Client(num_engines=0)  # starts Ray unless it is running; tasks only
    try:
        lview = rc.load_balanced_view()
        cpus = len(lview)
        sizes = Sizes.make(args.quick, cpus)
        rows = compare(loadbalanced_workloads(lview, sizes),
                       raw_loadbalanced_workloads(sizes, cpus))
    finally:
        rc.shutdown(hub=True)
    print(f"LoadBalancedView vs raw Ray tasks on {cpus} CPUs, Ray {ray.__version__}, medians "
          f"of interleaved repetitions{' (--quick)' if args.quick else ''}\n")
    print(comparison_table(rows))
    if args.json:
        write_json(args.json, {"quick": args.quick, "cpus": cpus, "ray": ray.__version__,
                               "results": rows})
    return rows


if __name__ == "__main__":
    main()
