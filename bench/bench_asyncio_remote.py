"""What bench_asyncio.py measures inside one infected actor (an asyncio loop
with trio as its guest). Every function returns seconds per operation."""
import asyncio
import time

import trio

from subactor import to_asyncio

PAYLOAD = b"x" * 64


async def _aio_noop():
    return None


async def _aio_echo(chan):
    chan.started_nowait(None)
    while True:
        v = await chan.get()
        chan.send_nowait(v)
        if v is None:
            return


async def _trio_echo(rx, tx):
    async for v in rx:
        await tx.send(v)


async def memchan_rtt(n: int) -> list[float]:
    """Anchor: a trio task to another and back over trio memory channels."""
    a_tx, a_rx = trio.open_memory_channel(256)
    b_tx, b_rx = trio.open_memory_channel(256)
    lat = []
    async with trio.open_nursery() as tn:
        tn.start_soon(_trio_echo, a_rx, b_tx)
        for _ in range(n):
            t0 = time.perf_counter()
            await a_tx.send(PAYLOAD)
            await b_rx.receive()
            lat.append(time.perf_counter() - t0)
        await a_tx.aclose()
    return lat


async def run_task_rtt(n: int) -> list[float]:
    """One to_asyncio.run_task of an asyncio function that returns at once."""
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await to_asyncio.run_task(_aio_noop)
        lat.append(time.perf_counter() - t0)
    return lat


async def chan_rtt(n: int) -> list[float]:
    """64 B to an asyncio task and back over open_channel_from."""
    lat = []
    async with to_asyncio.open_channel_from(_aio_echo) as (chan, _):
        for _ in range(n):
            t0 = time.perf_counter()
            await chan.send(PAYLOAD)
            await chan.receive()
            lat.append(time.perf_counter() - t0)
        await chan.send(None)
        await chan.receive()
    return lat


async def memchan_one_way(n: int) -> float:
    """Anchor: n 64 B values from one trio task to another."""
    tx, rx = trio.open_memory_channel(256)

    async def produce():
        async with tx:
            for _ in range(n):
                await tx.send(PAYLOAD)

    async with trio.open_nursery() as tn:
        t0 = time.perf_counter()
        tn.start_soon(produce)
        async for _ in rx:
            pass
        return (time.perf_counter() - t0) / n


async def _aio_produce(chan, n):
    chan.started_nowait(None)
    send = chan.send_nowait
    for _ in range(n):
        while True:
            try:
                send(PAYLOAD)
                break
            except trio.WouldBlock:
                await asyncio.sleep(0)   # its buffer is full: let trio take some


async def aio_to_trio(n: int) -> float:
    """n 64 B values from an asyncio task to its trio task."""
    async with to_asyncio.open_channel_from(_aio_produce, n=n) as (chan, _):
        t0 = time.perf_counter()
        got = 0
        while got < n:
            await chan.receive()
            got += 1
        return (time.perf_counter() - t0) / n


async def _aio_consume(chan, n):
    chan.started_nowait(None)
    for _ in range(n):
        await chan.get()
    chan.send_nowait("done")


async def trio_to_aio(n: int) -> float:
    """n 64 B values from a trio task to its asyncio task (timed to its
    answer after the last)."""
    async with to_asyncio.open_channel_from(_aio_consume, n=n) as (chan, _):
        t0 = time.perf_counter()
        for _ in range(n):
            await chan.send(PAYLOAD)
        await chan.receive()
        return (time.perf_counter() - t0) / n
