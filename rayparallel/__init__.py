"""rayparallel: the ipyparallel client API, running on Ray.

>>> import rayparallel
>>> rc = rayparallel.Client(num_engines=4)
>>> rc[:].map_sync(lambda x: x * x, range(6))
[0, 1, 4, 9, 16, 25]
"""

from __future__ import annotations

import importlib
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION
from typing import TYPE_CHECKING, Any

# Public names load on first use (PEP 562): engines and tasks import rayparallel.engine and
# rayparallel.tasks in every Ray worker, and should not pay for the client, views and
# Cluster each time a worker starts.
_LAZY = {
    "error": ("error", None),
    "AsyncResult": ("asyncresult", "AsyncResult"),
    "BroadcastView": ("broadcast", "BroadcastView"),
    "Client": ("client", "Client"),
    "Cluster": ("cluster", "Cluster"),
    "Dependency": ("dependency", "Dependency"),
    "depend": ("dependency", "depend"),
    "dependent": ("dependency", "dependent"),
    "CompositeError": ("error", "CompositeError"),
    "EngineError": ("error", "EngineError"),
    "RemoteError": ("error", "RemoteError"),
    "TimeoutError": ("error", "TimeoutError"),
    "LoadBalancedView": ("loadbalanced", "LoadBalancedView"),
    "AsyncMapResult": ("mapresult", "AsyncMapResult"),
    "interactive": ("remotefunction", "interactive"),
    "parallel": ("remotefunction", "parallel"),
    "remote": ("remotefunction", "remote"),
    "require": ("remotefunction", "require"),
    "ExecuteReply": ("executereply", "ExecuteReply"),
    "Reference": ("serialize", "Reference"),
    "DirectView": ("view", "DirectView"),
    "View": ("view", "View"),
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from . import error
    from .asyncresult import AsyncResult
    from .broadcast import BroadcastView
    from .client import Client
    from .cluster import Cluster
    from .dependency import Dependency, depend, dependent
    from .error import CompositeError, EngineError, RemoteError, TimeoutError
    from .executereply import ExecuteReply
    from .loadbalanced import LoadBalancedView
    from .mapresult import AsyncMapResult
    from .remotefunction import interactive, parallel, remote, require
    from .serialize import Reference
    from .view import DirectView, View


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'rayparallel' has no attribute {name!r}") from None
    loaded = importlib.import_module(f".{module}", __name__)
    value = loaded if attribute is None else getattr(loaded, attribute)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"


def load_ipython_extension(ip) -> None:
    """``%load_ext rayparallel``: the %px magics (they act on the latest Client's engines).

    In IPython::

        %load_ext rayparallel
    """
    from .magics import load_ipython_extension as load

    load(ip)


__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Client",
    "Cluster",
    "View",
    "DirectView",
    "BroadcastView",
    "LoadBalancedView",
    "AsyncResult",
    "AsyncMapResult",
    "ExecuteReply",
    "RemoteError",
    "CompositeError",
    "EngineError",
    "TimeoutError",
    "error",
    "require",
    "Dependency",
    "depend",
    "dependent",
    "interactive",
    "remote",
    "parallel",
    "Reference",
]
