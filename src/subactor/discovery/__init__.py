"""Discovery: actors that find each other by name (tractor's
``tractor.discovery``). See :mod:`._api` for the functions and :mod:`._hub`
for the registry they ask.

Lazy: an actor imports ``subactor.discovery._client`` at its start, and an
actor that only runs sync functions must not import trio."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from subactor.discovery._api import (RegistryPortal as RegistryPortal, find_actor as find_actor,
                                         get_registry as get_registry, query_actor as query_actor,
                                         wait_for_actor as wait_for_actor)

_API = ("find_actor", "wait_for_actor", "query_actor", "get_registry", "RegistryPortal")


def check_addr(addr: object, where: str, label: str) -> None:
    """A TypeError naming ``label`` when ``addr`` is no address form
    (a ``(host, port)`` or ``(dir, file)`` tuple, or a URL string)."""
    if isinstance(addr, str) and addr:
        return
    if isinstance(addr, (list, tuple)) and len(addr) == 2:
        return
    raise TypeError(f"{where}({label}=...): {addr!r} is not an address (a (host, port) tuple or "
                    f"'tcp://host:port')")


def __getattr__(name: str) -> Any:
    if name in _API:
        from subactor.discovery import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'subactor.discovery' has no attribute {name!r}")


__all__ = list(_API)
