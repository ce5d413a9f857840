"""The stream's fast paths (issue 18): what they must keep.

- A send the channel takes at once and a receive that finds an item are
  cancel points without a scheduler pass, but every FAST_OPS-th operation
  is a full checkpoint: other tasks keep running beside a stream that never
  waits (counted by a sibling task), and a cancelled send sends nothing.
- A reader takes items from the channel itself while the pump is parked,
  and the actor's pump drains a backlog per checkpoint: items still arrive
  complete and in order, in both directions, and a receive cancelled
  before it took anything loses nothing and duplicates nothing.
- Large items whose payload is one bin wait in their channel buffers until
  the reader takes them: they still arrive as bytes (memoryviews only on a
  ``zero_copy`` stream), in order, and a slow reader keeps the buffers alive
  bounded; their buffers go back (the leak fixture counts them).
- Overruns: a burst sent without yielding into a reader's small inbox still
  ends in StreamOverrun after exactly what fitted.
- send()'s plain-item shortcut does not bypass a codec applied on the
  sending side.
"""
import pytest
import trio

import subactor
from subactor import StreamOverrun
from subactor._transport import FAST_OPS

from . import remote_fast as rf, remote_streams as rs
from .test_process import no_child_processes  # noqa: F401  (autouse: no child process left)
from .test_streams import backend, stashed, with_actor  # noqa: F401  (backend: the fixture)

MODS = (rf.__name__, rs.__name__)
N = 20_000


def _run(backend, body, limit=60):
    with_actor(backend, body, name="fast", limit=limit, mods=MODS)


async def _read_n(s, n, cancel_every=0):
    """Read ``n`` items; every ``cancel_every``-th receive is cancelled
    before it runs. Returns (items, cancelled receives)."""
    got, cancelled, i = [], 0, 0
    while len(got) < n:
        i += 1
        with trio.CancelScope() as cs:
            if cancel_every and i % cancel_every == 0:
                cs.cancel()
            got.append(await s.receive())
        if cs.cancelled_caught:
            cancelled += 1
    return got, cancelled


@pytest.mark.parametrize("cancel_every", [0, 7])
def test_child_to_parent_items_complete_in_order(backend, cancel_every):
    async def body(p):
        async with p.open_context(rf.send_n, n=N, allow_overruns=True) as (ctx, _):
            async with ctx.open_stream() as s:
                await s.send("go")
                got, cancelled = await _read_n(s, N, cancel_every)
                with pytest.raises(trio.EndOfChannel):
                    await s.receive()
        assert await ctx.wait_for_result() == N
        assert got == list(range(N))
        if cancel_every:
            assert cancelled >= N // cancel_every
        else:
            assert cancelled == 0

    _run(backend, body)


@pytest.mark.parametrize("cancel_every", [0, 7])
def test_parent_to_child_items_complete_in_order(backend, cancel_every):
    async def body(p):
        async with p.open_context(rf.read_all, cancel_every=cancel_every) as (ctx, _):
            async with ctx.open_stream() as s:
                assert await s.receive() == "ready"
                for i in range(N):
                    await s.send(i)
        r = await ctx.wait_for_result()
        assert r["got"] == list(range(N))
        if cancel_every:
            assert r["cancelled"] >= N // cancel_every
        else:
            assert r["cancelled"] == 0

    _run(backend, body)


def test_cancelled_send_sends_nothing(backend):
    async def body(p):
        async with p.open_context(rf.read_all) as (ctx, _):
            async with ctx.open_stream() as s:
                assert await s.receive() == "ready"
                for i in range(10):
                    await s.send(i)
                with trio.CancelScope() as cs:
                    cs.cancel()
                    await s.send("never")
                assert cs.cancelled_caught
                await s.send(10)
        assert (await ctx.wait_for_result())["got"] == list(range(11))

    _run(backend, body)


async def _count_passes(count: list) -> None:
    while True:
        count[0] += 1
        await trio.sleep(0)


def test_sender_that_never_waits_lets_other_tasks_run(backend):
    # 900 items fit in the channel (1024 messages) and in the child's
    # inbox (2000): no send waits, so only the fast path's periodic
    # checkpoint lets the sibling run.
    n = 900

    async def body(p):
        count = [0]
        async with p.open_context(rf.read_all, msg_buffer_size=2000) as (ctx, _):
            async with ctx.open_stream() as s:
                assert await s.receive() == "ready"
                async with trio.open_nursery() as tn:
                    tn.start_soon(_count_passes, count)
                    await trio.sleep(0)
                    before = count[0]
                    for i in range(n):
                        await s.send(i)
                    ran = count[0] - before
                    tn.cancel_scope.cancel()
        assert (await ctx.wait_for_result())["got"] == list(range(n))
        assert ran >= n // FAST_OPS - 1, ran

    _run(backend, body)


def test_reader_that_never_waits_lets_other_tasks_run(backend):
    n = 900

    async def body(p):
        count = [0]
        async with p.open_context(rf.send_n, n=n) as (ctx, _):
            async with ctx.open_stream(msg_buffer_size=2000) as s:
                await s.send("go")
                while not ctx._peer_done:   # all of it is here (the child's return came after)
                    await trio.sleep(0.005)
                async with trio.open_nursery() as tn:
                    tn.start_soon(_count_passes, count)
                    await trio.sleep(0)
                    before = count[0]
                    got, _ = await _read_n(s, n)
                    ran = count[0] - before
                    tn.cancel_scope.cancel()
        await ctx.wait_for_result()
        assert got == list(range(n))
        assert ran >= n // FAST_OPS - 1, ran

    _run(backend, body)


@pytest.mark.parametrize("zero_copy", [False, True])
def test_large_bin_items_arrive_as_bytes_in_order(backend, zero_copy):
    n, size = 300, 100_000

    async def body(p):
        async with p.open_context(rf.send_n, n=n, kind="bytes", size=size, allow_overruns=True) as (ctx, _):
            async with ctx.open_stream(zero_copy=zero_copy) as s:
                await s.send("go")
                ok = 0
                async for i, v in aenumerate(s):
                    if zero_copy:
                        assert type(v) is memoryview
                        v = bytes(v)
                    if rf.check(i, v, "bytes", size):
                        ok += 1
                    del v
        await ctx.wait_for_result()
        assert ok == n

    _run(backend, body)


async def aenumerate(s):
    i = 0
    async for v in s:
        yield i, v
        i += 1


def test_large_items_in_a_list_and_unread_ones_are_fine(backend):
    # A large bin inside a list is decoded as before (bytes); items left
    # unread when the context ends release their buffers (leak fixture).
    n, size = 50, 100_000

    async def body(p):
        async with p.open_context(rf.send_n, n=n, kind="list", size=size, allow_overruns=True) as (ctx, _):
            async with ctx.open_stream() as s:
                await s.send("go")
                v = await s.receive()
                assert v == [0, b"p" * size] and type(v[1]) is bytes
        async with p.open_context(rf.send_n, n=n, kind="bytes", size=size, allow_overruns=True) as (ctx, _):
            async with ctx.open_stream() as s:
                await s.send("go")
                assert rf.check(0, await s.receive(), "bytes", size)
                while ctx._inbox.items < 10:
                    await trio.sleep(0.005)
        # left unread: nine or more items, lazily decoded, dropped with the context

    _run(backend, body)


def test_slow_reader_of_large_items_keeps_buffers_bounded():
    # In-process channels only (a process actor's channel is a socket: no
    # channel buffers, no lazy items). The parent sends 1500 items of 256 KiB far faster than the child reads
    # them (allow_overruns: it is held). What waits is bounded by the inbox
    # (64 items, and what was already in the channel when the hold went out)
    # and the channel (64 MiB: 256 such items), not by the 1500 sent.
    n, size = 1500, 256 << 10

    async def body(p):
        async with p.open_context(rf.paced_big, n=n, size=size, pace=0.0005, key="big") as (ctx, _):
            async with ctx.open_stream() as s:
                assert await s.receive() == "ready"
                for i in range(n):
                    await s.send(rf.item(i, "bytes", size))
        await ctx.wait_for_result()
        seen = await stashed_fast(p, "big")
        assert seen["ok"], seen
        # what may still come after the hold went out: the channel's worth
        assert seen["inbox"] <= 64 + 256 + 16, seen
        assert seen["buffers"] <= seen["inbox"] + 256 + 16, seen

    _run("subint", body, limit=90)


async def stashed_fast(p, key):
    while True:
        got = await p.run(rf.stash_pop, key=key)
        if got is not None:
            return got
        await trio.sleep(0.02)


def test_burst_without_yielding_overruns_after_what_fitted(backend):
    async def body(p):
        with pytest.raises(subactor.RemoteActorError) as info:
            async with p.open_context(rs.slow_reader, key="burst", delay=0.5, msg_buffer_size=16,
                                      overruns=False) as (ctx, _):
                async with ctx.open_stream() as s:
                    assert await s.receive() == "ready"
                    for i in range(500):   # fits in the channel: no send waits
                        await s.send(i)
                    await trio.sleep_forever()
        assert info.value.boxed_type is StreamOverrun
        got = await stashed(p, "burst")
        assert got["got"] == list(range(16))
        assert got["end"][0] == "StreamOverrun"

    _run(backend, body)


def test_round_trips_each_get_their_own_answer(backend):
    # Back-to-back round trips: a reader that waits for its answer takes it
    # from the channel itself while the pump is parked (both sides).
    n = 3000

    async def body(p):
        async with p.open_context(rf.echo) as (ctx, _):
            async with ctx.open_stream() as s:
                for i in range(n):
                    await s.send(i)
                    with trio.fail_after(10):   # a lost answer fails here, not at the test's bound
                        assert await s.receive() == i
        await ctx.wait_for_result()

    _run(backend, body)


class _Tag:
    def __init__(self, s):
        self.s = s


def test_a_codec_applied_on_the_sending_side_encodes_stream_items(backend):
    # The plain-item shortcut of send() must not bypass an applied codec:
    # its enc_hook encodes a type the default codec refuses.
    from subactor import msg

    def enc(obj):
        if isinstance(obj, _Tag):
            return f"tag:{obj.s}"
        raise NotImplementedError

    async def body(p):
        async with p.open_context(rf.echo) as (ctx, _):
            async with ctx.open_stream() as s:
                with msg.apply_codec(msg.mk_codec(enc_hook=enc)):
                    await s.send(_Tag("a"))
                assert await s.receive() == "tag:a"
        await ctx.wait_for_result()

    _run(backend, body)


class _Steps(trio.abc.Instrument):
    """Counts the steps of one task (each one a pass of the scheduler)."""

    def __init__(self, task):
        self.task, self.steps = task, 0

    def before_task_step(self, task):
        if task is self.task:
            self.steps += 1


def test_an_item_found_while_looking_costs_no_extra_pass(monkeypatch):
    # A receive that finds its inbox empty looks for the item itself for a
    # few scheduler passes (the spin phase, allowed here whatever the
    # machine's load); the item it finds after its first pass is returned
    # at once, without another full checkpoint: one step of the task in all.
    from subactor import _transport

    monkeypatch.setattr(_transport, "may_spin", lambda: True)

    async def body(p):
        async with p.open_context(rf.echo) as (ctx, _):
            async with ctx.open_stream() as s:
                calls = []

                def take():
                    # The fast path's call finds nothing; the look's first
                    # call (after its first pass) finds the item.
                    calls.append(1)
                    if len(calls) == 2:
                        ctx._inbox.put({"t": "yield", "cid": ctx.cid, "v": "here"})

                monkeypatch.setattr(ctx, "_take", take)
                steps = _Steps(trio.lowlevel.current_task())
                trio.lowlevel.add_instrument(steps)
                try:
                    got = await s.receive()
                finally:
                    trio.lowlevel.remove_instrument(steps)
                assert got == "here"
                assert len(calls) == 2
                assert steps.steps == 1
        await ctx.wait_for_result()

    _run("subint", body)
