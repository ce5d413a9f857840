"""Functions the stream benchmark runs inside actors."""
import trio

import subactor


@subactor.context
async def produce(ctx, n, size):
    """Once the parent says "go", send ``n`` items of ``size`` bytes as fast
    as the stream takes them; return ``n``."""
    await ctx.started()
    payload = b"x" * size
    async with ctx.open_stream() as s:
        assert await s.receive() == "go"
        send = s.send
        for _ in range(n):
            await send(payload)
    return n


@subactor.context
async def produce_for(ctx, seconds, size):
    """Once the parent says "go", send items of ``size`` bytes for
    ``seconds``; return how many."""
    await ctx.started()
    payload = b"x" * size
    sent = 0
    async with ctx.open_stream() as s:
        assert await s.receive() == "go"
        until = trio.current_time() + seconds
        while trio.current_time() < until:
            await s.send(payload)
            sent += 1
    return sent


@subactor.context
async def echo_counting_spins(ctx):
    """Echo every item back; return (items, how many of them found this
    actor allowed to spin (subactor._transport.may_spin), i.e. not backed
    off after a spin that was preempted)."""
    from subactor import _transport

    await ctx.started()
    n = spins = 0
    async with ctx.open_stream() as s:
        async for v in s:
            n += 1
            spins += _transport.may_spin()
            await s.send(v)
    return n, spins
