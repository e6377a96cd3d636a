"""``rayparallel demo``: the seeds' DirectView and load-balanced workloads on a local Ray,
with timings."""

from __future__ import annotations

import time

import numpy as np


def demo(num_engines: int) -> None:
    import rayparallel

    t0 = time.perf_counter()
    rc = rayparallel.Client(num_engines=num_engines)
    print(f"{rc!r} ready in {time.perf_counter() - t0:.1f} s; ids {rc.ids}")
    dv = rc[:]

    def step(label: str, fn):
        t = time.perf_counter()
        value = fn()
        print(f"{label:<48} {(time.perf_counter() - t) * 1000:8.1f} ms  -> {value}")

    step("dv.map_sync(x+y+z over 3 x range(10))",
         lambda: dv.map_sync(lambda x, y, z: x + y + z, range(10), range(10), range(10)))
    step("rc[1:3].apply_sync(x**2 + y**2, 3, 4)",
         lambda: rc[1:3].apply_sync(lambda x, y: x**2 + y**2, 3, 4))
    step("dv.push(dict(a=3, b=2), block=True)", lambda: dv.push(dict(a=3, b=2), block=True))

    def f(x):
        return a * x + b  # noqa: F821 - a and b live on the engines

    step("dv.map_sync(a*x + b, range(5))", lambda: dv.map_sync(f, range(5)))
    step("dv.pull(('a', 'b'), block=True)", lambda: dv.pull(("a", "b"), block=True))
    step("scatter/execute/gather of squares of range(24)", lambda: (
        dv.scatter("xs", range(24), block=True),
        dv.execute("y = [x**2 for x in xs]", block=True),
        dv.gather("y", block=True))[-1])
    scenarios = np.random.random([5000, 3])
    step("scatter 5000 scenarios, sum each, gather", lambda: (
        dv.scatter("scenarios", scenarios, block=True),
        dv.execute("out = [sum(s) for s in scenarios]", block=True),
        np.allclose(dv.gather("out", block=True), scenarios.sum(axis=1)))[-1])

    @dv.parallel(block=True)
    def total(x):
        return sum(x)

    step("@dv.parallel sum over range(15)", lambda: total(range(15)))

    lview = rc.load_balanced_view()
    step("lview.map_sync(sum, 5000 scenarios, chunksize=10)", lambda: np.allclose(
        lview.map_sync(sum, scenarios, chunksize=10), scenarios.sum(axis=1)))
    step("lview.map_sync(sum, 10 rows of 100,000)", lambda: len(
        lview.map_sync(lambda x: sum(x), np.random.random((10, 100000)))))
    rc.shutdown(hub=True)
