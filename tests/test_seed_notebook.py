"""The ipyparallel notebook (seed 000): its DirectView half on 4 engines, and its
LoadBalancedView half."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd


def mul(a, b):
    return a * b


def test_notebook_directview_cells(rc):
    c = rc
    dview = c[:4]
    dview.clear(block=True)
    assert dview.map(mul, [5, 6, 7, 8], [8, 9, 10, 11]).result() == [40, 54, 70, 88]
    assert dview.apply(mul, 5, 6).get() == [30, 30, 30, 30]

    dview.execute("def get_sum(pararray=None):\n    return sum(pararray)", block=True)
    scenarios = np.random.random([5000, 3])
    ar = dview.scatter("scenarios", scenarios)
    assert repr(ar) in ("<AsyncResult: scatter>", "<AsyncResult: scatter:finished>")
    ar.get()
    dview.execute("out = [get_sum(scen) for scen in scenarios]", block=True)
    out = dview.gather("out").get()
    df_out = pd.DataFrame(np.hstack([scenarios, np.atleast_2d(out).T]),
                          columns=["par1", "par2", "par3", "sum"])
    np.testing.assert_allclose(df_out["sum"], scenarios.sum(axis=1))
    assert len(df_out.head()) == 5


def get_sum(pararray=None):
    return sum(pararray)


def test_notebook_load_balanced_cells(rc, capsys):
    c = rc
    samples = 5000
    scenarios = np.random.random([samples, 3])
    lview = c.load_balanced_view()

    out = lview.map_async(get_sum, scenarios, chunksize=10)
    out.wait_interactive()
    print("the total calculation time is: %g" % out.wall_time)  # noqa: UP031 - the seed
    printed = capsys.readouterr().out.replace("\r", "\n").splitlines()
    assert re.fullmatch(r" 500/500 tasks finished after +\d+ s", printed[-3].rstrip())
    assert printed[-2] == "done"
    assert re.fullmatch(r"the total calculation time is: [0-9.e-]+", printed[-1])

    out = lview.map_async(get_sum, scenarios, chunksize=100)
    out.wait_interactive()
    print("the total calculation time is: %g" % out.wall_time)  # noqa: UP031 - the seed
    printed = capsys.readouterr().out.replace("\r", "\n").splitlines()
    assert re.fullmatch(r"  50/50 tasks finished after +\d+ s", printed[-3].rstrip())
    assert printed[-2] == "done"

    df_out = pd.DataFrame(np.hstack([scenarios, np.atleast_2d(out.result()).T]),
                          columns=["par1", "par2", "par3", "sum"])
    np.testing.assert_allclose(df_out["sum"], scenarios.sum(axis=1))
    assert list(df_out.head().columns) == ["par1", "par2", "par3", "sum"]
