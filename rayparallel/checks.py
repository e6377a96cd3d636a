"""Argument checks shared by the public API: one wording for each kind of bad input.

>>> whole_number(3, "the number of engines")
3
>>> whole_number(True, "retries")
Traceback (most recent call last):
...
ValueError: retries must be a whole number >= 0, not True
"""

from __future__ import annotations

import numbers
import os
import signal
from typing import Any

from . import error

__all__ = ["is_int", "is_engine_id", "is_all", "engine_targets", "shown", "whole_number",
           "seconds", "signal_number", "env_flag"]


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is an int to Python, never to users)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_engine_id(value: Any) -> bool:
    """An integer as an engine id may be given: an int or a numpy integer (ids taken from
    an array, as ipyparallel takes them in a list), never a bool.

    >>> is_engine_id(3), is_engine_id(np.int64(3)), is_engine_id(True), is_engine_id(3.0)
    (True, True, False, False)
    """
    if type(value) is int:  # the common case, without numbers.Integral's slower check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_all(targets: Any) -> bool:
    """``targets`` naming every engine: ``'all'`` in any case, as ipyparallel takes it.

    >>> is_all("all"), is_all("ALL"), is_all(None), is_all(["all"])
    (True, True, False, False)
    """
    return isinstance(targets, str) and targets.lower() == "all"


def engine_targets(targets: Any, ids: list[int]) -> tuple[list[int], bool]:
    """The engine ids among ``ids`` that ``targets`` (``'all'``/None, an id, a slice, a
    list of ids) selects, and whether it was one id (whose results are single values).

    >>> engine_targets(slice(None, None, 2), [0, 1, 2, 3]), engine_targets(-1, [0, 1, 2, 3])
    (([0, 2], False), ([3], True))
    """
    if targets is None or is_all(targets):
        return list(ids), False
    if is_engine_id(targets):
        return [_one_engine(targets, ids)], True
    if isinstance(targets, slice):
        try:
            return ids[targets], False
        except (TypeError, ValueError) as exc:  # bounds that are not ints, a zero step
            raise type(exc)(f"targets {targets!r}: {exc}") from None
    if isinstance(targets, (list, tuple, range)):
        return [_one_engine(t, ids) for t in targets], False
    raise TypeError(f"targets must be 'all', an int, a slice or a list of ints, "
                    f"not {shown(targets)}")


def _one_engine(target: Any, ids: list[int]) -> int:
    if not is_engine_id(target):
        raise TypeError(f"engine ids are ints, not {shown(target)}")
    if not ids:
        raise error.NoEnginesRegistered()
    target = int(target)
    eid = ids[target] if target < 0 and -len(ids) <= target else target
    if eid not in ids:
        raise IndexError(f"engine {target} is not registered; engines: {ids}")
    return eid


def shown(value: Any) -> str:
    """``value``'s type and (short) repr, as errors name a wrong argument.

    >>> shown(3), shown("x" * 50)
    ('int (3)', "str ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)")
    """
    text = repr(value)
    return f"{type(value).__name__} ({text if len(text) <= 40 else text[:37] + '...'})"


def whole_number(value: Any, what: str, minimum: int = 0, hint: str = "") -> int:
    """``value`` if it is an int >= ``minimum``, else ValueError naming ``what``.

    >>> whole_number(0, "chunksize", minimum=1, hint=" (or None to choose automatically)")
    Traceback (most recent call last):
    ...
    ValueError: chunksize must be a whole number >= 1 (or None to choose automatically), not 0
    """
    if not is_int(value) or value < minimum:
        raise ValueError(f"{what} must be a whole number >= {minimum}{hint}, not {value!r}")
    return value


def seconds(timeout: Any) -> float | None:
    """ipyparallel's timeouts as seconds to wait: -1 (any negative) or None waits forever.

    >>> seconds(-1), seconds(2.5)
    (None, 2.5)
    """
    if timeout is not None and (not isinstance(timeout, (int, float)) or
                                isinstance(timeout, bool)):
        raise TypeError(f"timeout must be a number of seconds (-1 or None: no limit), "
                        f"not {timeout!r}")
    return None if timeout is None or timeout < 0 else timeout


def signal_number(sig: Any) -> int:
    """A signal given as ``signal.SIGINT``, ``"SIGINT"``, ``"int"`` or ``2``, as a number.

    >>> signal_number("sigint"), signal_number(15)
    (2, 15)
    """
    if isinstance(sig, str):
        name = sig.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            raise ValueError(f"unknown signal {sig!r}; use e.g. 'SIGINT' or 2") from None
    if is_int(sig):
        return int(sig)
    raise TypeError(f"sig must be a signal number or name, not {type(sig).__name__}")


def env_flag(name: str) -> bool:
    """An on/off environment variable: unset, ``0``, ``false``... are off; ``1``, ``true``...
    on; anything else is refused, naming the variable.

    >>> env_flag("RAYPARALLEL_NOT_SET_ANYWHERE")
    False
    """
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={value!r}: use 1 or 0")
