"""Property-based tests (hypothesis) of partitioning and the data path: scatter then
gather gives the input back, map equals built-in ``map``, ``targets`` are parsed as
ipyparallel parses them, and ``%px`` options fail only with usage errors.

Local-mode engines (in this process) take the many examples; a few run on Ray engines.
The hypothesis profile (``tests/conftest.py``) is derandomized and keeps no database.
"""

from __future__ import annotations

import functools
import numbers
import operator
import pickle
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from rayparallel.magics import parse_targets
from rayparallel.magics.px import _split_line

from rayparallel import CompositeError, Reference, RemoteError
from rayparallel.error import NoEnginesRegistered

ENGINES = 8  # pyproject.toml: rayparallel_engines

# ---------------------------------------------------------------------------- values

#: picklable values whose equality survives a trip through pickle (no NaN, no sets)
leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
          | st.text(max_size=4) | st.binary(max_size=4) | st.complex_numbers(allow_nan=False))
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                      | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=2), inner, max_size=2),
                      max_leaves=6)

ranges = st.builds(range, st.integers(-20, 20), st.integers(-20, 20),
                   st.integers(-4, 4).filter(bool))

#: every kind of numpy dtype: numbers, text, bytes, dates, structured (nested too), object
dtypes = (hnp.scalar_dtypes() | hnp.array_dtypes(max_size=3, allow_subarrays=True)
          | hnp.nested_dtypes(max_leaves=4) | st.just(np.dtype(object)))
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(dtypes)
    elements = values if dtype.kind == "O" else None
    return draw(hnp.arrays(dtype, draw(shapes), elements=elements))


sequences = (st.lists(values, max_size=20) | st.lists(values, max_size=20).map(tuple)
             | ranges | arrays())

#: lists of distinct engine ids: views of 1 to all engines, in any order
engine_lists = st.lists(st.integers(0, ENGINES - 1), min_size=1, max_size=ENGINES,
                        unique=True)


def assert_same_array(out: Any, expected: np.ndarray) -> None:
    """``out`` is ``expected`` as pickling gives it back (numpy's own pickle makes
    big-endian dates native-endian, with the same values): dtype, shape and bits."""
    expected = pickle.loads(pickle.dumps(expected, protocol=5))
    assert isinstance(out, np.ndarray)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    if expected.dtype.hasobject:
        assert out.tolist() == expected.tolist()
    else:  # bit for bit: NaN, NaT, -0.0 and padding included
        assert out.tobytes() == expected.tobytes()


def assert_gathered(out: Any, seq: Any) -> None:
    """``out`` is what ipyparallel's gather gives for ``seq``: an array for an array, one
    list for a list or tuple, and for a range the list of its parts, which are ranges (the
    seed tutorial prints ``[range(0, 4), range(4, 8), ...]``)."""
    if isinstance(seq, np.ndarray):
        assert_same_array(out, seq)
    elif isinstance(seq, range):
        assert type(out) is list and all(type(part) is range for part in out)
        assert [x for part in out for x in part] == list(seq)
    else:
        assert type(out) is list and out == list(seq)


# ---------------------------------------------------------------------------- scatter / gather


@settings(max_examples=150)
@given(seq=sequences, targets=engine_lists)
def test_scatter_then_gather_gives_the_input_back(rayparallel_local_client, seq, targets):
    view = rayparallel_local_client[targets]
    assert view.scatter("x", seq, block=True) == [None] * len(targets)
    assert_gathered(view.gather("x", block=True), seq)
    parts = view.pull("x", block=True)
    assert sum(len(p) for p in parts) == len(seq)  # every item once, in block parts
    assert [len(p) for p in parts] == sorted((len(p) for p in parts), reverse=True)


@settings(max_examples=6)
@given(seq=sequences, targets=st.lists(st.integers(0, ENGINES - 1), min_size=1,
                                       max_size=3, unique=True))
def test_scatter_then_gather_on_ray_engines(rayparallel_ray_client, seq, targets):
    view = rayparallel_ray_client[targets]
    view.scatter("x", seq, block=True)
    assert_gathered(view.gather("x", block=True), seq)


def test_scatter_of_a_large_array_goes_through_the_object_store(rayparallel_local_client):
    data = np.arange(300_000, dtype=np.float32).reshape(-1, 3)  # over LARGE_BYTES
    view = rayparallel_local_client[:]
    view.scatter("x", data, block=True)
    assert_same_array(view.gather("x", block=True), data)


no_parts = (hnp.arrays(dtypes, shape=()) | leaves | st.sets(st.integers(), max_size=3)
            | st.dictionaries(st.integers(), st.integers(), max_size=3))


@settings(max_examples=60)
@given(value=no_parts)
def test_zero_d_arrays_and_single_values_are_refused_by_name(rayparallel_local_client, value):
    view = rayparallel_local_client[:]
    if isinstance(value, (str, bytes)):  # text is cut into pieces of text, as ipyparallel
        return
    if isinstance(value, np.ndarray):
        named = r"not a 0-d numpy array \(one value, shape \(\)\)"
    else:
        named = rf"not {type(value).__name__} \("
    with pytest.raises(TypeError, match=rf"^scatter needs a sequence to cut into parts.*{named}"):
        view.scatter("x", value)
    if isinstance(value, np.ndarray):  # built-in map refuses it too
        with pytest.raises(TypeError, match=r"map \(argument 1\) needs a sequence.*0-d numpy"):
            view.map_sync(repr, value)
        with pytest.raises(TypeError, match=r"map \(argument 2\) needs a sequence.*0-d numpy"):
            rayparallel_local_client.load_balanced_view().map_sync(pow, [1], value)


# ---------------------------------------------------------------------------- map


def pack(*items: Any) -> tuple:
    return ("pack", *items)


class Packer:
    """A callable object."""

    def __call__(self, *items: Any) -> list:
        return ["Packer", *items]

    def method(self, *items: Any) -> tuple:
        return ("method", *items)


#: the kinds of function map takes: lambdas, functions, partials, callable objects,
#: bound methods, builtins and builtin methods (``"{!r}".format`` takes any arguments)
functions: dict[str, Callable] = {
    "lambda": lambda *a: a,
    "function": pack,
    "partial": functools.partial(pack, "bound"),
    "callable object": Packer(),
    "bound method": Packer().method,
    "builtin method": "{!r}".format,
}
#: builtins by the number of sequences (on ints)
builtins_ = {1: abs, 2: operator.mul, 3: max}

#: items of mapped sequences: values built-in map hands on unchanged (numpy scalars too)
map_arrays = hnp.arrays(st.sampled_from(["i8", "f8", "?", "U3", "S2"]),
                        st.integers(0, 12), elements={"allow_nan": False})


@st.composite
def map_args(draw: st.DrawFn) -> tuple[Callable, list[Callable[[], Any]]]:
    """A function and 1 to 3 sequences of different lengths, each as a maker (an
    iterator is used once: each map gets its own)."""
    name = draw(st.sampled_from([*sorted(functions), "builtin"]))
    count = draw(st.integers(1, 3))
    f = builtins_[count] if name == "builtin" else functions[name]
    kinds = ["list", "tuple", "range", "iterator", "generator"]
    items = st.integers(-10, 10) if name == "builtin" else values
    made = []
    for _ in range(count):
        kind = draw(st.sampled_from(kinds if name == "builtin" else [*kinds, "array"]))
        if kind == "range":
            seq = draw(ranges)
        elif kind == "array":
            seq = draw(map_arrays)
        else:
            seq = draw(st.lists(items, max_size=15))
        made.append({"list": lambda s=seq: list(s), "tuple": lambda s=seq: tuple(s),
                     "range": lambda s=seq: s, "array": lambda s=seq: s,
                     "iterator": lambda s=seq: iter(list(s)),
                     "generator": lambda s=seq: (x for x in list(s))}[kind])
    return f, made


@settings(max_examples=120)
@given(args=map_args(), targets=engine_lists, chunksize=st.none() | st.integers(1, 6),
       use_async=st.booleans())
def test_map_equals_builtin_map(rayparallel_local_client, args, targets, chunksize,
                                use_async):
    f, makers = args
    expected = list(map(f, *(m() for m in makers)))
    dv = rayparallel_local_client[targets]
    lview = rayparallel_local_client.load_balanced_view()
    if use_async:
        assert list(dv.map_async(f, *(m() for m in makers))) == expected
        assert list(lview.map_async(f, *(m() for m in makers), chunksize=chunksize)) == expected
    else:
        assert dv.map_sync(f, *(m() for m in makers)) == expected
        assert lview.map_sync(f, *(m() for m in makers), chunksize=chunksize) == expected
    # balanced over chosen engines, and a function named on the engines
    on_engines = rayparallel_local_client.load_balanced_view(targets=targets)
    assert on_engines.map_sync(f, *(m() for m in makers), chunksize=chunksize) == expected
    dv.push({"engine_f": f}, block=True)
    assert dv.map_sync(Reference("engine_f"), *(m() for m in makers)) == expected


@settings(max_examples=4)
@given(args=map_args())
def test_map_equals_builtin_map_on_ray_engines(rayparallel_ray_client, args):
    f, makers = args
    expected = list(map(f, *(m() for m in makers)))
    assert rayparallel_ray_client[:3].map_sync(f, *(m() for m in makers)) == expected
    lview = rayparallel_ray_client.load_balanced_view()
    assert lview.map_sync(f, *(m() for m in makers)) == expected


def refuse_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x


@settings(max_examples=40)
@given(items=st.lists(st.integers(-50, 50), max_size=20), targets=engine_lists)
def test_map_raises_the_error_builtin_map_raises(rayparallel_local_client, items, targets):
    odd = [x for x in items if x % 2]
    views = [rayparallel_local_client[targets], rayparallel_local_client.load_balanced_view()]
    for view in views:
        if not odd:
            assert view.map_sync(refuse_odd, items) == list(map(refuse_odd, items))
            continue
        with pytest.raises((RemoteError, CompositeError)) as caught:
            view.map_sync(refuse_odd, items)
        errors = getattr(caught.value, "errors", None) or [caught.value]
        names = {e.ename if isinstance(e, RemoteError) else e[0] for e in errors}
        assert names == {"ValueError"}
        assert f"odd item {odd[0]}" in str(caught.value)


# ---------------------------------------------------------------------------- targets


def expected_targets(targets: Any, ids: list[int]) -> tuple[Any, type | None, str]:
    """What a view's targets are for ``targets``, by ipyparallel's rules (its Client's
    ``_build_targets``), or the error (type and a part of its message).

    Differences, on purpose: a bool is refused (ipyparallel takes ``True`` as engine 1);
    a numpy integer is an engine id (ipyparallel takes it in a list only); a negative id
    in a list counts from the end, as a single one does (ipyparallel: KeyError).
    """
    def one(t: Any) -> tuple[int | None, type | None, str]:
        if not isinstance(t, numbers.Integral) or isinstance(t, bool):
            return None, TypeError, f"engine ids are ints, not {type(t).__name__}"
        t = int(t)
        eid = ids[t] if -len(ids) <= t < 0 else t
        if eid not in ids:
            return None, IndexError, f"engine {t} is not registered"
        return eid, None, ""

    if targets is None or (isinstance(targets, str) and targets.lower() == "all"):
        return "all", None, ""
    if isinstance(targets, numbers.Integral) and not isinstance(targets, bool):
        return one(targets)
    if isinstance(targets, slice):
        try:
            return ids[targets], None, ""
        except (TypeError, ValueError) as exc:
            return None, type(exc), f"targets {targets!r}: {exc}"
    if isinstance(targets, (list, tuple, range)):
        out = []
        for t in targets:
            eid, exc, msg = one(t)
            if exc:
                return None, exc, msg
            out.append(eid)
        return out, None, ""
    return None, TypeError, ("targets must be 'all', an int, a slice or a list of ints, "
                             f"not {type(targets).__name__}")


ids_ = st.integers(-2 * ENGINES, 2 * ENGINES)
junk = st.floats(-10, 10) | st.text(max_size=3) | st.booleans() | st.binary(max_size=2)
one_target = ids_ | st.integers(0, ENGINES - 1).map(np.uint8) | ids_.map(np.int64)
bounds_ = st.none() | ids_ | st.sampled_from(["a", 1.5, 0])
target_specs = st.one_of(
    st.none(), st.sampled_from(["all", "ALL", "All", "aLL", " all", "0", "", "none"]),
    one_target, junk, st.just(np.float64(1.0)),
    st.lists(ids_, max_size=6), st.lists(ids_, max_size=6).map(tuple), ranges,
    st.lists(one_target | junk, max_size=4), st.lists(st.lists(ids_, max_size=2), max_size=2),
    st.builds(slice, bounds_, bounds_, bounds_),
    st.sets(ids_, max_size=3), st.dictionaries(ids_, ids_, max_size=2),
    st.lists(ids_, max_size=4).map(np.array),
)


@settings(max_examples=300)
@given(targets=target_specs)
def test_targets_are_parsed_as_ipyparallel_parses_them(rayparallel_local_client, targets):
    rc = rayparallel_local_client
    ids = rc.ids
    expected, exc, msg = expected_targets(targets, ids)
    if expected == []:  # a view on no engine: refused when used, naming the targets
        with pytest.raises(NoEnginesRegistered, match="the targets select no engine"):
            rc[:].pull("eid", targets=targets, block=True)
        return
    if exc is not None:
        with pytest.raises(exc) as caught:
            rc.direct_view(targets)
        assert msg in str(caught.value)
        with pytest.raises(exc, match=re.escape(msg)):
            rc[:].pull("eid", targets=targets, block=True)
        return
    view = rc.direct_view(targets)
    assert view.targets == expected
    assert all(type(t) is int for t in ([expected] if isinstance(expected, int) else
                                        [] if expected == "all" else expected))
    rc[:].scatter("eid", ids, flatten=True, block=True)  # each engine its own id
    pulled = rc[:].pull("eid", targets=targets, block=True)
    assert pulled == (ids if expected == "all" else expected)
    if isinstance(expected, list):
        assert rc[targets].targets == expected
        balanced = rc.load_balanced_view(targets=targets)
        assert balanced.apply_sync(lambda: eid) in expected  # noqa: F821 - the engine's eid


# ---------------------------------------------------------------------------- %px options


@pytest.fixture(scope="module")
def px_magics(rayparallel_local_client):
    """The %px magics of an in-process IPython shell, on engines 0 and 1."""
    shell = InteractiveShell.instance()
    view = rayparallel_local_client.activate(targets=[0, 1])
    magics = shell.find_magic("px").__self__
    yield SimpleNamespace(shell=shell, view=view, magics=magics)
    InteractiveShell.clear_instance()  # later tests run outside IPython again


option_names = st.sampled_from([
    "-b", "--block", "-a", "--noblock", "--stream", "--no-stream", "-t", "--targets",
    "--target", "--verbose", "--no-verbose", "--progress-after", "--signal-on-interrupt",
    "-r", "-e", "--group-outputs", "-o", "--out", "--save-name", "--local", "--",
    "-", "--targets=", "-t0", "--tar", "--group-outputs=engine", "-x", "--nope"])
option_values = st.one_of(
    st.sampled_from(["0", "1", "-1", "99", "all", "ALL", "::2", "::0", "1:3", "[0,1]",
                     "[0, 1]", "[]", "()", "(0,)", "[1.5]", "[True]", "1e3", "nan", "inf",
                     "-inf", "SIGINT", "int", "none", "9", "²", "١", "type", "engine",
                     "order", "x", '"', "'", '"[0,', "[" * 400, "-" * 10_000 + "1", "\\",
                     "$x", "{x}", "0x1", "1_0"]),
    st.text(max_size=6))
option_strings = st.lists(option_names | option_values, max_size=6).map(" ".join)


def only_usage_errors(call: Callable[[], Any], allow_remote: bool = False) -> None:
    try:
        with capture_output():
            call()
    except UsageError:
        pass
    except RemoteError:  # code the options did not take, run on the engines
        if not allow_remote:
            raise


# IPython's warning for code with odd line breaks (\x0b, \x0c), which engines run here
@pytest.mark.filterwarnings("ignore:`make_tokens_by_line` received:UserWarning")
@settings(max_examples=150)
@given(line=option_strings)
@example(line="--signal-on-interrupt \u00b2")  # a digit to str.isdigit, not to int()
@example(line="--targets " + "-" * 10_000 + "1")  # too deep for Python's parser
@example(line='--targets "[0,')  # an unclosed quote
@example(line="-t ::0")  # a slice with step 0
@example(line="-t 5:")  # a slice selecting no engine
def test_px_options_fail_only_with_usage_errors(px_magics, line):
    shell, view, magics = px_magics.shell, px_magics.view, px_magics.magics
    saved = dict(vars(magics)), view.targets, view.block
    try:
        only_usage_errors(lambda: shell.run_cell_magic("px", line, "pass"))
        options, code = _split_line(line + " pass")
        only_usage_errors(lambda: shell.run_line_magic("px", line + " pass"),
                          allow_remote=code.strip() != "pass")
        only_usage_errors(lambda: shell.run_line_magic("pxresult", line))
        only_usage_errors(lambda: shell.run_line_magic("pxconfig", line))
        view.wait()  # a --noblock run ends before the next example clears the engines
    finally:
        vars(magics).update(saved[0])
        view.targets, view.block = saved[1], saved[2]


@settings(max_examples=200)
@given(text=option_values | st.text(max_size=12))
def test_px_targets_text_gives_targets_or_a_usage_error(text):
    try:
        targets = parse_targets(text)
    except UsageError as exc:
        assert "--targets" in str(exc)
        return
    assert (targets == "all" or isinstance(targets, slice)
            or type(targets) is int or (type(targets) is list and targets
                                        and all(type(t) is int for t in targets)))
