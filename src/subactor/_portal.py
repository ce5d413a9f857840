"""Portals: the parent's handle to call into one actor.

A portal owns the parent's end of the actor's channel and a message pump
task (run by the actor nursery) that routes every incoming message to the
call it belongs to. When the actor ends, every call still waiting gets
:class:`ActorNotAvailable` at once: nothing waits on a dead actor.
"""
from __future__ import annotations

import itertools
import math
from contextlib import asynccontextmanager
from typing import Any, Callable

import trio

from subactor._context import Context
from subactor._decorators import is_context
from subactor._errors import ActorNotAvailable, ContextCancelled, check_findable, unbox_error

_cids = itertools.count(1)


def check_remote_fn(fn: Callable, *, want_context: bool | None = None) -> tuple[str, str]:
    """(module, qualname) of a function that can be called in another actor,
    or a clear TypeError saying why it can't."""
    if isinstance(fn, str):
        raise TypeError(
            f"pass the function object, not its name {fn!r} (or use run_from_ns(ns, name))"
        )
    check_findable(fn, "an actor")
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not mod or not qual:
        raise TypeError(f"{fn!r} has no module-level name an actor could import")
    if want_context is True and not is_context(fn):
        raise TypeError(f"{mod}.{qual} is not a context function: decorate it with @subactor.context")
    if want_context is False and is_context(fn):
        raise TypeError(f"{mod}.{qual} is a context function: open it with portal.open_context()")
    return mod, qual


def check_sendable(kwargs: dict, fn_name: str) -> None:
    """A clear TypeError, before an actor is spawned for it, when the
    arguments of a call cannot be encoded (the codec names the type and its
    place in the message). Calls on a portal need no separate check: the
    same error comes from encoding the message itself, before it is sent."""
    from subactor import _ext

    try:
        _ext.dumps(kwargs)
    except TypeError as exc:
        raise TypeError(f"arguments of {fn_name} cannot be sent: {exc}") from exc


class Portal:
    """Calls into one actor: ``run``, ``run_from_ns``, ``open_context``,
    ``cancel_actor``, and for ``run_in_actor`` actors ``wait_for_result``."""

    def __init__(self, name: str, uid: tuple[str, str], handle, chan, nursery):
        self.name = name
        self.uid = uid
        self.channel = chan          # TrioChannel (parent end)
        self._handle = handle        # _ext.Actor or a process-backend handle
        self._an = nursery           # the ActorNursery that supervises it
        self._calls: dict[int, trio.MemorySendChannel] = {}
        self._alive = True           # the pump still runs
        self._ended = trio.Event()   # the actor is gone (ended, or abandoned)
        self._settled = trio.Event()  # it acknowledged a cancel (its calls are over), or is gone
        self._scope = trio.CancelScope()  # cancelling it stops the actor
        self._result: Any = None     # run_in_actor: (ok, value) once known
        self._result_ready = trio.Event()
        self._cancel_requested = False
        self._hurried = False        # skip to interrupt + abandon (second Ctrl-C)
        self._wait_scope: trio.CancelScope | None = None  # the ladder's current wait
        self.stop_started: float | None = None  # trio time the ladder began
        self.rung = 1                # highest rung the ladder reached
        self.backend = "subint"

    # -- message routing ---------------------------------------------------
    async def _route_until_bye(self) -> bool:
        """Route incoming messages to their calls until the actor says bye
        (True) or closes its end (True), or the channel breaks or this end
        was closed (False)."""
        try:
            while True:
                msg = await self.channel.recv()
                if msg.get("t") == "bye":
                    return True
                q = self._calls.get(msg.get("cid"))
                if q is not None:
                    q.send_nowait(msg)
        except trio.EndOfChannel:
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    async def _pump(self) -> None:
        try:
            await self._route_until_bye()
        finally:
            # Calls still waiting are failed by the supervisor once the actor
            # is done, so their error can say how it ended.
            self._alive = False

    async def _drain_until_bye(self) -> bool:
        """After a cancel request: wait for the actor's bye, still routing
        the final messages of its cancelled calls."""
        try:
            return await self._route_until_bye()
        finally:
            self._alive = False

    def _fail_pending(self, why: str = "") -> None:
        """Every call still waiting gets ActorNotAvailable (``why`` says how
        the actor ended, when that is known)."""
        for cid, q in list(self._calls.items()):
            try:
                q.send_nowait({"t": "error", "cid": cid, "e": {
                    "type": "subactor._errors.ActorNotAvailable",
                    "msg": f"actor {self.name!r} ended before answering{why}",
                    "src": self.name}})
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def _open_call(self) -> tuple[int, trio.MemoryReceiveChannel]:
        if not self._alive:
            raise ActorNotAvailable(f"actor {self.name!r} has ended: its portal can't be used any more")
        cid = next(_cids)
        send, recv = trio.open_memory_channel(math.inf)
        self._calls[cid] = send
        return cid, recv

    def _close_call(self, cid: int) -> None:
        self._calls.pop(cid, None)

    async def _send(self, msg: dict, fn_name: str = "") -> None:
        try:
            await self.channel.send(msg)
        except TypeError as exc:
            # The codec refused the message before anything was sent: its
            # error names the type and where it was.
            raise TypeError(f"arguments of {fn_name} cannot be sent: {exc}") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorNotAvailable(f"actor {self.name!r} has ended: its portal can't be used any more") from None

    # -- RPC ---------------------------------------------------------------
    async def run(self, fn: Callable, **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` (sync or async, module-level) in the actor."""
        ns, name = check_remote_fn(fn, want_context=False)
        return await self.run_from_ns(ns, name, **kwargs)

    async def run_from_ns(self, namespace_path: str, function_name: str, **kwargs: Any) -> Any:
        """Call ``namespace_path.function_name(**kwargs)`` in the actor."""
        cid, inbox = self._open_call()
        try:
            await self._send({"t": "run", "cid": cid, "ns": namespace_path, "fn": function_name, "kw": kwargs},
                             f"{namespace_path}.{function_name}")
            try:
                msg = await inbox.receive()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    try:
                        await self.channel.send({"t": "cancel", "cid": cid})
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                raise
            if msg["t"] == "return":
                return msg.get("v")
            raise unbox_error(msg["e"])
        finally:
            self._close_call(cid)

    @asynccontextmanager
    async def open_context(self, fn: Callable, **kwargs: Any):
        """Open a context with ``fn(ctx, **kwargs)`` in the actor; yields
        ``(ctx, first)`` where ``first`` is the value the callee passed to
        ``ctx.started()``. Leaving the block waits for the callee's result
        (and raises its error); an error in the block cancels the callee."""
        ns, name = check_remote_fn(fn, want_context=True)
        cid, inbox = self._open_call()
        ctx = Context(self.channel, cid, "caller", inbox, actor_name="parent", peer_name=self.name,
                      fn_name=f"{ns}.{name}")
        try:
            await self._send({"t": "ctx", "cid": cid, "ns": ns, "fn": name, "kw": kwargs}, f"{ns}.{name}")
            try:
                first_msg = await self._first(ctx)
            except trio.Cancelled:
                await self._cancel_ctx(ctx)
                raise
            ctx._started = True
            try:
                yield ctx, first_msg.get("v")
            except BaseException:
                await self._cancel_ctx(ctx)
                raise
            await ctx.wait_for_result()
        finally:
            self._close_call(cid)

    async def _first(self, ctx: Context) -> dict:
        while True:
            msg = await ctx._next()
            t = msg["t"]
            if t == "started":
                return msg
            if t in ("error", "return"):
                ctx._final = msg
                if t == "return":
                    raise RuntimeError(f"{ctx.fn_name} returned without calling ctx.started()")
                raise unbox_error(msg["e"])

    async def _cancel_ctx(self, ctx: Context) -> None:
        """Cancel the callee of a context whose caller block failed, and wait
        (bounded) for its final message so nothing is left running."""
        if ctx._final is not None:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self._an.grace
            await ctx.cancel()
            while ctx._final is None:
                msg = await ctx._next()
                if msg["t"] in ("return", "error"):
                    ctx._final = msg

    # -- actor lifetime ----------------------------------------------------
    async def cancel_actor(self) -> bool:
        """Ask the actor to end (cancelling its running calls) and wait until
        it has: cooperatively, then by interrupt, then abandoned at the hard
        deadline. Returns once its calls are over and it has acknowledged
        (its interpreter's teardown goes on; the nursery waits for that at
        its exit), or once it is gone. True if it ended, False if it had to
        be abandoned."""
        self._cancel_requested = True
        self._scope.cancel()
        with trio.CancelScope(shield=True):
            await self._settled.wait()
        return self.rung < 3

    async def wait_for_result(self) -> Any:
        """The return value of a ``run_in_actor`` actor's function (its error
        re-raised)."""
        if not self._is_ria:
            raise RuntimeError(f"actor {self.name!r} was started with start_actor(): it has no result")
        await self._result_ready.wait()
        ok, value = self._result
        if ok:
            return value
        raise value

    result = wait_for_result
    _is_ria = False

    def __repr__(self) -> str:
        return f"<Portal {self.name!r} alive={self._alive}>"


__all__ = ["Portal", "ContextCancelled"]
