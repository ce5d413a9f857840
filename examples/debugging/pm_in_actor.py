"""An actor whose call raises opens a post-mortem REPL at the raise, before
its error reaches the root (which then opens its own). Run with the
backend as argument: subint (the default) or process."""
import sys

import trio

import subactor


async def fails():
    doomed = "the value"
    raise NameError(f"boom with {doomed}")


async def main(backend):
    async with subactor.open_nursery(debug_mode=True, backend=backend) as an:
        portal = await an.run_in_actor(fails, name="crasher")
        await portal.wait_for_result()


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "subint")
