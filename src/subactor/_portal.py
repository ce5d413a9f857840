"""Portals: the parent's handle to call into one actor.

A portal owns the parent's end of the actor's channel. Its message pump
(run by the actor's supervisor in the nursery, see :mod:`subactor._nursery`)
routes every incoming message to the call it belongs to. A message that is
not one of the protocol's (bytes that do not decode, a kind that does not
exist, a call message without a call id) fails that actor's channel: the
channel is closed, every call waiting on the actor gets an error naming
the actor and what it sent, and the actor is taken down the ladder; its
siblings are not touched. When the actor ends, every call still waiting
gets :class:`ActorNotAvailable` at once: nothing waits on a dead actor.
"""
from __future__ import annotations

import itertools
import math
from contextlib import asynccontextmanager
from typing import Any, Callable

import trio

from subactor import _ext
from subactor._context import Context
from subactor._decorators import is_context
from subactor._exceptions import ActorNotAvailable, ContextCancelled, check_findable, unbox_error
from subactor._transport import CLEANUP_WAIT, FROM_ACTOR, malformed

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
    try:
        _ext.dumps(kwargs)
    except TypeError as exc:
        raise TypeError(f"arguments of {fn_name} cannot be sent: {exc}") from exc


class _Call:
    """A call waiting on the actor: where its messages go, and the context
    to tell when its final error arrives (see Context._remote_final)."""

    __slots__ = ("send", "ctx")

    def __init__(self, send: trio.MemorySendChannel):
        self.send = send
        self.ctx: Context | None = None


class Portal:
    """Calls into one actor: ``run``, ``run_from_ns``, ``open_context``,
    ``cancel_actor``, and for ``run_in_actor`` actors ``wait_for_result``."""

    def __init__(self, name: str, uid: tuple[str, str], chan, *, backend: str = "subint"):
        self.name = name
        self.uid = uid
        self.channel = chan          # TrioChannel (parent end)
        self.backend = backend
        self._child = None           # the nursery's _Child for this actor (set by the nursery)
        self._calls: dict[int, _Call] = {}
        self._alive = True           # the actor may still answer
        self._bye = False            # the actor said bye (or closed its end)
        self._failed: str | None = None  # what malformed message failed its channel

    # -- the actor's life, as the nursery tracks it ----------------------------------
    @property
    def rung(self) -> int:
        """The highest rung of the cancellation ladder this actor reached
        (1 cooperative cancel, 2 interrupt, 3 abandon)."""
        return self._child.rung

    @property
    def _handle(self):
        return self._child.handle

    @property
    def _ended(self) -> trio.Event:
        return self._child.ended

    # -- message routing ---------------------------------------------------
    async def _pump(self) -> bool:
        """Route incoming messages to their calls until the actor says bye
        or closes its end (True), or the channel breaks, is closed, or gets
        a malformed message (False). Called by the supervisor, and again
        during the ladder's cooperative rung."""
        if self._bye:
            return True
        if self._failed is not None or self.channel.end.closed:
            return False
        try:
            while True:
                try:
                    batch = await self.channel.recv_some()
                except _ext.DecodeError as exc:
                    return self._fail_channel(f"bytes that are not a message ({exc})")
                for msg in batch:
                    what = malformed(msg, FROM_ACTOR)
                    if what is not None:
                        return self._fail_channel(what)
                    if msg["t"] == "bye":
                        self._bye = True
                        return True
                    call = self._calls.get(msg["cid"])
                    if call is not None:
                        call.send.send_nowait(msg)
                        if call.ctx is not None and msg["t"] == "error":
                            call.ctx._remote_final(msg)
        except trio.EndOfChannel:
            self._bye = True
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    def _fail_channel(self, what: str) -> bool:
        """A malformed message: close the channel (the actor's sends fail,
        its receive ends), fail every waiting call naming what it sent."""
        self._failed = f"actor {self.name!r} sent {what}: its channel was closed and the actor cancelled"
        self._alive = False
        self._fail_pending(self._failed)
        self.channel.close()
        return False

    def _usable_for_cancel(self) -> bool:
        """True if an in-band cancel can still be sent and answered."""
        return self._failed is None and not self._bye and not self.channel.end.closed

    def _actor_ended(self, how: str) -> None:
        """The actor is gone: every call still waiting fails (``how`` says
        how it ended), and the channel is closed."""
        self._alive = False
        self._fail_pending(self._failed or f"actor {self.name!r} ended before answering{how}")
        self.channel.close()

    def _fail_pending(self, why: str) -> None:
        for cid, call in list(self._calls.items()):
            msg = {"t": "error", "cid": cid, "e": {
                "type": "subactor._exceptions.ActorNotAvailable", "msg": why, "src": self.name}}
            try:
                call.send.send_nowait(msg)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            if call.ctx is not None:
                call.ctx._remote_final(msg)

    def _open_call(self) -> tuple[int, trio.MemoryReceiveChannel]:
        if not self._alive:
            raise ActorNotAvailable(self._failed or f"actor {self.name!r} has ended: its portal can't be used any more")
        cid = next(_cids)
        send, recv = trio.open_memory_channel(math.inf)
        self._calls[cid] = _Call(send)
        return cid, recv

    def _close_call(self, cid: int) -> None:
        self._calls.pop(cid, None)

    async def _send(self, msg: dict, fn_name: str = "") -> None:
        try:
            await self.channel.send(msg)
        except (TypeError, ValueError) as exc:
            # The codec refused the message (its error names the type and
            # where it was), or it is larger than the channel takes: nothing
            # was sent.
            raise type(exc)(f"arguments of {fn_name} cannot be sent: {exc}") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorNotAvailable(self._failed or f"actor {self.name!r} has ended: its portal can't be used "
                                    f"any more") from None

    # -- RPC ---------------------------------------------------------------
    async def run(self, fn: Callable, **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` (sync or async, module-level) in the actor."""
        ns, name = check_remote_fn(fn, want_context=False)
        return await self.run_from_ns(ns, name, **kwargs)

    @trio.lowlevel.enable_ki_protection
    async def run_from_ns(self, namespace_path: str, function_name: str, **kwargs: Any) -> Any:
        """Call ``namespace_path.function_name(**kwargs)`` in the actor."""
        cid, inbox = self._open_call()
        try:
            await self._send({"t": "run", "cid": cid, "ns": namespace_path, "fn": function_name, "kw": kwargs},
                             f"{namespace_path}.{function_name}")
            try:
                msg = await inbox.receive()
            except trio.Cancelled:
                await self.channel.send_cleanup({"t": "cancel", "cid": cid})
                raise
            if msg["t"] == "return":
                return msg.get("v")
            raise unbox_error(msg["e"])
        finally:
            self._close_call(cid)

    @asynccontextmanager
    @trio.lowlevel.enable_ki_protection
    async def open_context(self, fn: Callable, **kwargs: Any):
        """Open a context with ``fn(ctx, **kwargs)`` in the actor; yields
        ``(ctx, first)`` where ``first`` is the value the callee passed to
        ``ctx.started()``. Leaving the block waits for the callee's result
        (and raises its error); an error in the block cancels the callee.

        The block runs in a cancel scope of the context: when the callee's
        side ends with an error (its own failure, a cancel of the actor, or
        the actor's death), tasks in the block are woken and the block
        raises that error, ``ContextCancelled`` for a cancellation. A
        cancellation this side asked for (``ctx.cancel()``) is absorbed."""
        ns, name = check_remote_fn(fn, want_context=True)
        cid, inbox = self._open_call()
        ctx = Context(self.channel, cid, "caller", inbox, actor_name="parent", peer_name=self.name,
                      fn_name=f"{ns}.{name}")
        self._calls[cid].ctx = ctx
        try:
            await self._send({"t": "ctx", "cid": cid, "ns": ns, "fn": name, "kw": kwargs}, f"{ns}.{name}")
            try:
                first_msg = await self._first(ctx)
            except trio.Cancelled:
                await self._cancel_ctx(ctx)
                raise
            ctx._started = True
            ctx._scope = trio.CancelScope()
            try:
                with ctx._scope:
                    yield ctx, first_msg.get("v")
            except BaseException as exc:
                if isinstance(exc, ContextCancelled) and ctx._cancel_called:
                    # The block met the cancel it asked for (a stream's
                    # receive raised it): absorbed, as wait_for_result does.
                    return
                await self._cancel_ctx(ctx)
                raise
            if ctx._scope.cancelled_caught:
                # Woken by the callee's final error (see Context._remote_final).
                exc = ctx._final_error()
                if exc is not None:
                    raise exc
                return
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
        (bounded by the ladder's grace) for its final message so nothing is
        left running."""
        if ctx._final is not None:
            return
        grace = self._child.grace if self._child is not None else CLEANUP_WAIT
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + grace
            await ctx.cancel()
            while ctx._final is None:
                msg = await ctx._next()
                if msg["t"] in ("return", "error"):
                    ctx._final = msg

    # -- actor lifetime ----------------------------------------------------
    @trio.lowlevel.enable_ki_protection
    async def cancel_actor(self) -> bool:
        """Ask the actor to end (cancelling its running calls) and wait until
        it has: cooperatively, then by interrupt, then abandoned at the hard
        deadline. Returns once its calls are over and it has acknowledged
        (its interpreter's teardown goes on; the nursery waits for that at
        its exit), or once it is gone. True if it ended, False if it had to
        be abandoned."""
        return await self._child.stop()

    async def wait_for_result(self) -> Any:
        """The return value of a ``run_in_actor`` actor's function (its error
        re-raised)."""
        child = self._child
        if not child.is_ria:
            raise RuntimeError(f"actor {self.name!r} was started with start_actor(): it has no result")
        await child.result_ready.wait()
        ok, value = child.result
        if ok:
            return value
        raise value

    result = wait_for_result

    def __repr__(self) -> str:
        return f"<Portal {self.name!r} alive={self._alive}>"


__all__ = ["Portal", "ContextCancelled"]
