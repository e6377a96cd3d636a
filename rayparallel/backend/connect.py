"""Choosing the backend a client asks for (kept apart from the interface in ``__init__``,
which both backends import)."""

from __future__ import annotations

from . import Backend

__all__ = ["open_backend"]


def open_backend(address: str | None = None, *, profile: str | None = None,
                 local_mode: bool = False, ray_init: dict | None = None,
                 min_cpus: int = 0) -> Backend:
    """The backend a client asks for: local mode (no Ray), Ray joined for a ``profile``
    (whose engines run on a cluster that is up already: never start one), or Ray joined at
    ``address`` / started here (with at least ``min_cpus`` logical CPUs, so that many
    load-balanced tasks can run at once).

    >>> open_backend(local_mode=True).name
    'local'
    """
    if profile is not None and local_mode:
        raise ValueError(f"profile {profile!r} names engines on a Ray cluster; local mode "
                         "runs engines in this process and cannot attach to them")
    if local_mode:
        if address is not None:
            raise ValueError(f"local_mode=True runs engines in this process; it cannot "
                             f"join the Ray cluster at {address!r}")
        from .local import LocalBackend

        return LocalBackend()
    from .ray import RayBackend  # imports Ray: only when it is wanted

    return RayBackend(address, ray_init, join=profile is not None, min_cpus=min_cpus,
                      profile=profile)
