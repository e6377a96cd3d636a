"""IPython magics for rayparallel (``%px`` and friends), installed as ``rayparallel.magics``.

A :class:`~rayparallel.Client` created inside IPython registers them for its ``rc[:]`` view,
as ipyparallel does; ``view.activate(suffix)`` registers them for another view (``%px_a``
for ``suffix='_a'``), and ``%load_ext rayparallel`` makes them available before any client
exists (they then ask for one).

>>> rc = rayparallel.Client(num_engines=2)
>>> %px import os
>>> %px print(os.getpid() > 0)
[stdout:0] True
[stdout:1] True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .px import ParallelMagics, parse_targets

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["ParallelMagics", "load_ipython_extension", "register_magics", "registered_view",
           "parse_targets"]


def register_magics(shell: InteractiveShell, view: Any,
                    suffix: str = "") -> ParallelMagics:
    """Register ``%px``, ``%%px``, ``%pxresult``, ``%pxconfig`` and ``%autopx`` (each name
    ending in ``suffix``; also ``%result`` without one) for ``view`` (a DirectView, or None
    to ask for a client when used) in ``shell``.

    >>> register_magics(get_ipython(), rc[::2], "_even")
    """
    if not isinstance(suffix, str) or (suffix and not suffix.replace("_", "a").isalnum()):
        raise ValueError(f"suffix must be letters, digits and underscores, not {suffix!r}")
    previous = _registered.get((id(shell), suffix))
    if previous is not None:
        previous.disable_autopx(quiet=True)
    magics = ParallelMagics(shell, view, suffix)
    shell.magics_manager.register(magics)
    _registered[id(shell), suffix] = magics
    return magics


#: the magics registered per (shell, suffix), to switch a replaced one's %autopx off
_registered: dict[tuple[int, str], ParallelMagics] = {}


def registered_view(shell: InteractiveShell, suffix: str = "") -> Any:
    """The view ``%px<suffix>`` runs code on in ``shell``, or None (no magics yet, or only
    ``%load_ext rayparallel``'s, which wait for a client).

    >>> registered_view(get_ipython()) is None  # doctest: +SKIP
    True
    """
    magics = _registered.get((id(shell), suffix))
    return None if magics is None else magics.bound_view


def load_ipython_extension(shell: InteractiveShell) -> None:
    """``%load_ext rayparallel``: register the magics. If no Client has registered them
    yet, they say how to create one when used."""
    if (id(shell), "") not in _registered:
        register_magics(shell, None)
