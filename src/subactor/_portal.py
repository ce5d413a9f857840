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
import sys
import time
from contextlib import asynccontextmanager
from types import FunctionType
from typing import Any, Callable

import trio

from subactor import _ext
from subactor import _state
from subactor._context import Context, _current_ctx, _make_room
from subactor._decorators import is_context, is_stream
from subactor._exceptions import (ActorNotAvailable, ActorTooSlowError, ContextCancelled, MsgTypeError,
                                  check_findable, unbox_error)
from subactor import _transport
from subactor._transport import CLEANUP_WAIT, FROM_ACTOR, TrioChannel, malformed

_cids = itertools.count(1)
# How many scheduler passes a caller of portal.run looks for its own reply
# (Portal._wait_reply) before it leaves that to the message pump.
_TAKE_PASSES = 16
# Seconds a caller of portal.run looks for its reply right after the send,
# holding the event loop, before it yields (Portal._spin_for): a sync
# function's answer from an actor that spins for its next message comes
# within ~10 us, and a scheduler pass costs 4-8 us here (a park and a
# wake-up through the pump several of them). Only while spins pay (see
# _transport.may_spin) and for a portal's only call in flight.
CALL_SPIN = 30e-6
# A call whose reply that spin found is a cancel point (before its send)
# but no schedule point, except for one in FAST_OPS (the streams' budget,
# _transport.FastBudget; one for all the portals of this interpreter): a
# task calling back to back still lets the others (and deadlines) run
# within about half a millisecond.
_budget = _transport.FastBudget(left=0)


# Seconds portal.cancel_actor() over a peer's portal waits for its bye.
CANCEL_PEER_WAIT = 3.0


# check_remote_fn's answers for functions that passed: (fn, want_context)
# -> (module, qualname). Only module-level functions pass, which live as
# long as their module, so holding them costs nothing; the bound keeps a
# program that makes functions on the fly (and calls each once) from
# growing it without end.
_checked: dict = {}
_CHECKED_MAX = 4096


def check_remote_fn(fn: Callable, *, want_context: bool | None = None) -> tuple[str, str]:
    """(module, qualname) of a function that can be called in another actor,
    or a clear TypeError saying why it can't. Cached per function: the
    checks are pure functions of the function object, and every portal.run
    makes them."""
    try:
        return _checked[fn, want_context]
    except (KeyError, TypeError):   # (TypeError: an unhashable callable, checked every time)
        pass
    found = _check_remote_fn(fn, want_context)
    # Plain functions only (a partial is made per call, a bound method has
    # its own object each time), and not those of the parent's script as
    # an actor loads it: whether that may be called depends on whether it
    # is still loading.
    if type(fn) is FunctionType and fn.__module__ != "__mp_main__":
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked[fn, want_context] = found
    return found


def _check_remote_fn(fn: Callable, want_context: bool | None) -> tuple[str, str]:
    if isinstance(fn, str):
        raise TypeError(
            f"pass the function object, not its name {fn!r} (or use run_from_ns(ns, name))"
        )
    check_findable(fn, "an actor")
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not mod or not qual:
        raise TypeError(f"{fn!r} has no module-level name an actor could import")
    if mod == "__mp_main__" and getattr(sys.modules.get(mod), "_subactor_parent_main", False):
        mod = "__main__"   # the root's script, as this actor loaded it: its peers load it the same way
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


class _NoResult:
    """What ``wait_for_result()`` gives for an actor that has no result."""

    def __repr__(self) -> str:
        return "NoResult"


NoResult = _NoResult()


class _Reply:
    """The one answer a ``run`` call waits for: a one-shot waiter, no trio
    object per call. The calling task parks itself in :meth:`wait`; the
    message pump's delivery (or the actor's end) reschedules it. A caller
    cancelled meanwhile unparks and leaves; the answer that comes later
    finds no call under its id and is dropped."""

    __slots__ = ("msg", "task", "fn_name")

    def __init__(self, fn_name: str = "?"):
        self.msg: dict | None = None
        self.task = None         # the task parked in wait(), until it is woken or cancelled
        self.fn_name = fn_name   # what the call runs (named when its actor is abandoned)

    def _set(self, msg: dict) -> None:
        self.msg = msg
        task, self.task = self.task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _deliver(self, msg: dict) -> bool:
        if msg["t"] in ("return", "error") and self.msg is None:
            self._set(msg)
        return True

    def _peer_gone(self, why: BaseException) -> None:
        if self.msg is None:
            self._set({"t": "gone", "exc": why})

    def _abort(self, raise_cancel) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait(self) -> None:
        """Until the answer is there: a full checkpoint (as trio.Event.wait)."""
        if self.msg is not None:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)


class Portal:
    """Calls into one actor: ``run``, ``run_from_ns``, ``open_context``,
    ``cancel_actor``, and for ``run_in_actor`` actors ``wait_for_result``."""

    def __init__(self, name: str, uid: tuple[str, str], chan, *, backend: str = "subint"):
        self.name = name
        self.uid = uid
        self.channel = chan          # TrioChannel (parent end)
        self.backend = backend
        self._child = None           # the nursery's _Child for this actor (set by the nursery)
        self._calls: dict[int, _Reply | Context] = {}
        self._alive = True           # the actor may still answer
        self._bye = False            # the actor said bye (or closed its end)
        self._failed: str | None = None  # what malformed message failed its channel
        self._told = False           # a call waiting on the actor was told it ended
        self._remote = None          # a remote-spawned actor's RemoteHandle (subactor.discovery._remote)
        # What the actor still runs for this portal: cid -> function, until
        # its final answer comes (also after the caller gave up on it), for
        # the log of an abandon.
        self.running: dict[int, str] = {}
        self._spin_ok = True         # the last call's answer came quickly (see _spin_for)

    @property
    def chan(self):
        """The parent's end of the actor's channel (tractor's name)."""
        return self.channel

    @property
    def actor(self):
        """The actor this portal is used from (tractor's name): the
        current actor, not the one it reaches (that is ``channel.aid``)."""
        return _state.current_actor()

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
                        if self._remote is not None:
                            self.channel.spawn(self._drain_remote)
                        return True
                    if msg["t"] == "gone":   # the daemon of a remote-spawned actor: how it ended
                        if self._remote is not None:
                            self._remote.gone(str(msg.get("how") or ""))
                        continue
                    call = self._route(msg)
                    if call is not None:
                        await _make_room(call, msg)
        except trio.EndOfChannel:
            self._bye = True
            if self._remote is not None:
                self._remote.gone()
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self._remote is not None:
                self._remote.gone()
            return False

    def _route(self, msg: dict):
        """Hand a well-formed call message to its call (never blocks). The
        context whose inbox had no room for it (the pump then makes room),
        else None."""
        if msg["t"] in ("return", "error"):
            self.running.pop(msg["cid"], None)
        call = self._calls.get(msg["cid"])
        if call is not None and not call._deliver(msg):
            return call
        return None

    def _take_replies(self) -> None:
        """The calling task takes what the actor sent, while the message
        pump is parked in its receive with nothing in hand, and routes it
        right here (its own reply among it): the reply needs no pass of
        the scheduler to go from the pump to the caller. What only the pump
        may handle (a bye, anything malformed, an item that found its
        inbox full, an end of channel) is left to it: the message is handed
        back (TrioChannel.give_back) and taking stops, so nothing is
        reordered."""
        chan = self.channel
        while chan.can_take():
            msg = chan.take_nowait()
            if msg is None:
                return
            if (malformed(msg, FROM_ACTOR) is not None or msg["t"] in ("bye", "gone")
                    or self._route(msg) is not None):
                chan.give_back(msg)
                return

    def _spin_for(self, reply: _Reply) -> bool:
        """The caller looks for its reply right after the send, without a
        pass of the scheduler, for at most CALL_SPIN seconds (the event
        loop is held that long, as by any code that computes): True if it
        came. A miss (a function that takes longer) turns the spin off for
        this portal until an answer comes quickly again."""
        chan = self.channel
        t = _transport.spin_start()
        until = t[0] + CALL_SPIN
        now = time.perf_counter
        while chan.can_take():
            self._take_replies()
            if reply.msg is not None:
                return True
            if now() >= until:
                break
        self._spin_ok = False
        _transport.spin_end(t)
        return False

    async def _wait_reply(self, reply: _Reply) -> None:
        """Until ``reply`` has its answer: the calling task looks for it
        itself, first right after the send without yielding (_spin_for),
        then for a few scheduler passes, then it parks until the pump
        delivers it. Cancellable wherever it waits."""
        if type(self.channel) is TrioChannel and type(self.channel.end) is _ext.ChannelEnd and _transport.may_spin():
            if self._spin_ok and len(self._calls) == 1 and self._spin_for(reply):
                # A cancel point came before the send; the schedule point
                # is skipped but for one call in FAST_OPS (see _budget).
                if not _budget.take():
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return
            t = _transport.spin_start()
            for _ in range(_TAKE_PASSES):
                await trio.lowlevel.checkpoint()
                if reply.msg is None:
                    self._take_replies()
                if reply.msg is not None:
                    self._spin_ok = True   # a quick answer after all: spin for the next one
                    return
            _transport.spin_end(t)
        await reply.wait()

    async def _drain_remote(self) -> None:
        """After a remote actor's bye: read the connection to its end (the
        daemon's ``gone``, then the close), so that its handle is done."""
        h = self._remote
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            try:
                while True:
                    msg = await self.channel.recv()
                    if isinstance(msg, dict) and msg.get("t") == "gone":
                        h.gone(str(msg.get("how") or ""))
            except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError, _ext.DecodeError):
                pass
        h.gone()

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
        for call in list(self._calls.values()):
            self._told = True
            call._peer_gone(ActorNotAvailable(why))

    def _check_alive(self) -> None:
        if not self._alive:
            raise ActorNotAvailable(self._failed or f"actor {self.name!r} has ended: its portal can't be used any more")

    def _close_call(self, cid: int) -> None:
        self._calls.pop(cid, None)

    async def _send(self, msg: dict, fn_name: str = "", then_wait: bool = False) -> None:
        try:
            if then_wait and type(self.channel) is TrioChannel:
                await self.channel.send_then_wait(msg)
            else:
                await self.channel.send(msg)
        except TypeError as exc:
            # The codec refused the message (its error names the type and
            # where it was): nothing was sent.
            raise MsgTypeError(f"arguments of {fn_name} cannot be sent: {exc}") from exc
        except ValueError as exc:
            # Larger than the channel takes: nothing was sent.
            raise ValueError(f"arguments of {fn_name} cannot be sent: {exc}") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorNotAvailable(self._failed or f"actor {self.name!r} has ended: its portal can't be used "
                                    f"any more") from None

    # -- RPC ---------------------------------------------------------------
    async def run(self, fn: Callable, /, *args: str, **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` (sync or async, module-level) in the actor.
        tractor's older form ``run("module.path", "fn_name", **kw)`` works
        too (a DeprecationWarning, as in tractor: use run_from_ns)."""
        if isinstance(fn, str):
            if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
                raise TypeError(f"portal.run({fn!r}, ...) takes a function object (or tractor's older form: a "
                                f"module path, then the function's name as a str); got {args!r} after the path")
            import warnings

            warnings.warn("portal.run(module_path, fn_name) is deprecated (as in tractor): pass the function, "
                          "or use portal.run_from_ns()", DeprecationWarning, stacklevel=2)
            return await self.run_from_ns(fn, args[0], **kwargs)
        if args:
            raise TypeError(f"portal.run({getattr(fn, '__name__', fn)!r}, {', '.join(map(repr, args))}): a "
                            f"second positional argument goes with a module path only; pass the function's "
                            f"arguments by keyword")
        ns, name = check_remote_fn(fn, want_context=False)
        return await self.run_from_ns(ns, name, **kwargs)

    @trio.lowlevel.enable_ki_protection
    async def run_from_ns(self, namespace_path: str, function_name: str, **kwargs: Any) -> Any:
        """Call ``namespace_path.function_name(**kwargs)`` in the actor."""
        if namespace_path == "self":
            raise NotImplementedError(
                f"run_from_ns('self', {function_name!r}): subactor's actors expose no runtime methods over RPC; "
                f"use portal.cancel_actor() to end the actor, ctx.cancel() to cancel a context, and a function "
                f"of an enabled module for anything else")
        self._check_alive()
        cid = next(_cids)
        reply = self._calls[cid] = _Reply(f"{namespace_path}.{function_name}")
        self.running[cid] = reply.fn_name
        sent = False
        try:
            # No schedule point after the send: the wait below is one.
            await self._send({"t": "run", "cid": cid, "ns": namespace_path, "fn": function_name, "kw": kwargs},
                             f"{namespace_path}.{function_name}", then_wait=True)
            sent = True
            try:
                await self._wait_reply(reply)
            except trio.Cancelled:
                await self.channel.send_cleanup({"t": "cancel", "cid": cid, "by": list(_state.current_actor().uid)})
                raise
            msg = reply.msg
            if msg["t"] == "return":
                return msg.get("v")
            if msg["t"] == "gone":
                raise msg["exc"]
            raise unbox_error(msg["e"])
        finally:
            if not sent:
                # Cancelled (or refused) before the actor got the call: it
                # will never answer it, so nothing clears it from running.
                self.running.pop(cid, None)
            self._close_call(cid)

    @asynccontextmanager
    @trio.lowlevel.enable_ki_protection
    async def open_context(self, fn: Callable, allow_overruns: bool = False, **kwargs: Any):
        """Open a context with ``fn(ctx, **kwargs)`` in the actor; yields
        ``(ctx, first)`` where ``first`` is the value the child passed to
        ``ctx.started()``. Leaving the block waits for the child's result
        (and raises its error); an error in the block cancels the child.

        The block runs in a cancel scope of the context: when the child's
        side ends with an error (its own failure, a cancel of the actor
        that this side did not ask for with ``ctx.cancel()``, the actor's
        death, a StreamOverrun), tasks in the block are woken and the block
        raises that error. A cancellation this side asked for with
        ``ctx.cancel()`` is absorbed. ``allow_overruns``: see
        :mod:`subactor._context`."""
        ns, name = check_remote_fn(fn, want_context=True)
        async with self._open_ctx(ns, name, kwargs, allow_overruns=allow_overruns,
                                  pld_spec=getattr(fn, "_subactor_pld_spec", None)) as pair:
            yield pair

    @asynccontextmanager
    async def _open_ctx(self, ns: str, name: str, kwargs: dict, *, allow_overruns: bool = False,
                        legacy: bool = False, pld_spec: Any = None):
        self._check_alive()
        cid = next(_cids)
        ctx = Context(self.channel, cid, "parent", peer_uid=self.uid, fn_name=f"{ns}.{name}", portal=self,
                      allow_overruns=bool(allow_overruns))
        ctx._pld_type = pld_spec  # the @context(pld_spec=) of the function: both sides check it
        self._calls[cid] = ctx
        self.running[cid] = ctx.fn_name
        token = None
        try:
            msg = {"t": "ctx", "cid": cid, "ns": ns, "fn": name, "kw": kwargs}
            if legacy:
                msg["legacy"] = True
            await self._send(msg, f"{ns}.{name}")
            try:
                first = await self._first(ctx)
            except BaseException:
                await self._cancel_ctx(ctx)
                raise
            ctx._started = True
            ctx._scope = trio.CancelScope()
            if ctx._remote_error is not None:
                ctx._wake(entry=True)   # the error came with 'started', before there was a scope to wake
            token = _current_ctx.set(ctx)
            try:
                with ctx._scope:
                    try:
                        yield ctx, first
                    except trio.Cancelled as cancelled:
                        hidden = _hidden_error(cancelled, ctx)
                        if hidden is not None:
                            raise hidden from None
                        raise
            except BaseException as exc:
                if _only(exc, ctx._remote_error):
                    # A group (a nursery in the block) of nothing but the
                    # context's own error and the cancellations it caused:
                    # the block raises that error, bare.
                    if not ctx.cancel_acked:
                        await self._cancel_ctx(ctx)
                        raise ctx._remote_error from None
                    exc = ctx._remote_error
                if isinstance(exc, ContextCancelled) and exc is ctx._remote_error and ctx.cancel_acked:
                    # The block met the cancel it asked for (a stream's
                    # receive raised it): absorbed.
                    ctx._local_error = exc
                    return
                if exc is not ctx._remote_error and ctx._local_error is None:
                    ctx._local_error = exc
                await self._cancel_ctx(ctx)
                raise
            if ctx._scope.cancelled_caught and ctx._remote_error is not None:
                # Woken by the child's error (see Context._wake), or by the
                # confirmation of this side's ctx.cancel() (absorbed).
                if ctx.cancel_acked:
                    ctx._local_error = ctx._remote_error
                    return
                await self._cancel_ctx(ctx)
                raise ctx._remote_error
            try:
                await ctx.wait_for_result()
            except BaseException:
                await self._cancel_ctx(ctx)
                raise
            if ctx.cancel_acked:
                ctx._local_error = ctx._remote_error
        finally:
            if token is not None:
                _current_ctx.reset(token)
            self._close_call(cid)

    async def _first(self, ctx: Context) -> Any:
        while True:
            msg = await ctx._next()
            t = msg["t"]
            if t == "started":
                return ctx._pld_in(msg, "started() value")
            if t == "error":
                raise ctx._remote_error
            if t == "return":
                raise RuntimeError(f"{ctx.fn_name} returned without calling ctx.started()")

    async def _cancel_ctx(self, ctx: Context) -> None:
        """Cancel the child of a context whose parent block failed, and wait
        (bounded by the ladder's grace) for its final message so nothing is
        left running."""
        if ctx._peer_done:
            return
        grace = self._child.grace if self._child is not None else CLEANUP_WAIT
        await ctx.cancel(timeout=grace)

    @asynccontextmanager
    @trio.lowlevel.enable_ki_protection
    async def open_stream_from(self, async_fn: Callable, **kwargs: Any):
        """Legacy one-way streaming: run ``async_fn(**kwargs)`` in the actor,
        an async generator (or a ``@subactor.stream`` function, which gets
        a ``ctx`` and sends with ``ctx.send_yield``), and yield a stream of
        what it yields. Leaving the block cancels it if it is still going."""
        ns, name = check_remote_fn(async_fn, want_context=None)
        if not (is_stream(async_fn) or _is_async_gen(async_fn)):
            raise TypeError(f"{ns}.{name} is neither an async generator function nor a @subactor.stream function")
        async with self._open_ctx(ns, name, kwargs, legacy=True) as (ctx, _):
            stream = ctx._stream = _RecvOnly(ctx)
            ctx._stream_opened = True
            try:
                yield stream
            finally:
                if not ctx._peer_done:
                    await ctx.cancel()

    # -- actor lifetime ----------------------------------------------------
    @trio.lowlevel.enable_ki_protection
    async def cancel_actor(self, timeout: float | None = None, raise_on_timeout: bool = False) -> bool:
        """Ask the actor to end (cancelling its running calls) and wait until
        it has: cooperatively, then by interrupt, then abandoned at the hard
        deadline. Returns once its calls are over and it has acknowledged
        (its interpreter's teardown goes on; the nursery waits for that at
        its exit), or once it is gone. True if it ended, False if it had to
        be abandoned.

        With ``timeout`` it waits at most that long for the acknowledgement
        and then returns False (or raises ActorTooSlowError with
        ``raise_on_timeout``); the ladder goes on regardless, so the actor
        still ends within its deadlines."""
        self.channel._cancel_called = True
        if self._child is None:
            return await self._cancel_peer(timeout, raise_on_timeout)
        if timeout is None:
            return await self._child.stop()
        if not (isinstance(timeout, (int, float)) and timeout >= 0):
            raise ValueError(f"timeout must be a number >= 0 or None, got {timeout!r}")
        # Not self._child.stop(): it waits shielded, so the timeout could not
        # cut it short.
        self._child.request_stop("portal")
        with trio.move_on_after(timeout) as scope:
            scope.shield = True
            await self._child.settled.wait()
            return self._child.rung < 3
        if raise_on_timeout:
            raise ActorTooSlowError(f"actor {self.name!r} did not acknowledge the cancel within {timeout} s")
        return False

    async def _cancel_peer(self, timeout: float | None, raise_on_timeout: bool) -> bool:
        """``cancel_actor()`` over a peer's portal (from ``find_actor``): ask
        in band and wait for the bye, at most ``timeout`` (default
        CANCEL_PEER_WAIT) seconds. The actor's own parent ends it through
        its ladder; this side can only ask."""
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout >= 0):
            raise ValueError(f"timeout must be a number >= 0 or None, got {timeout!r}")
        if not self._usable_for_cancel():
            await trio.lowlevel.checkpoint()
            return not self._alive
        await self.channel.send_cleanup({"t": "cancel_actor", "by": list(_state.current_actor().uid)})
        done = getattr(self, "_pump_done", None)
        with trio.move_on_after(CANCEL_PEER_WAIT if timeout is None else timeout) as scope:
            scope.shield = True
            if done is not None:
                await done.wait()
            return self._bye
        if raise_on_timeout:
            raise ActorTooSlowError(f"actor {self.name!r} did not acknowledge the cancel within "
                                    f"{CANCEL_PEER_WAIT if timeout is None else timeout} s")
        return False

    async def wait_for_result(self, hide_tb: bool = True) -> Any:
        """The return value of a ``run_in_actor`` actor's function (its error
        re-raised). A ``start_actor`` actor has none: ``NoResult``, at once.
        (``hide_tb``: tractor's traceback-hiding flag, accepted and ignored.)"""
        child = self._child
        if child is None or not child.is_ria:
            # As tractor: only a run_in_actor actor has a result to wait for.
            await trio.lowlevel.checkpoint()
            return NoResult
        await child.result_ready.wait()
        ok, value = child.result
        if ok:
            return value
        raise value

    result = wait_for_result

    def __repr__(self) -> str:
        return f"<Portal {self.name!r} alive={self._alive}>"


def _hidden_error(cancelled: BaseException, ctx: Context) -> BaseException | None:
    """The error a block was already raising when the context's own wake
    (see Context._wake) cancelled it, if that is what happened: a
    ``finally: await peer_ctx.cancel()`` while an error unwinds meets a
    checkpoint, and the Cancelled raised there would hide the error (and,
    absorbed with the cancel's confirmation, lose it). Else None."""
    if not ctx._scope.cancel_called or ctx._remote_error is None:
        return None
    err = cancelled.__context__
    while isinstance(err, trio.Cancelled):
        err = err.__context__
    if err is None or isinstance(err, (GeneratorExit, KeyboardInterrupt)) or err is ctx._remote_error:
        return None
    return err


def _only(exc: BaseException, err: BaseException | None) -> bool:
    """True if ``exc`` is an exception group whose leaves are all ``err``
    (by identity) or trio cancellations, with ``err`` among them."""
    if err is None or not isinstance(exc, BaseExceptionGroup):
        return False
    found = False
    stack = [exc]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        elif e is err:
            found = True
        elif not isinstance(e, trio.Cancelled):
            return False
    return found


def _is_async_gen(fn) -> bool:
    return bool(getattr(getattr(fn, "__code__", None), "co_flags", 0) & 0x200)  # CO_ASYNC_GENERATOR


class _RecvOnly:
    """The stream of ``open_stream_from``: receive only."""

    def __init__(self, ctx: Context):
        from subactor._context import MsgStream

        self._s = MsgStream(ctx)
        self._s._closed = True   # nothing to send, no 'stop' to say

    async def receive(self) -> Any:
        return await self._s.receive()

    def receive_nowait(self) -> Any:
        return self._s.receive_nowait()

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._s.__anext__()

    @property
    def closed(self) -> bool:
        return self._s._eof

    async def aclose(self) -> None:
        """Stop receiving; the remote generator is cancelled."""
        ctx = self._s._ctx
        self._s._eof = True
        if not ctx._peer_done:
            ctx._quiet_cancel = True
            await ctx.cancel()
        else:
            await trio.lowlevel.checkpoint()

    def subscribe(self):
        return self._s.subscribe()


__all__ = ["Portal", "ContextCancelled"]
