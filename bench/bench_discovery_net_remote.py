"""Functions bench_discovery_net.py runs in the far program's actor."""
import subactor


async def async_add(a, b):
    return a + b


@subactor.context
async def items(ctx, n: int, size: int):
    """Stream n items of ``size`` bytes, then return."""
    chunk = b"x" * size
    await ctx.started()
    async with ctx.open_stream() as stream:
        for _ in range(n):
            await stream.send(chunk)
    return n


def sync_add(a, b):
    return a + b
