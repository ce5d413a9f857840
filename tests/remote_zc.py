"""Functions the zero-copy stream tests run inside actors."""
import trio

import subactor

BIG = 1 << 20


def pattern(i: int, size: int = BIG) -> bytes:
    """A payload that differs per item and per position (not a fill)."""
    unit = bytes((i * 7 + k) & 0xFF for k in range(251))
    return (unit * (size // len(unit) + 1))[:size]


@subactor.context
async def send_big(ctx, n, size=BIG, small=False):
    """Send n items of `size` bytes (and a small bytes item after each if
    `small`), then return n."""
    await ctx.started()
    async with ctx.open_stream() as s:
        # Items that reach the parent before its open_stream(zero_copy=True)
        # are decoded as bytes (documented): wait for its "go".
        assert await s.receive() == "go"
        for i in range(n):
            await s.send(pattern(i, size))
            if small:
                await s.send(b"tiny")
    return n


@subactor.context
async def send_forever(ctx, size=BIG):
    """Send big items until cancelled."""
    await ctx.started()
    payload = pattern(0, size)
    async with ctx.open_stream() as s:
        assert await s.receive() == "go"
        while True:
            await s.send(payload)


@subactor.context
async def echo_zc(ctx):
    """Echo items back; this side receives with zero_copy=True and reports
    the received type name with each item."""
    await ctx.started()
    async with ctx.open_stream(zero_copy=True) as s:
        await s.send("ready")  # items sent before this arrive as bytes
        async for v in s:
            await s.send([type(v).__name__, bytes(v)])


@subactor.context
async def just_started(ctx):
    """Start and return at once (no stream on this side)."""
    await ctx.started()
    return 0
