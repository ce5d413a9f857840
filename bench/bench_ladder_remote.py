"""Functions the ladder and Ctrl-C benchmarks run inside actors (and in the
worker pool).

Each stuck function writes one byte to the descriptor ``fd`` (a pipe the
parent process made; an actor shares its process's descriptors) right
before it gets stuck, so the parent knows when to cancel without a
guessed sleep.
"""
import os
import time

import subactor

# sum(range(GIL_N)) is one C call that never returns to the eval loop: the
# actor holds its GIL throughout and no interrupt lands until it ends.
# About 2 s on the 2-core benchmark machine; each benchmark measures it.
GIL_N = 10**8


def _ready(fd):
    if fd is not None:
        os.write(fd, b"r")


async def ready_trio():
    """Async: the actor is in its trio loop before the measured call."""
    return True


def ready_sync():
    """Sync: the actor stays in its trio-free sync loop."""
    return True


async def checkpoint(fd=None):
    """Stuck at a checkpoint: ends at rung 1."""
    import trio

    _ready(fd)
    await trio.sleep_forever()


def spin(fd=None):
    """Never yields: ends at rung 2 (the interrupt lands in the loop)."""
    _ready(fd)
    while True:
        pass


def sleep(fd=None):
    """Blocked in C with the GIL released: the interrupt cannot end
    time.sleep, so it is abandoned at rung 3."""
    _ready(fd)
    time.sleep(1000)


def gil_c(fd=None, n=GIL_N):
    """In a C call that holds the actor's GIL, again and again: an interrupt
    waits for the GIL, so it lands only between two calls."""
    _ready(fd)
    while True:
        sum(range(n))


STUCK = {"checkpoint": checkpoint, "spin": spin, "sleep": sleep, "gil_c": gil_c}


def time_gil_c(n=GIL_N):
    """Seconds one sum(range(n)) takes, here."""
    t = time.perf_counter()
    sum(range(n))
    return time.perf_counter() - t


# -- the Ctrl-C fuzz's tree ---------------------------------------------------

async def nested(grace, kill_after, fd=None):
    """An actor with an actor of its own: opens a nursery, starts a
    grandchild stuck at a checkpoint, and waits on it."""
    async with subactor.open_nursery(grace=grace, kill_after=kill_after) as an:
        p = await an.start_actor("grandchild", enable_modules=[__name__])
        await p.run(checkpoint, fd=fd)


@subactor.context
async def echo(ctx):
    """A context with a stream: sends back whatever it gets."""
    await ctx.started("ready")
    async with ctx.open_stream() as stream:
        async for v in stream:
            await stream.send(v)


def pool_work(secs):
    """A short blocking call for subactor.run_sync."""
    time.sleep(secs)
    return secs
