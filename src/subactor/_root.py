"""The root runtime: ``open_root_actor()``.

The root actor is the program's own process (its main interpreter), the
parent of every actor of the tree. Its runtime is open inside
``open_root_actor()``, or inside an ``open_nursery()`` that opened it
implicitly because none was open (see :mod:`subactor._state` for what
"a runtime" means). Opening it installs the Ctrl-C handler of
:mod:`subactor._sigint` for the current trio run; closing the last block
ends the root actor (its ``lifetime_stack`` is closed).
"""
from __future__ import annotations

import difflib
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable

import trio

from subactor import _sigint, _state

# tractor's open_root_actor keywords (and older spellings) that configure
# what subactor does not have (a registry, transports, the debugger's
# helpers): accepted and ignored, so that tractor programs start unchanged.
IGNORED = frozenset({
    "arbiter_addr", "reg_addr", "registry_addr", "start_method", "maybe_enable_greenback", "enable_stack_on_sig",
    "ensure_registry", "hide_tb", "debug_filter",
})
# What the root keeps: its name, its log level (subactor.log), and the
# modules it would serve.
KEPT = ("name", "loglevel", "debug_mode", "enable_modules", "rpc_module_paths",
        "registry_addrs", "enable_transports", "tpt_bind_addrs", "warm_interpreters")


def check_keywords(kwargs: dict, where: str, own: tuple[str, ...] = ()) -> None:
    """Refuse a keyword that is neither ``own`` nor one of tractor's root
    keywords, naming it and the closest known one."""
    known = (*own, *KEPT, *sorted(IGNORED))
    for k in kwargs:
        if k not in known:
            hint = difflib.get_close_matches(k, known, n=1)
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}"
                            + (f"; did you mean {hint[0]!r}?" if hint else ""))


def check_debug_mode(debug_mode, where: str) -> bool | None:
    """``debug_mode`` checked: None (not given), True or False."""
    if debug_mode is None or isinstance(debug_mode, bool):
        return debug_mode
    raise TypeError(f"{where}(debug_mode=...) must be a bool, got {debug_mode!r}")


def check_name(name, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}(name=...) must be a non-empty str, got {name!r}")
    return name


def _root_config(kwargs: dict, where: str) -> dict:
    from subactor import _warm
    from subactor._nursery import _check_modules

    name = kwargs.get("name")
    warm = _warm.check_size(kwargs.get("warm_interpreters"), where)
    return {
        "warm": _warm.size_from_env() if warm is None else warm,
        "debug_mode": check_debug_mode(kwargs.get("debug_mode"), where),
        "name": "root" if name is None else check_name(name, where),
        "enable_modules": _check_modules(kwargs.get("enable_modules"))
        + _check_modules(kwargs.get("rpc_module_paths"), "rpc_module_paths"),
        "registry_addrs": _addr_list(kwargs.get("registry_addrs"), where, "registry_addrs"),
        "net": {"transports": _transports(kwargs.get("enable_transports"), where),
                "bind": _addr_list(kwargs.get("tpt_bind_addrs"), where, "tpt_bind_addrs")},
    }


def _addr_list(addrs, where: str, label: str) -> list | None:
    """A list of addresses (one alone is taken as a list of one), each
    checked; None if not given."""
    if addrs is None:
        return None
    from subactor.discovery import check_addr

    one = isinstance(addrs, str) or (isinstance(addrs, tuple) and len(addrs) == 2
                                     and not isinstance(addrs[0], (list, tuple)))
    if not one and not isinstance(addrs, (list, tuple)):
        raise TypeError(f"{where}({label}=...) must be a list of addresses, got {addrs!r}")
    out = [addrs] if one else list(addrs)
    for a in out:
        check_addr(a, where, label)
    return out


def _transports(ts, where: str) -> list:
    if ts is None:
        return []
    if isinstance(ts, str) or not isinstance(ts, (list, tuple)):
        raise TypeError(f"{where}(enable_transports=...) must be a list such as ['tcp'] or ['uds'], got {ts!r}")
    for t in ts:
        if t not in ("tcp", "uds"):
            raise ValueError(f"{where}(enable_transports=...): unknown transport {t!r} (subactor has 'tcp' and 'uds')")
    return list(ts)


def _check_loglevel(level):
    """``level`` checked (a bad one fails before the root opens), or None."""
    if level is None:
        return None
    from subactor import log

    return log.check_loglevel(level)


def _apply_loglevel(actor, level) -> None:
    """The root's log level, as the nursery sets it (SUBACTOR_LOGLEVEL
    wins; nothing is imported for logging when neither is set)."""
    if level is not None or os.environ.get("SUBACTOR_LOGLEVEL"):
        from subactor import log

        log._apply_actor_level(actor, level)


@asynccontextmanager
@trio.lowlevel.enable_ki_protection
async def open_root_actor(**kwargs: Any) -> AsyncIterator[_state.Actor]:
    """Open the root runtime explicitly; yields the root :class:`Actor`.

    Takes tractor's keywords: ``name`` (the root's name, "root" by
    default), ``loglevel``, ``enable_modules`` / ``rpc_module_paths``
    (what it serves to peers) and ``debug_mode`` (``True`` turns the
    debugger on for the tree: see :mod:`subactor.devx`);
    ``registry_addrs``, ``enable_transports`` (['tcp'], ['uds']) and
    ``tpt_bind_addrs`` put the root on the network: it listens, and it is
    the registrar at the first registry address it can bind, or registers
    its tree with the registrar there (see subactor.discovery._net);
    ``warm_interpreters=N`` keeps N warm interpreters ready for
    ``start_actor`` / ``run_in_actor`` while the root is open (default:
    ``SUBACTOR_WARM_INTERPRETERS``, else 0; see subactor._warm);
    ``arbiter_addr``, ``start_method``, ``hide_tb`` and the debugger's
    helpers are accepted and ignored. Any other keyword is a
    TypeError naming it. Only the root process opens it, once at a time:
    inside an actor, or inside an open root runtime, it is a RuntimeError.
    """
    check_keywords(kwargs, "open_root_actor")
    cfg = _root_config(kwargs, "open_root_actor")
    loglevel = _check_loglevel(kwargs.get("loglevel"))
    await trio.lowlevel.checkpoint()
    net = cfg.pop("net")
    debug = cfg.pop("debug_mode")
    warm = cfg.pop("warm")
    actor = _state.open_root(explicit=True, **cfg)
    was_debug = _state.debug_mode()
    if debug is not None:
        _state.set_debug_mode(debug)
    try:
        _turn_on_warm(warm)
        _apply_loglevel(actor, loglevel)
        _sigint.install()
        _open_hub(actor)
        await _open_node(actor, cfg["registry_addrs"], net)
        with _crash_repl():
            yield actor
    finally:
        _state.set_debug_mode(was_debug)
        _close(actor)


@asynccontextmanager
@trio.lowlevel.enable_ki_protection
async def maybe_open_root(kwargs: dict, where: str):
    """What ``open_nursery`` does first: in the root with no root runtime
    open, open one (with ``kwargs``, tractor's root keywords); else nothing
    (the keywords are checked all the same)."""
    cfg = _root_config(kwargs, where)
    if _state.in_actor():
        yield False
        return
    net = cfg.pop("net")
    debug = cfg.pop("debug_mode")
    warm = cfg.pop("warm")
    started = _state._root is None
    actor = _state.open_root(explicit=False, **cfg)
    was_debug = _state.debug_mode()
    if debug is not None and started:
        _state.set_debug_mode(debug)
    try:
        if started:
            _turn_on_warm(warm)
        _sigint.install()
        _open_hub(actor)
        await _open_node(actor, cfg["registry_addrs"], net)
        if started:
            with _crash_repl():
                yield started
        else:
            yield started
    finally:
        _state.set_debug_mode(was_debug)
        _close(actor)


class _crash_repl:
    """Under debug_mode, an error leaving the root runtime opens a
    post-mortem REPL in the root before it propagates (its actors are down
    by then). ``breakpoint()`` in the root is a pause_from_sync() meanwhile."""

    __slots__ = ("hook",)

    def __enter__(self):
        self.hook = None
        if _state.debug_mode():
            import sys

            from subactor.devx._debug import breakpoint_hook

            self.hook, sys.breakpointhook = sys.breakpointhook, breakpoint_hook
        return self

    def __exit__(self, typ, exc, tb):
        if self.hook is not None:
            import sys

            sys.breakpointhook = self.hook
        if exc is not None and _state.debug_mode() and isinstance(exc, Exception):
            from subactor.devx._debug import crashed

            crashed(exc)
        return False


def _open_hub(actor) -> None:
    """The first root block opens the process's hub (the registry of its
    actors, see subactor.discovery)."""
    from subactor.discovery import _hub

    if _hub._hub is None:
        _hub.open_hub(actor)


async def _open_node(actor, registry_addrs, net: dict) -> None:
    """A root given registry addresses or transports joins the network
    (see subactor.discovery._net): it listens, and it is the registrar or
    registers with it."""
    from subactor.discovery import _hub

    hub = _hub._hub
    if hub is None or hub.node is not None or not (registry_addrs or net["transports"] or net["bind"]):
        return
    from subactor.discovery._net import Node

    if net["transports"]:
        transports = net["transports"]
    else:   # the registry addresses' own transports
        from subactor import ipc

        transports = sorted({ipc.wrap_address(a).proto for a in registry_addrs or ()}) or ["tcp"]
    node = Node(hub, registry_addrs or (), transports, net["bind"] or ())
    try:
        await node.start()
    except BaseException:
        node.close()
        raise
    hub.node = node
    actor.is_registrar = node.is_registrar
    actor._net = node


def _turn_on_warm(size: int) -> None:
    """The root's reserve of warm interpreters (see subactor._warm); 0 keeps
    it off (nothing is imported for it then)."""
    if size:
        from subactor import _warm

        _warm.turn_on(size)


def _close(actor) -> None:
    """Leave a root block; the last one switches the reserve of warm
    interpreters off, closes the hub, then ends the root."""
    if _state._root_opened == 1:
        from subactor import _ext
        from subactor.discovery import _hub

        _ext.warm_configure(0)
        _hub.close_hub()
    _state.close_root()


DEFAULT_DAEMON_ADDR = ("127.0.0.1", 1616)   # tractor's default registry address


def run_daemon(enable_modules: Iterable[str], name: str | None = "root",
               registry_addrs: list[Any] | None = None, **kwargs: Any) -> None:
    """Run a long-lived root that serves ``enable_modules`` to peers and
    answers discovery, until cancelled (Ctrl-C): tractor's ``run_daemon``.

    The modules are imported first (a bad one fails here, naming it). With
    no ``registry_addrs`` it takes tractor's default, 127.0.0.1:1616: it
    becomes the registrar there, or registers with the one already there.
    Other keywords are open_root_actor's."""
    import importlib

    from subactor._nursery import _check_modules

    mods = _check_modules(enable_modules)
    check_keywords(kwargs, "run_daemon")
    for path in mods:
        importlib.import_module(path)
    kwargs["enable_modules"] = mods
    if registry_addrs is None:
        registry_addrs = [DEFAULT_DAEMON_ADDR]

    async def main():
        async with open_root_actor(name=name, registry_addrs=registry_addrs, **kwargs):
            await trio.sleep_forever()

    trio.run(main)
