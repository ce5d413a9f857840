"""Functions the API benchmark calls inside actors."""
import sys

import subactor


def add(a, b):
    return a + b


async def async_add(a, b):
    return a + b


async def async_add_checkpoint(a, b):
    """async_add after a checkpoint: a coroutine that suspends, so it runs
    as a task of its own (async_add, which never awaits, runs inline)."""
    import trio

    await trio.lowlevel.checkpoint()
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


def module_files():
    """(name, file) of each module this actor imported from a .py source."""
    return sorted((n, f) for n, m in list(sys.modules.items())
                  if isinstance(f := getattr(m, "__file__", None), str) and f.endswith(".py"))
