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
