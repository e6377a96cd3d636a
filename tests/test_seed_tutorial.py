"""Every example of the ipyparallel tutorial (seed 001), with its values, on 8 engines as
there."""

from __future__ import annotations

import datetime
import time

import numpy as np
import pytest

from rayparallel import AsyncMapResult, require


def add3(x, y, z):
    return x + y + z


def test_map_sync_all_alternate_and_single_engine(rc, dv):
    expected = [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert dv.map_sync(lambda x, y, z: x + y + z, range(10), range(10), range(10)) == expected
    assert rc[::2].map_sync(lambda x, y, z: x + y + z, range(10), range(10), range(10)) == expected
    assert rc[2].map_sync(lambda x, y, z: x + y + z, range(10), range(10), range(10)) == expected


def test_load_balanced_view_map_sync_of_rows(rc):
    lv = rc.load_balanced_view()
    rows = np.random.random((10, 100000))
    out = lv.map_sync(lambda x: sum(x), rows)
    assert out == [sum(x) for x in rows]  # the same values, in order
    assert len(out) == 10 and all(49000 < v < 51000 for v in out)


def test_apply_sync_positional_and_keyword(rc):
    assert rc[1:3].apply_sync(lambda x, y: x**2 + y**2, 3, 4) == [25, 25]
    assert rc[1:3].apply_sync(lambda x, y: x**2 + y**2, x=3, y=4) == [25, 25]


def test_map_async_repr_done_get(dv):
    res = dv.map_async(lambda x, y, z: x + y + z, range(10), range(10), range(10))
    assert res.get() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert isinstance(res, AsyncMapResult)
    assert repr(res) == "<AsyncMapResult: <lambda>:finished>"
    assert res.done() is True


def test_map_blocking_modes(dv):
    expected = [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert dv.map(add3, range(10), range(10), range(10)).get() == expected
    assert dv.map(add3, range(10), range(10), range(10), block=True) == expected
    dv.block = True
    try:
        assert dv.map(add3, range(10), range(10), range(10)) == expected
    finally:
        dv.block = False


def test_remote_decorator_runs_on_every_engine(dv):
    @dv.remote(block=True)
    def f1(n):
        import numpy as np
        return np.random.rand(n)

    out = f1(4)
    assert len(out) == 8 and all(a.shape == (4,) for a in out)


def test_parallel_decorator_examples(dv):
    @dv.parallel(block=True)
    def f2(x):
        return x

    @dv.parallel(block=True)
    def f3(x):
        return sum(x)

    @dv.parallel(block=True)
    def f4(x, y):
        return x + y

    assert f2(range(15)) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8),
                             range(8, 10), range(10, 12), range(12, 14), range(14, 15)]
    assert f3(range(15)) == [1, 5, 9, 13, 17, 21, 25, 14]
    out = f4(np.arange(10), np.arange(10))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, np.array([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]))


def test_mandelbrot_parallel_map_matches_serial(dv):
    def mandel1(x, y, max_iters=80):
        c = complex(x, y)
        z = 0.0j
        for i in range(max_iters):
            z = z * z + c
            if z.real * z.real + z.imag * z.imag >= 4:
                return i
        return max_iters

    mandel2 = dv.parallel(block=True)(mandel1)
    x = np.arange(-2, 1, 0.1)
    y = np.arange(-1, 1, 0.1)
    X, Y = np.meshgrid(x, y)
    im1 = np.reshape(list(map(mandel1, X.ravel(), Y.ravel())), (len(y), len(x)))
    im2 = np.reshape(mandel2.map(X.ravel(), Y.ravel()), (len(y), len(x)))
    np.testing.assert_array_equal(im1, im2)


def g1(x):
    time.sleep(0.01)
    return (datetime.datetime.now(), x)


def test_function_using_client_modules_and_sync_imports(dv, capsys):
    # Modules the function uses on the client travel with it.
    assert [x for _, x in dv.map_sync(g1, range(10))] == list(range(10))
    with dv.sync_imports():
        import time  # noqa: F401, I001 - the seed's order
        import datetime  # noqa: F401
    assert capsys.readouterr().out == (
        "importing time on engine(s)\nimporting datetime on engine(s)\n")
    assert dv.apply_sync(lambda: type(globals()["datetime"]).__name__) == ["module"] * 8


def test_require_imports_on_engines(dv):
    @require("scipy.stats")
    def g3(x):
        return scipy.stats.norm(0, 1).pdf(x)  # noqa: F821 - imported by require

    out = dv.map(g3, np.arange(-3, 4)).get()
    assert out == pytest.approx([0.0044318484119380075, 0.053990966513188063,
                                 0.24197072451914337, 0.3989422804014327,
                                 0.24197072451914337, 0.053990966513188063,
                                 0.0044318484119380075])


def test_push_globals_pull_and_dict_interface(dv):
    assert dv.push(dict(a=3, b=2)).get() == [None] * 8

    def f(x):
        global a, b
        return a * x + b

    assert dv.map_sync(f, range(5)) == [2, 5, 8, 11, 14]
    assert dv.pull(("a", "b")).get() == [[3, 2]] * 8
    dv["c"] = 5
    assert dv["a"] == [3] * 8
    assert dv["c"] == [5] * 8


def test_sync_imports_keeps_aliases_and_prints(dv, capsys):
    with dv.sync_imports():
        import numpy as np2  # noqa: F401
    assert capsys.readouterr().out == "importing numpy on engine(s)\n"
    assert dv.execute("np2.arange(3).sum()", silent=False, block=True)[0].data["text/plain"] == \
        "np.int64(3)"


def test_px_style_execute_counts_and_scatter_gather(dv):
    first = dv.execute("import numpy as np", silent=False, block=True)
    dv.execute("a = np.random.random(4)", silent=False, block=True)
    replies = dv.execute("a.sum()", silent=False, block=True)
    # execute counts only non-silent executions: the third is the first + 2
    assert [r.execution_count for r in replies] == [r.execution_count + 2 for r in first]
    assert repr(replies[0]).startswith(f"<ExecuteReply[{replies[0].execution_count}]: ")
    data = np.random.randint(0, 10, 10)
    dv.scatter("a", data, block=True)
    sizes = dv.apply_sync(lambda: len(a))  # noqa: F821 - engine name
    assert sizes == [2, 2, 1, 1, 1, 1, 1, 1]
    out = dv.execute("print(a)", silent=False, block=True)
    assert [r.stdout for r in out] == [f"{np.array(p)}\n" for p in
                                       np.array_split(data, [2, 4, 5, 6, 7, 8, 9])]
    gathered = dv.gather("a", block=True)
    np.testing.assert_array_equal(gathered, data)
    dv.scatter("xs", range(24), block=True)
    dv.execute("y = [x**2 for x in xs]", block=True)
    np.testing.assert_array_equal(np.array(dv.gather("y", block=True)),
                                  np.arange(24) ** 2)


def test_map_numba_style_rows(dv):
    rows = np.random.random((6, 4))
    assert dv.map(lambda x: float(np.sum(x)), rows).get() == pytest.approx(rows.sum(axis=1))
