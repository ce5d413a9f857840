"""Contexts and message streams, on both sides of a call.

A context is one long-lived call between two actors: the caller opens it
with ``Portal.open_context(fn, **kwargs)``, the callee is ``fn(ctx,
**kwargs)`` decorated with :func:`context`. The callee sends one first value
with ``ctx.started(value)``; either side may then open a bidirectional
:class:`MsgStream`; the callee's return value (or error) ends the context.

Messages of a context arrive in an unbounded in-memory inbox fed by the
channel's message pump (the portal's on the caller side, the actor
runtime's on the callee side).

The runtime's side of all of it is KI-protected, as trio's own code is: a
Ctrl-C never lands half-way through it (see :mod:`subactor._sigint`).

On the caller side the ``open_context`` block runs in the context's cancel
scope. When the callee's side ends with an error (it failed, the actor was
cancelled, or it died), the pump tells the context (:meth:`Context._remote_final`):
a task blocked receiving from the context gets the error from its receive;
otherwise the scope is cancelled, so that tasks in the block wake up, and
the block raises the error (a cancellation this side asked for with
``ctx.cancel()`` is absorbed).
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import trio

from subactor._exceptions import ContextCancelled, qualified_name, unbox_error


class MsgStream:
    """A bidirectional stream of messages inside a context.

    ``send(v)``, ``receive()``, ``async for v in stream``, ``aclose()``.
    ``receive()`` raises ``trio.EndOfChannel`` once the other side closed
    its stream (or its task returned), and the remote error if it failed.
    """

    def __init__(self, ctx: "Context"):
        self._ctx = ctx
        self._closed = False  # this side closed: no more send()
        self._eof = False     # the other side closed: no more receive()

    @trio.lowlevel.enable_ki_protection
    async def send(self, value: Any) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed by this side")
        await self._ctx._send({"t": "yield", "v": value})

    @trio.lowlevel.enable_ki_protection
    async def receive(self) -> Any:
        if self._eof:
            raise trio.EndOfChannel
        while True:
            msg = await self._ctx._next()
            t = msg["t"]
            if t == "yield":
                return msg["v"]
            if t == "stop":
                self._eof = True
                raise trio.EndOfChannel
            if t in ("return", "error"):
                self._eof = True
                self._ctx._final = msg
                if t == "error":
                    raise self._ctx._error_from(msg)
                raise trio.EndOfChannel
            # 'started' twice or anything else: ignore, it is not stream data

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    @trio.lowlevel.enable_ki_protection
    async def aclose(self) -> None:
        """Close this side: the other side's receive() ends after what was
        sent. Idempotent; ignores a peer that is already gone. Shielded, so
        that the peer learns it even while this side is cancelled, but it
        waits at most CLEANUP_WAIT seconds for room in the channel."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        await self._ctx._send_cleanup({"t": "stop"})

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class Context:
    """One side of a context. ``side`` is "caller" or "callee"."""

    def __init__(self, chan, cid: int, side: str, inbox: trio.MemoryReceiveChannel, *,
                 actor_name: str, peer_name: str, fn_name: str):
        self.chan = chan
        self.cid = cid
        self.side = side
        self._inbox = inbox
        self._actor_name = actor_name
        self.peer_name = peer_name
        self.fn_name = fn_name
        self._started = False
        self._final: dict | None = None   # the return/error message once received
        self._cancel_called = False       # this side asked for the cancel
        # Callee: the call's task scope. Caller: the open_context block's
        # scope, cancelled when the callee's side ends with an error.
        self._scope: trio.CancelScope | None = None
        self._stream: MsgStream | None = None
        self._receivers = 0              # tasks blocked in _next() now
        self._remote_msg: dict | None = None  # caller: the callee's final error, once it arrived

    # -- plumbing --------------------------------------------------------
    async def _send(self, msg: dict) -> None:
        msg["cid"] = self.cid
        await self.chan.send(msg)

    async def _send_cleanup(self, msg: dict) -> None:
        msg["cid"] = self.cid
        await self.chan.send_cleanup(msg)

    async def _next(self) -> dict:
        self._receivers += 1
        try:
            return await self._inbox.receive()
        finally:
            self._receivers -= 1

    def _remote_final(self, msg: dict) -> None:
        """Caller side: the callee's final error arrived (it is also in the
        inbox). Wake the block unless a task is receiving: it gets it."""
        if self._remote_msg is None:
            self._remote_msg = msg
        scope = self._scope
        if scope is not None and self.side == "caller" and not self._receivers and not scope.cancel_called:
            scope.cancel()

    def _final_error(self) -> BaseException | None:
        """Caller side, after the block was woken: the callee's error to
        raise, or None (it returned, or this side asked for the cancel)."""
        msg = self._final or self._remote_msg
        if msg is None or msg["t"] != "error":
            return None
        self._final = msg
        exc = self._error_from(msg)
        if isinstance(exc, ContextCancelled) and self._cancel_called:
            return None
        return exc

    def _error_from(self, msg: dict) -> BaseException:
        exc = unbox_error(msg["e"])
        return exc

    # -- both sides ------------------------------------------------------
    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @asynccontextmanager
    @trio.lowlevel.enable_ki_protection
    async def open_stream(self):
        """A :class:`MsgStream` over this context; closed on exit."""
        if self.side == "caller" and not self._started:
            raise RuntimeError("open_stream() before the context started")
        if self.side == "callee" and not self._started:
            raise RuntimeError("call `await ctx.started()` before open_stream()")
        stream = MsgStream(self)
        self._stream = stream
        try:
            yield stream
        finally:
            await stream.aclose()

    @trio.lowlevel.enable_ki_protection
    async def cancel(self) -> None:
        """Cancel the context. The callee's task is cancelled; the side that
        asked does not see the resulting ContextCancelled as an error."""
        self._cancel_called = True
        if self.side == "callee":
            if self._scope is not None:
                self._scope.cancel()
            await trio.lowlevel.checkpoint()
            return
        if self._final is None:
            await self._send_cleanup({"t": "cancel"})

    # -- callee side -----------------------------------------------------
    @trio.lowlevel.enable_ki_protection
    async def started(self, value: Any = None) -> None:
        """Send the first value to the caller (once)."""
        if self.side != "callee":
            raise RuntimeError("started() is called by the callee of a context")
        if self._started:
            raise RuntimeError("started() was already called")
        await self._send({"t": "started", "v": value})
        self._started = True

    # -- caller side -----------------------------------------------------
    @trio.lowlevel.enable_ki_protection
    async def wait_for_result(self) -> Any:
        """The callee's return value (stream messages not yet read are
        dropped); its error re-raised here. A ContextCancelled this side
        asked for is returned as None, not raised."""
        if self.side != "caller":
            raise RuntimeError("wait_for_result() is for the caller of a context")
        while self._final is None:
            msg = await self._next()
            if msg["t"] in ("return", "error"):
                self._final = msg
        if self._final["t"] == "return":
            return self._final.get("v")
        exc = self._error_from(self._final)
        if isinstance(exc, ContextCancelled) and self._cancel_called:
            return None
        raise exc

    result = wait_for_result

    def __repr__(self) -> str:
        return f"<Context {self.side} cid={self.cid} fn={self.fn_name} peer={self.peer_name!r}>"


def cancelled_box(actor_name: str, fn_name: str, by: str) -> dict:
    """The error box a cancelled call sends to its caller."""
    return {
        "type": qualified_name(ContextCancelled),
        "msg": f"{fn_name} in actor {actor_name!r} was cancelled by {by}",
        "tb": "",
        "src": actor_name,
        "cancelled": True,
    }
