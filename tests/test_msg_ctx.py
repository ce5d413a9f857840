"""Typed payloads through contexts with actors: @context(pld_spec=),
limit_plds(), Structs made in a subinterpreter actor."""
import pytest
import trio

import subactor
from subactor import MsgTypeError, RemoteActorError, msg

from . import remote_msg as rm

MOD = rm.__name__


def with_actor(body, backend=None):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("msg-actor", enable_modules=[MOD], backend=backend)
                try:
                    await body(p)
                finally:
                    await p.cancel_actor()

    trio.run(main)


def test_struct_in_subinterpreter_actor():
    async def body(p):
        res = await p.run(rm.struct_in_actor)
        assert res["eq"] is True
        assert res["err"] == "$.points[1].x: expected int, got str"
        assert res["plain"] == [{"x": 1, "y": 0}, {"x": 2, "y": 3}]

    with_actor(body)


@pytest.mark.parametrize("backend", [None, "process"])
def test_pld_spec_round_trip(backend):
    async def body(p):
        async with p.open_context(rm.point_echo) as (ctx, first):
            assert first == rm.Point(1, 2)
            async with ctx.open_stream() as stream:
                for i in range(5):
                    await stream.send(rm.Point(i, i + 1))
                    assert await stream.receive() == rm.Point(i * 10, (i + 1) * 10)
        assert await ctx.wait_for_result() == rm.Point(-1, -1)

    with_actor(body, backend)


@pytest.mark.parametrize("backend", [None, "process"])
def test_pld_spec_carries_sets_and_enums_in_a_tagged_union(backend):
    async def body(p):
        async with p.open_context(rm.shapes, n=3) as (ctx, first):
            assert first == rm.Note("ready")
            async with ctx.open_stream() as stream:
                got = [s async for s in stream]
        assert got == [rm.Shape([rm.Point(i, i)], rm.Color.BLUE, {f"l{i}"}) for i in range(3)]
        assert await ctx.wait_for_result() == rm.Note("done")

    with_actor(body, backend)


def test_parent_send_outside_spec_raises_on_sending_side():
    async def body(p):
        async with p.open_context(rm.point_echo) as (ctx, first):
            async with ctx.open_stream() as stream:
                with pytest.raises(MsgTypeError, match=r"sent by parent side .*spec Point.*\$.x: expected int, got str"):
                    await stream.send({"x": "bad"})
                await stream.send(rm.Point(1))
                assert await stream.receive() == rm.Point(10, 0)

    with_actor(body)


@pytest.mark.parametrize("flag,what", [("bad_started", "started"), ("bad_item", "stream item"),
                                       ("bad_return", "return value")])
@pytest.mark.parametrize("backend", [None, "process"])
def test_child_violation_is_its_error_and_the_parent_learns_why(flag, what, backend):
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(rm.point_echo, **{flag: True}) as (ctx, first):
                async with ctx.open_stream() as stream:
                    await stream.send(rm.Point(1))
                    await stream.receive()
                    await stream.send(rm.Point(2))
                    await stream.receive()
            await ctx.wait_for_result()
        err = info.value
        assert err.boxed_type is MsgTypeError
        assert what in str(err) and "sent by child side" in str(err)

    with_actor(body, backend)


def test_receiving_side_checks_what_an_untyped_peer_sent():
    @subactor.context(pld_spec=int)
    async def untyped_sender(ctx, value):  # only its pld_spec matters here: the actor runs rm's
        raise AssertionError

    untyped_sender.__module__ = MOD
    untyped_sender.__qualname__ = "untyped_sender"

    async def body(p):
        async with p.open_context(untyped_sender, value=5) as (ctx, first):
            assert first == 5
        with pytest.raises(MsgTypeError, match=r"received by parent side .*spec int.*expected int, got str"):
            async with p.open_context(untyped_sender, value="five") as (ctx, first):
                pass

    with_actor(body)


def test_limit_plds():
    async def body(p):
        async with p.open_context(rm.limited, send_bad=False) as (ctx, first):
            assert first == 7
            async with ctx.open_stream() as stream:
                assert await stream.receive() == 8
                await stream.send(9)
        assert await ctx.wait_for_result() == 9

    with_actor(body)


def test_limit_plds_violation_is_the_childs_error():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(rm.limited, send_bad=True) as (ctx, first):
                assert first == 7
                async with ctx.open_stream() as stream:
                    await stream.receive()
        assert info.value.boxed_type is MsgTypeError
        assert "stream item sent by child side is not of the payload spec int" in str(info.value)

    with_actor(body)


def test_limit_plds_outside_a_context():
    with pytest.raises(RuntimeError, match="inside a context"):
        with msg.limit_plds(int):
            pass


def test_pld_spec_of_an_unknown_kind_fails_at_decoration():
    with pytest.raises(TypeError, match="cannot use"):
        @subactor.context(pld_spec=list[1])
        async def f(ctx):
            pass


def test_msgspec_structs_opt_in_with_a_process_actor():
    pytest.importorskip("msgspec")
    from . import remote_msgspec as rms

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("msgspec-actor", enable_modules=[rms.__name__], backend="process")
                try:
                    with msg.apply_codec(msg.msgspec_codec()):
                        async with p.open_context(rms.mpoint_echo) as (ctx, first):
                            assert first == rms.MPoint(1, 2)
                            async with ctx.open_stream() as stream:
                                await stream.send(rms.MPoint(5))
                                assert await stream.receive() == rms.MPoint(6, 1)
                                with pytest.raises(MsgTypeError, match="spec MPoint"):
                                    await stream.send({"x": "no"})
                        assert await ctx.wait_for_result() == rms.MPoint(0, 0)
                finally:
                    await p.cancel_actor()

    trio.run(main)
