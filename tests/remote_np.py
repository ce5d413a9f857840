"""Functions the process-backend tests call inside actors. No pytest here,
and NumPy is imported inside the functions that need it: this module itself
loads in a subinterpreter actor too (the mixed-tree functions run there)."""
import os
import signal
import sys
import time

import subactor


def numpy_sum(n):
    import numpy as np

    return int(np.arange(n, dtype=np.int64).sum())


def numpy_version():
    import numpy as np

    return np.__version__


def where_am_i():
    """[actor name, pid, interpreter id] of the calling actor."""
    import _interpreters

    return [subactor.current_actor().name, os.getpid(), _interpreters.get_current()[0]]


def exit_now(code):
    os._exit(code)


async def exit_now_async(code):
    import trio

    await trio.sleep(0)
    os._exit(code)


def sleep_forever():
    time.sleep(1000)


async def sleep_forever_blocking_async():
    # Blocks its event loop: only an interrupt (SIGINT) ends it.
    time.sleep(1000)


def ignore_sigint_and_sleep():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(1000)


def pid_and_parent():
    return [os.getpid(), os.getppid()]


def env_pythonpath():
    return os.environ.get("PYTHONPATH")


def echo(value):
    return value


def sys_path():
    return list(sys.path)


@subactor.context
async def blob_stream(ctx, size, count):
    """Send `count` messages of `size` bytes, then echo back what arrives."""
    await ctx.started(size)
    async with ctx.open_stream() as stream:
        blob = b"x" * size
        for _ in range(count):
            await stream.send(blob)
        total = 0
        async for v in stream:
            total += len(v)
            await stream.send(len(v))
    return total


@subactor.context
async def spawn_chain(ctx, backends):
    """A chain of nested actors, one level per entry of `backends` (the
    backend of the child that level spawns). Returns where_am_i() of every
    level, this one first."""
    me = where_am_i()
    await ctx.started(me)
    if not backends:
        return [me]
    async with subactor.open_nursery() as an:
        p = await an.start_actor(f"{subactor.current_actor().name}>{backends[0]}",
                                 enable_modules=[__name__], backend=backends[0])
        async with p.open_context(spawn_chain, backends=backends[1:]) as (c, first):
            assert first[0] == p.name
            rest = await c.wait_for_result()
        await p.cancel_actor()
    return [me, *rest]
