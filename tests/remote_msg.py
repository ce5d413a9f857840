"""Actor-side functions of tests/test_msg_ctx.py: typed messages in a
subinterpreter actor (subactor.msg, never msgspec)."""
from __future__ import annotations

import enum

import subactor
from subactor import msg


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msg.Struct):
    x: int
    y: int = 0


class Shape(msg.Struct, tag=True):
    points: list[Point]
    color: Color = Color.RED
    labels: set[str] = set()


class Note(msg.Struct, tag=True):
    text: str


@subactor.context(pld_spec=Point)
async def point_echo(ctx, bad_started: bool = False, bad_item: bool = False, bad_return: bool = False):
    """Started, stream items and result all of the spec: a Point. The bad_*
    flags make this side send something else."""
    await ctx.started({"x": "nope"} if bad_started else Point(1, 2))
    async with ctx.open_stream() as stream:
        async for p in stream:
            assert type(p) is Point, type(p)
            await stream.send({"not": "a point"} if bad_item else Point(p.x * 10, p.y * 10))
    return "oops" if bad_return else Point(-1, -1)


@subactor.context(pld_spec=Shape | Note)
async def shapes(ctx, n: int):
    """Typed values the plain codec does not carry (sets, Enums) cross too."""
    await ctx.started(Note("ready"))
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(Shape([Point(i, i)], Color.BLUE, {f"l{i}"}))
    return Note("done")


@subactor.context
async def limited(ctx, send_bad: bool):
    """limit_plds inside an untyped context."""
    with msg.limit_plds(int):
        await ctx.started(7)
        async with ctx.open_stream() as stream:
            await stream.send("x" if send_bad else 8)
            got = await stream.receive()
            return got


@subactor.context
async def untyped_sender(ctx, value):
    """No spec on this side: sends what it is given."""
    await ctx.started(value)
    return value


def struct_in_actor() -> dict:
    """A Struct made, encoded and decoded inside the actor's own interpreter."""
    s = Shape([Point(1), Point(2, 3)], Color.RED, {"a"})
    data = msg.encode(s)
    back = msg.decode(data, type=Shape)
    try:
        msg.decode(msg.encode({"type": "Shape", "points": [{"x": 1}, {"x": "s"}]}), type=Shape)
    except msg.ValidationError as exc:
        err = str(exc)
    return {"eq": back == s, "err": err, "plain": subactor._ext.loads(data)["points"]}
