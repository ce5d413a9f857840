"""Contexts and streams, written fresh for the behaviours of tractor's
test_context_stream_semantics.py and test_streaming.py."""
import pytest
import trio

import subactor
from subactor import ContextCancelled, RemoteActorError

from . import remote

MOD = remote.__name__


def with_actor(body, name="ctx-actor"):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor(name, enable_modules=[MOD])
                try:
                    await body(p)
                finally:
                    await p.cancel_actor()

    trio.run(main)


def test_started_value_and_result():
    async def body(p):
        async with p.open_context(remote.echo_started, value={"a": [1, 2]}) as (ctx, first):
            assert first == {"a": [1, 2]}
        assert await ctx.wait_for_result() == "done"

    with_actor(body)


def test_stream_both_ways():
    async def body(p):
        async with p.open_context(remote.echo_stream, prefix="> ") as (ctx, first):
            assert first == "ready"
            async with ctx.open_stream() as stream:
                for i in range(20):
                    await stream.send(i)
                    assert await stream.receive() == f"> {i}"
        assert await ctx.wait_for_result() == "echo finished"

    with_actor(body)


def test_callee_streams_to_caller_async_for():
    async def body(p):
        async with p.open_context(remote.count_to, n=100) as (ctx, first):
            assert first == 100
            async with ctx.open_stream() as stream:
                got = [v async for v in stream]
        assert got == list(range(100))
        assert await ctx.wait_for_result() == 100

    with_actor(body)


def test_caller_streams_to_callee():
    async def body(p):
        async with p.open_context(remote.sum_stream) as (ctx, _):
            async with ctx.open_stream() as stream:
                for i in range(1000):
                    await stream.send(i)
        assert await ctx.wait_for_result() == sum(range(1000))

    with_actor(body)


def test_early_close_by_callee_ends_caller_iteration():
    async def body(p):
        async with p.open_context(remote.early_close_callee, n=3) as (ctx, _):
            async with ctx.open_stream() as stream:
                got = [v async for v in stream]
                with pytest.raises(trio.EndOfChannel):
                    await stream.receive()
        assert got == [0, 1, 2]
        assert await ctx.wait_for_result() == "closed early"

    with_actor(body)


def test_early_close_by_caller_ends_callee_iteration():
    async def body(p):
        async with p.open_context(remote.count_received) as (ctx, _):
            async with ctx.open_stream() as stream:
                await stream.send("a")
                await stream.send("b")
            # closed our side early; sending now is an error
            with pytest.raises(trio.ClosedResourceError):
                await stream.send("c")
        assert await ctx.wait_for_result() == ["a", "b"]

    with_actor(body)


def test_error_before_started_raises_at_open():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.error_before_started):
                pytest.fail("the block must not run")
        assert info.value.boxed_type is ValueError
        assert "failed before started" in str(info.value)

    with_actor(body)


def test_error_after_started_raises_at_exit():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.error_after_started) as (ctx, first):
                assert first == "ok so far"
        assert info.value.boxed_type is RuntimeError

    with_actor(body)


def test_error_mid_stream_raises_at_receive():
    async def body(p):
        got = []
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.error_mid_stream, after=5) as (ctx, _):
                async with ctx.open_stream() as stream:
                    async for v in stream:
                        got.append(v)
        assert got == [0, 1, 2, 3, 4]
        assert info.value.boxed_type is OSError

    with_actor(body)


def test_error_in_caller_block_cancels_callee():
    async def body(p):
        with pytest.raises(KeyError):
            async with p.open_context(remote.never_returns) as (ctx, first):
                assert first == "sleeping"
                raise KeyError("caller failed")
        # The callee was cancelled: the actor serves the next call at once.
        assert await p.run(remote.add, a=1, b=1) == 2

    with_actor(body)


def test_caller_cancels_context_absorbed():
    async def body(p):
        async with p.open_context(remote.never_returns) as (ctx, _):
            await ctx.cancel()
        # Cancelled by us: no error; the result is the ContextCancelled
        # that names us as the canceller (tractor's meaning).
        res = await ctx.wait_for_result()
        assert isinstance(res, subactor.ContextCancelled)
        assert res.canceller == subactor.current_actor().uid
        assert ctx.cancel_acked and ctx.outcome is res
        assert ctx.cancel_called

    with_actor(body)


def test_callee_cancels_itself_raises_context_cancelled():
    async def body(p):
        with pytest.raises(ContextCancelled) as info:
            async with p.open_context(remote.callee_cancels_itself) as (ctx, _):
                await ctx.wait_for_result()
        assert info.value.src_actor == "ctx-actor"

    with_actor(body)


def test_cancel_scope_around_context_cancels_callee():
    async def body(p):
        with trio.move_on_after(0.3) as scope:
            async with p.open_context(remote.never_returns) as (ctx, _):
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert await p.run(remote.add, a=2, b=3) == 5

    with_actor(body)


def test_returns_without_started_is_an_error():
    async def body(p):
        with pytest.raises(RemoteActorError, match="without calling ctx.started"):
            async with p.open_context(remote.returns_without_started):
                pass

    with_actor(body)


def test_many_concurrent_contexts():
    async def body(p):
        results = {}

        async def one(i):
            async with p.open_context(remote.echo_stream, prefix=f"{i}:") as (ctx, _):
                async with ctx.open_stream() as stream:
                    for j in range(10):
                        await stream.send(j)
                        assert await stream.receive() == f"{i}:{j}"
            results[i] = await ctx.wait_for_result()

        async with trio.open_nursery() as tn:
            for i in range(30):
                tn.start_soon(one, i)
        assert results == {i: "echo finished" for i in range(30)}

    with_actor(body)


def test_contexts_in_several_actors_at_once():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                ps = [await an.start_actor(f"w{i}", enable_modules=[MOD]) for i in range(3)]
                totals = {}

                async def feed(p):
                    async with p.open_context(remote.sum_stream) as (ctx, _):
                        async with ctx.open_stream() as s:
                            for v in range(100):
                                await s.send(v)
                    totals[p.name] = await ctx.wait_for_result()

                async with trio.open_nursery() as tn:
                    for p in ps:
                        tn.start_soon(feed, p)
                assert totals == {p.name: 4950 for p in ps}
                await an.cancel()

    trio.run(main)


def test_an_error_unwinding_through_a_finally_that_cancels_the_context_is_kept():
    # The cancel's confirmation wakes the block (its scope is cancelled);
    # a checkpoint in the `finally` then raises Cancelled, which must not
    # hide the error on its way out (nor be absorbed with the confirmation).
    async def body(p):
        with pytest.raises(TypeError, match="mine"):
            async with p.open_context(remote.count_forever) as (ctx, _):
                async with ctx.open_stream():
                    try:
                        raise TypeError("mine")
                    finally:
                        await ctx.cancel()
                        await trio.sleep(0.05)

    with_actor(body)


def test_an_unsendable_first_value_is_a_typeerror_of_the_child():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.started_unsendable):
                pass
        assert info.value.boxed_type is TypeError
        assert "first value cannot be sent" in str(info.value)

    with_actor(body)


def test_the_peers_close_ends_the_stream_block_and_its_error_follows():
    # A receive that meets the peer's close raises EndOfChannel; the
    # stream's block absorbs it (as tractor's does), and the context's
    # outcome comes next: here the error the child raised after closing
    # (at the stream block's exit if it has come, else at the context's).
    async def body(p):
        got = []
        with pytest.raises(RemoteActorError, match="after the stream") as info:
            async with p.open_context(remote.stream_then_fail, n=3) as (ctx, _):
                async with ctx.open_stream() as stream:
                    while True:
                        got.append(await stream.receive())
        assert got == [0, 1, 2]
        assert info.value.boxed_type is RuntimeError

    with_actor(body)


def test_an_end_of_channel_of_another_stream_is_not_absorbed():
    async def body(p):
        send, recv = trio.open_memory_channel(1)
        await send.aclose()
        with pytest.raises(trio.EndOfChannel):
            async with p.open_context(remote.echo_stream) as (ctx, _):
                async with ctx.open_stream():
                    await recv.receive()   # not this context's stream

    with_actor(body)


def test_actor_cancel_of_a_context_whose_nursery_sleeps_says_context_cancelled():
    # Its call ends with a group of cancellations, not one: still the
    # actor's cancel, so the caller hears ContextCancelled, not that the
    # actor ended before answering.
    from . import remote_streams

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("ctx-actor", enable_modules=[remote_streams.__name__])
                with pytest.raises(ContextCancelled) as info:
                    async with p.open_context(remote_streams.nursery_sleeps) as (ctx, first):
                        assert first == "sleeping"
                        await trio.sleep(0.1)   # its second task is asleep too
                        await p.cancel_actor()
                assert "actor cancel" in str(info.value)

    trio.run(main)
