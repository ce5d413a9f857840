"""Functions the stream fast-path tests (test_streams_fast.py) run in actors."""
import trio

import subactor
from subactor import _ext

STASH: dict = {}


def stash_pop(key):
    return STASH.pop(key, None)


def item(i, kind, size):
    """Item ``i`` of a test stream: the int, ``[i, pad]``, or bytes that
    begin with ``i`` (a payload that is one bin)."""
    if kind == "int":
        return i
    if kind == "list":
        return [i, b"p" * size]
    return i.to_bytes(4, "big") + b"p" * size


def check(i, v, kind, size) -> bool:
    if kind == "bytes":
        return type(v) is bytes and len(v) == size + 4 and int.from_bytes(v[:4], "big") == i
    return v == item(i, kind, size)


@subactor.context
async def send_n(ctx, n, kind="int", size=0):
    """Once the parent sent "go", send ``n`` items (see item()) as fast as
    the stream takes them, then close the stream. Returns n."""
    await ctx.started()
    async with ctx.open_stream() as s:
        assert await s.receive() == "go"
        for i in range(n):
            await s.send(item(i, kind, size))
    return n


@subactor.context
async def read_all(ctx, msg_buffer_size=None, cancel_every=0):
    """Read the stream to its end; every ``cancel_every``-th receive is
    cancelled before it can take anything (a cancelled scope around it).
    Returns what was read, in order, and how many receives were cancelled."""
    await ctx.started()
    got, cancelled, i = [], 0, 0
    async with ctx.open_stream(msg_buffer_size=msg_buffer_size, allow_overruns=True) as s:
        await s.send("ready")
        while True:
            i += 1
            with trio.CancelScope() as cs:
                if cancel_every and i % cancel_every == 0:
                    cs.cancel()
                try:
                    got.append(await s.receive())
                except trio.EndOfChannel:
                    break
            if cs.cancelled_caught:
                cancelled += 1
    return {"got": got, "cancelled": cancelled}


@subactor.context
async def paced_big(ctx, n, size, pace, key):
    """Read ``n`` items of ``size`` bytes (kind "bytes"), one per ``pace``
    s, and sample how many channel buffers are alive in the process
    meanwhile; stash the largest count, the inbox's largest fill and
    whether every item came as the right bytes, in order."""
    await ctx.started()
    seen = {"buffers": 0, "inbox": 0, "ok": True}
    async with ctx.open_stream(allow_overruns=True) as s:
        await s.send("ready")
        for i in range(n):
            v = await s.receive()
            seen["buffers"] = max(seen["buffers"], _ext.live_counts()["buffers"])
            seen["inbox"] = max(seen["inbox"], ctx._inbox.items)
            if not check(i, v, "bytes", size):
                seen["ok"] = False
            del v
            await trio.sleep(pace)
    STASH[key] = seen
    return n


@subactor.context
async def echo(ctx):
    await ctx.started()
    async with ctx.open_stream() as s:
        async for v in s:
            await s.send(v)
