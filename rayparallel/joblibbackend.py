"""joblib on rayparallel without a view at hand: ``register_joblib_backend()``.

Registers a joblib backend that, each time joblib sets it up (``Parallel(backend=...)``),
starts a :class:`~rayparallel.client.Client` with its default engines, runs joblib's
batches through that client's load-balanced view, and closes the client when joblib is
done with it. To use a view you already have, call
:meth:`~rayparallel.loadbalanced.LoadBalancedView.register_joblib_backend` on it instead.

>>> import joblib
>>> register_joblib_backend("rayparallel-default")
>>> with joblib.parallel_backend("rayparallel-default"):
...     joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3))
[0, 1, 2]
"""

from __future__ import annotations

from typing import Any

from .client import Client
from .loadbalanced import joblib_backend_class

__all__ = ["register_joblib_backend"]


def register_joblib_backend(name: str = "rayparallel", make_default: bool = False) -> None:
    """Make ``name`` (default: both "rayparallel" and, for code written for ipyparallel,
    "ipyparallel") a joblib backend on a new Client's load-balanced view; the default
    backend of joblib too if ``make_default``.

    >>> register_joblib_backend("on-rayparallel")
    >>> import joblib
    >>> joblib.Parallel(backend="on-rayparallel")(joblib.delayed(pow)(2, i) for i in range(3))
    [1, 2, 4]
    """
    try:
        from joblib.parallel import register_parallel_backend
    except ImportError:
        raise ImportError("register_joblib_backend needs joblib: pip install joblib") from None
    backend_cls = joblib_backend_class()

    def on_new_client(**kwargs: Any) -> Any:
        return backend_cls(view=Client().load_balanced_view(), owns_client=True, **kwargs)

    for alias in ([name, "ipyparallel"] if name == "rayparallel" else [name]):
        register_parallel_backend(alias, on_new_client, make_default=make_default)
