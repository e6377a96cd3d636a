"""What losing a node costs a load-balanced map: the extra time, and nothing lost.

    python -m benchmarks.bench_node_loss [--items 2000] [--item-ms 10] [--reps 2]

Starts a ``ray.cluster_utils.Cluster`` of its own (a head and two worker nodes of 2 CPUs
on this machine; run it where no other Ray is joined), then for each repetition maps
``--items`` items of ``--item-ms`` ms with ``retries=2`` over the cluster twice: once
undisturbed, once removing a worker node (its processes killed) when a fifth of the items
are done, after which a fresh node takes its place. Every result must arrive, right and in
order; the table gives both times and the difference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import markdown_table, write_json


def _item(x: int, ms: float) -> int:
    import time

    time.sleep(ms / 1000)
    return x * x


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--item-ms", type=float, default=10)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    args = parser.parse_args(argv)
    if args.items < 10 or args.item_ms <= 0 or args.reps < 1:
        parser.error("--items must be at least 10, --item-ms and --reps positive")
    import ray
    from ray.cluster_utils import Cluster

    import rayparallel

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    nodes = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    rc = rayparallel.Client(address=cluster.address, num_engines=1)
    lview = rc.load_balanced_view(retries=2, scheduling_strategy="SPREAD")
    n, ms = args.items, args.item_ms
    wanted = [x * x for x in range(n)]
    runs: list[dict[str, float]] = []
    try:
        for _ in range(args.reps):
            t0 = time.perf_counter()
            calm = lview.map_async(_item, range(n), [ms] * n).get(300)
            calm_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            ar = lview.map_async(_item, range(n), [ms] * n)
            while ar.progress < n // 5:
                time.sleep(0.01)
            cluster.remove_node(nodes.pop(), allow_graceful=False)
            lossy = ar.get(300)
            lossy_s = time.perf_counter() - t0
            if calm != wanted or lossy != wanted:
                raise SystemExit("a result was lost, wrong or out of order")
            runs.append({"undisturbed_s": calm_s, "node_lost_s": lossy_s})
            nodes.append(cluster.add_node(num_cpus=2))
            cluster.wait_for_nodes()
    finally:
        rc.shutdown()
        ray.shutdown()
        cluster.shutdown()
    calm_m = statistics.median(r["undisturbed_s"] for r in runs)
    lossy_m = statistics.median(r["node_lost_s"] for r in runs)
    figures = {"items": n, "item_ms": ms, "runs": runs, "undisturbed_s": calm_m,
               "node_lost_s": lossy_m, "extra_s": lossy_m - calm_m}
    print(f"LB map of {n} items of {ms:g} ms, retries=2, 3 nodes of 2 CPUs; medians of "
          f"{args.reps}; every result right, once, in order\n")
    print(markdown_table(["undisturbed (s)", "a worker node lost at 20% (s)", "extra (s)"],
                         [[f"{calm_m:.2f}", f"{lossy_m:.2f}", f"{lossy_m - calm_m:+.2f}"]]))
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
