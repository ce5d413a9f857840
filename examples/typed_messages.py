"""Typed messages: a payload spec on a context. Both sides check what
crosses; a value outside the spec is a MsgTypeError, and a wrong field is
named by its path."""
import trio

import subactor
from subactor import msg


class Reading(msg.Struct, frozen=True):
    sensor: str
    values: list[float]
    unit: str = "C"


@subactor.context(pld_spec=Reading | None)
async def averager(ctx):
    try:
        await ctx.started({"sensor": "s1", "values": ["warm"]})
    except subactor.MsgTypeError as exc:
        print("actor refused to send:", str(exc).split(": ", 2)[-1])
    await ctx.started(None)
    async with ctx.open_stream() as stream:
        async for r in stream:
            await stream.send(Reading(r.sensor, [sum(r.values) / len(r.values)], r.unit))


async def main():
    async with subactor.open_nursery() as an:
        p = await an.start_actor("averager", enable_modules=[__name__])
        async with p.open_context(averager) as (ctx, first):
            async with ctx.open_stream() as stream:
                await stream.send(Reading("s1", [20.0, 22.0, 24.0]))
                print("average:", await stream.receive())
                try:
                    await stream.send(Reading("s2", "not a list"))
                except subactor.MsgTypeError as exc:
                    print("parent refused to send:", str(exc).split(": ", 2)[-1])
        await p.cancel_actor()


if __name__ == "__main__":
    trio.run(main)
