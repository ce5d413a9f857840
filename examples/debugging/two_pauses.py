"""Two actors pause at the same moment: one gets the terminal, the other
waits for the lock and gets it once the first continues."""
import trio

import subactor


async def pauser(tag: str):
    await subactor.pause()
    print(f"{tag} resumed", flush=True)
    await trio.sleep(3)   # still alive: the lock went with `c`, not with its end
    print(f"{tag} ending", flush=True)
    return tag


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        a = await an.run_in_actor(pauser, name="first", tag="a")
        b = await an.run_in_actor(pauser, name="second", tag="b")
        print("results", await a.wait_for_result(), await b.wait_for_result())


if __name__ == "__main__":
    trio.run(main)
