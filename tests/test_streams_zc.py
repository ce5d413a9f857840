"""Zero-copy context streams: ``ctx.open_stream(zero_copy=True)``.

Pins: large bytes items (>= 64 KiB) arrive as read-only memoryviews equal to
what was sent, small ones as bytes, and without the option as bytes; a view
outlives its stream, its actor and its channel safely (its pooled buffer is
held until the view is released, which the leak fixture's buffer counter
checks); cancelling a zero-copy stream mid-flight leaves no buffer behind;
the codec's ``loads(zero_copy=True)`` and ``dumps_msg()``.
"""
import gc

import pytest
import trio

import subactor
from subactor import _ext

from . import remote_zc as rz
from .conftest import run_bounded

MOD = rz.__name__


def test_codec_views_keep_the_message_alive():
    m = _ext.dumps_msg({"v": rz.pattern(3), "s": b"ab"})
    d = _ext.loads(m, zero_copy=True)
    assert isinstance(d["v"], memoryview) and d["v"].readonly
    assert d["v"] == rz.pattern(3)
    assert d["s"] == b"ab" and type(d["s"]) is bytes  # small: a copy
    with pytest.raises(BufferError):
        m.release()  # a view is alive: the buffer stays
    del d
    gc.collect()
    m.release()
    assert _ext.loads(_ext.dumps_msg([1, "x"])) == [1, "x"]
    with pytest.raises(TypeError, match="zero_copy"):
        _ext.dumps(b"", zero_copy=True)


def test_send_queues_a_dumps_msg_buffer_and_gives_it_back_when_full():
    cid = _ext.channel(maxmsgs=1)
    a, b = _ext.ChannelEnd(cid, 0), _ext.ChannelEnd(cid, 1)
    try:
        first = _ext.dumps_msg(rz.pattern(1))
        a.send_nowait(first)
        assert first.released  # its buffer itself was queued, no copy
        # small (a large one meets the pre-check of send_nowait before any take)
        second = _ext.dumps_msg(rz.pattern(2, 1000))
        with pytest.raises(BlockingIOError):
            a.send_nowait(second)  # full: the buffer goes back to the Message
        assert not second.released and _ext.loads(second) == rz.pattern(2, 1000)
        with memoryview(second):  # a view alive: send copies instead
            assert _ext.loads(b.recv_nowait()) == rz.pattern(1)
            a.send_nowait(second)
            assert not second.released
        assert _ext.loads(b.recv_nowait()) == rz.pattern(2, 1000)
    finally:
        a.close()
        b.close()
    cid = _ext.channel(maxbytes=1000)
    a, b = _ext.ChannelEnd(cid, 0), _ext.ChannelEnd(cid, 1)
    try:
        big = _ext.dumps_msg(b"x" * 2000)
        with pytest.raises(ValueError, match="larger than the channel's byte bound"):
            a.send_nowait(big)
        assert not big.released and len(big) == 2003  # still the caller's
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("zero_copy", [True, False])
def test_large_items_equal_what_was_sent(zero_copy):
    got = []

    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("zc", enable_modules=[MOD])
            async with p.open_context(rz.send_big, n=4, small=True) as (ctx, _):
                async with ctx.open_stream(zero_copy=zero_copy) as s:
                    await s.send("go")
                    async for v in s:
                        got.append((type(v), bytes(v)))
                assert await ctx.wait_for_result() == 4
            await p.cancel_actor()

    run_bounded(main)
    big = memoryview if zero_copy else bytes
    assert [t for t, _ in got] == [big, bytes] * 4
    assert [b for _, b in got[::2]] == [rz.pattern(i) for i in range(4)]
    assert all(b == b"tiny" for _, b in got[1::2])


def test_view_outlives_its_stream_and_actor():
    kept = []

    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("zc", enable_modules=[MOD])
            async with p.open_context(rz.send_big, n=3) as (ctx, _):
                async with ctx.open_stream(zero_copy=True) as s:
                    await s.send("go")
                    async for v in s:
                        kept.append(v)
            await p.cancel_actor()

    run_bounded(main)
    # The actor, its interpreter and the channel are gone; the views still
    # read what was sent (each holds its message's buffer).
    gc.collect()
    assert [type(v) for v in kept] == [memoryview] * 3
    assert [bytes(v) for v in kept] == [rz.pattern(i) for i in range(3)]
    kept.clear()  # releases the buffers: the leak fixture checks the count


def test_child_side_zero_copy():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("zc", enable_modules=[MOD])
            async with p.open_context(rz.echo_zc) as (ctx, _):
                async with ctx.open_stream() as s:
                    assert await s.receive() == "ready"
                    for i in range(3):
                        await s.send(rz.pattern(i))
                        assert await s.receive() == ["memoryview", rz.pattern(i)]
                    await s.send(b"small")
                    assert await s.receive() == ["bytes", b"small"]
            await p.cancel_actor()

    run_bounded(main)


def test_cancel_mid_stream_leaves_no_buffer():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("zc", enable_modules=[MOD])
            async with p.open_context(rz.send_forever) as (ctx, _):
                async with ctx.open_stream(zero_copy=True) as s:
                    await s.send("go")
                    held = [await s.receive() for _ in range(5)]
                    assert all(type(v) is memoryview for v in held)
                    await ctx.cancel()
                    del held
            await p.cancel_actor()

    run_bounded(main)
    # (the leak fixture: no buffer of the in-flight items is left counted)


def test_zero_copy_must_be_bool():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("zc", enable_modules=[MOD])
            async with p.open_context(rz.just_started) as (ctx, _):
                with pytest.raises(TypeError, match="zero_copy must be a bool"):
                    async with ctx.open_stream(zero_copy=1):
                        pass
                await ctx.cancel()
                assert await ctx.wait_for_result() == 0
            await p.cancel_actor()

    run_bounded(main)
