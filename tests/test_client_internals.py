"""ipyparallel's private Client names that code written for it reads (``_ids``,
``_engines``, ``_build_targets``), engine uuids in errors, and bad engine indices."""

from __future__ import annotations

import pytest

from rayparallel import CompositeError, error


def test_ids_and_engine_uuids(rc):
    ids = rc.ids
    assert rc._ids == ids and ids is not rc._ids
    uuids = rc._engines
    assert sorted(uuids) == ids
    assert len(set(uuids.values())) == len(ids)
    assert uuids[ids[0]] == rc.engine_info()[ids[0]]["engine_uuid"]


def test_build_targets_follows_ipyparallels_rules(rc):
    ids = rc.ids
    uuids = rc._engines
    assert rc._build_targets(None) == ([uuids[i].encode() for i in ids], ids)
    assert rc._build_targets("all")[1] == ids
    assert rc._build_targets(-1)[1] == [ids[-1]]
    assert rc._build_targets(slice(None, None, 2))[1] == ids[::2]
    assert rc._build_targets(range(2))[1] == [0, 1]
    with pytest.raises(TypeError, match="'some' not valid str target, must be 'all'"):
        rc._build_targets("some")
    with pytest.raises(IndexError, match="No such engine: 99"):
        rc._build_targets(99)
    with pytest.raises(TypeError, match="targets by int/slice/collection of ints only"):
        rc._build_targets(1.5)


def test_indexing_the_client_with_something_else_is_a_type_error(rc):
    with pytest.raises(TypeError, match=r"targets must be 'all', an int, a slice or a list "
                                        r"of ints, not None \(every engine: rc\[:\]\)"):
        rc[None]


def test_errors_name_the_engine_and_its_uuid(rc, dv):
    with pytest.raises(CompositeError) as info:
        dv.execute("1 / 0", block=True)
    assert [e[-1] for e in info.value.elist] == [
        {"engine_id": eid, "engine_uuid": rc._engines[eid], "method": "execute"}
        for eid in rc.ids]
    assert isinstance(error.NoEnginesRegistered(), error.RayParallelError)
