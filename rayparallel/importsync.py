"""What ``with view.sync_imports():`` recorded, as bindings for the engines to repeat.

>>> import math
>>> import_bindings({}, {"m": math}, [("math", ())])
[('m', 'math', None)]
"""

from __future__ import annotations

import sys
import types

__all__ = ["import_bindings"]


def import_bindings(before: dict, after: dict, imported: list[tuple[str, tuple]]
                     ) -> list[tuple[str, str, str | None]]:
    """``(alias, module, attribute)`` for each name in ``after`` that the imports bound."""
    modules = {}
    attrs = {}
    for name, fromlist in imported:
        for mod_name in (name, name.split(".")[0]):
            if mod_name in sys.modules:
                modules[id(sys.modules[mod_name])] = mod_name
        for attr in fromlist:
            value = getattr(sys.modules.get(name), attr, _MISSING)
            if value is not _MISSING:
                attrs[id(value)] = (name, attr)
    bindings = []
    for alias, value in after.items():
        if alias.startswith("_"):
            continue
        if isinstance(value, types.ModuleType) and id(value) in modules:
            bindings.append((alias, value.__name__, None))
        elif id(value) in attrs:
            module, attr = attrs[id(value)]
            if alias == attr or before.get(alias, _MISSING) is not value:
                bindings.append((alias, module, attr))
    return bindings


_MISSING = object()
