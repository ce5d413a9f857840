"""Module-level functions that tests/test_streams.py runs in actors.

What a child observes that its parent cannot see through the context
itself is kept in STASH (one per actor interpreter or process) under a key
the test chooses, and read back with ``portal.run(stash_pop, key=...)``.
"""
import trio

import subactor
from subactor import RemoteActorError, StreamOverrun

STASH: dict = {}


def stash_pop(key):
    """What the actor stashed under ``key`` (None if nothing yet)."""
    return STASH.pop(key, None)


def uid():
    return list(subactor.current_actor().uid)


class RegisteredError(Exception):
    """Registered with reg_err_types in the parent by the test that uses it."""


class UnregisteredError(Exception):
    """Never registered anywhere: its boxed_type must stay None."""


def _describe(err):
    if err is None:
        return None
    return {"type": type(err).__name__, "boxed": getattr(err, "boxed_type_str", None),
            "src_uid": list(err.src_uid) if getattr(err, "src_uid", None) else None}


async def _watch(ctx, seen: dict):
    """Sample the context's inbox fill for as long as the call runs."""
    while True:
        seen["max"] = max(seen["max"], ctx._inbox.items)
        seen["samples"] += 1
        await trio.sleep(0)


# -- overruns: the child receives --------------------------------------------------

@subactor.context
async def slow_reader(ctx, key, delay, msg_buffer_size=None, overruns=None):
    """Open the stream, say "ready", then read nothing for ``delay`` s, then
    read every item left; stash them, how the stream ended and the largest
    inbox fill a watcher saw. All of it shielded: the parent's failure (and
    its cancel of this call) must not cut it short."""
    await ctx.started()
    seen = {"max": 0, "samples": 0}
    async with trio.open_nursery() as tn:
        tn.start_soon(_watch, ctx, seen)
        async with ctx.open_stream(msg_buffer_size=msg_buffer_size, allow_overruns=overruns) as s:
            await s.send("ready")
            got, end = [], None
            with trio.CancelScope(shield=True):
                await trio.sleep(delay)
                try:
                    while True:
                        got.append(await s.receive())
                except StreamOverrun as exc:
                    end = ("StreamOverrun", str(exc))
                except trio.EndOfChannel:
                    end = ("EndOfChannel", "")
                STASH[key] = {"got": got, "end": end, "max": seen["max"], "limit": ctx._inbox.limit}
        tn.cancel_scope.cancel()
    return len(got)


async def read_paced(s, pace, seconds, tally: dict) -> None:
    """Read the stream to its end, one item per ``pace`` s for ``seconds``,
    then at full speed; count into ``tally`` (got, last, in_order) as it
    goes, so what was read is known also when the stream fails."""
    until = trio.current_time() + seconds
    async for v in s:
        tally["in_order"] = tally["in_order"] and v == tally["last"] + 1
        tally["last"] = v
        tally["got"] += 1
        if trio.current_time() < until:
            await trio.sleep(pace)


async def send_for(s, seconds) -> int:
    """Send 0, 1, 2, ... as fast as the stream takes them for ``seconds``;
    return how many."""
    sent = 0
    until = trio.current_time() + seconds
    while trio.current_time() < until:
        await s.send(sent)
        sent += 1
    return sent


@subactor.context
async def paced_reader(ctx, pace, seconds, overruns=True, key=None):
    """Read one item per ``pace`` s for ``seconds``, then the rest at full
    speed, until the parent closes its side, while a watcher samples the
    inbox fill; return what was read and the largest fill seen (and stash
    it under ``key``, for when the call fails). ``overruns``, not
    ``allow_overruns``: open_context takes that name for the parent's side."""
    await ctx.started(ctx._inbox.limit)
    seen = {"max": 0, "samples": 0}
    tally = {"got": 0, "last": -1, "in_order": True}
    try:
        async with trio.open_nursery() as tn:
            tn.start_soon(_watch, ctx, seen)
            async with ctx.open_stream(allow_overruns=overruns) as s:
                await s.send("ready")
                await read_paced(s, pace, seconds, tally)
            tn.cancel_scope.cancel()
    finally:
        result = {"got": tally["got"], "in_order": tally["in_order"], "max": seen["max"],
                  "samples": seen["samples"]}
        if key is not None:
            STASH[key] = result
    return result


# -- overruns: the child sends ----------------------------------------------------

@subactor.context
async def flood(ctx, key=None, n=None, seconds=None, size=0):
    """Once the parent sent "go", send items 0, 1, ... as fast as the stream
    takes them: ``n`` of them,
    or for ``seconds``; then close the stream and return the count. With a
    ``key``, wait instead of closing, and stash how the context ended for
    this side (the parent reads it with stash_pop)."""
    await ctx.started()
    sent = 0
    pad = b"x" * size
    try:
        async with ctx.open_stream() as s:
            assert await s.receive() == "go"   # the parent's side is ready
            deadline = None if seconds is None else trio.current_time() + seconds
            while (n is None or sent < n) and (deadline is None or trio.current_time() < deadline):
                await s.send([sent, pad] if size else sent)
                sent += 1
            if key is not None:
                await trio.sleep_forever()
    finally:
        if key is not None:
            STASH[key] = {"sent": sent, "error": _describe(ctx.maybe_error)}
    return sent


# -- cancels ------------------------------------------------------------------------

@subactor.context
async def sleeper(ctx, key=None):
    await ctx.started(list(subactor.current_actor().uid))
    try:
        await trio.sleep_forever()
    finally:
        if key is not None:
            STASH[key] = "cancelled"


@subactor.context
async def cancel_self_then_stream(ctx, key):
    """Cancel the context from this side, then try to open a stream."""
    await ctx.started()
    try:
        await ctx.cancel()
        await trio.sleep_forever()
    finally:
        try:
            async with ctx.open_stream():
                STASH[key] = "opened"
        except RuntimeError as exc:
            STASH[key] = f"RuntimeError: {exc}"


@subactor.context
async def fail_at_once(ctx):
    await ctx.started()
    raise KeyError("right after started")


@subactor.context
async def error_then_cancelled(ctx, how):
    """Raise KeyError; in its ``finally:``, get the call's task cancelled
    and checkpoint (which raises Cancelled over the KeyError)."""
    await ctx.started()
    try:
        raise KeyError("the real error")
    finally:
        if how == "itself":
            await ctx.cancel()
        else:
            # the parent calls ctx.cancel() meanwhile
            with trio.CancelScope(shield=True):
                await trio.sleep(1.0)
            await trio.sleep(0)


async def ready():
    """An async call: once it answered, the actor serves in trio mode."""
    return True


async def shielded_sleep():
    with trio.CancelScope(shield=True):
        await trio.sleep(1000)


async def sleep_forever():
    await trio.sleep_forever()


# -- current_ipc_ctx ---------------------------------------------------------------

@subactor.context
async def where_is_ctx(ctx):
    seen = {"task": subactor.current_ipc_ctx() is ctx}

    async def child_task():
        seen["subtask"] = subactor.current_ipc_ctx() is ctx

    async with trio.open_nursery() as tn:
        tn.start_soon(child_task)
    await ctx.started(seen)
    return subactor.current_ipc_ctx() is ctx


async def ipc_ctx_in_plain_call():
    return subactor.current_ipc_ctx() is None


# -- errors ------------------------------------------------------------------------

def raise_named(kind, msg="boom"):
    import trio as _trio

    cls = {"ValueError": ValueError, "registered": RegisteredError, "unregistered": UnregisteredError,
           "TooSlowError": _trio.TooSlowError, "ActorTooSlowError": subactor.ActorTooSlowError}[kind]
    raise cls(msg)


async def relay_from_child(kind, backend):
    """A middle actor: start an actor of its own that raises, and let the
    error go up unhandled."""
    async with subactor.open_nursery(backend=backend) as an:
        p = await an.start_actor("origin", enable_modules=[__name__])
        try:
            await p.run(raise_named, kind=kind, msg="from the origin")
        finally:
            await p.cancel_actor()


# -- legacy one-way streams ---------------------------------------------------------

async def agen_count(n, key=None):
    try:
        for i in range(n):
            yield i
            await trio.sleep(0)
    finally:
        if key is not None:
            STASH[key] = "finalised"


async def agen_forever(key):
    i = 0
    try:
        while True:
            yield i
            i += 1
            await trio.sleep(0.001)
    finally:
        STASH[key] = "finalised"


@subactor.stream
async def stream_squares(ctx, n):
    for i in range(n):
        await ctx.send_yield(i * i)


async def not_a_generator(n):
    return n


# -- stream surface -----------------------------------------------------------------

@subactor.context
async def send_then_wait(ctx, n):
    """Send ``n`` items, then wait for the parent to close its side; return
    whether this side's stream showed closed after that."""
    await ctx.started()
    async with ctx.open_stream() as s:
        for i in range(n):
            await s.send(i)
        closed_before = s.closed
        try:
            await s.receive()
        except trio.EndOfChannel:
            pass
        return [closed_before, s.closed, s.ctx is ctx]


@subactor.context
async def nursery_sleeps(ctx):
    """A context whose nursery holds a second sleeping task: an actor-wide
    cancel ends it with a group of two cancellations."""
    await ctx.started("sleeping")
    async with trio.open_nursery() as tn:
        tn.start_soon(trio.sleep_forever)
        await trio.sleep_forever()
