"""An actor whose call raises opens a post-mortem REPL at the raise, before
its error reaches the root (which then opens its own). Run with the
backend as argument: subint (the default) or process; a second argument
"sync" makes it a sync function called in an actor already in trio mode."""
import sys

import trio

import subactor


async def fails():
    doomed = "the value"
    raise NameError(f"boom with {doomed}")


def fails_sync():
    doomed = "the value"
    raise NameError(f"boom with {doomed}")


async def ready():
    return True


async def main(backend, how):
    async with subactor.open_nursery(debug_mode=True, backend=backend) as an:
        if how == "sync":
            portal = await an.start_actor("crasher", enable_modules=[__name__])
            await portal.run(ready)   # now in trio mode
            await portal.run(fails_sync)
        else:
            portal = await an.run_in_actor(fails, name="crasher")
            await portal.wait_for_result()


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "subint", sys.argv[2] if len(sys.argv) > 2 else "async")
