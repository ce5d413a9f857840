"""The actor runtime's trio mode: every call is a task of one nursery.

Entered from :mod:`subactor._actor._runtime` when the first async call or context
arrives; the actor stays in it until the parent sends ``cancel_actor`` or
its channel ends. Leaving cancels every running call; each cancelled call
tells its caller with a ContextCancelled box.
"""
from __future__ import annotations

import contextvars
import opcode
import os

import trio

from subactor import _ext, _state
from subactor._context import Context, _current_ctx, _make_room, _taker, cancelled_box
from subactor._decorators import is_context, is_stream
from subactor._actor._runtime import Runtime, _is_async
from subactor._transport import FROM_PARENT, TrioChannel, drain, malformed


class _Call:
    __slots__ = ("cid", "scope", "ctx", "cancel_by")

    def __init__(self, cid, ctx: Context | None):
        self.cid = cid
        self.scope = trio.CancelScope()
        self.ctx = ctx                 # a context call's Context (made before its task runs)
        self.cancel_by = None          # the uid that sent 'cancel' for a run call


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


class _Link:
    """One channel this actor serves calls on: the one to its parent, or one
    a peer opened through the process's hub (see subactor.discovery). Call
    ids are the caller's, so each link routes its own."""

    __slots__ = ("chan", "peer_uid", "tasks", "is_parent")

    def __init__(self, chan: TrioChannel, peer_uid: tuple[str, str], *, is_parent: bool):
        self.chan = chan
        self.peer_uid = tuple(peer_uid)
        self.tasks: dict = {}   # cid -> _Call
        self.is_parent = is_parent


async def serve(rt: Runtime, end, first: dict) -> None:
    chan = TrioChannel(end)
    # The peer's (the parent's) identity on the channel, as tractor's Channel.aid.
    chan.aid = _state.Aid(rt.parent_uid[0], rt.parent_uid[1],
                          os.getppid() if _ext.current_actor() is None else os.getpid())
    parent = _Link(chan, rt.parent_uid, is_parent=True)
    async with trio.open_nursery() as outer:
        chan.spawn = outer.start_soon
        rt.spawn = outer.start_soon
        async with trio.open_nursery() as nursery:
            rt.calls = nursery
            outer.start_soon(_watch_wake, nursery.cancel_scope)
            if rt.hub_end is not None:
                from subactor.discovery._client import HubLink

                rt.hub = HubLink(rt.hub_end, rt.uid, rt.hub_stash)
                rt.hub.start(outer.start_soon, lambda link_chan, aid: outer.start_soon(serve_peer, rt, link_chan, aid))
            if rt.listener is not None:
                outer.start_soon(_serve_listener, rt)
            if first.get("t") in ("run", "ctx"):
                _dispatch(rt, parent, nursery, first)
            by = await _serve_link(rt, parent, nursery)
            if by is not None:
                rt.bye = True
                rt.cancel_by = by
            nursery.cancel_scope.cancel()
        if rt.bye:
            # Every call has ended and sent its final message: say bye now,
            # before trio's own teardown, so that the parent's ladder hears
            # the acknowledgement as early as it can.
            rt.say_bye()
        outer.cancel_scope.cancel()


async def _serve_link(rt: Runtime, link: _Link, nursery) -> tuple | None:
    """Route one link's messages until it ends (None) or asks the actor to
    leave (returns the uid of who asked)."""
    chan = link.chan
    while True:
        try:
            # A whole backlog per checkpoint: a stream's burst of items
            # costs one scheduler pass, not one each.
            batch = await chan.recv_some()
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except _ext.DecodeError as exc:
            if link.is_parent:
                raise rt.bad_message(f"bytes that are not a message ({exc})") from None
            _drop_peer(link, f"bytes that are not a message ({exc})")
            return
        for msg in batch:
            what = malformed(msg, FROM_PARENT)
            if what is not None:
                if link.is_parent:
                    raise rt.bad_message(what)
                _drop_peer(link, what)
                return
            if msg["t"] == "cancel_actor":
                # Asked to leave: the parent, or a peer (tractor's semantics: a
                # peer may end the actor too). The caller decides what ends.
                return tuple(msg["by"]) if msg.get("by") else link.peer_uid
            full = _dispatch(rt, link, nursery, msg)
            if full is not None:
                await _make_room(full, msg)


def _drop_peer(link: _Link, what: str) -> None:
    """A peer sent something that is not a message: its link is closed and
    its calls cancelled; the actor and its other links go on."""
    from subactor import log

    log.get_logger("subactor.discovery").warning(
        "peer %r sent %s: its connection was closed", link.peer_uid[0], what)


async def serve_peer(rt: Runtime, chan: TrioChannel, aid) -> None:
    """Serve the calls of a peer that connected through the hub, until its
    link ends; then its calls still running are cancelled."""
    link = _Link(chan, aid.uid, is_parent=False)
    chan.aid = aid
    chan.spawn = rt.spawn
    try:
        by = await _serve_link(rt, link, rt.calls)
        if by is not None and not rt.bye:
            # Every call ends (the parent's too), then the parent and this
            # peer hear bye.
            rt.bye = True
            rt.cancel_by = by
            rt.bye_to.append(chan)
            rt.calls.cancel_scope.cancel()
    finally:
        for call in list(link.tasks.values()):
            call.scope.cancel()
        if chan not in rt.bye_to:
            chan.close()   # (one that asked for bye is closed once it is said, with the actor)


async def _serve_listener(rt: Runtime) -> None:
    """A process actor's Unix socket: each peer that connects (authenticated
    as every subactor.ipc connection is) and names this actor is served."""
    from subactor import ipc

    sock, rt.listener = rt.listener, None   # serve_socket owns it now; its file is removed at the end
    path = sock.getsockname()

    async def handler(conn) -> None:
        hello = conn.hello
        if hello.get("t") != "peer" or tuple(hello.get("uid") or ()) != rt.uid:
            conn.end.send_nowait(_ext.dumps({"t": "err", "err": f"this is actor {rt.name!r}; it serves peer "
                                                                 f"connections to itself only"}))
            return
        name, uuid, pid = hello["aid"]
        conn.end.send_nowait(_ext.dumps({"t": "ok"}))
        await serve_peer(rt, conn.channel(), _state.Aid(name, uuid, pid))

    try:
        await ipc.serve_socket(sock, handler, hello={"aid": [rt.name, rt.uid[1], os.getpid()]})
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


async def serve_root_peer(rt: Runtime, chan: TrioChannel, aid) -> None:
    """The root's side of a peer's channel (the root's enable_modules): the
    same calls and contexts as an actor's. A peer's cancel_actor ends what
    that peer runs in the root and is answered with bye; the root itself
    goes on (it ends with its program)."""
    link = _Link(chan, aid.uid, is_parent=False)
    chan.aid = aid
    by = None
    try:
        async with trio.open_nursery() as nursery:
            chan.spawn = nursery.start_soon
            by = await _serve_link(rt, link, nursery)
            nursery.cancel_scope.cancel()
        if by is not None:
            chan.send_control({"t": "bye"})
            await trio.lowlevel.checkpoint()
    finally:
        chan.close()


_PUMP_ONLY = ("run", "ctx", "cancel_actor")


def _dispatch(rt: Runtime, link: _Link, nursery, msg: dict) -> Context | None:
    """Start a call, or route a message to its call. Returns the context
    whose inbox had no room for a stream item (see _portal._make_room)."""
    t = msg.get("t")
    cid = msg.get("cid")
    if t == "run" and _run_inline(rt, link, nursery, msg):
        return None
    if t in ("run", "ctx"):
        ctx = None
        if t == "ctx":
            ctx = Context(link.chan, cid, "child", peer_uid=link.peer_uid, fn_name=f"{msg['ns']}.{msg['fn']}")
            # Its stream's reader may take messages from the channel while
            # the pump is parked (see _context._taker): routed as here;
            # what starts or ends calls is left to the pump.
            ctx._take = _taker(link.chan, FROM_PARENT, lambda m: _dispatch(rt, link, nursery, m), _PUMP_ONLY,
                               ctx._inbox)
        call = _Call(cid, ctx)
        if ctx is not None:
            ctx._scope = call.scope
        link.tasks[cid] = call
        # The task is named after the function it runs (as tractor's): what
        # a REPL's banner and a stack dump (subactor.devx) show.
        nursery.start_soon(_run_call, rt, link, call, msg, name=str(msg.get("fn")))
        return None
    call = link.tasks.get(cid)
    if call is None:
        return None  # the call already ended: a late stream item or cancel
    if call.ctx is not None:
        return None if call.ctx._deliver(msg) else call.ctx
    if t == "cancel":
        call.cancel_by = tuple(msg["by"]) if msg.get("by") else link.peer_uid
        call.scope.cancel()
    return None


_YIELD_VALUE = opcode.opmap["YIELD_VALUE"]
_CO_ITERABLE_COROUTINE = 0x100
_never_suspends_cache: dict = {}   # code object -> bool; cleared when full
_NEVER_SUSPENDS_MAX = 4096   # as the function-check cache: code made at run time must not grow it for good


def _never_suspends(fn) -> bool:
    """True for an ``async def`` function whose body cannot suspend: its
    code has no YIELD_VALUE, the instruction every ``await``, ``async
    for`` and ``async with`` compiles to (a comprehension's inlined into
    it too). Such a coroutine runs to its end at its first step, so it
    never reaches a checkpoint: nothing can cancel it but an interrupt,
    exactly as a sync function. (A generator-based coroutine may yield
    without that instruction being its own: never.)"""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    known = _never_suspends_cache.get(code)
    if known is None:
        co = code.co_code
        known = not (code.co_flags & _CO_ITERABLE_COROUTINE) and _YIELD_VALUE not in co[::2]
        if len(_never_suspends_cache) >= _NEVER_SUSPENDS_MAX:
            _never_suspends_cache.clear()
        _never_suspends_cache[code] = known
    return known


def _run_to_end(fn, kw: dict):
    """The value of a coroutine function that never suspends (see
    _never_suspends), run here at once in a context of its own, as a
    task's would be (a context variable it sets stays its own)."""
    coro = fn(**kw)
    try:
        contextvars.copy_context().run(coro.send, None)
    except StopIteration as done:
        return done.value
    coro.close()   # (unreachable for such code; never an unfinished call)
    raise RuntimeError(f"{fn!r} suspended although its code cannot")


def _run_inline(rt: Runtime, link: _Link, nursery, msg: dict) -> bool:
    """Run a call of a sync function right here, in the message loop, and
    send its answer without waiting: no task, no cancel scope. A sync
    function holds the actor's thread for as long as it runs, in a task or
    not, and nothing can cancel it but an interrupt, so nothing changes for
    it. The same for an async function whose body never awaits (see
    _never_suspends): its coroutine runs to its end in one step, in a
    context copy of its own (trio.lowlevel.current_task() in it is the
    message loop's task). False (nothing done) for anything else: an async
    function that may suspend, a context function, one that does not
    resolve (the task path reports why)."""
    try:
        fn = rt.resolve(msg["ns"], msg["fn"])
    except Exception:
        return False
    if is_context(fn):
        return False
    is_async = _is_async(fn)
    if is_async and not _never_suspends(fn):
        return False
    cid = msg["cid"]
    try:
        kw = msg.get("kw") or {}
        final = {"t": "return", "cid": cid, "v": _run_to_end(fn, kw) if is_async else fn(**kw)}
    except Exception as exc:
        rt.crashed(exc)   # under debug_mode: the post-mortem REPL, as for any failed call
        final = rt.error_msg(cid, exc)
    chan = link.chan
    data = _send_final_now(chan, final)
    if data is not True:
        # No room now, or the value cannot be sent: the task path's send,
        # bounded and shielded, says so to the caller (a task of the calls'
        # nursery, so that it is over before the actor says bye).
        nursery.start_soon(_send_final, rt, chan, final, f"{msg['ns']}.{msg['fn']}", data)
    return True


def _send_final_now(chan: TrioChannel, msg: dict):
    """Send a call's final message at once if the channel takes it: encoded
    once, no cancel scope, no schedule point (the task ends right after;
    ending is the scheduler's business). True if that settled it (sent, or
    the caller is gone). Else it needs _send_final: the encoded message
    when there is no room now, None for a value that cannot be sent (its
    error is worded there)."""
    if type(chan) is not TrioChannel:   # (a stream connection's channel sends only by awaiting)
        return None
    try:
        data = _ext.dumps(msg)
    except (TypeError, ValueError):
        return None
    try:
        chan.end.send_nowait(data)
    except BlockingIOError:
        return data
    except ValueError:
        return None   # larger than the channel takes
    except (_ext.BrokenError, _ext.ClosedError):
        pass   # the caller is gone
    return True


async def _send_final(rt: Runtime, chan: TrioChannel, msg: dict, fn_name: str, data: bytes | None = None) -> None:
    """Send a call's final message (``data``: it encoded already). It must
    get out even while the actor is being cancelled, but never wait
    unbounded for a full channel. A value that cannot be sent (not
    encodable, or larger than the channel takes) fails that one call with
    an error saying so; the actor goes on."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + 1.0
        try:
            if data is not None and type(chan) is TrioChannel:
                await chan.send_bytes(data)
            else:
                await chan.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except (TypeError, ValueError) as exc:
            err = type(exc)(f"the return value of {fn_name} cannot be sent back: {exc}")
            try:
                await chan.send(rt.error_msg(msg["cid"], err))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


def _masked(exc: BaseException) -> BaseException | None:
    """The error a trio.Cancelled hides: one raised in a ``finally:`` that
    checkpointed while the task was already cancelled replaces the error
    that was unwinding; the caller must get that error, not a cancel."""
    seen = set()
    e = exc.__context__
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, Exception):
            return e
        e = e.__context__
    return None


async def _legacy(ctx: Context, fn, kw: dict):
    """A legacy one-way stream (``portal.open_stream_from``): an async
    generator's items, or a ``@stream`` function's ``ctx.send_yield``s."""
    await ctx.started()
    if is_stream(fn):
        return await fn(ctx=ctx, **kw)
    agen = fn(**kw)
    try:
        async for value in agen:
            await ctx.send_yield(value)
    finally:
        await agen.aclose()
    return None


async def _run_call(rt: Runtime, link: _Link, call: _Call, msg: dict) -> None:
    chan = link.chan
    cid = call.cid
    ctx = call.ctx
    fn_name = f"{msg.get('ns')}.{msg.get('fn')}"
    final = None
    masked = None
    token = _current_ctx.set(ctx) if ctx is not None else None
    try:
        with call.scope:
            try:
                fn = rt.resolve(msg["ns"], msg["fn"])
                kw = msg.get("kw") or {}
                if ctx is not None:
                    if msg.get("legacy"):
                        value = await _legacy(ctx, fn, kw)
                    else:
                        if not is_context(fn):
                            raise TypeError(
                                f"{fn_name} is not a context function: decorate it with @subactor.context"
                            )
                        ctx._pld_type = getattr(fn, "_subactor_pld_spec", None)
                        value = await fn(ctx, **kw)
                        if not ctx._started:
                            raise RuntimeError(f"context function {fn_name} returned without calling ctx.started()")
                else:
                    if is_context(fn):
                        raise TypeError(f"{fn_name} is a context function: open it with portal.open_context()")
                    value = fn(**kw)
                    if _is_async(fn):
                        value = await value
                final = {"t": "return", "cid": cid}
                if ctx is not None:
                    ctx._pld_out(final, value, "return value")  # MsgTypeError: this call's error
                else:
                    final["v"] = value
            except trio.Cancelled as exc:
                masked = _masked(exc)
                raise
            except Exception as exc:
                rt.crashed(exc)
                final = rt.error_msg(cid, exc)
        if call.scope.cancelled_caught:
            final = _cancelled_final(rt, call, fn_name, masked)
        if final is not None:
            data = _send_final_now(chan, final)
            if data is not True:
                await _send_final(rt, chan, final, fn_name, data)
    except BaseException as exc:
        if not _only_cancelled(exc):
            raise
        # The whole actor is being cancelled, or is failing: in the latter
        # case the caller hears how it failed from its parent's side. (A
        # call whose nursery had several tasks ends with a group of their
        # cancellations: the same cancel.)
        if not rt.failing:
            await _send_final(rt, chan, _cancelled_final(rt, call, fn_name, masked, actor=True), fn_name)
        raise
    finally:
        if token is not None:
            _current_ctx.reset(token)
        link.tasks.pop(cid, None)


def _only_cancelled(exc: BaseException) -> bool:
    """True if ``exc`` is a trio.Cancelled, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


def _cancelled_final(rt: Runtime, call: _Call, fn_name: str, masked, actor: bool = False) -> dict:
    """The final message of a call whose task was cancelled: the error the
    cancel masked, or the error the parent sent to its context (which is
    why its scope was cancelled), or a ContextCancelled naming who asked."""
    cid = call.cid
    ctx = call.ctx
    if masked is not None:
        return rt.error_msg(cid, masked)
    if ctx is not None and ctx._remote_error is not None:
        return rt.error_msg(cid, ctx._remote_error)
    # An actor-wide cancel comes from the parent (in band, naming who asked,
    # or out of band, through the wake descriptor, which only it can use).
    if actor:
        by, who = "actor cancel", rt.cancel_by or rt.parent_uid
    elif ctx is not None and ctx._cancel_msg is not None:
        by, who = "its caller", ctx._canceller
    elif ctx is not None and ctx._cancel_called:
        by, who = f"actor {rt.name!r} itself", rt.uid
    elif call.cancel_by is not None:
        by, who = "its caller", call.cancel_by
    else:
        by, who = "actor cancel", rt.cancel_by or rt.parent_uid
    return {"t": "error", "cid": cid, "e": cancelled_box(rt.uid, fn_name, by, who)}
