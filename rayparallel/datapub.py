"""Publishing data from code running on engines: :func:`publish_data`.

Engine code calls ``publish_data({"step": i, ...})``; the client sees the merged dicts as
``ar.data`` (one dict for a single-engine result, a list of them otherwise). Each call
updates the dict published so far, as in ipyparallel.

The data travels with the request's reply, so ``ar.data`` shows it once that engine's part
has finished (before, its dict is empty): engines are Ray actors answering one call at a
time, and there is no side channel that could carry it earlier without slowing every call.

>>> ar = rc[0].execute("from rayparallel.datapub import publish_data\\n"
...                    "for i in range(3): publish_data({'i': i})")
>>> ar.wait(); ar.data
True
{'i': 2}
"""

from __future__ import annotations

from typing import Any

from .reply import current_reply

__all__ = ["publish_data"]


def publish_data(data: dict[str, Any]) -> None:
    """Publish ``data`` (a dict, keys being names) from code running on an engine or in a
    load-balanced task: it is merged into what the request published so far, which the
    client reads as ``ar.data``.

    >>> rc[1].apply_sync(lambda: publish_data({"x": 1}) or publish_data({"y": 2}))
    >>> rc[1].apply_async(lambda: publish_data({"done": True})).data
    {'done': True}
    >>> publish_data({"x": 1})
    Traceback (most recent call last):
    ...
    RuntimeError: publish_data({...}) publishes from code that engines run ...
    """
    if not isinstance(data, dict):
        raise TypeError(f"publish_data needs a dict (names to values), not "
                        f"{type(data).__name__}")
    reply = current_reply()
    if reply is None:
        # A thread the user's code started has no request context; the engine's shell
        # still knows which request it is running.
        from IPython import get_ipython

        reply = getattr(get_ipython(), "current_reply", None)
    if reply is None:
        raise RuntimeError("publish_data({...}) publishes from code that engines run "
                           "(execute, apply, map); here no request is running")
    reply.data.update(data)
