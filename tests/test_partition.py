import numpy as np
import pytest

from rayparallel import partition


def test_block_sizes_match_ipyparallel():
    assert [len(p) for p in partition.split(list(range(10)), 8)] == [2, 2, 1, 1, 1, 1, 1, 1]
    assert [len(p) for p in partition.split(list(range(15)), 8)] == [2] * 7 + [1]


def test_range_parts_are_ranges():
    assert partition.split(range(5), 2) == [range(0, 3), range(3, 5)]


def test_array_parts_are_arrays_and_join_back():
    parts = partition.split(np.arange(10), 3)
    assert all(isinstance(p, np.ndarray) for p in parts)
    np.testing.assert_array_equal(partition.join(parts), np.arange(10))


def test_more_parts_than_items_gives_empty_parts():
    assert partition.split([1, 2], 4) == [[1], [2], [], []]


def test_join_lists_and_scalars():
    assert partition.join([[1, 2], [3]]) == [1, 2, 3]
    assert partition.join([1, 5]) == [1, 5]


def test_non_sequence_is_rejected_with_its_type():
    with pytest.raises(TypeError, match=r"not int \(5\)"):
        partition.split(5, 2)
    with pytest.raises(TypeError, match=r"not dict \(\{'a': 1\}\)"):
        partition.split({"a": 1}, 2)
