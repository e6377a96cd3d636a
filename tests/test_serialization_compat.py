"""How functions and arguments travel, as ipyparallel users expect: functions by value
whatever the data serializer, ``Reference`` arguments, the module-level ``remote`` and
``parallel`` decorators, map over iterators and sequences of unequal length, and keyword
arguments of any name (``f`` too) reaching the function."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest

import rayparallel
from rayparallel import Reference, RemoteError

#: a global of this (client-side) module that the engines do not have
CLIENT_ONLY = "client"


def reads_client_global() -> str:
    return CLIENT_ONLY


def make_adder(n: int):
    def add(x):
        return x + n

    return add


@pytest.fixture(params=["pickle", "dill"])
def data_serializer(rc, request):
    rc.use_pickle() if request.param == "pickle" else rc.use_dill()
    yield request.param
    rc.use_cloudpickle()


@pytest.fixture
def lview(rc):
    return rc.load_balanced_view()


# ---------------------------------------------------------------------------------------
# functions travel by value whatever the data serializer


def test_closures_and_lambdas_run_under_pickle_and_dill(dv, data_serializer):
    add3 = make_adder(3)
    assert dv.apply_sync(add3, 1) == [4] * len(dv)
    assert dv.apply_sync(lambda x, y=2: x * y, 5) == [10] * len(dv)
    assert dv.map_sync(add3, range(5)) == [3, 4, 5, 6, 7]
    assert dv.parallel(block=True)(lambda xs: [x * 2 for x in xs])(range(4)) == [0, 2, 4, 6]
    assert dv.remote(block=True)(add3)(0) == [3] * len(dv)


def test_functions_nested_in_arguments_and_wrappers_travel_too(dv, data_serializer):
    add3 = make_adder(3)
    assert dv.apply_sync(lambda fs, x: [f(x) for f in fs], [add3, make_adder(1)], 1) == \
        [[4, 2]] * len(dv)
    assert dv.apply_sync(functools.partial(add3, 10)) == [13] * len(dv)
    needs_math = rayparallel.require("math")(lambda: round(math.pi, 2))  # noqa: F821
    assert dv.apply_sync(needs_math) == [3.14] * len(dv)


def test_load_balanced_closures_under_pickle_and_dill(rc, lview, data_serializer):
    add3 = make_adder(3)
    assert lview.apply_sync(add3, 1) == 4
    assert lview.map_sync(add3, range(4)) == [3, 4, 5, 6]
    assert list(lview.imap(add3, range(3))) == [3, 4, 5]
    on_engines = rc.load_balanced_view(targets=[0, 1])
    assert on_engines.map_sync(add3, range(4)) == [3, 4, 5, 6]
    assert on_engines.apply_sync(lambda: add3(0)) == 3


def test_under_pickle_functions_see_only_the_engine_namespace(dv, data_serializer):
    # as in ipyparallel: with pickle or dill nothing of the client's globals goes along
    with pytest.raises(RemoteError, match="NameError: name 'CLIENT_ONLY' is not defined"):
        dv.apply_sync(reads_client_global)
    dv.push({"CLIENT_ONLY": "engine"}, block=True)
    assert dv.apply_sync(reads_client_global) == ["engine"] * len(dv)


def test_under_cloudpickle_the_client_globals_are_lent(dv):
    assert dv.apply_sync(reads_client_global) == ["client"] * len(dv)


def test_data_still_goes_by_the_chosen_pickler(rc, data_serializer):
    if data_serializer == "dill":
        pytest.skip("dill pickles this class")

    class Local:
        pass

    with pytest.raises(rayparallel.error.SerializationError,
                       match="cannot be pickled with pickle.*Nothing was sent"):
        rc[0].apply_sync(lambda x: x, Local())


# ---------------------------------------------------------------------------------------
# Reference


def test_reference_arguments_are_each_engines_value(dv):
    dv.scatter("rank", list(range(len(dv))), flatten=True, block=True)
    ranks = list(range(len(dv)))
    assert dv.apply_sync(lambda r: r * 2, Reference("rank")) == [r * 2 for r in ranks]
    assert dv.apply_sync(lambda *, r: r + 1, r=Reference("rank")) == [r + 1 for r in ranks]
    assert dv.apply_sync(lambda pair: pair, [Reference("rank"), 9]) == [[r, 9] for r in ranks]
    assert dv.apply_sync(lambda d: d["r"], {"r": Reference("rank")}) == ranks


def test_reference_is_an_expression_and_can_be_the_function(dv):
    dv.execute("g = [5, 6]\ntimes = lambda x, y: x * y", block=True)
    assert dv.apply_sync(lambda x: x, Reference("g[1]")) == [6] * len(dv)
    assert dv.apply_sync(Reference("times"), 3, 4) == [12] * len(dv)
    assert dv.map_sync(Reference("times"), [1, 2, 3], [4, 5, 6]) == [4, 10, 18]


def test_map_items_may_be_references(dv):
    dv.scatter("rank", list(range(len(dv))), flatten=True, block=True)
    assert dv.map_sync(lambda x: x * 2, [Reference("rank")] * len(dv)) == \
        [r * 2 for r in range(len(dv))]


def test_reference_to_a_missing_name_is_a_name_error_naming_it(rc):
    with pytest.raises(RemoteError, match=r"NameError: name 'elvis_has_left' is not "
                                          r"defined \(for <Reference: 'elvis_has_left'>\)"):
        rc[0].apply_sync(lambda x: x, Reference("elvis_has_left"))


def test_reference_resolves_on_engines_of_a_targeted_load_balanced_view(rc, dv):
    dv.push({"a": 7}, block=True)
    assert rc.load_balanced_view(targets=[0]).apply_sync(lambda x: x, Reference("a")) == 7


def test_reference_in_a_load_balanced_task_is_a_clear_error(lview):
    with pytest.raises(TypeError, match="load-balanced tasks run in Ray worker processes"):
        lview.apply_async(lambda x: x, Reference("a"))
    with pytest.raises(TypeError, match="load_balanced_view\\(targets=...\\)"):
        lview.map_async(Reference("f"), [1])


def test_reference_needs_a_name():
    with pytest.raises(TypeError, match="Reference needs the name of a variable on the "
                                        "engines, not int"):
        Reference(3)
    assert repr(Reference("a")) == "<Reference: 'a'>"


# ---------------------------------------------------------------------------------------
# remote and parallel decorators


def test_module_level_remote(rc):
    @rayparallel.remote(rc[-1], block=True)
    def times(x, y=5):
        """multiply x * y"""
        return x * y

    assert times.__name__ == "times"
    assert times.__doc__ == "RemoteFunction wrapping:\nmultiply x * y"
    assert str(inspect.signature(times)) == "(x, y=5)"
    assert (times(5), times(2, 3), times(x=5, y=2)) == (25, 6, 10)


def test_module_level_remote_flags_and_nonblocking(rc):
    twice = rayparallel.remote(rc[:], block=False, targets=[0, 1])(lambda x: 2 * x)
    ar = twice(4)
    assert isinstance(ar, rayparallel.AsyncResult)
    assert ar.get(timeout=60) == [8, 8]
    with pytest.raises(KeyError, match="invalid flag 'nope'"):
        rayparallel.remote(rc[:], nope=1)(abs)
    with pytest.raises(TypeError, match="a remote function needs a callable, not int"):
        rayparallel.remote(rc[:])(3)


def test_module_level_parallel(rc):
    @rayparallel.parallel(rc[:2], block=True)
    def double(xs):
        """double them"""
        return [2 * x for x in xs]

    assert double.__name__ == "double"
    assert double.__doc__ == "ParallelFunction wrapping:\ndouble them"
    assert double([1, 2, 3, 4]) == [2, 4, 6, 8]
    with pytest.raises(ValueError, match=r"equal length, but have \[2, 1\]"):
        rayparallel.parallel(rc[:2], block=True)(lambda x, y: x)([1, 2], [1])


def test_parallel_on_a_load_balanced_view_maps(lview):
    foo = rayparallel.parallel(lview, block=True)(lambda x, y=5: x * y)
    assert foo.map([1, 2, 3]) == [5, 10, 15]
    assert foo.map([1, 2, 3], [1, 2, 3]) == [1, 4, 9]
    with pytest.raises(TypeError, match="needs a DirectView.*map\\(...\\)"):
        foo([1, 2])


# ---------------------------------------------------------------------------------------
# map semantics


def test_direct_map_takes_iterators_and_generators(dv):
    assert dv.map_sync(lambda x: x, iter(range(101))) == list(range(101))
    assert dv.map_sync(lambda x: -x, (i for i in range(5))) == [0, -1, -2, -3, -4]
    assert dv.map_sync(lambda x: x, []) == []


def test_load_balanced_map_takes_iterators_and_generators(lview):
    assert lview.map_sync(lambda x: x * x, iter(range(16))) == [x * x for x in range(16)]
    assert lview.map_async(abs, (i for i in range(-3, 0))).get(timeout=60) == [3, 2, 1]


@pytest.mark.parametrize("first, second", [(range(10), range(4)), (range(4), range(10))])
def test_map_of_unequal_lengths_stops_at_the_shortest(dv, lview, first, second):
    expected = list(map(lambda x, y: x * y, first, second))
    assert len(dv.map_async(lambda x, y: x * y, first, second)) == 4
    assert dv.map_sync(lambda x, y: x * y, list(first), list(second)) == expected
    ar = lview.map_async(lambda x, y: x * y, list(first), list(second))
    assert len(ar) == 4
    assert ar.get(timeout=60) == expected


def test_map_keeps_arrays_when_cutting_them_short(dv):
    out = dv.map_sync(lambda x, y: x + y, np.arange(5), [10, 20, 30])
    assert [int(v) for v in out] == [10, 21, 32]


def test_map_over_a_non_iterable_is_a_clear_error(dv, lview):
    for view in (dv, lview):
        with pytest.raises(TypeError, match=r"map: argument 2 \(int\) is not iterable"):
            view.map_async(pow, [1], 5)
        with pytest.raises(TypeError, match="map needs a callable, not str"):
            view.map_async("nope", [1])


# ---------------------------------------------------------------------------------------
# keyword arguments of any name


def test_keyword_named_f_reaches_the_function(rc, dv, lview):
    def echo(**kwargs):
        return kwargs

    assert rc[0].apply_sync(echo, f=5) == {"f": 5}
    assert rc[0].apply_async(echo, f=5, self=1).get(timeout=60) == {"f": 5, "self": 1}
    with dv.temp_flags(block=True):
        assert dv.apply(echo, f=1) == [{"f": 1}] * len(dv)
    assert lview.apply_sync(echo, f=5) == {"f": 5}
    assert lview.apply_async(echo, f=6).get(timeout=60) == {"f": 6}
    assert rayparallel.remote(rc[0], block=True)(echo)(f=2, self=3) == {"f": 2, "self": 3}
    with lview.executor as ex:
        assert ex.submit(echo, fn=1).result(timeout=60) == {"fn": 1}
