"""The actor nursery: starts actors, supervises them, ends them.

Every actor of a nursery has a supervisor (:class:`_Child`) running as a
task of the nursery's trio nursery. It routes the actor's messages (the
portal's pump) inside a cancel scope of its own; when the actor leaves on
its own the pump ends, and when that scope is cancelled
(``portal.cancel_actor()``, ``an.cancel()``, an error, or the cancellation
of an enclosing scope, Ctrl-C included) the supervisor takes the actor down
the ladder of :mod:`subactor._ladder`: cancel (in band, ``cancel_actor``
answered by ``bye``, and out of band), interrupt at ``grace``, abandon at
``kill_after``, both counted from the start of the ladder. Each actor has
its own ladder; they all run at once.

The nursery block waits for all its actors, as tractor's does: actors from
``run_in_actor`` end after their function returns; actors from
``start_actor`` run until cancelled. Errors (one-cancels-all):

- an error in the block cancels every actor of the nursery;
- a ``run_in_actor`` actor's failure does not cancel its ``run_in_actor``
  siblings: each runs to its end and every failure is kept, as tractor
  collects them. Once none of them is running any more, a failure among
  them cancels what is left: the block, if it still runs, and the
  ``start_actor`` actors. The block re-raising such a failure (from
  ``portal.wait_for_result()``) is that same failure, not a new error of
  the block: the nursery goes on waiting for the other ``run_in_actor``
  actors.

The block raises what failed: a lone error bare, several distinct ones as
one flat group. What the nursery caused itself (the cancellation of the
actors, and the errors their callers got from it) never appears in it.
"""
from __future__ import annotations

import os
import sys
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import trio

from subactor import _tree

from subactor import _ext, _ladder, _main_script, _root, _spawn, _state
from subactor.discovery import _hub
from subactor._exceptions import ActorNotAvailable, ContextCancelled
from subactor._ladder import DEFAULT_GRACE, DEFAULT_KILL_AFTER
from subactor._portal import Portal, check_remote_fn, check_sendable
from subactor._transport import CLEANUP_WAIT, TrioChannel


def _lifecycle_log():
    """The nursery's logger if logging is in use (``subactor.log`` was
    imported, or this actor was given a log level), else None: nothing is
    imported for it otherwise."""
    if "subactor.log" not in sys.modules:
        actor = _state._current
        if (actor is None or actor.loglevel is None) and not os.environ.get("SUBACTOR_LOGLEVEL"):
            return None
    from subactor import log

    return log.get_logger("subactor.nursery")


def _main_path() -> str | None:
    """The program's main script, for an actor to load its functions: this
    process's ``__main__`` file, or in an actor the one its parent gave it
    (an actor's grandchildren call the same script's functions)."""
    mp = sys.modules.get("__mp_main__")
    if getattr(mp, "_subactor_parent_main", False) and getattr(mp, "__file__", None):
        return mp.__file__
    if _state.in_actor():
        return _state.current_actor()._parent_main_data.get("path")
    return _main_script.main_file()


def _check_modules(enable_modules, label: str = "enable_modules") -> list[str]:
    if enable_modules is None:
        return []
    if isinstance(enable_modules, str):
        raise TypeError(f"{label} must be a list of module names, not a str: write "
                        f"{label}=[{enable_modules!r}]")
    try:
        mods = list(enable_modules)
    except TypeError:
        raise TypeError(f"{label} must be a list of module names, not "
                        f"{type(enable_modules).__name__}") from None
    for m in mods:
        if not isinstance(m, str) or not m:
            raise TypeError(f"{label} must hold module names (non-empty str), got {m!r}")
    # In an actor, the program's main script is loaded as __mp_main__ (its
    # ``__name__`` there): to the tree it is __main__.
    return ["__main__" if m == "__mp_main__" else m for m in mods]


def _loglevel(level, default):
    """The log level an actor gets: ``level``, else ``default`` (its
    nursery's, else its parent's); checked here, so that a bad one fails in
    the caller. None when no logging was asked for (SUBACTOR_LOGLEVEL
    unset): the actor then imports nothing for logging."""
    if level is None:
        level = default if default is not None else getattr(_state.current_actor(), "loglevel", None)
    if level is None and not os.environ.get("SUBACTOR_LOGLEVEL"):
        return None
    from subactor import log

    log.check_loglevel(os.environ.get(log.ENV_LOGLEVEL) or None, log.ENV_LOGLEVEL)
    return log.check_loglevel(level)


def _check_actor_config(where: str, *, debug_mode=None, infect_asyncio=False, enable_transports=None,
                        bind_addrs=None, inherit_parent_main=True, proc_kwargs=None) -> None:
    """tractor's actor-configuring keywords of start_actor/run_in_actor:
    what subactor does not do yet is a NotImplementedError, what it has no
    use for (transports, addresses: one process, no sockets) is accepted."""
    _root.check_debug_mode(debug_mode, where)
    if not isinstance(infect_asyncio, bool):
        raise TypeError(f"{where}(infect_asyncio=...) must be a bool, got {infect_asyncio!r}")
    if enable_transports is not None and (isinstance(enable_transports, str)
                                          or not all(isinstance(t, str) for t in enable_transports)):
        raise TypeError(f"{where}(enable_transports=...) must be a list of transport names, "
                        f"got {enable_transports!r}")
    if bind_addrs is not None and isinstance(bind_addrs, (str, bytes)):
        raise TypeError(f"{where}(bind_addrs=...) must be a list of addresses, got {bind_addrs!r}")
    if not isinstance(inherit_parent_main, bool):
        raise TypeError(f"{where}(inherit_parent_main=...) must be a bool, got {inherit_parent_main!r}")
    if proc_kwargs is not None and not isinstance(proc_kwargs, dict):
        raise TypeError(f"{where}(proc_kwargs=...) must be a dict, got {type(proc_kwargs).__name__}")
    if proc_kwargs:
        raise NotImplementedError(f"{where}(proc_kwargs={proc_kwargs!r}): subactor does not pass keywords "
                                  f"to the spawning of an actor")


class _Child:
    """The nursery's side of one actor: its handle, its supervisor task's
    cancel scope, its ladder, and the events its portal and the nursery
    wait on. The portal asks it to stop (:meth:`stop`); the nursery does
    (:meth:`request_stop`)."""

    def __init__(self, nursery: "ActorNursery", handle, portal: Portal, *, grace: float, kill_after: float):
        self.nursery = nursery
        self.handle = handle
        self.portal = portal
        self.grace = grace
        self.kill_after = kill_after
        self.scope = trio.CancelScope()   # cancelling it starts the ladder
        self.ladder: _ladder.Ladder | None = None
        self.stop_reason: str | None = None  # why it ends: "nursery", "portal", "done" (its run_in_actor
                                             # call is over) or "left" (it left on its own)
        self.settled = trio.Event()       # it acknowledged a cancel (its calls are over), or is gone
        self.ended = trio.Event()         # it is gone (ended, or abandoned)
        self.is_ria = False               # started by run_in_actor: it has a result
        self.result: tuple[bool, Any] | None = None  # run_in_actor: (ok, value) once known
        self.result_ready = trio.Event()
        self.hurried = False              # hard_kill / hurry before its ladder began

    @property
    def rung(self) -> int:
        return self.ladder.rung if self.ladder is not None else 1

    def request_stop(self, reason: str) -> None:
        """Start the ladder (idempotent; the first reason sticks)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.scope.cancel()

    async def stop(self) -> bool:
        """``portal.cancel_actor()``: start the ladder and wait (shielded,
        bounded by the ladder) until the actor acknowledged or is gone.
        True unless it had to be abandoned."""
        self.request_stop("portal")
        with trio.CancelScope(shield=True):
            await self.settled.wait()
        return self.rung < 3

    def set_result(self, ok: bool, value: Any) -> None:
        if self.result is None:
            self.result = (ok, value)
            self.result_ready.set()

    def hurry(self) -> None:
        """Straight to the interrupt, and abandon soon after."""
        self.hurried = True
        if self.ladder is not None:
            self.ladder.hurry()

    @trio.lowlevel.enable_ki_protection
    async def supervise(self) -> None:
        left = False
        try:
            with self.scope:
                await self.portal._pump()
                left = True
        finally:
            # Also when an enclosing scope was cancelled: its Cancelled
            # passes through self.scope, and the actor must still end.
            if self.stop_reason is None:
                self.stop_reason = "left" if left else "nursery"
            portal = self.portal
            await self._end()
        if left and not self.is_ria and self.stop_reason == "left" and not portal._told:
            how = _how_it_ended(self.handle)
            if how:
                # A start_actor actor that failed on its own (its enabled
                # modules did not import, its runtime broke) while no call
                # was waiting on it to hear it: an error of the nursery,
                # not a silent end. (A call that heard it raised it.)
                raise ActorNotAvailable(f"actor {portal.name!r} ended on its own{how}")

    def _unregister(self) -> None:
        """It said bye, or is gone: it serves no one any more, so it leaves
        the registry now (its hub channel's end would say so too, a little
        later)."""
        hub = _hub.local()
        if hub is not None and self.portal is not None:
            hub.gone(self.portal.uid)

    async def _route_to_the_end(self, routed: trio.Event) -> None:
        """During the ladder: keep routing the actor's messages (the final
        messages of its cancelled calls) until it says bye, or its channel
        ends because it is gone, whatever rung it is on."""
        try:
            if await self.portal._pump():
                # Bye: its calls are over. Told to the ladder at once, not
                # through cooperate() below: on a starved loop that task may
                # run only after the interrupt's deadline has passed.
                self._unregister()
                self.settled.set()
                self.ladder.ack()
        finally:
            routed.set()

    def _log_end(self, lg, ladder, took: float) -> None:
        """How the ladder ended the actor: its rungs, with timings, at
        ``cancel``; an abandon at ``warning``, naming what it was stuck in."""
        portal = self.portal
        name = portal.name
        ms = took * 1e3
        if ladder.rung == 3:
            stuck = sorted(set(portal.running.values())) or ["its own code"]
            lg.warning(f"actor {name!r} abandoned at rung 3 after {ms:.0f} ms (kill_after {self.kill_after} s), "
                       f"stuck in {', '.join(stuck)}; its thread is left blocked")
        elif ladder.rung == 2:
            lg.cancel(f"actor {name!r} interrupted at rung 2 after its {self.grace} s grace; gone in {ms:.0f} ms")
        else:
            lg.cancel(f"actor {name!r} ended at rung 1 (cooperative cancel) in {ms:.1f} ms")
        lg.runtime(f"actor {name!r} ended{_how_it_ended(self.handle) or ''}")

    async def _end(self) -> None:
        """The ladder (shielded, bounded), then the bookkeeping."""
        portal = self.portal
        ladder = self.ladder = _ladder.Ladder(self.handle, grace=self.grace, kill_after=self.kill_after)
        ladder.hurried = self.hurried
        routed = trio.Event()
        t0 = trio.current_time()
        lg = _lifecycle_log()
        if lg is not None:
            lg.cancel(f"ending actor {portal.name!r} ({self.stop_reason}): grace {self.grace} s, "
                      f"kill_after {self.kill_after} s")

        async def cooperate() -> bool:
            # Rung 1, in band: ask the actor to leave; it answers bye once
            # its calls are over.
            with trio.move_on_after(CLEANUP_WAIT):
                try:
                    await portal.channel.send({"t": "cancel_actor", "by": list(_state.current_actor().uid)})
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return False
            await routed.wait()
            return self.settled.is_set()

        try:
            with trio.CancelScope(shield=True):
                async with trio.open_nursery() as router:
                    if portal._usable_for_cancel():
                        router.start_soon(self._route_to_the_end, routed)
                        await ladder.run(cooperate)
                    else:
                        routed.set()
                        await ladder.run()
                    # Gone now: its end of the channel is closed or broken,
                    # so the router drains what is left and stops.
                    with trio.move_on_after(CLEANUP_WAIT):
                        await routed.wait()
                    router.cancel_scope.cancel()
        finally:
            if lg is not None:
                self._log_end(lg, ladder, trio.current_time() - t0)
            self._unregister()
            portal._actor_ended(_how_it_ended(self.handle))
            if self.is_ria:
                self.set_result(False, ActorNotAvailable(
                    f"actor {portal.name!r} ended before returning a result{_how_it_ended(self.handle)}"))
            self.ended.set()
            self.settled.set()
            # An ended actor is not the nursery's business any more; a
            # long-lived nursery that starts many actors must not grow. And
            # the portal (which the user may keep) must not keep this
            # record in a reference cycle: its handle holds two descriptors
            # until it is freed.
            self.nursery._children.discard(self)
            self.portal = None


class ActorNursery:
    """Made by :func:`open_nursery`; starts and supervises actors."""

    def __init__(self, tn: trio.Nursery, *, grace: float, kill_after: float, backend: str = "subint",
                 loglevel: str | None = None):
        self._tn = tn
        self.loglevel = loglevel  # the default log level of its actors
        self.backend = backend
        self.grace = grace
        self.kill_after = kill_after
        self._children: set[_Child] = set()
        _tree.track(self)              # for subactor.print_tree()
        self.cancel_called: bool = False  # it cancelled its actors (an.cancel(), an error, a cancellation)
        self._errors: list[BaseException] = []  # what failed, in order: run_in_actor actors, the block
        self._ria_running = 0          # run_in_actor actors whose call is not over
        # It opened the root runtime itself (no root runtime was open in
        # the root process); tractor's name.
        self._implicit_runtime_started = False

    def _is_ria_failure(self, exc: BaseException) -> bool:
        return any(e is exc for e in self._errors)

    def _is_reraise(self, exc: BaseException) -> bool:
        """The block raised run_in_actor failures only: one of them, or a
        group of them (a trio nursery of the block that awaited several
        results), with at most the cancellations of its own tasks."""
        leaves = list(_leaves(exc))
        return (any(self._is_ria_failure(e) for e in leaves)
                and all(self._is_ria_failure(e) or isinstance(e, trio.Cancelled) for e in leaves))

    def _keep(self, exc: BaseException) -> None:
        if not self._is_ria_failure(exc):
            self._errors.append(exc)

    def _ria_over(self) -> None:
        """A run_in_actor actor's call is over: once none is running, a
        failure among them cancels what is left (the block and the
        start_actor actors)."""
        self._ria_running -= 1
        if self._ria_running == 0 and self._errors:
            self.cancel_called = True
            self._tn.cancel_scope.cancel()

    @trio.lowlevel.enable_ki_protection
    async def start_actor(
        self,
        name: str,
        *,
        enable_modules: list[str] | tuple[str, ...] = (),
        shared_gil: bool = False,
        backend: str | None = None,
        grace: float | None = None,
        kill_after: float | None = None,
        sleep_wakes_on_cancel: bool = False,
        loglevel: str | None = None,
        debug_mode: bool | None = None,
        rpc_module_paths: list[str] | None = None,
        infect_asyncio: bool = False,
        enable_transports: list[str] | None = None,
        bind_addrs: list[Any] | None = None,
        inherit_parent_main: bool = True,
        proc_kwargs: dict[str, Any] | None = None,
        host: Any = None,
    ) -> Portal:
        """Start a long-lived actor that serves calls to the functions of
        ``enable_modules`` until it is cancelled.

        ``grace``/``kill_after`` override the nursery's ladder deadlines for
        this actor; ``sleep_wakes_on_cancel`` makes ``time.sleep`` in the
        actor end on a cancel request (so a sleeping actor ends at rung 1).
        ``inherit_parent_main=False``: the actor never loads the parent's
        ``__main__`` script (functions defined there cannot be called in
        it). ``loglevel``: the actor's log level (see :mod:`subactor.log`);
        by default the nursery's, else this actor's own. ``infect_asyncio=True``: the actor runs an
        asyncio loop with trio as its guest, so that its code can use :mod:`subactor.to_asyncio`
        (see :mod:`subactor._aio`). ``enable_transports`` and ``bind_addrs`` are accepted and mean
        nothing here (its root listens for it); ``debug_mode=True`` turns the debugger on for this
        actor (and its own children), whatever the tree's (see :mod:`subactor.devx`); a non-empty
        ``proc_kwargs`` is a NotImplementedError. ``host``: the address of a daemon (a networked root, ``python -m
        subactor daemon``), ``"tcp://HOST:PORT"`` or a tuple: the actor runs there (``backend``
        there), with the same portal and ladder (see subactor.discovery._remote).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"actor name must be a non-empty str, got {name!r}")
        _check_actor_config("start_actor", debug_mode=debug_mode, infect_asyncio=infect_asyncio,
                            enable_transports=enable_transports, bind_addrs=bind_addrs,
                            inherit_parent_main=inherit_parent_main, proc_kwargs=proc_kwargs)
        mods = _check_modules(enable_modules) + _check_modules(rpc_module_paths, "rpc_module_paths")
        grace, kill_after = _ladder.check_deadlines(self.grace if grace is None else grace,
                                                    self.kill_after if kill_after is None else kill_after)
        backend = _spawn.check_backend("subint-shared-gil" if shared_gil else (backend or self.backend))
        loglevel = _loglevel(loglevel, self.loglevel)
        await trio.lowlevel.checkpoint()
        if self.cancel_called:
            raise RuntimeError("this actor nursery was cancelled: it starts no more actors")
        if host is not None:
            from subactor.discovery import _remote, check_addr

            check_addr(host, "start_actor", "host")
            return await _remote.start_actor(self, name, host, mods=mods, backend=backend, loglevel=loglevel,
                                             grace=grace, kill_after=kill_after, sleep_wakes=sleep_wakes_on_cancel,
                                             aio=infect_asyncio)
        uid = uuid.uuid4().hex
        cfg = {
            "name": name,
            "uid": uid,
            "mods": mods,
            "parent": _state.current_actor().name,
            "parent_uid": list(_state.current_actor().uid),
            "main": _main_path() if inherit_parent_main else None,
            "sleep_wakes": bool(sleep_wakes_on_cancel),
            "loglevel": loglevel,
            # The debugger (subactor.devx): on for it when its tree has it,
            # or when start_actor(debug_mode=True) asked.
            "debug": bool(_state.debug_mode() if debug_mode is None else debug_mode),
        }
        if infect_asyncio:
            cfg["aio"] = True   # its trio runs as the guest of an asyncio loop (see subactor._aio)
        # Its own link to the process's hub: its registration lives as long
        # as the link (see subactor.discovery). A subinterpreter's is a C
        # channel; a process actor's is a socket pair, and it listens on a
        # Unix socket of its own for peers. (A process actor's own children
        # are not registered: they are in another process than the hub.)
        hub = _hub.local() if not _state.in_child_process() else None
        hub_sock = listen = None
        if hub is not None and backend == "process":
            import socket

            from subactor import ipc

            await hub.serve_processes()   # process actors reach this process's actors through it
            listen = ipc.UDSAddress.get_random()
            ours, hub_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            cfg["hub_fd"] = hub_sock.fileno()
            cfg["listen"] = listen.path
        elif hub is not None:
            cfg["hub"] = hub_id = _ext.channel()
        try:
            handle, end = _spawn.spawn(backend, cfg, pass_fds=(hub_sock.fileno(),) if hub_sock else ())
        except BaseException:
            if hub_sock is not None:
                ours.close()
            elif hub is not None:
                _ext.channel_destroy(hub_id)
            raise
        finally:
            if hub_sock is not None:
                hub_sock.close()
        if listen is not None:
            hub.adopt_process(ours.detach(), name, uid, handle.pid, listen.unwrap())
        elif hub is not None:
            hub.adopt(hub_id, name, uid, os.getpid())
        # No checkpoint from here on: the actor must have its supervisor
        # before anything can cancel this task.
        lg = _lifecycle_log()
        if lg is not None:
            lg.runtime(f"spawned actor {name!r} ({backend}, pid {getattr(handle, 'pid', None) or os.getpid()}) "
                       f"serving {mods or 'nothing'}")
        portal = Portal(name, (name, uid), TrioChannel(end), backend=backend)
        # The peer's identity on the channel, as tractor's Channel.aid.
        portal.channel.aid = _state.Aid(name, uid, getattr(handle, "pid", None) or os.getpid())
        portal.channel.spawn = self._tn.start_soon
        child = _Child(self, handle, portal, grace=grace, kill_after=kill_after)
        portal._child = child
        self._children.add(child)
        self._tn.start_soon(child.supervise)
        return portal

    @trio.lowlevel.enable_ki_protection
    async def run_in_actor(self, fn: Callable, *, name: str | None = None, shared_gil: bool = False,
                           backend: str | None = None,
                           enable_modules: list[str] | tuple[str, ...] = (),
                           rpc_module_paths: list[str] | None = None,
                           loglevel: str | None = None,
                           infect_asyncio: bool = False,
                           bind_addrs: list[Any] | None = None,
                           inherit_parent_main: bool = True,
                           proc_kwargs: dict[str, Any] | None = None,
                           **kwargs: Any) -> Portal:
        """Start an actor that runs ``fn(**kwargs)`` and then ends; its result
        comes from ``portal.wait_for_result()``. A failure is raised from
        the nursery block (see the module's doc for what it cancels).

        The other keywords configure the actor, as tractor's do (see
        :meth:`start_actor`); they are never passed to ``fn``."""
        ns, qual = check_remote_fn(fn, want_context=False)
        check_sendable(kwargs, f"{ns}.{qual}")
        portal = await self.start_actor(name or getattr(fn, "__name__", "actor"),
                                        enable_modules=[ns, *_check_modules(enable_modules)],
                                        rpc_module_paths=rpc_module_paths, loglevel=loglevel,
                                        infect_asyncio=infect_asyncio, bind_addrs=bind_addrs,
                                        inherit_parent_main=inherit_parent_main, proc_kwargs=proc_kwargs,
                                        shared_gil=shared_gil, backend=backend)
        portal._child.is_ria = True
        # Counted now, not when its task first runs: a sibling's failure
        # must not find "none running" in between.
        self._ria_running += 1
        self._tn.start_soon(self._run_ria, portal._child, portal, ns, qual, kwargs)
        return portal

    @trio.lowlevel.enable_ki_protection
    async def _run_ria(self, child: _Child, portal: Portal, ns: str, qual: str, kwargs: dict) -> None:
        try:
            # Shielded: the call ends when the actor answers, or when it is
            # gone (its portal then fails the call), and the actor's own
            # ladder bounds both. So a failure of its own that arrives while
            # the nursery tears down is still heard, and kept.
            with trio.CancelScope(shield=True):
                value = await portal.run_from_ns(ns, qual, **kwargs)
        except BaseException as exc:
            if not (child.stop_reason in ("nursery", "portal")
                    and isinstance(exc, (ContextCancelled, ActorNotAvailable))):
                # Not what the nursery's own cancel of it (an error
                # elsewhere, an.cancel(), Ctrl-C, portal.cancel_actor())
                # made its call get: a failure of its own. Kept before the
                # result is set, so that the block re-raising it from
                # wait_for_result() is recognised.
                self._keep(exc)
            child.set_result(False, exc)
        else:
            child.set_result(True, value)
        finally:
            # Its work is done (or failed): the actor ends now.
            child.request_stop("done")
            self._ria_over()

    @trio.lowlevel.enable_ki_protection
    async def cancel(self, hard_kill: bool = False) -> None:
        """Cancel every actor of this nursery and wait until they ended
        (each through its ladder; ``hard_kill`` skips the cooperative rung)."""
        self.cancel_called = True
        children = list(self._children)
        for child in children:
            if hard_kill:
                child.hurry()
            child.request_stop("nursery")
        with trio.CancelScope(shield=True):
            for child in children:
                await child.ended.wait()


def _how_it_ended(handle) -> str:
    """A few words on how an actor ended, for errors of calls it never
    answered ("" if it ended cleanly or is not done)."""
    if not handle.done:
        return " (it was abandoned)" if handle.state in ("abandoned", "killed") else ""
    try:
        out = handle.outcome()
    except Exception:
        return ""
    if out[0] == "ok":
        return ""
    if out[0] == "interrupted":
        return " (it was interrupted)"
    if out[0] == "killed":
        return " (it was killed at its hard deadline)"
    detail = ": ".join(str(x) for x in out[1:3] if x)
    return f" (it failed: {detail})" if detail else f" ({out[0]})"


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


def _collapse(kept: list[BaseException], caught: BaseException | None) -> BaseException | None:
    """What the nursery block raises: the failures it kept (its
    run_in_actor actors') and the errors in what its trio nursery raised
    (``caught``: the block's error, with the cancellations), distinct by
    identity (the block may re-raise an actor's failure), without the
    cancellations. A lone error is raised bare, as a tractor user expects
    ``except RemoteActorError`` to work; several as one flat group; none
    (only cancellations) as the first cancellation, so that the scope that
    caused it catches it; nothing at all as None."""
    seen: set[int] = set()
    real: list[BaseException] = []
    cancels: list[BaseException] = []
    kis = 0
    for e in [*kept, *(_leaves(caught) if caught is not None else ())]:
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, trio.Cancelled):
            cancels.append(e)
        elif isinstance(e, KeyboardInterrupt):
            # Ctrl-C may reach the block twice (delivered to two tasks):
            # the user sees one KeyboardInterrupt.
            if not kis:
                real.append(e)
            kis += 1
        else:
            real.append(e)
    if len(real) == 1:
        return real[0]
    if real:
        return BaseExceptionGroup("errors in an actor nursery", real)
    if cancels:
        return cancels[0]
    return caught


@asynccontextmanager
@trio.lowlevel.enable_ki_protection
async def open_nursery(*, grace: float = DEFAULT_GRACE, kill_after: float = DEFAULT_KILL_AFTER,
                       backend: str = "subint", loglevel: str | None = None,
                       **root_kwargs: Any) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery; in the root, the root runtime is opened too
    if none is open (see :func:`subactor._root.open_root_actor`).

    ``grace``: seconds an actor gets to end after a cancel request before it
    is interrupted; ``kill_after``: seconds after the request when it is
    abandoned. ``backend``: "subint" (default), "subint-shared-gil" or
    "process", the default for this nursery's actors. tractor's keywords
    go to the root runtime when this nursery opens it (``name``,
    ``loglevel``, ``debug_mode``, ``registry_addrs``, ``start_method``,
    ...; see ``open_root_actor``); any other keyword is a TypeError naming
    it. In the root actor's main thread, Ctrl-C cancels the whole tree (see
    :mod:`subactor._sigint`). ``loglevel``: the default log level of the
    nursery's actors; in the root actor, also the root's (see
    :mod:`subactor.log`). What the block raises: see the module's doc.
    """
    _root.check_keywords(root_kwargs, "open_nursery", ("grace", "kill_after", "backend", "loglevel"))
    grace, kill_after = _ladder.check_deadlines(grace, kill_after)
    _spawn.check_backend(backend)
    async with _root.maybe_open_root(root_kwargs, "open_nursery") as implicit:
        actor = _state.current_actor()
        loglevel = _loglevel(loglevel, getattr(actor, "loglevel", None))
        if actor.is_root and (loglevel is not None or os.environ.get("SUBACTOR_LOGLEVEL")):
            from subactor import log

            log._apply_actor_level(actor, loglevel)
        an = None
        caught = None
        try:
            async with trio.open_nursery() as tn:
                an = ActorNursery(tn, grace=grace, kill_after=kill_after, backend=backend, loglevel=loglevel)
                an._implicit_runtime_started = implicit
                try:
                    yield an
                except BaseException as exc:
                    if not an._is_reraise(exc):
                        # The block's own error (or a cancellation, Ctrl-C):
                        # trio's nursery cancels every actor's supervisor.
                        an.cancel_called = True
                        raise
                    # The block re-raised run_in_actor failures: they are
                    # kept already, and the nursery goes on waiting for the
                    # other run_in_actor actors.
        except BaseException as exc:
            caught = exc
        to_raise = _collapse(an._errors if an is not None else [], caught)
        if to_raise is None:
            return
        fresh = isinstance(to_raise, BaseExceptionGroup) and to_raise is not caught
        context = None if fresh else to_raise.__context__
        try:
            raise to_raise
        finally:
            # Raising here, in __aexit__, chains it to the exception being
            # handled (the group it came out of): the user sees one error
            # with its own context, not the group's traceback before it.
            to_raise.__context__ = context
