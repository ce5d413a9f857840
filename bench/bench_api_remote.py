"""Functions the API benchmark calls inside actors."""
import sys

import subactor


def add(a, b):
    return a + b


async def async_add(a, b):
    return a + b


def trio_loaded():
    return "trio" in sys.modules


@subactor.context
async def echo_once(ctx):
    await ctx.started()
    async with ctx.open_stream() as s:
        await s.send(await s.receive())


@subactor.context
async def echo_forever(ctx):
    await ctx.started()
    async with ctx.open_stream() as s:
        async for v in s:
            await s.send(v)
