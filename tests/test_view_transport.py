"""How a DirectView's map and scatter carry each engine's data: plain data pickled inline,
data holding arrays through the object store; either way, a bad item anywhere stops the
call before any engine gets anything."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rayparallel import error


def mark_and_return(x):
    global ran  # in the engine's namespace: shows whether the map ran there
    ran = True
    return x


def test_unpicklable_item_for_a_later_engine_sends_nothing(rc, dv):
    two = rc[[0, 1]]
    items = [1, 2, 3, threading.Lock()]  # the lock lands in the second engine's chunk
    with pytest.raises(error.SerializationError,
                       match=r"the data for engine 1 cannot be pickled.*Nothing was sent"):
        two.map_sync(mark_and_return, items)
    assert two.apply_sync(lambda: "ran" in globals()) == [False, False]


def test_unpicklable_part_of_a_scatter_sends_nothing(rc, dv):
    two = rc[[0, 1]]
    with pytest.raises(error.SerializationError,
                       match=r"part of 'x' for engine 1 cannot be pickled.*Nothing was sent"):
        two.scatter("x", [1, 2, threading.Lock()], block=True)
    assert two.apply_sync(lambda: "x" in globals()) == [False, False]


def test_map_and_scatter_of_plain_data_and_of_arrays(dv):
    assert dv.map_sync(lambda x: x * 2, list(range(10_000)), targets=[0, 1]) == \
        [x * 2 for x in range(10_000)]
    dv.scatter("part", [{"k": i} for i in range(4)], targets=[0, 1], block=True)
    assert dv.gather("part", targets=[0, 1], block=True) == [{"k": i} for i in range(4)]
    arrays = [np.full(100_000, i) for i in range(4)]  # chunks holding buffers
    sums = dv.map_sync(lambda a: (a.flags.writeable, int(a.sum())), arrays, targets=[0, 1])
    assert sums == [(True, 100_000 * i) for i in range(4)]
    small = [np.arange(3) + i for i in range(4)]  # tiny arrays: buffers all the same
    assert dv.map_sync(lambda a: (a.flags.writeable, int(a.sum())), small,
                       targets=[0, 1]) == [(True, 3 + 3 * i) for i in range(4)]
    dv.scatter("parts", small, targets=[0, 1], block=True)
    dv.push({"one": small[0]}, targets=[0, 1], block=True)
    dv.execute("w = [a.flags.writeable for a in [*parts, one]]", targets=[0, 1], block=True)
    assert dv.pull("w", targets=[0, 1], block=True) == [[True, True, True]] * 2
