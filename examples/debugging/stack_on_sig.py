"""enable_stack_on_sig(): SIGUSR1 dumps the live tree to stderr (here the
program sends it to itself; from a shell: kill -USR1 <pid>)."""
import os
import signal

import trio

import subactor
from subactor import devx


async def waits_for_ever():
    await trio.sleep_forever()


async def main():
    devx.enable_stack_on_sig()
    async with subactor.open_nursery() as an:
        portal = await an.start_actor("sleeper", enable_modules=[__name__])
        async with trio.open_nursery() as tn:
            tn.start_soon(portal.run, waits_for_ever)
            await trio.sleep(1)
            os.kill(os.getpid(), signal.SIGUSR1)
            await trio.sleep(1)
            tn.cancel_scope.cancel()
        await portal.cancel_actor()
    print("done")


if __name__ == "__main__":
    trio.run(main)
