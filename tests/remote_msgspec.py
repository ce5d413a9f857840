"""Actor-side functions of test_msg_ctx's msgspec opt-in test: this module
imports msgspec, so it runs only in a process actor (never a subinterpreter)."""
import msgspec

import subactor
from subactor import msg


class MPoint(msgspec.Struct):
    x: int
    y: int = 0


@subactor.context(pld_spec=MPoint)
async def mpoint_echo(ctx):
    with msg.apply_codec(msg.msgspec_codec()):
        await ctx.started(MPoint(1, 2))
        async with ctx.open_stream() as stream:
            async for p in stream:
                assert type(p) is MPoint
                await stream.send(MPoint(p.x + 1, p.y + 1))
        return MPoint(0, 0)
