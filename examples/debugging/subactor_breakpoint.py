"""A child that pauses in a loop: each `c` brings it back to the REPL,
`q` ends it (the root then opens a post-mortem REPL on its error)."""
import trio

import subactor


async def pause_in_a_loop():
    while True:
        await trio.sleep(0.1)
        await subactor.pause()


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        portal = await an.run_in_actor(pause_in_a_loop)
        await portal.wait_for_result()


if __name__ == "__main__":
    trio.run(main)
