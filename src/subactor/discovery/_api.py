"""Finding actors by name: ``find_actor``, ``wait_for_actor``,
``query_actor``, ``get_registry`` (tractor's names and meanings).

Every actor of a tree is registered with its process's hub (the root's
registry, see :mod:`._hub`) from its spawn to its end. Finding one gives a
portal to it over a fresh channel of its own: calls, contexts, streams,
errors and ``cancel_actor()`` work as over a child's portal. Leaving the
block closes that channel; what this side was still running in the peer is
cancelled, and the peer goes on.
"""
from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal, overload

import trio

from subactor import _state
from subactor.discovery import _hub

if TYPE_CHECKING:
    from subactor._portal import Portal
    from subactor._transport import TrioChannel
    from subactor.ipc._framed import StreamChannel


def _hub_here(where: str):
    _state.current_actor()   # NoRuntime, with its explanation, outside a runtime
    hub = _hub.local()
    if hub is None:
        raise RuntimeError(
            f"{where}(): this actor has no link to a registry (a process-backend actor, or an actor "
            f"spawned outside an actor tree); discovery works in the root and in its subinterpreter actors")
    return hub


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}(name) must be a non-empty str, got {name!r}")
    return name


def _check_addrs(addrs, where: str, label: str) -> None:
    """One address, or a list of them (see subactor.discovery.check_addr)."""
    if addrs is None:
        return
    from subactor.discovery import check_addr

    one = isinstance(addrs, str) or (isinstance(addrs, tuple) and len(addrs) == 2
                                     and not isinstance(addrs[0], (list, tuple)))
    for a in ([addrs] if one else addrs if isinstance(addrs, (list, tuple)) else [addrs]):
        check_addr(a, where, label)


@asynccontextmanager
async def open_portal(chan: Any, aid: Any) -> AsyncIterator[Portal]:
    """A portal over a peer's channel, its message pump running as a system
    task until the block ends (the channel is then closed)."""
    from subactor._portal import Portal

    portal = Portal(aid.name, aid.uid, chan, backend="peer")
    chan.aid = aid
    chan.spawn = trio.lowlevel.spawn_system_task
    scope = trio.CancelScope()
    portal._pump_done = done = trio.Event()

    async def pump() -> None:
        try:
            with scope:
                await portal._pump()
        finally:
            portal._actor_ended(" (its connection ended)")
            done.set()

    trio.lowlevel.spawn_system_task(pump, name=f"subactor peer pump: {aid.name}")
    try:
        yield portal
    finally:
        chan.close()
        scope.cancel()
        with trio.CancelScope(shield=True):
            await done.wait()


async def _connect(hub, entry: dict):
    """A portal manager for ``entry``, or None if it ended meanwhile."""
    try:
        chan, aid = await hub.connect((entry["name"], entry["uuid"]), entry)
    except LookupError:
        return None
    return open_portal(chan, aid)


@overload
def find_actor(name: str, registry_addrs: list[Any] | None = None, enable_transports: list[str] | None = None,
               only_first: Literal[True] = True,
               raise_on_none: bool = False) -> AbstractAsyncContextManager[Portal | None]: ...
@overload
def find_actor(name: str, registry_addrs: list[Any] | None = None, enable_transports: list[str] | None = None,
               *, only_first: Literal[False],
               raise_on_none: bool = False) -> AbstractAsyncContextManager[list[Portal]]: ...
@asynccontextmanager
async def find_actor(name: str, registry_addrs: list[Any] | None = None, enable_transports: list[str] | None = None,
                     only_first: bool = True, raise_on_none: bool = False) -> AsyncIterator[Portal | None | list[Portal]]:
    """A portal to the actor registered as ``name`` (the last one to
    register), or None if there is none (RuntimeError with
    ``raise_on_none``). ``only_first=False`` yields a list of portals, one
    to each actor of that name."""
    _check_name(name, "find_actor")
    _check_addrs(registry_addrs, "find_actor", "registry_addrs")
    hub = _hub_here("find_actor")
    entries = await hub.find(name)
    if only_first:
        entries = entries[-1:]
    async with AsyncExitStack() as stack:
        portals = []
        for entry in entries:
            mgr = await _connect(hub, entry)
            if mgr is not None:
                portals.append(await stack.enter_async_context(mgr))
        if not portals:
            if raise_on_none:
                raise RuntimeError(f"no actor {name!r} is registered")
            yield None
        else:
            yield portals[0] if only_first else portals


@asynccontextmanager
async def wait_for_actor(name: str, registry_addr: Any = None) -> AsyncIterator[Portal]:
    """Wait until an actor registers as ``name`` and yield a portal to it."""
    _check_name(name, "wait_for_actor")
    _check_addrs(registry_addr, "wait_for_actor", "registry_addr")
    hub = _hub_here("wait_for_actor")
    while True:
        entry = await hub.wait(name)
        mgr = await _connect(hub, entry)
        if mgr is not None:
            break
        await trio.sleep(0.01)   # it ended between the answer and the connect: wait for the next
    async with mgr as portal:
        yield portal


@asynccontextmanager
async def query_actor(name: str, regaddr: Any = None) -> AsyncIterator[tuple[Any, Any]]:
    """Yields ``(addr, registry)``: where the actor ``name`` is reached (its
    first address; for an actor of this process, which needs none,
    ``("inproc", uuid)``), or None if it is not registered; and the
    registry's portal (see :func:`get_registry`)."""
    _check_name(name, "query_actor")
    hub = _hub_here("query_actor")
    entries = await hub.find(name)
    addr = None
    if entries:
        e = entries[-1]
        addr = tuple(e["addrs"][0]) if e["addrs"] else ("inproc", e["uuid"])
    async with get_registry(regaddr) as reg:
        yield addr, reg


class RegistryPortal:
    """What :func:`get_registry` yields: the registry's portal.
    ``run_from_ns('self', method, **kw)`` calls the registrar's methods by
    tractor's names (``get_registry``, ``find_actor``, ``wait_for_actor``,
    ``unregister_actor``); ``actor`` is the registrar's Actor when it runs
    here (the root), else None."""

    METHODS = ("get_registry", "find_actor", "wait_for_actor", "unregister_actor", "delete_addr")

    def __init__(self, hub: Any):
        self._hub = hub
        self.actor: _state.Actor | None = _state.current_actor() if isinstance(hub, _hub.Hub) else None

    @property
    def channel(self) -> TrioChannel | StreamChannel | None:
        """The connection to another program's registrar this root
        registered with (tractor's ``portal.channel``), or None when the
        registry is this process's own."""
        node = getattr(self._hub, "node", None)
        links = [link for link in (node.links if node is not None else ()) if not link.dead]
        return links[0].chan if links else None

    chan = channel

    async def run_from_ns(self, namespace_path: str, function_name: str, **kwargs: Any) -> Any:
        if namespace_path != "self" or function_name not in self.METHODS:
            raise NotImplementedError(
                f"the registry's portal runs only its own methods: run_from_ns('self', name) with name one of "
                f"{', '.join(self.METHODS)}; got {namespace_path}.{function_name}")
        return await getattr(self, function_name)(**kwargs)

    async def get_registry(self) -> dict[str, Any]:
        """``{"name.uuid": addrs}`` of every registered actor."""
        return await self._hub.registry()

    async def find_actor(self, name: str) -> list[Any] | None:
        entries = await self._hub.find(name)
        if not entries:
            return None
        e = entries[-1]
        return list(e["addrs"]) or [("inproc", e["uuid"])]

    async def wait_for_actor(self, name: str) -> list[Any]:
        e = await self._hub.wait(name)
        return list(e["addrs"]) or [("inproc", e["uuid"])]

    async def unregister_actor(self, uid: tuple[str, str] | list[str]) -> bool:
        return await self._hub.delete(tuple(uid))

    async def delete_addr(self, addr: Any) -> None:
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"<RegistryPortal local={self.actor is not None}>"


@asynccontextmanager
async def get_registry(addr: Any = None) -> AsyncIterator[RegistryPortal]:
    """The registry's portal (see :class:`RegistryPortal`)."""
    _check_addrs(addr, "get_registry", "addr")
    hub = _hub_here("get_registry")
    await trio.lowlevel.checkpoint()
    yield RegistryPortal(hub)
