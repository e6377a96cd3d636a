"""BroadcastView: ipyparallel's view that sends one message to many engines at once.

In ipyparallel a broadcast view spares the client from sending the same request to each
engine: a broadcast scheduler fans it out. On Ray that is how every :class:`DirectView`
already works: a request is packed once and, when it is large, stored once in Ray's object
store, from which each engine's node fetches it; so a BroadcastView is a DirectView with
the same results, kept for code written for ipyparallel.

>>> bview = rc.broadcast_view()
>>> bview.apply_sync(lambda: 1)
[1, 1, 1, 1]
"""

from __future__ import annotations

from typing import Any

from .view import DirectView

__all__ = ["BroadcastView"]


class BroadcastView(DirectView):
    """A DirectView made by ``client.broadcast_view(targets, is_coalescing=...)``.

    ``is_coalescing`` (ipyparallel: the scheduler gathers the engines' replies into one
    message) changes nothing on Ray, where each engine's reply comes back by itself and the
    AsyncResult gathers them; results keep the targets' order either way.

    >>> rc.broadcast_view([2, 0], is_coalescing=True).apply_sync(lambda: 7)
    [7, 7]
    """

    def __init__(self, client: Any, targets: Any = "all", block: bool | None = None,
                 is_coalescing: bool = False):
        super().__init__(client, targets, block)
        if not isinstance(is_coalescing, bool):
            raise TypeError(f"is_coalescing must be True or False, not {is_coalescing!r}")
        #: accepted for ipyparallel compatibility; see the class docstring
        self.is_coalescing = is_coalescing
