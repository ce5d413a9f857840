"""A child pauses once, then sleeps: after `c`, Ctrl-C is again the tree's
cancel (the program ends with KeyboardInterrupt)."""
import trio

import subactor


async def pause_once_then_sleep():
    await subactor.pause()
    print("child sleeping", flush=True)
    await trio.sleep_forever()


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        portal = await an.run_in_actor(pause_once_then_sleep)
        await portal.wait_for_result()


if __name__ == "__main__":
    trio.run(main)
