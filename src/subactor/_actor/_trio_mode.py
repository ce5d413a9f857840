"""The actor runtime's trio mode: every call is a task of one nursery.

Entered from :mod:`subactor._actor._runtime` when the first async call or context
arrives; the actor stays in it until the parent sends ``cancel_actor`` or
its channel ends. Leaving cancels every running call; each cancelled call
tells its caller with a ContextCancelled box.
"""
from __future__ import annotations

import math

import trio

from subactor import _ext
from subactor._context import Context, cancelled_box
from subactor._decorators import is_context
from subactor._actor._runtime import Runtime, _is_async
from subactor._transport import FROM_PARENT, TrioChannel, drain, malformed


class _Call:
    def __init__(self, cid):
        self.cid = cid
        self.scope = trio.CancelScope()
        self.inbox_send, self.inbox_recv = trio.open_memory_channel(math.inf)
        self.cancel_requested = False  # the caller sent 'cancel'


async def _watch_wake(calls: trio.CancelScope) -> None:
    """Watch the actor's wake descriptor for as long as the actor serves.

    A cooperative cancel request cancels every call (``calls``); the watch
    goes on afterwards, because a later wake is how an interrupt reaches a
    loop idle in epoll (a call shielded from the cancel, say): epoll returns,
    bytecode runs, and the interrupt is raised right there, in trio's own
    loop, which then ends the run whatever its tasks are doing."""
    fd = _ext.wake_fileno()
    if fd is None:
        return
    while True:
        await trio.lowlevel.wait_readable(fd)
        at_eof = drain(fd)
        if _ext.cancel_requested():
            calls.cancel()
        if at_eof:
            # A process actor's cancel pipe, closed by the parent: readable
            # for good from now on, so watching it would spin. Its interrupt
            # is SIGINT, which needs no watcher.
            return


async def serve(rt: Runtime, end, first: dict) -> None:
    chan = TrioChannel(end)
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            outer.start_soon(_watch_wake, nursery.cancel_scope)
            _dispatch(rt, chan, nursery, first)
            while True:
                try:
                    msg = await chan.recv()
                except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                except _ext.DecodeError as exc:
                    raise rt.bad_message(f"bytes that are not a message ({exc})") from None
                what = malformed(msg, FROM_PARENT)
                if what is not None:
                    raise rt.bad_message(what)
                if msg["t"] == "cancel_actor":
                    rt.bye = True
                    break
                _dispatch(rt, chan, nursery, msg)
            nursery.cancel_scope.cancel()
        if rt.bye:
            # Every call has ended and sent its final message: say bye now,
            # before trio's own teardown, so that the parent's ladder hears
            # the acknowledgement as early as it can.
            rt.say_bye()
        outer.cancel_scope.cancel()


def _dispatch(rt: Runtime, chan: TrioChannel, nursery, msg: dict) -> None:
    t = msg.get("t")
    cid = msg.get("cid")
    if t in ("run", "ctx"):
        call = _Call(cid)
        rt.tasks[cid] = call
        nursery.start_soon(_run_call, rt, chan, call, msg)
        return
    call = rt.tasks.get(cid)
    if call is None:
        return  # the call already ended: a late stream item or cancel
    if t in ("yield", "stop"):
        call.inbox_send.send_nowait(msg)
    elif t == "cancel":
        call.cancel_requested = True
        call.scope.cancel()


async def _send_final(rt: Runtime, chan: TrioChannel, msg: dict, fn_name: str) -> None:
    """Send a call's final message. It must get out even while the actor is
    being cancelled, but never wait unbounded for a full channel. A value
    that cannot be sent (not encodable, or larger than the channel takes)
    fails that one call with an error saying so; the actor goes on."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + 1.0
        try:
            await chan.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except (TypeError, ValueError) as exc:
            err = type(exc)(f"the return value of {fn_name} cannot be sent back: {exc}")
            try:
                await chan.send(rt.error_msg(msg["cid"], err))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def _run_call(rt: Runtime, chan: TrioChannel, call: _Call, msg: dict) -> None:
    cid = call.cid
    fn_name = f"{msg.get('ns')}.{msg.get('fn')}"
    final = None
    try:
        with call.scope:
            try:
                fn = rt.resolve(msg["ns"], msg["fn"])
                kw = msg.get("kw") or {}
                if msg["t"] == "ctx":
                    if not is_context(fn):
                        raise TypeError(
                            f"{fn_name} is not a context function: decorate it with @subactor.context"
                        )
                    ctx = Context(chan, cid, "callee", call.inbox_recv, actor_name=rt.name,
                                  peer_name="parent", fn_name=fn_name)
                    ctx._scope = call.scope
                    value = await fn(ctx, **kw)
                    if not ctx._started:
                        raise RuntimeError(f"context function {fn_name} returned without calling ctx.started()")
                else:
                    if is_context(fn):
                        raise TypeError(f"{fn_name} is a context function: open it with portal.open_context()")
                    value = fn(**kw)
                    if _is_async(fn):
                        value = await value
                final = {"t": "return", "cid": cid, "v": value}
            except Exception as exc:
                final = rt.error_msg(cid, exc)
        if call.scope.cancelled_caught:
            by = "its caller" if call.cancel_requested else f"actor {rt.name!r} itself"
            final = {"t": "error", "cid": cid, "e": cancelled_box(rt.name, fn_name, by)}
        if final is not None:
            await _send_final(rt, chan, final, fn_name)
    except trio.Cancelled:
        # The whole actor is being cancelled, or is failing: in the latter
        # case the caller hears how it failed from its parent's side.
        if not rt.failing:
            await _send_final(rt, chan, {"t": "error", "cid": cid,
                                         "e": cancelled_box(rt.name, fn_name, "actor cancel")}, fn_name)
        raise
    finally:
        rt.tasks.pop(cid, None)
