"""The actor nursery: starts actors, supervises them, ends them.

Every actor of a nursery has a supervisor task in the nursery's trio
nursery. The supervisor runs the portal's message pump inside the portal's
cancel scope; when the actor leaves on its own the pump ends, and when the
scope is cancelled (``portal.cancel_actor()``, ``an.cancel()``, an error, or
the enclosing scope's cancellation) the supervisor ends the actor through a
bounded ladder, shielded but never longer than its deadlines:

1. cooperative: ``cancel_actor`` is sent; the actor cancels its calls and
   leaves; waited for up to ``grace`` seconds;
2. interrupt: ``ActorInterrupted`` is raised in the actor's code, for code
   that never yields to its event loop; waited for until ``kill_after``
   seconds after the start of the ladder;
3. abandon: the actor is marked abandoned with a warning naming it, and the
   nursery goes on.

The nursery block waits for all its actors, as tractor's does: actors from
``run_in_actor`` end after their function returns; actors from
``start_actor`` run until cancelled. An error in one actor cancels its
siblings (one-cancels-all) and is raised from the block.
"""
from __future__ import annotations

import signal
import sys
from contextlib import asynccontextmanager
from typing import Any, Callable

import trio

from subactor import _ext, _spawn, _state
from subactor._errors import RemoteActorError
from subactor._portal import Portal, check_remote_fn, check_sendable
from subactor._transport import TrioChannel

DEFAULT_GRACE = 1.0
DEFAULT_KILL_AFTER = 3.0
BACKENDS = ("subint", "subint-shared-gil", "process")
# After a hurry, how long an interrupted actor gets before it is abandoned.
HURRY_WAIT = 0.1


class ActorNursery:
    """Made by :func:`open_nursery`; starts and supervises actors."""

    def __init__(self, tn: trio.Nursery, *, grace: float, kill_after: float, backend: str = "subint"):
        self._tn = tn
        self.backend = backend
        self.grace = grace
        self.kill_after = kill_after
        self._portals: list[Portal] = []
        self.cancel_called = False
        self.errors: dict[str, BaseException] = {}

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
        debug_mode: bool = False,
        rpc_module_paths: list[str] | None = None,
    ) -> Portal:
        """Start a long-lived actor that serves calls to the functions of
        ``enable_modules`` until it is cancelled.

        ``grace``/``kill_after`` override the nursery's ladder deadlines for
        this actor; ``sleep_wakes_on_cancel`` makes ``time.sleep`` in the
        actor end on a cancel request (so a sleeping actor ends at rung 1).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"actor name must be a non-empty str, got {name!r}")
        mods = list(enable_modules or ()) + list(rpc_module_paths or ())
        for m in mods:
            if not isinstance(m, str):
                raise TypeError(f"enable_modules must hold module names (str), got {m!r}")
        await trio.lowlevel.checkpoint()
        import uuid

        parent = _state.current_actor()
        uid = uuid.uuid4().hex
        backend = backend or self.backend
        if shared_gil:
            backend = "subint-shared-gil"
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        cfg = {
            "name": name,
            "uid": uid,
            "mods": mods,
            "parent": parent.name,
            "main": getattr(sys.modules.get("__main__"), "__file__", None),
            "sleep_wakes": bool(sleep_wakes_on_cancel),
        }
        handle, end = _spawn.spawn(backend, cfg)
        portal = Portal(name, (name, uid), handle, TrioChannel(end), self)
        portal.backend = backend
        portal._grace = self.grace if grace is None else grace
        portal._kill_after = self.kill_after if kill_after is None else kill_after
        self._portals.append(portal)
        self._tn.start_soon(self._supervise, portal)
        return portal

    async def run_in_actor(self, fn: Callable, *, name: str | None = None, shared_gil: bool = False,
                           backend: str | None = None,
                           enable_modules: list[str] | tuple[str, ...] = (), **kwargs: Any) -> Portal:
        """Start an actor that runs ``fn(**kwargs)`` and then ends; its result
        comes from ``portal.wait_for_result()``. An error cancels the
        nursery's other actors and is raised from the nursery block."""
        ns, qual = check_remote_fn(fn, want_context=False)
        check_sendable(kwargs, f"{ns}.{qual}")
        portal = await self.start_actor(name or getattr(fn, "__name__", "actor"),
                                        enable_modules=[ns, *enable_modules], shared_gil=shared_gil,
                                        backend=backend)
        portal._is_ria = True
        self._tn.start_soon(self._run_ria, portal, ns, qual, kwargs)
        return portal

    async def _run_ria(self, portal: Portal, ns: str, qual: str, kwargs: dict) -> None:
        try:
            value = await portal.run_from_ns(ns, qual, **kwargs)
        except BaseException as exc:
            portal._result = (False, exc)
            portal._result_ready.set()
            if isinstance(exc, (RemoteActorError, Exception)):
                self.errors[portal.name] = exc
                raise
            raise
        else:
            portal._result = (True, value)
            portal._result_ready.set()
        finally:
            # Its work is done (or failed): the actor ends now.
            portal._scope.cancel()

    async def _supervise(self, portal: Portal) -> None:
        try:
            with portal._scope:
                await portal._pump()
        finally:
            # Also when an enclosing scope was cancelled: its Cancelled
            # passes through portal._scope, and the actor must still end.
            with trio.CancelScope(shield=True):
                await self._stop(portal)

    async def _stop(self, portal: Portal) -> None:
        """The ladder (see the module docstring). Runs shielded; bounded by
        the portal's kill_after. A hurry (second Ctrl-C) cuts any wait short
        and goes straight to interrupt and, soon after, abandon."""
        handle = portal._handle
        t0 = trio.current_time()
        portal.stop_started = t0
        try:
            if not handle.done and not portal._hurried:
                # Rung 1, out of band first (works on a broken channel), then
                # in band (lets the actor answer `bye` after its calls end).
                handle.cancel()
                acked = False
                with trio.move_on_at(t0 + portal._grace) as scope:
                    portal._wait_scope = scope
                    try:
                        await portal.channel.send({"t": "cancel_actor"})
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    acked = await portal._drain_until_bye()
                portal._wait_scope = None
                if acked:
                    # Its calls are over and it is leaving: what is left is
                    # the interpreter's own teardown, which can't be hurried
                    # by an interrupt; it gets until the hard deadline.
                    portal._settled.set()
                    await self._wait_done(portal, t0 + portal._kill_after)
                else:
                    await self._wait_done(portal, t0 + portal._grace)
            if not handle.done:
                # Rung 2: code that never yields to its event loop unwinds.
                portal.rung = 2
                handle.interrupt()
                deadline = t0 + portal._kill_after
                if portal._hurried:
                    deadline = min(deadline, trio.current_time() + HURRY_WAIT)
                await self._wait_done(portal, deadline)
            if handle.done:
                handle.join()
            else:
                # Rung 3: blocked in C (or ignoring the interrupt): abandoned.
                portal.rung = 3
                handle.abandon()
        finally:
            portal._alive = False
            portal._fail_pending(_how_it_ended(handle))
            portal.channel.close()
            if not portal._result_ready.is_set() and portal._is_ria:
                portal._result = (False, _ended_without_result(portal))
                portal._result_ready.set()
            portal._ended.set()
            portal._settled.set()
            # An ended actor is not the nursery's business any more; a
            # long-lived nursery that starts many actors must not grow.
            if portal in self._portals:
                self._portals.remove(portal)

    @staticmethod
    async def _wait_done(portal: Portal, deadline: float) -> None:
        """Wait until the actor is done, the deadline passes, or a hurry."""
        with trio.move_on_at(deadline) as scope:
            portal._wait_scope = scope
            if portal._hurried:
                scope.cancel()
            await trio.lowlevel.wait_readable(portal._handle.fileno())
        portal._wait_scope = None

    def hurry(self) -> None:
        """Skip to interrupt and hard kill for every actor still ending (a
        second Ctrl-C does this)."""
        for p in list(self._portals):
            p._hurried = True
            if p._wait_scope is not None:
                p._wait_scope.cancel()

    async def cancel(self, hard_kill: bool = False) -> None:
        """Cancel every actor of this nursery and wait until they ended
        (through the ladder; ``hard_kill`` skips the cooperative rung)."""
        self.cancel_called = True
        for p in list(self._portals):
            if hard_kill:
                p._hurried = True
            p._scope.cancel()
        with trio.CancelScope(shield=True):
            for p in list(self._portals):
                await p._ended.wait()


def _how_it_ended(handle) -> str:
    """A few words on how an actor ended, for errors of calls it never
    answered ("" if it ended cleanly or is not done)."""
    if not handle.done:
        return " (it was abandoned)" if handle.state == "abandoned" else ""
    try:
        out = handle.outcome()
    except Exception:
        return ""
    if out[0] == "ok":
        return ""
    if out[0] == "interrupted":
        return " (it was interrupted)"
    detail = ": ".join(str(x) for x in out[1:3] if x)
    return f" (it failed: {detail})" if detail else f" ({out[0]})"


def _ended_without_result(portal: Portal) -> BaseException:
    from subactor._errors import ActorNotAvailable

    return ActorNotAvailable(f"actor {portal.name!r} ended before returning a result")


def _collapse(eg: BaseExceptionGroup) -> BaseException:
    """A group of one error (plus cancellations) becomes that error, as a
    tractor user expects `except RemoteActorError` to work."""
    real = [e for e in _leaves(eg) if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    return eg


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


class _SigintGuard:
    """Turns Ctrl-C in the root actor into a cancel of the whole actor tree.

    While the outermost root nursery is open, SIGINT is received as a signal
    (not raised as KeyboardInterrupt): the first cancels every open actor
    nursery (each actor goes through the ladder), the second hurries them
    (straight to interrupt, then abandon), and once the tree is down the
    nursery raises KeyboardInterrupt, as trio would have.
    """

    def __init__(self):
        self.count = 0
        self.nurseries: list[ActorNursery] = []

    async def watch(self, signals) -> None:
        async for _ in signals:
            self.count += 1
            if self.count == 1:
                for an in list(self.nurseries):
                    an._tn.cancel_scope.cancel()
            else:
                for an in list(self.nurseries):
                    an.hurry()


_guard: _SigintGuard | None = None


def _can_handle_sigint() -> bool:
    import threading

    return (
        _ext.current_actor() is None
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.SIG_DFL, None)
    )


@asynccontextmanager
async def _sigint_guard():
    global _guard
    guard = _guard = _SigintGuard()
    try:
        async with trio.open_nursery() as n:
            with trio.open_signal_receiver(signal.SIGINT) as signals:
                n.start_soon(guard.watch, signals)
                try:
                    yield guard
                finally:
                    n.cancel_scope.cancel()
    finally:
        _guard = None
        if guard.count:
            raise KeyboardInterrupt


@asynccontextmanager
async def open_nursery(*, grace: float = DEFAULT_GRACE, kill_after: float = DEFAULT_KILL_AFTER,
                       backend: str = "subint",
                       loglevel: str | None = None, debug_mode: bool = False, **_tractor_kwargs: Any):
    """Open an actor nursery (the root actor is opened implicitly).

    ``grace``: seconds an actor gets to end after a cancel request before it
    is interrupted; ``kill_after``: seconds after the request when it is
    abandoned. ``backend``: "subint" (default), "subint-shared-gil" or
    "process", the default for this nursery's actors. Unknown tractor-only
    keyword arguments (``arbiter_addr``, ``registry_addrs``, ...) are
    accepted and ignored. In the root actor's main thread, Ctrl-C cancels
    the whole tree (see :class:`_SigintGuard`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if grace < 0 or kill_after < grace:
        raise ValueError(f"need 0 <= grace <= kill_after, got grace={grace}, kill_after={kill_after}")
    _state.current_actor()
    try:
        if _guard is None and _can_handle_sigint():
            async with _sigint_guard():
                async with _open_nursery(grace, kill_after, backend) as an:
                    yield an
        else:
            async with _open_nursery(grace, kill_after, backend) as an:
                yield an
    except BaseExceptionGroup as eg:
        collapsed = _collapse(eg)
        if collapsed is eg:
            raise
        raise collapsed from None


@asynccontextmanager
async def _open_nursery(grace: float, kill_after: float, backend: str):
    an = None
    try:
        async with trio.open_nursery() as tn:
            an = ActorNursery(tn, grace=grace, kill_after=kill_after, backend=backend)
            if _guard is not None:
                _guard.nurseries.append(an)
            try:
                yield an
            except BaseException:
                # An error (or a cancel) in the block: end every actor.
                await an.cancel()
                raise
    finally:
        if _guard is not None and an in _guard.nurseries:
            _guard.nurseries.remove(an)
