"""The DirectView half of the ipyparallel notebook (seed 000), on 4 engines."""

from __future__ import annotations

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
