"""The Client attributes that code written for ipyparallel reads although they are
private there: ``_ids``, ``_engines`` and ``_build_targets``.

Each is what ipyparallel's is, read from rayparallel's engine registry (nothing is kept
twice): ``_ids`` the engine ids, ``_engines`` each engine's uuid, ``_build_targets`` the
targets as ``(uuids as bytes, ids)``.

>>> rc._ids == rc.ids and rc._ids is not rc.ids
True
>>> rc._build_targets(-1)[1]
[3]
"""

from __future__ import annotations

from typing import Any

from . import checks, error

__all__ = ["IpyparallelClientInternals"]


class IpyparallelClientInternals:
    """ipyparallel's private Client names, for code written for it (see the module)."""

    session: Any

    @property
    def _ids(self) -> list[int]:
        # ipyparallel's own list; callers get a copy from ``ids``
        return self.session.ids

    @property
    def _engines(self) -> dict[int, str]:
        # engine id -> uuid, as ipyparallel's registration gives them
        return {eid: self.session.info(eid).get("engine_uuid", "") for eid in self.session.ids}

    def _build_targets(self, targets: Any) -> tuple[list[bytes], list[int]]:
        # ipyparallel's rules: None/'all', an int (negative from the end), a slice, or a
        # list/tuple/range of ids; anything else is a TypeError
        ids = self.session.ids
        if not ids:
            raise error.NoEnginesRegistered("Can't build targets without any engines")
        if targets is None or (isinstance(targets, str) and targets.lower() == "all"):
            chosen = list(ids)
        elif isinstance(targets, str):
            raise TypeError(f"{targets!r} not valid str target, must be 'all'")
        elif checks.is_int(targets):
            engine = ids[targets] if targets < 0 else targets
            if engine not in ids:
                raise IndexError(f"No such engine: {targets}")
            chosen = [engine]
        elif isinstance(targets, slice):
            chosen = ids[targets]
        elif isinstance(targets, (tuple, list, range)):
            chosen = list(targets)
        else:
            raise TypeError(f"targets by int/slice/collection of ints only, not "
                            f"{type(targets)}")
        uuids = self._engines
        return [uuids[t].encode("utf8") for t in chosen], chosen
