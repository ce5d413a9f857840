"""A lock request from a cancelled call is dropped: "holder" pauses,
"waiter" pauses too and waits for the terminal, and the root cancels that
call (the waiter actor lives on). When the holder continues, the terminal
is free: no REPL opens for the waiter, and the holder's next pause gets it."""
import trio

import subactor


async def pause_once(tag: str):
    await subactor.pause()
    return tag


async def main():
    async with subactor.open_nursery(debug_mode=True) as an:
        holder = await an.start_actor("holder", enable_modules=[__name__])
        waiter = await an.start_actor("waiter", enable_modules=[__name__])
        async with trio.open_nursery() as tn:
            async def first():
                print("got", await holder.run(pause_once, tag="holder"), flush=True)

            tn.start_soon(first)
            await trio.sleep(1)   # the holder has the terminal by now
            with trio.move_on_after(1):   # the waiter's request waits in the queue, then is cancelled
                await waiter.run(pause_once, tag="waiter")
            print("the waiter's call is cancelled", flush=True)
        print("again", await holder.run(pause_once, tag="holder"), flush=True)
        await waiter.cancel_actor()
        await holder.cancel_actor()
    print("done")


if __name__ == "__main__":
    trio.run(main)
