"""An actor dies while it holds the terminal: a process actor pauses and is
taken down the ladder by its nursery (the REPL ignores the cancel and the
interrupt; the last rung kills it). The lock goes with it, the root takes
the terminal back, and a second actor's pause gets the REPL."""
import trio

import subactor


async def pause_forever():
    await subactor.pause()
    await trio.sleep_forever()


async def pause_later():
    await trio.sleep(0.5)
    await subactor.pause()
    return "later"


async def run_doomed(portal):
    try:
        await portal.run(pause_forever)
    except subactor.ActorNotAvailable:
        print("the holder is gone")


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        doomed = await an.start_actor("doomed", enable_modules=[__name__], backend="process",
                                      grace=0.5, kill_after=1.5)
        with trio.move_on_after(3):
            async with trio.open_nursery() as tn:
                tn.start_soon(run_doomed, doomed)
                await trio.sleep(1)
                print("cancelling the holder")
                await doomed.cancel_actor()
        later = await an.run_in_actor(pause_later, name="later")
        print("result", await later.wait_for_result())


if __name__ == "__main__":
    trio.run(main)
