"""Contexts and message streams, on both sides of a call.

A context is one long-lived call between two actors: the parent side opens
it with ``Portal.open_context(fn, **kwargs)``, the child side is ``fn(ctx,
**kwargs)`` decorated with :func:`context`. The child sends one first value
with ``ctx.started(value)``; either side may then open a bidirectional
:class:`MsgStream`; the child's return value (or error) ends the context.
Names and meanings follow tractor's (``side`` is "parent" or "child").

**Inbox and flow control.** A context's incoming messages wait in a
bounded inbox (:class:`_Inbox`) fed by the channel's message pump (the
portal's on the parent side, the actor runtime's on the child side). It
holds at most ``msg_buffer_size`` stream items (64 unless the stream says
otherwise); control messages (stop, the final outcome) always get in. An
item that finds the inbox full is an *overrun*:

- if this side allows overruns (``open_context(allow_overruns=True)`` or
  ``open_stream(allow_overruns=True)``), the item is kept and the sender
  is told to hold (a ``hold`` message; ``go`` once the reader has drained
  half of it): the sender's ``send()`` waits, so memory stays bounded by
  the inbox plus what was already in the channel;
- otherwise the item is dropped and the sender is sent a
  :class:`StreamOverrun` error for the context, which fails the context
  on its side, as in tractor.

**Cancel and errors.** ``ctx.cancel()`` asks the other side's task to
end; the ContextCancelled it answers with names this actor as its
``canceller`` and is absorbed here (``open_context`` and ``result()`` do
not raise it; ``result()`` returns it). Any other error of the peer --
including a ContextCancelled somebody else asked for -- is raised by the
next operation on the context, and on the parent side it wakes the
``open_context`` block (its scope is cancelled) if no task is blocked
receiving, so the block raises it.

The runtime's side of all of it is KI-protected, as trio's own code is: a
Ctrl-C never lands half-way through it (see :mod:`subactor._sigint`).
"""
from __future__ import annotations

import contextvars
import sys
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import Any

import trio

from subactor import _ext, _state, _transport
from subactor._exceptions import ContextCancelled, MsgTypeError, StreamOverrun, box_error, unbox_error


class _Unresolved:
    """The outcome of a context that has none yet."""

    def __repr__(self) -> str:
        return "Unresolved"


Unresolved = _Unresolved()

# The context the current task works in (current_ipc_ctx()).
_current_ctx: contextvars.ContextVar["Context | None"] = contextvars.ContextVar("subactor_ipc_ctx", default=None)


def current_ipc_ctx(error_on_not_set: bool = False) -> "Context | None":
    """The context the calling task runs in: the child's ``@context``
    function and the tasks it starts, or the parent's ``open_context``
    block. None outside of one (or RuntimeError with ``error_on_not_set``)."""
    ctx = _current_ctx.get()
    if ctx is None and error_on_not_set:
        raise RuntimeError("no IPC context is open in this task")
    return ctx


DEFAULT_BUFFER = 2 ** 6
# Seconds a parent block gets to read the stream items that came before the
# child's error, before the error wakes it (see Context._wake).
DRAIN_GRACE = 1.0

# The stream's fast path (see MsgStream): a send the channel takes at once
# and a receive that finds an item waiting are cancel points but not
# schedule points, except that every FAST_OPS-th operation of a stream, or
# the first one FAST_WALL seconds after its last schedule point, is a full
# checkpoint (_transport.FAST_OPS, FAST_WALL: the budget is a
# _transport.FastBudget, one per stream).
# Scheduler passes a receive on an empty inbox spends looking for its item
# itself (straight from the channel, while the message pump is parked)
# before it parks: a stream round trip's answer usually lands within them,
# and a pass is much cheaper than a park and a wake-up through the pump.
RECV_PASSES = 16


class _Inbox:
    """A context's incoming messages, in order: at most ``limit`` stream
    items (``yield``), any number of control messages. One task at a time
    is expected to receive; more may, in turn."""

    __slots__ = ("q", "items", "limit", "lot")

    def __init__(self, limit: int):
        self.q: deque[dict] = deque()
        self.items = 0            # 'yield' messages in q
        self.limit = limit
        self.lot = trio.lowlevel.ParkingLot()

    def full(self) -> bool:
        return self.items >= self.limit

    def put(self, msg: dict) -> None:
        self.q.append(msg)
        if msg["t"] == "yield":
            self.items += 1
        if self.lot:
            self.lot.unpark()

    def _pop(self) -> dict:
        msg = self.q.popleft()
        if msg["t"] == "yield":
            self.items -= 1
        return msg

    def get_nowait(self) -> dict:
        if not self.q:
            raise trio.WouldBlock
        return self._pop()

    async def get(self) -> dict:
        """The next message; a full checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.q:
            msg = self._pop()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return msg
        while not self.q:
            await self.lot.park()
        return self._pop()


_STREAM_KINDS = frozenset({"yield", "stop", "overrun", "return", "error"})


class MsgStream:
    """A bidirectional stream of messages inside a context.

    ``send(v)``, ``receive()``, ``receive_nowait()``, ``async for v in
    stream``, ``aclose()``, ``subscribe()``. ``receive()`` raises
    ``trio.EndOfChannel`` once the other side closed its stream (or its task
    returned), and the peer's error if it failed.
    """

    def __init__(self, ctx: "Context"):
        self._ctx = ctx
        self._closed = False     # this side closed: no more send()
        self._eof = False        # the other side closed: no more receive()
        self._broadcaster = None
        self._raw_waiting = 0     # receive()s waiting on the inbox itself now
        self._adopt_done = None   # set when those end (see _adopted)
        self._budget = _transport.FastBudget()   # fast operations before the next full checkpoint

    @property
    def ctx(self) -> "Context":
        return self._ctx

    @property
    def closed(self) -> bool:
        """True once either side closed the stream (or the context ended)."""
        return self._closed or self._eof

    @trio.lowlevel.enable_ki_protection
    async def send(self, value: Any) -> None:
        """Send one item. Always a cancel point; a schedule point when the
        channel has no room now (it waits for room), and otherwise once in
        FAST_OPS operations of this stream (or FAST_WALL seconds)."""
        ctx = self._ctx
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed by this side")
        ctx._raise_if_over()
        hold = ctx._peer_hold
        if hold is not None:
            # The peer's inbox is full and it allows overruns: wait until
            # it has read half of it (or the context ends).
            await hold.wait()
            ctx._raise_if_over()
        if ctx._pld_type is None and ctx._codec is None and "subactor.msg._codec" not in sys.modules:
            msg = {"t": "yield", "v": value}   # no codec was ever applied here (see _pld_codec)
        else:
            msg = ctx._pld_out({"t": "yield"}, value, "stream item")
        chan = ctx.chan
        if type(chan) is not _transport.TrioChannel:
            await ctx._send(msg)
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        msg["cid"] = ctx.cid
        try:
            data = chan._dumps(msg)
        except TypeError as exc:
            raise ctx._unsendable(msg, exc) from exc
        try:
            chan.end.send_nowait(data)
        except BlockingIOError:
            pass   # (waited for below: outside this handler, or what it raises would chain to it)
        except _ext.BrokenError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        except _ext.ClosedError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc
        else:
            if not self._budget.take():
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        # No room: wait for it (a full checkpoint).
        await chan.send_bytes(data)
        self._budget.reset()

    def _handle(self, msg: dict) -> Any:
        ctx = self._ctx
        t = msg["t"]
        if t == "yield":
            return ctx._pld_in(msg, "stream item")
        if t == "stop":
            self._eof = True
            raise self._end_of_channel()
        if t == "overrun":
            self._eof = True
            raise ctx._remote_error or ctx._local_error
        # the final outcome
        self._eof = True
        if t == "error":
            raise ctx._remote_error
        raise self._end_of_channel()

    @trio.lowlevel.enable_ki_protection
    async def receive(self) -> Any:
        """The next item. Always a cancel point; a schedule point when it
        waits, and otherwise once in FAST_OPS operations of this stream (or
        FAST_WALL seconds)."""
        b = self._broadcaster
        if b is not None:
            # subscribe() was called: this task is one receiver among them.
            return await b.receive()
        ctx = self._ctx
        if not self._eof:
            # The fast path: an item already here (in the inbox, or in the
            # channel while the message pump is parked) is taken without a
            # pass of the scheduler, and in order (the inbox is a FIFO and
            # the take appends to it).
            await trio.lowlevel.checkpoint_if_cancelled()
            q = ctx._inbox.q
            if not q and ctx._take is not None:
                ctx._take()
            if q and q[0]["t"] == "yield" and self._budget.take():
                msg = q.popleft()
                ctx._inbox.items -= 1
                if ctx._in_overrun:
                    ctx._consumed(msg)
                if ctx._pld_type is None and "pb" not in msg and "lazy" not in msg:
                    return msg.get("v")
                return ctx._pld_in(msg, "stream item")
        self._raw_waiting += 1
        try:
            value = await self._receive()
        except BaseException as exc:
            self._adopted(None, exc)
            raise
        finally:
            self._raw_waiting -= 1
            self._budget.reset()
        self._adopted(value, None)
        return value

    def _end_of_channel(self) -> trio.EndOfChannel:
        """The peer closed the stream: an EndOfChannel marked as this
        stream's, which its ``open_stream()`` block absorbs."""
        eoc = trio.EndOfChannel()
        eoc._subactor_stream = self
        return eoc

    async def _receive(self) -> Any:
        ctx = self._ctx
        if self._eof:
            raise self._end_of_channel()
        while True:
            if not ctx._inbox.q and ctx._take is not None and await ctx._look():
                # The item came while this task waited itself (a schedule
                # point already): taken without another pass.
                msg = ctx._inbox.get_nowait()
                ctx._consumed(msg)
            else:
                msg = await ctx._next()
            if msg["t"] == "overrun" and ctx._remote_error is None:
                # This side overran: the sender was told and answers with its
                # context's failure (as in tractor, that is what this side
                # raises); without an answer within DRAIN_GRACE, the overrun.
                with trio.move_on_after(DRAIN_GRACE):
                    await ctx._final_ev.wait()
            if msg["t"] in _STREAM_KINDS:
                return self._handle(msg)

    def _adopted(self, value: Any, exc: BaseException | None) -> None:
        """A receive that began before the first subscribe() ended: the
        broadcast made since treats it as its own receive from the stream
        (the stream's first receiver took ``value``; the others get it from
        the broadcast's buffer), so no subscriber misses an item."""
        done = self._adopt_done
        if done is None or self._raw_waiting:
            return
        self._adopt_done = None
        state = self._broadcaster._state
        if exc is None:
            if len(state.subs) > 1:
                state.queue.appendleft(value)
                for key in state.subs:
                    if key != self._broadcaster.key:
                        state.subs[key] += 1
        elif isinstance(exc, trio.EndOfChannel):
            state.eoc = True
        state.recv_ready = None
        done.set()
        for wake in state.waiters:
            wake.set()

    def receive_nowait(self) -> Any:
        """The next item if one is already here, else ``trio.WouldBlock``."""
        ctx = self._ctx
        if self._eof:
            raise self._end_of_channel()
        while True:
            msg = ctx._inbox.get_nowait()
            ctx._consumed(msg)
            if msg["t"] in _STREAM_KINDS:
                return self._handle(msg)

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
        ctx = self._ctx
        if ctx._peer_done:
            await trio.lowlevel.checkpoint()
            return
        await ctx._send_cleanup({"t": "stop"})

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    @asynccontextmanager
    async def subscribe(self):
        """Give this task its own view of the stream: every subscriber gets
        every item (a broadcast), so several local tasks can read one
        stream. See :func:`subactor.trionics.broadcast_receiver`."""
        from subactor.trionics import broadcast_receiver

        if self._broadcaster is None:
            b = broadcast_receiver(self, self._ctx._inbox.limit, receive_afunc=self._receive)
            if self._raw_waiting:
                # A task is already waiting on the stream: the broadcast
                # counts it as its receiving task until it is done.
                self._adopt_done = trio.Event()
                b._state.recv_ready = (b.key, self._adopt_done)
            self._broadcaster = b
        async with self._broadcaster.subscribe() as view:
            yield view

    def __repr__(self) -> str:
        return f"<MsgStream of {self._ctx!r} closed={self.closed}>"


class Context:
    """One side of a context: ``side`` is "parent" (opened it with
    ``Portal.open_context``) or "child" (runs the ``@context`` function)."""

    def __init__(self, chan, cid: int, side: str, *, peer_uid: tuple[str, str], fn_name: str,
                 portal=None, allow_overruns: bool = False, msg_buffer_size: int = DEFAULT_BUFFER):
        self.chan = chan
        self.cid = cid
        self.side = side
        self.portal = portal
        self.peer_uid = tuple(peer_uid)
        self.fn_name = fn_name
        self._actor = _state.current_actor()
        self._inbox = _Inbox(msg_buffer_size)
        self._allow_overruns = allow_overruns
        self._started = False
        self._stream: MsgStream | None = None
        self._stream_opened = False
        self._result: Any = Unresolved        # the peer's return value (parent side)
        self._remote_error: BaseException | None = None
        self._local_error: BaseException | None = None
        self._peer_done = False               # the peer's task is over (its final message came)
        self._final_ev = trio.Event()         # set with _peer_done
        self._cancel_called = False           # this side asked for the cancel
        self._canceller: tuple | None = None  # who asked for it, once known
        self._cancel_msg: dict | None = None  # child side: the parent's cancel request
        self._quiet_cancel = False            # a legacy stream's aclose() cancelled it: its block goes on
        # Child: the call's task scope. Parent: the open_context block's scope.
        self._scope: trio.CancelScope | None = None
        self._receivers = 0                   # tasks blocked in _next() now
        self._in_overrun = False              # we told the peer to hold
        self._overrun_sent = False            # we sent the peer a StreamOverrun
        self._peer_hold: trio.Event | None = None  # the peer told us to hold
        self._pld_type: Any = None            # the payload spec (pld_spec, limit_plds), or None
        self._result_msg: dict | None = None  # the 'return' message, its payload decoded on use
        self._codec = None                    # the last codec applied while in use (see _pld_codec)
        # Takes what is in the channel while its message pump is parked and
        # routes it (this context's items into its inbox), so that a
        # stream's reader needs no pass of the scheduler to get them from
        # the pump; None where the channel cannot be shared so (see
        # _taker). The child side's is set by the actor runtime.
        self._take = None
        if portal is not None and chan is portal.channel:
            self._take = _taker(chan, _transport.FROM_ACTOR, portal._route, ("bye", "gone"), self._inbox)

    # -- tractor's view of the state ------------------------------------
    @property
    def peer_side(self) -> str:
        return "child" if self.side == "parent" else "parent"

    @property
    def cancel_called(self) -> bool:
        """This side called ``cancel()``."""
        return self._cancel_called

    @property
    def canceller(self) -> tuple[str, str] | None:
        """The uid of the actor that cancelled this context, once known."""
        return self._canceller

    @property
    def cancel_acked(self) -> bool:
        """This side asked for the cancel and the peer confirmed it."""
        re = self._remote_error
        return (self._cancel_called and isinstance(re, ContextCancelled)
                and re.canceller == self._actor.uid)

    @property
    def cancelled_caught(self) -> bool:
        """The context ended by a cancel: its scope caught one, or the
        peer confirmed the cancel this side asked for."""
        return bool((self._scope is not None and self._scope.cancelled_caught) or self.cancel_acked)

    @property
    def maybe_error(self) -> BaseException | None:
        return self._remote_error or self._local_error

    @property
    def outcome(self) -> Any:
        """The peer's return value, or the error the context ended with, or
        ``Unresolved``."""
        err = self.maybe_error
        if err is not None:
            return err
        return self._result

    @property
    def has_outcome(self) -> bool:
        return self.maybe_error is not None or self._result is not Unresolved or self._result_msg is not None

    def _final_result_is_set(self) -> bool:
        return self._result is not Unresolved or self._result_msg is not None

    # -- plumbing --------------------------------------------------------
    async def _send(self, msg: dict) -> None:
        msg["cid"] = self.cid
        try:
            await self.chan.send(msg)
        except TypeError as exc:
            raise self._unsendable(msg, exc) from exc

    def _unsendable(self, msg: dict, exc: TypeError) -> TypeError:
        """The codec refused the value (its error names the type and where
        it was): nothing was sent. A plain TypeError, as tractor's codec
        raises: it is this side's own error (the peer then gets it boxed
        with that type)."""
        what = "first value" if msg["t"] == "started" else "stream item"
        return TypeError(f"{self.fn_name}: the {what} cannot be sent: {exc}")

    async def _look(self) -> bool:
        """A receive found the inbox empty: for up to RECV_PASSES scheduler
        passes (unless the machine is too busy to spin, see
        _transport.may_spin), take from the channel itself between passes,
        until something is in the inbox. True if something came meanwhile:
        this task made a full checkpoint already, so the caller takes it
        without another scheduler pass. Counts as a blocked receiver
        meanwhile (see _wake). Cancellable."""
        if not _transport.may_spin():
            return False
        inbox = self._inbox
        t = _transport.spin_start()
        self._receivers += 1
        try:
            for _ in range(RECV_PASSES):
                await trio.lowlevel.checkpoint()
                if not inbox.q:
                    self._take()
                if inbox.q:
                    return True
        finally:
            self._receivers -= 1
        _transport.spin_end(t)
        return False

    # -- payloads (subactor.msg) ------------------------------------------
    def _pld_out(self, msg: dict, value: Any, what: str) -> dict:
        """Put ``value`` in ``msg``. With a payload spec (``pld_spec=``,
        ``limit_plds``) or an applied codec, the payload travels as bytes of
        the typed codec, checked against the spec here first: a value
        outside it raises MsgTypeError on this (the sending) side."""
        codec = self._pld_codec()
        typ = self._pld_type
        if typ is None and codec is None:
            msg["v"] = value
            return msg
        from .msg import _codec
        msg["v"] = _pld_check(self, value, typ, codec or _codec._default, what, sending=True)
        msg["pb"] = True
        return msg

    def _pld_codec(self):
        """The codec of this context's payloads: the applied one
        (``apply_codec``), else the last one applied while this context was
        used (so a result returned after the block still uses it), else
        None (the default codec)."""
        mod = sys.modules.get("subactor.msg._codec")
        if mod is None:
            return self._codec  # subactor.msg never imported here: no codec was applied
        codec = mod._current.get()
        if codec is not mod._default:
            self._codec = codec
            return codec
        return self._codec

    def _pld_in(self, msg: dict, what: str) -> Any:
        """The payload of a received message, decoded (and checked) against
        this side's payload spec: a value outside it raises MsgTypeError on
        this (the receiving) side."""
        typ = self._pld_type
        value = msg.get("v")
        if msg.get("lazy"):
            del msg["lazy"]
            msg["v"] = value = _transport.unlazy(value)
        if not msg.get("pb") and typ is None:
            return value
        from .msg import _codec
        codec = self._pld_codec() or _codec._default
        if not msg.get("pb"):
            value = _pld_check(self, value, typ, codec, what, sending=False)
        return _pld_decode(self, value, typ, codec, what)

    async def _send_cleanup(self, msg: dict) -> None:
        msg["cid"] = self.cid
        await self.chan.send_cleanup(msg)

    def _raise_if_over(self) -> None:
        """An operation on a context that has an error raises it. (Sending
        to a peer whose task is over is not an error: the item is dropped
        there, as in tractor.)"""
        if self._remote_error is not None:
            raise self._remote_error

    async def _next(self) -> dict:
        self._receivers += 1
        try:
            msg = await self._inbox.get()
        finally:
            self._receivers -= 1
        self._consumed(msg)
        return msg

    def _consumed(self, msg: dict) -> None:
        if self._in_overrun and self._inbox.items <= self._inbox.limit // 2:
            self._in_overrun = False
            self.chan.send_control({"t": "go", "cid": self.cid})

    def _deliver(self, msg: dict) -> bool:
        """Route one message of this context (called by the message pump;
        never blocks, never raises). False for a stream item that found the
        inbox full on a side that does not allow overruns: the pump lets
        the reader run a few scheduler passes, then calls :meth:`_overrun`
        if it is still full."""
        t = msg["t"]
        if t == "yield":
            if self._peer_done or self._remote_error is not None or self._overrun_sent:
                return True
            inbox = self._inbox
            if inbox.full():
                if not self._allow_overruns:
                    return False
                inbox.put(msg)
                if not self._in_overrun:
                    self._in_overrun = True
                    self.chan.send_control({"t": "hold", "cid": self.cid})
                return True
            inbox.put(msg)
        elif t == "started":
            self._inbox.put(msg)
        elif t == "stop":
            self._release_hold()
            self._inbox.put(msg)
        elif t == "hold":
            if self._peer_hold is None:
                self._peer_hold = trio.Event()
        elif t == "go":
            self._release_hold()
        elif t == "cancel":
            # child side: the parent asks this task to end
            self._cancel_msg = msg
            by = msg.get("by")
            self._canceller = tuple(by) if by else self.peer_uid
            if self._scope is not None:
                self._scope.cancel()
        elif t in ("return", "error"):
            self._final(msg)
        return True

    def _overrun(self, msg: dict) -> None:
        """A stream item found the inbox full for good: it and every later
        item are dropped, the sender gets a StreamOverrun error for the
        context (as in tractor), and this side's stream raises the same
        error where the first item went missing: nothing is lost silently."""
        if not self._inbox.full():
            self._inbox.put(msg)
            return
        if self._overrun_sent:
            return
        self._overrun_sent = True
        where = "its stream" if self._stream_opened else "no stream open on it"
        err = StreamOverrun(
            boxed_type=StreamOverrun,
            message=f"{self.fn_name}: actor {self._actor.name!r} ({self.side} side, {where}) had no room for a stream "
            f"item: its msg_buffer_size={self._inbox.limit} was full and it does not allow overruns "
            f"(open it with allow_overruns=True to slow the sender instead)")
        self.chan.send_control({"t": "error", "cid": self.cid, "ovr": True,
                                "e": box_error(err, self._actor.uid)})
        self._local_error = err
        self._inbox.put({"t": "overrun", "cid": self.cid})

    def _release_hold(self) -> None:
        hold = self._peer_hold
        if hold is not None:
            self._peer_hold = None
            hold.set()

    def _final(self, msg: dict) -> None:
        """The peer's outcome arrived: its return value, its error, or (an
        ``ovr`` error) a StreamOverrun it sent while its task goes on."""
        if msg["t"] == "return":
            if not self._peer_done:
                self._result_msg = msg
                if not msg.get("pb") and self._pld_type is None:
                    self._result = msg.get("v")
        elif self._remote_error is None:
            exc = unbox_error(msg["e"])
            self._remote_error = exc
            if isinstance(exc, ContextCancelled):
                self._canceller = exc.canceller
            else:
                self._canceller = getattr(exc, "src_uid", None)
        if not msg.get("ovr"):
            self._peer_done = True
            self._final_ev.set()
        self._release_hold()
        self._inbox.put(msg)
        if msg["t"] == "error":
            self._wake()

    def _wake(self, entry: bool = False) -> None:
        """An error of the peer: a task blocked receiving gets it from its
        receive; otherwise the context's scope is cancelled so that tasks in
        it wake up (and the error is raised when the scope exits, or
        absorbed if it confirms a cancel this side asked for)."""
        scope = self._scope
        if scope is None or scope.cancel_called or self._receivers:
            return
        if self._quiet_cancel and self.cancel_acked:
            # The confirmation of a legacy stream's aclose(): the block goes
            # on (its stream has ended), as in tractor; the ContextCancelled
            # is absorbed when the block exits.
            return
        if self._inbox.items and not self.cancel_acked and (self._stream_opened or entry):
            # Stream items came before the error, and the block reads (or,
            # at its entry, may read) a stream: it may read them first (its
            # stream raises the error after the last one), but a block that
            # never reads them is woken all the same. A block without a
            # stream is woken at once, as in tractor.
            scope.deadline = min(scope.deadline, trio.current_time() + DRAIN_GRACE)
            return
        scope.cancel()

    def _peer_gone(self, why: BaseException) -> None:
        """The channel ended under the context: nothing more will come."""
        if self._peer_done:
            return
        if self._remote_error is None:
            self._remote_error = why
        self._peer_done = True
        self._final_ev.set()
        self._release_hold()
        self._inbox.put({"t": "error", "cid": self.cid, "gone": True})
        self._wake()

    # -- both sides ------------------------------------------------------
    @asynccontextmanager
    @trio.lowlevel.enable_ki_protection
    async def open_stream(self, allow_overruns: bool | None = None, msg_buffer_size: int | None = None,
                          *, zero_copy: bool = False):
        """A :class:`MsgStream` over this context; closed on exit.

        ``allow_overruns`` and ``msg_buffer_size`` set this side's flow
        control for the stream (see the module's docs). ``zero_copy=True``
        (this side's receive only): ``bytes`` of 64 KiB or more in received
        items arrive as read-only ``memoryview`` objects over the received
        message, without a copy; the message's buffer is reused only once
        every view of it is released (a view may outlive the stream)."""
        if type(zero_copy) is not bool:
            raise TypeError(f"zero_copy must be a bool, got {zero_copy!r}")
        if msg_buffer_size is not None:
            if type(msg_buffer_size) is not int or msg_buffer_size < 1:
                raise ValueError(f"msg_buffer_size must be an int >= 1, got {msg_buffer_size!r}")
            self._inbox.limit = msg_buffer_size
        if allow_overruns is not None:
            self._allow_overruns = bool(allow_overruns)
        if self.side == "child":
            if self._cancel_called:
                raise RuntimeError(f"{self.fn_name}: the context cancelled itself: no stream can be opened")
            if not self._started:
                raise RuntimeError("call `await ctx.started()` before open_stream()")
        elif not self._started:
            raise RuntimeError("open_stream() before the context started")
        if self._remote_error is not None and (not self._inbox.items or self.cancel_acked):
            # Nothing left to read before the error (or this side cancelled
            # the context): raise it now.
            raise self._remote_error
        if self._stream is not None and not self._stream._closed:
            raise RuntimeError(f"{self.fn_name}: a stream is already open on this context")
        stream = MsgStream(self)
        self._stream = stream
        self._stream_opened = True
        zc = getattr(self.chan, "zero_copy", None) if zero_copy else None
        if zc is not None:
            zc.add(self.cid)
        try:
            yield stream
        except trio.EndOfChannel as eoc:
            # The peer closed this stream and the block let the receive's
            # EndOfChannel out: absorbed here, as in tractor (the context's
            # outcome, say the error that follows the peer's close, is what
            # the block raises next).
            if getattr(eoc, "_subactor_stream", None) is not stream:
                raise
        finally:
            if zc is not None:
                zc.discard(self.cid)
            await stream.aclose()
        if self._remote_error is not None:
            # The context failed (or was cancelled) while the block ran
            # without meeting it: leaving the stream is where it shows.
            raise self._remote_error

    @trio.lowlevel.enable_ki_protection
    async def cancel(self, timeout: float = 0.616) -> None:
        """Cancel the context.

        Child side: cancels this task's scope (the parent gets a
        ContextCancelled naming this actor). Parent side: asks the child's
        task to end and waits, at most ``timeout`` seconds (shielded), for its
        answer; the ContextCancelled it answers with is absorbed here."""
        self._cancel_called = True
        if self.side == "child":
            self._canceller = self._actor.uid
            if self._scope is not None:
                self._scope.cancel()
            await trio.lowlevel.checkpoint()
            return
        if self._peer_done:
            await trio.lowlevel.checkpoint()
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + timeout
            await self.chan.send_cleanup({"t": "cancel", "cid": self.cid, "by": list(self._actor.uid)})
            await self._final_ev.wait()

    # -- child side ------------------------------------------------------
    @trio.lowlevel.enable_ki_protection
    async def started(self, value: Any = None) -> None:
        """Send the first value to the parent (once)."""
        if self.side != "child":
            raise RuntimeError("started() is called by the child side of a context")
        if self._started:
            raise RuntimeError("started() was already called")
        await self._send(self._pld_out({"t": "started"}, value, "started() value"))
        self._started = True

    async def send_yield(self, value: Any) -> None:
        """Legacy one-way streaming (``@subactor.stream``): send one item."""
        if self._stream is None:
            if not self._started:
                self._started = True
            self._stream = MsgStream(self)
        await self._stream.send(value)

    # -- parent side -----------------------------------------------------
    @trio.lowlevel.enable_ki_protection
    async def wait_for_result(self, hide_tb: bool = True) -> Any:
        """The child's return value; its error raised here. A
        ContextCancelled this side asked for is returned, not raised.
        Stream items not yet read are dropped. (``hide_tb``: tractor's
        traceback-hiding flag, accepted and ignored.)"""
        if self.side != "parent":
            raise RuntimeError("wait_for_result() is for the parent side of a context")
        while not self._peer_done and self._remote_error is None:
            await self._next()   # drains what the peer still streams
        err = self._remote_error
        if err is None:
            if self._result is Unresolved and self._result_msg is not None:
                self._result = self._pld_in(self._result_msg, "result")
            return self._result
        if self.cancel_acked:
            return err
        raise err

    result = wait_for_result

    def __repr__(self) -> str:
        return f"<Context {self.side} cid={self.cid} fn={self.fn_name} peer={self.peer_uid[0]!r}>"


# Scheduler passes the message pump gives a stream's reader to make room
# before a full inbox counts as overrun: a burst that arrives in one batch
# must not overrun a reader that is keeping up.
ROOM_PASSES = 8


def _pld_check(ctx: Context, value: Any, typ: Any, codec, what: str, *, sending: bool) -> Any:
    """Encode ``value`` with the typed codec and, with a spec, check it:
    the bytes, or MsgTypeError naming the payload, the spec and the path."""
    from . import _ext
    from .msg import _spec
    try:
        data = _ext.typed_dumps(value, codec.enc_hook)
        if typ is not None:
            _ext.typed_loads(data, _spec.spec_of(typ), codec.dec_hook)
    except (_ext.ValidationError, _ext.EncodeError) as exc:
        raise _pld_error(ctx, typ, what, exc, sending) from exc
    return data


def _pld_decode(ctx: Context, data: bytes, typ: Any, codec, what: str) -> Any:
    from . import _ext
    from .msg import _spec
    try:
        return _ext.typed_loads(data, _spec.spec_of(Any if typ is None else typ), codec.dec_hook)
    except _ext.DecodeError as exc:
        raise _pld_error(ctx, typ, what, exc, False) from exc


def _pld_error(ctx: Context, typ: Any, what: str, exc: BaseException, sending: bool) -> MsgTypeError:
    from .msg import _spec
    spec = "Any" if typ is None else _spec.spec_of(typ)[1]
    verb = "sent" if sending else "received"
    return MsgTypeError(
        f"{ctx.fn_name}: the {what} {verb} by {ctx.side} side is not of the payload spec {spec}: {exc}",
        boxed_type=MsgTypeError, src_uid=ctx._actor.uid if ctx._actor is not None else None,
        pld_spec=spec, side=ctx.side, sending=sending)


def _taker(chan, kinds: dict, route, pump_only: tuple, inbox: _Inbox):
    """A function that takes the messages waiting in ``chan`` while its
    message pump is parked in its receive with nothing in hand
    (TrioChannel.can_take), and routes each with ``route(msg)`` (which
    returns a context whose inbox had no room, or None), as the pump
    would. It stops when ``inbox`` (the calling stream's) is full, when
    the channel is empty, and at the first message only the pump may
    handle (malformed, an undecodable one, a kind in ``pump_only``, an
    item whose inbox is full, the end of the channel): that one is given
    back (TrioChannel.give_back) and the pump gets it first, so nothing is
    reordered or lost. None for a channel that cannot be shared so (not a
    TrioChannel over a ChannelEnd)."""
    if type(chan) is not _transport.TrioChannel or type(chan.end) is not _ext.ChannelEnd:
        return None
    malformed = _transport.malformed

    def take() -> None:
        while chan.can_take() and not inbox.full():
            msg = chan.take_nowait()
            if msg is None:
                return
            if malformed(msg, kinds) is not None or msg["t"] in pump_only or route(msg) is not None:
                chan.give_back(msg)
                return
    return take


async def _make_room(ctx: Context, msg: dict) -> None:
    """A stream item found its context's inbox full (no overruns allowed):
    let the reader run a few passes, then deliver it or declare the overrun."""
    for _ in range(ROOM_PASSES):
        await trio.lowlevel.cancel_shielded_checkpoint()
        if not ctx._inbox.full():
            break
    ctx._overrun(msg)


def cancelled_box(actor_uid: tuple, fn_name: str, by: str, canceller: tuple) -> dict:
    """The error box a cancelled call sends to its caller."""
    err = ContextCancelled(f"{fn_name} in actor {actor_uid[0]!r} was cancelled by {by}")
    box = box_error(err, actor_uid, canceller=canceller)
    box["tb"] = f"ContextCancelled: {fn_name} in actor {actor_uid[0]!r} was cancelled by {by}\n"
    return box
