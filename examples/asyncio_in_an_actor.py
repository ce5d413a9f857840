"""An asyncio library inside an actor: the actor runs asyncio with trio as
its guest, and trio code calls into asyncio through subactor.to_asyncio."""
import asyncio

import trio

import subactor
from subactor import to_asyncio


async def slow_double(x: int) -> int:   # asyncio code
    await asyncio.sleep(0.01)
    return 2 * x


async def ticker(chan, n: int):         # an asyncio task linked to a trio task
    chan.started_nowait("ticking")
    for i in range(n):
        await asyncio.sleep(0.001)
        chan.send_nowait(i)


async def use_asyncio() -> list:
    out = [await to_asyncio.run_task(slow_double, x=21)]
    async with to_asyncio.open_channel_from(ticker, n=3) as (chan, first):
        out.append(first)
        out += [await chan.receive() for _ in range(3)]
    return out


async def main():
    async with subactor.open_nursery() as an:
        p = await an.start_actor("aio", enable_modules=[__name__], infect_asyncio=True)
        print(await p.run(use_asyncio))
        await an.cancel()


if __name__ == "__main__":
    trio.run(main)
