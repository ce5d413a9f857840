"""Module-level functions that tests/test_asyncio.py runs in infected
actors (``infect_asyncio=True``): asyncio tasks, and the trio functions
that start them.

What an asyncio task observes (how it ended) is kept in STASH, one per
actor interpreter or process, and read back with ``portal.run(stash_pop,
key=...)``.
"""
import asyncio
import time

import trio

import subactor
from subactor import to_asyncio

STASH: dict = {}


def stash_pop(key):
    return STASH.pop(key, None)


def state():
    """What the actor says of itself (a sync call: no loop needed)."""
    return [subactor.current_actor().is_infected_aio(), subactor.get_runtime_vars()["_is_infected_aio"]]


# -- asyncio tasks ---------------------------------------------------------

async def aio_add(a, b):
    await asyncio.sleep(0.001)
    return a + b


async def aio_raise(msg="from asyncio"):
    await asyncio.sleep(0.001)
    raise ValueError(msg)


async def aio_sleep_recording(key):
    """Sleep until cancelled, and record how it ended."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        STASH[key] = "CancelledError"
        raise


async def aio_cancels_itself():
    await asyncio.sleep(0.001)
    asyncio.current_task().cancel("on purpose")
    await asyncio.sleep(3600)


def _mark(flag):
    if flag:
        open(flag, "w").close()


async def aio_spin(flag=None):
    """Never yields again: only an interrupt ends it. ``flag``: a file made
    once it is past its last await."""
    await asyncio.sleep(0)
    _mark(flag)
    while True:
        pass


async def aio_block_in_c(flag=None):
    """Blocked in one C call (the real time.sleep): only abandoning ends it.
    ``flag``: a file made just before that call."""
    await asyncio.sleep(0)
    _mark(flag)
    time.sleep(60)


async def echo(chan, key=None):
    """Echo what the trio side sends until None; then return how many."""
    chan.started_nowait("ready")
    n = 0
    while True:
        v = await chan.get()
        chan.send_nowait(v)
        if v is None:
            return n
        n += 1


async def push(chan, count, exit_at=None, fail_at=None, key=None, fail_on_cancel=False):
    """Send 0..count-1, returning early at exit_at or raising at fail_at;
    record in STASH[key] how it ended, and what the channel says after a
    cancel (``send_nowait()`` and ``get()``). ``fail_on_cancel``: a cancel
    ends it with an error of its own."""
    chan.started_nowait(count)
    try:
        for i in range(count):
            chan.send_nowait(i)
            await asyncio.sleep(0.001)
            if i == exit_at:
                break
            if i == fail_at:
                raise KeyError(i)
        STASH[key] = "returned"
    except asyncio.CancelledError:
        seen = ["CancelledError"]
        try:
            chan.send_nowait("late")
        except (to_asyncio.TrioTaskExited, to_asyncio.TrioCancelled) as exc:
            seen.append(type(exc).__name__)
        try:
            await asyncio.wait_for(chan.get(), 5)   # raises at once: the trio side is over
        except (to_asyncio.TrioTaskExited, to_asyncio.TrioCancelled, TimeoutError) as exc:
            seen.append(type(exc).__name__)
        STASH[key] = ", then ".join(seen)
        if fail_on_cancel:
            raise OSError("asyncio cleanup failed")
        raise
    return "pushed"


async def raise_before_started(chan):
    await asyncio.sleep(0.001)
    raise RuntimeError("before started")


async def return_before_started(chan):
    await asyncio.sleep(0.001)


async def no_chan_param():
    pass


def not_async():
    return 1


# -- trio functions the tests call --------------------------------------------

async def add(a, b):
    return await to_asyncio.run_task(aio_add, a=a, b=b)


async def run_task_of(fn_name, **kwargs):
    return await to_asyncio.run_task(globals()[fn_name], **kwargs)


async def cancel_run_task(key):
    """Cancel a run_task from trio (a timeout); the asyncio task records it."""
    with trio.move_on_after(0.1) as scope:
        await to_asyncio.run_task(aio_sleep_recording, key=key)
    return [scope.cancelled_caught, STASH.pop(key, None)]


async def sleep_in_asyncio(key):
    await to_asyncio.run_task(aio_sleep_recording, key=key)


async def echo_through(values):
    async with to_asyncio.open_channel_from(echo) as (chan, first):
        assert first == "ready"
        assert not chan.closed()
        out = []
        for v in [*values, None]:
            await chan.send(v)
            out.append(await chan.receive())
        try:
            await chan.receive()
        except trio.EndOfChannel:
            pass
        else:
            raise AssertionError("no EndOfChannel after the asyncio task returned")
        assert chan.closed()
        return [out, await chan.wait_for_result()]


async def pull(count, exit_at=None, fail_at=None, trio_exit_at=None, trio_fail_at=None, suppress=True,
               fan_out=False, key="push"):
    """Receive what push() sends; returns [values, how push ended]."""
    got = []
    try:
        async with to_asyncio.open_channel_from(push, count=count, exit_at=exit_at, fail_at=fail_at, key=key,
                                                suppress_graceful_exits=suppress) as (chan, first):
            assert first == count

            async def consume(rx, into):
                async for v in rx:
                    into.append(v)
                    if v == trio_fail_at:
                        raise LookupError(f"trio side at {v}")
                    if v == trio_exit_at:
                        break

            if fan_out:
                other = []
                async with chan.subscribe() as view, trio.open_nursery() as tn:
                    tn.start_soon(consume, view, other)
                    await consume(chan, got)
                return [got, other, STASH.pop(key, None)]
            await consume(chan, got)
    finally:
        STASH["got"] = got
    return [got, STASH.pop(key, None)]


async def open_with(target_name):
    async with to_asyncio.open_channel_from(globals()[target_name]) as (chan, first):
        return first


async def trio_fails_while_asyncio_runs(key, fail_on_cancel=False):
    async with to_asyncio.open_channel_from(push, count=10 ** 6, key=key,
                                            fail_on_cancel=fail_on_cancel) as (chan, first):
        await chan.receive()
        raise LookupError("trio side")


async def spin(flag=None):
    await to_asyncio.run_task(aio_spin, flag=flag)


async def block_in_c(flag=None):
    await to_asyncio.run_task(aio_block_in_c, flag=flag)


async def fetch(url):
    """GET url with httpx's asyncio client, inside this actor's asyncio loop."""
    import httpx

    async def get():
        async with httpx.AsyncClient() as client:
            r = await client.get(url)
            return [r.status_code, r.text, r.headers.get("x-server")]

    return await to_asyncio.run_task(get)


def httpx_loaded():
    import sys

    return "httpx" in sys.modules


async def guest_in_actor():
    async def nothing():
        pass

    return to_asyncio.run_as_asyncio_guest(nothing)


async def plain_add(a, b):
    await trio.sleep(0)
    return a + b


async def tree():
    """An infected actor's own nursery: an infected child and a plain one,
    and an asyncio task of its own meanwhile."""
    async with subactor.open_nursery() as an:
        infected = await an.run_in_actor(add, a=1, b=2, infect_asyncio=True)
        plain = await an.run_in_actor(plain_add, a=3, b=4)
        mine = await to_asyncio.run_task(aio_add, a=5, b=6)
        return [await infected.wait_for_result(), await plain.wait_for_result(), mine]
