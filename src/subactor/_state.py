"""Who am I: the actor the running code belongs to. No trio here.

"A runtime" is where :func:`current_actor` has an answer:

- inside a long-lived actor (``start_actor`` / ``run_in_actor``, either
  backend): always, that actor;
- in the root (the main interpreter of the program's process): while a
  root runtime is open, that is inside ``open_root_actor()`` or inside an
  ``open_nursery()`` (which opens the root runtime implicitly when none is
  open). The root actor record is made when the first of them opens and
  ends (its ``lifetime_stack`` closed) when the last one closes;
- nowhere else: before or after that in the root, and in a worker of the
  pool or a one-shot actor (``run_sync``, ``run_in_subinterpreter``,
  ``spawn``), which run a function and are no actors of the tree.

There, ``current_actor()`` raises :class:`~subactor._exceptions.NoRuntime`
(``current_actor(err_on_no_runtime=False)`` returns None), as tractor's
does.
"""
from __future__ import annotations

import os
# No typing import at run time: it costs an actor's fresh interpreter ~0.3 MiB.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    import contextlib


class Aid:
    """An actor's identity: ``name``, ``uuid`` (a hex string unique to this
    actor), ``uid == (name, uuid)``, and the ``pid`` of the process it runs
    in (a subinterpreter actor shares its parent's)."""

    __slots__ = ("name", "uuid", "pid")
    name: str
    uuid: str
    pid: int

    def __init__(self, name: str, uuid: str, pid: int):
        self.name = name
        self.uuid = uuid
        self.pid = pid

    @property
    def uid(self) -> tuple[str, str]:
        return (self.name, self.uuid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Aid):
            return NotImplemented
        return (self.name, self.uuid, self.pid) == (other.name, other.uuid, other.pid)

    def __hash__(self) -> int:
        return hash((self.name, self.uuid, self.pid))

    def __repr__(self) -> str:
        return f"Aid(name={self.name!r}, uuid={self.uuid!r}, pid={self.pid})"


class Actor:
    """The actor this code runs in (``subactor.current_actor()``).

    ``name`` is the name given at spawn ("root" for the root, unless
    ``open_root_actor(name=...)``); ``aid`` its identity (``.name``,
    ``.uuid``, ``.uid``, ``.pid``); ``uid`` is ``(name, uuid)``, as in
    tractor. ``is_registrar`` is True for a root that holds the registry
    (its process's, and the registrar's role at a registry address it
    bound; False for a root that registered with another program's
    registrar, and in actors). ``lifetime_stack`` is an
    :class:`contextlib.ExitStack` closed when the actor ends, also when it
    ends with an error (after its calls are over, before it acknowledges
    its parent's cancel).
    """

    # Stream items a context's inbox holds by default (tractor's name).
    msg_buffer_size = 2 ** 6

    def __init__(self, name: str, uid: str, *, is_root: bool = False, parent: str | None = None,
                 loglevel: str | None = None, parent_main: str | None = None):
        self.name = name
        self.aid: Aid = Aid(name, uid, os.getpid())
        self.is_root = is_root
        self.is_registrar = is_root   # a networked root: set by its node (subactor._root)
        self.parent = parent
        self.enable_modules: list[str] = []
        self.loglevel = loglevel
        self._lifetime_stack = None
        # Its trio runs as the guest of an asyncio loop (infect_asyncio=True,
        # or the root under to_asyncio.run_as_asyncio_guest); tractor's name.
        self._infected_aio = False
        # The parent's __main__ script this actor may load to find functions
        # defined there ({} when it has none, or inherit_parent_main=False).
        self._parent_main_data: dict = {"path": parent_main} if parent_main else {}
        self._net = None   # the root's discovery._net.Node, when it is on the network

    @property
    def accept_addrs(self) -> list[tuple[str, Any]]:
        """Where other programs reach this actor's root (tractor's tuples:
        ``(host, port)``, ``(directory, socket name)``); empty when the root
        is not on the network (it was given no registry_addrs nor
        enable_transports) and in actors (their root listens for them)."""
        return self._net.addrs() if self._net is not None else []

    @property
    def registry_addrs(self) -> list[tuple[str, Any]]:
        """The registry addresses the root was given (tractor's tuples)."""
        if self._net is None:
            return []
        from subactor import ipc

        return [ipc.wrap_address(a).unwrap() for a in self._net.registry_addrs]

    @property
    def uid(self) -> tuple[str, str]:
        return self.aid.uid

    @property
    def ipc_server(self) -> "IpcServer":
        """What this actor serves its peers on (tractor's name):
        ``has_peers()`` and ``accept_addrs``."""
        return IpcServer(self)

    @property
    def lifetime_stack(self) -> contextlib.ExitStack:
        # Made on first use: contextlib costs an actor that never needs it
        # a few milliseconds of its start.
        if self._lifetime_stack is None:
            import contextlib

            self._lifetime_stack = contextlib.ExitStack()
        return self._lifetime_stack

    def is_infected_aio(self) -> bool:
        """True if this actor's trio runs as the guest of an asyncio loop,
        where :mod:`subactor.to_asyncio` works."""
        return self._infected_aio

    def _close_lifetime_stack(self) -> None:
        """Close the lifetime stack if it was ever used (a closed ExitStack
        is empty: closing again does nothing)."""
        if self._lifetime_stack is not None:
            self._lifetime_stack.close()

    def __repr__(self) -> str:
        return f"<Actor {self.name!r} uid={self.aid.uuid[:8]} pid={self.aid.pid}>"


class IpcServer:
    """A view of the channels an actor serves (``Actor.ipc_server``).

    ``has_peers()`` is True while another actor is connected: in the root,
    any actor of the tree (or registered from another program); in an
    actor, its parent at least, for as long as the actor runs.
    ``accept_addrs`` is ``Actor.accept_addrs``."""

    __slots__ = ("_actor",)

    def __init__(self, actor: Actor):
        self._actor = actor

    @property
    def accept_addrs(self) -> list[tuple[str, Any]]:
        return self._actor.accept_addrs

    def has_peers(self) -> bool:
        if not self._actor.is_root:
            return True
        from subactor.discovery import _hub

        hub = _hub._hub
        return hub is not None and hub.root is self._actor and len(hub.members) > 1

    def __repr__(self) -> str:
        return f"<IpcServer of {self._actor!r} peers={self.has_peers()}>"


_current: Actor | None = None     # the actor of this interpreter now: its long-lived actor, or the
                                  # root actor while a root runtime is open (None otherwise)
_is_actor = False                 # this interpreter runs a long-lived actor (set_current)
_root: Actor | None = None        # the root actor while a root runtime is open
_root_opened = 0                  # open_root_actor / implicit open_nursery blocks now open
_root_vars: dict = {}             # what the open root runtime was given (get_runtime_vars)
_last: Actor | None = None        # the last root actor that ended (for NoRuntime's message)
_child_process = False            # this is a process-backend child (see mark_child_process)
_infected = False                 # this interpreter's actor runs trio as asyncio's guest (see _aio)


def in_actor() -> bool:
    """True inside any actor of subactor (a long-lived one, a pool worker,
    a one-shot), False in the root's main interpreter."""
    if _is_actor or _child_process:
        return True
    from subactor import _ext

    return _ext.current_actor() is not None


def current_actor(err_on_no_runtime: bool = True) -> Actor | None:
    """The actor the calling code runs in: inside a long-lived actor that
    actor, in the root the root actor while a root runtime is open (see
    the module's doc). Elsewhere :class:`NoRuntime`, or None if
    ``err_on_no_runtime`` is false."""
    actor = _current
    if actor is None and err_on_no_runtime:
        from subactor._exceptions import NoRuntime

        if in_actor():
            where = ("this is a worker of the pool or a one-shot actor (run_sync, run_in_subinterpreter, "
                     "spawn), which runs a function and is no actor of the tree")
        else:
            where = ("no root runtime is open in this process: open one with subactor.open_root_actor() "
                     "or subactor.open_nursery()")
            if _last is not None:
                where += f" (the last root actor, {_last!r}, has ended)"
        raise NoRuntime(f"no actor runtime here: {where}")
    return actor


def is_root_process() -> bool:
    """True in the root of the actor tree (the program's own process, in
    its main interpreter), whether or not a root runtime is open; False in
    any actor."""
    return not in_actor()


_debug = False                    # debug_mode is on in this actor (see subactor.devx)


def debug_mode() -> bool:
    """Whether the debugger integration is on in this actor: in the root
    while a root runtime opened with ``debug_mode=True`` is open, in an
    actor when its tree or its ``start_actor(debug_mode=True)`` turned it
    on (see :mod:`subactor.devx`)."""
    return _debug


def set_debug_mode(on: bool) -> None:
    global _debug
    _debug = bool(on)


def get_runtime_vars() -> dict[str, Any]:
    """A copy of this actor's runtime variables, by tractor's names:
    ``_is_root``, ``_debug_mode``, ``_is_infected_aio`` (this actor's
    trio runs as asyncio's guest), ``_registry_addrs`` (what
    ``open_root_actor`` was given)."""
    return {
        "_is_root": is_root_process(),
        "_debug_mode": debug_mode(),
        "_is_infected_aio": _infected,
        "_registry_addrs": list(_root_vars.get("registry_addrs") or ()),
    }


def open_root(*, explicit: bool, name: str = "root", enable_modules=(), registry_addrs=None) -> Actor:
    """Enter a root runtime block (see :func:`subactor._root.open_root_actor`):
    the root actor record is made by the first. Returns the root actor."""
    global _root, _root_opened, _root_vars, _current
    from subactor._exceptions import RuntimeFailure

    if in_actor():
        raise RuntimeFailure("open_root_actor() in an actor: only the root process opens the root runtime "
                           "(open_nursery() inside an actor needs none)")
    if _root is not None and explicit:
        raise RuntimeFailure(f"open_root_actor(): a root runtime is already open here ({_root!r}); "
                           f"the tree has one root")
    if _root is None:
        import uuid

        _root = Actor(name, uuid.uuid4().hex, is_root=True)
        _root.enable_modules = list(enable_modules)
        _root._infected_aio = _infected
        _root_vars = {"registry_addrs": registry_addrs}
        _current = _root
    _root_opened += 1
    return _root


def close_root() -> None:
    """Leave a root runtime block; the last one ends the root actor (its
    lifetime stack is closed, errors of its callbacks propagate)."""
    global _root, _root_opened, _root_vars, _last, _current
    _root_opened -= 1
    if _root_opened == 0 and _root is not None:
        actor, _root, _last, _root_vars, _current = _root, None, _root, {}, None
        actor._close_lifetime_stack()


def set_infected(on: bool) -> None:
    """This interpreter's trio runs as asyncio's guest from now on (an
    infected actor), or, in the root, for as long as
    ``run_as_asyncio_guest`` runs."""
    global _infected
    _infected = bool(on)
    for actor in (_current, _root):
        if actor is not None:
            actor._infected_aio = _infected


class _RuntimeVars:
    """A read-only view of :func:`get_runtime_vars` under tractor's private
    name (``tractor.runtime._state._runtime_vars``), which tractor
    programs read."""

    def __getitem__(self, key: str):
        return get_runtime_vars()[key]

    def get(self, key: str, default=None):
        return get_runtime_vars().get(key, default)

    def __contains__(self, key) -> bool:
        return key in get_runtime_vars()

    def __iter__(self):
        return iter(get_runtime_vars())

    def __len__(self) -> int:
        return len(get_runtime_vars())

    def __repr__(self) -> str:
        return f"_runtime_vars({get_runtime_vars()!r})"


_runtime_vars = _RuntimeVars()


def set_current(actor: Actor) -> None:
    """The long-lived actor of this interpreter (set once, by its runtime)."""
    global _current, _is_actor
    _current = actor
    _is_actor = True


def in_child_process() -> bool:
    """True in a process-backend child."""
    return _child_process


def mark_child_process() -> None:
    """Called first thing in a process-backend child: nothing in it is the
    root, also before (or without) its actor record."""
    global _child_process
    _child_process = True
