"""A pause two levels down: the root starts a child, which starts a
grandchild that pauses once; the REPL is on the root's terminal."""
import trio

import subactor


async def grandchild():
    x = 42
    await subactor.pause()
    return x


async def child():
    async with subactor.open_nursery() as an:
        portal = await an.run_in_actor(grandchild)
        return await portal.wait_for_result()


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        portal = await an.run_in_actor(child)
        print("grandchild returned", await portal.wait_for_result())


if __name__ == "__main__":
    trio.run(main)
