"""rayparallel: the ipyparallel client API, running on Ray.

>>> import rayparallel
>>> rc = rayparallel.Client(num_engines=4)
>>> rc[:].map_sync(lambda x: x * x, range(6))
[0, 1, 4, 9, 16, 25]
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

from . import error
from .asyncresult import AsyncResult
from .broadcast import BroadcastView
from .client import Client
from .cluster import Cluster
from .dependency import Dependency, depend, dependent
from .error import CompositeError, EngineError, RemoteError, TimeoutError
from .loadbalanced import LoadBalancedView
from .mapresult import AsyncMapResult
from .remotefunction import interactive, parallel, remote, require
from .reply import ExecuteReply
from .serialize import Reference
from .view import DirectView, View

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
