"""open_crash_handler() and post_mortem(): post-mortem REPLs on demand, in
an actor (its handler catches, then the runtime's own crash REPL follows
because the error goes on) and in plain sync code of the root."""
import trio

import subactor
from subactor import devx


async def catches_then_raises():
    try:
        {}["missing"]
    except KeyError:
        await subactor.post_mortem()
        raise


def sync_crash():
    with devx.open_crash_handler():
        value = 7
        assert value == 8, "seven is not eight"


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        portal = await an.start_actor("handler", enable_modules=[__name__])
        try:
            await portal.run(catches_then_raises)
        except subactor.RemoteActorError as err:
            print("the root caught", err.boxed_type_str)
        await portal.cancel_actor()
    try:
        sync_crash()
    except AssertionError:
        print("the assertion went on")


if __name__ == "__main__":
    trio.run(main)
