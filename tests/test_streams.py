"""Context streams: flow control, cancel, errors across actors, legacy streams.

Pins the semantics of subactor._context on both backends:

- bounded inboxes: an item that finds a side's inbox full (``msg_buffer_size``,
  64 by default) fails the sender's context with StreamOverrun unless that
  side allows overruns, and the receiver's stream raises StreamOverrun where
  the first item went missing; with ``allow_overruns`` the sender is held
  instead, so a producer far faster than its consumer keeps the queue
  bounded (a watcher task samples ``ctx._inbox.items``);
- who cancelled: ``ctx.cancel()`` is absorbed and names this actor as the
  canceller, ``cancel_actor()``'s cancel is raised, a child's own cancel
  says "itself"; ``current_ipc_ctx()``;
- remote errors: which boxed types resolve, relayed errors (src / relay),
  an error masked by a cancel in a ``finally:``;
- ``cancel_actor(timeout=...)``, ``open_stream_from``, the MsgStream surface.
"""
import pytest
import trio

import subactor
from subactor import (ActorNotAvailable, ActorTooSlowError, ContextCancelled, RemoteActorError,
                      StreamOverrun)

from . import remote, remote_streams as rs
from .test_process import no_child_processes  # noqa: F401  (autouse: no child process left)

MOD = rs.__name__
BACKENDS = ["subint", "process"]
DEFAULT_BUFFER = 64


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def with_actor(backend, body, name="streams", limit=60, mods=(MOD,), **nursery_kw):
    """Run ``body(portal)`` against one actor, bounded by ``limit`` s."""
    async def main():
        with trio.fail_after(limit):
            async with subactor.open_nursery(backend=backend, **nursery_kw) as an:
                p = await an.start_actor(name, enable_modules=list(mods))
                try:
                    await body(p)
                finally:
                    await p.cancel_actor()

    trio.run(main)


async def stashed(p, key):
    """What the actor stashed under ``key``, once it has (the caller's
    bound limits the wait)."""
    while True:
        got = await p.run(rs.stash_pop, key=key)
        if got is not None:
            return got
        await trio.sleep(0.02)


def me():
    return subactor.current_actor().uid


# --- overruns without allow_overruns ------------------------------------------------

@pytest.mark.parametrize("buffer", [None, 8])
def test_overrun_at_child_fails_parent_and_child_stream_raises_where_items_went_missing(backend, buffer):
    limit = buffer or DEFAULT_BUFFER

    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(rs.slow_reader, key="ovr", delay=0.5, msg_buffer_size=buffer) as (ctx, _):
                async with ctx.open_stream() as s:
                    assert await s.receive() == "ready"
                    for i in range(limit + 500):
                        await s.send(i)
                    await trio.sleep_forever()
        err = info.value
        assert err.boxed_type is StreamOverrun, err
        assert err.src_uid == p.uid
        assert f"msg_buffer_size={limit}" in str(err)
        assert ctx.maybe_error is err
        seen = await stashed(p, "ovr")
        # the first `limit` items, then the overrun; everything after it dropped
        assert seen["got"] == list(range(limit))
        assert seen["end"][0] == "StreamOverrun"
        assert seen["limit"] == limit
        assert seen["max"] <= limit

    with_actor(backend, body)


def test_overrun_at_parent_fails_child_and_parent_stream_raises_where_items_went_missing(backend):
    async def body(p):
        seen = {"max": 0, "samples": 0}
        got = []
        with pytest.raises(RemoteActorError) as info:
            # Far more than the child can send before the overrun error
            # reaches it, even on a loaded machine: it must stop early.
            async with p.open_context(rs.flood, key="pf", n=DEFAULT_BUFFER + 100_000) as (ctx, _):
                async with trio.open_nursery() as tn:
                    tn.start_soon(rs._watch, ctx, seen)
                    async with ctx.open_stream() as s:
                        await s.send("go")
                        # Shielded: the child's failure (it relays the
                        # overrun) wakes this block; the reading must
                        # still see what came before it.
                        with trio.CancelScope(shield=True):
                            await trio.sleep(0.5)
                            with pytest.raises(StreamOverrun):
                                while True:
                                    got.append(await s.receive())
        assert got == list(range(DEFAULT_BUFFER))
        assert seen["max"] <= DEFAULT_BUFFER
        # The sender's (child's) context failed with the overrun this side sent ...
        child = await stashed(p, "pf")
        assert child["error"] == {"type": "RemoteActorError", "boxed": "StreamOverrun", "src_uid": list(me())}
        assert child["sent"] < DEFAULT_BUFFER + 100_000
        # ... and it relayed that error back: it started here.
        err = info.value
        assert err.src_type is StreamOverrun
        assert err.boxed_type is RemoteActorError
        assert err.src_uid == me() and err.relay_uid == p.uid

    with_actor(backend, body)


def test_msg_buffer_size_must_be_a_positive_int(backend):
    async def body(p):
        async with p.open_context(rs.sleeper) as (ctx, _):
            for bad in (0, -1, 2.5, "8"):
                with pytest.raises(ValueError, match="msg_buffer_size"):
                    async with ctx.open_stream(msg_buffer_size=bad):
                        pass
            await ctx.cancel()

    with_actor(backend, body)


# --- a producer far faster than its consumer: memory stays bounded ------------------

SECONDS = 3.0
PACE = 0.001
# With overruns allowed the inbox may hold more than msg_buffer_size: what
# the sender sent before the `hold` reached it. That is ~1000 items at most
# here (the first burst, a descheduled reader); without flow control the
# queue grows to 1e5 and more in the same time.
BOUND = 8192


def test_fast_producer_to_child_is_held_memory_bounded(backend):
    async def body(p):
        with trio.fail_after(SECONDS + 40):
            async with p.open_context(rs.paced_reader, pace=PACE, seconds=SECONDS) as (ctx, limit):
                assert limit == DEFAULT_BUFFER
                async with ctx.open_stream() as s:
                    assert await s.receive() == "ready"
                    sent = await rs.send_for(s, SECONDS)
            r = await ctx.wait_for_result()
        assert r["got"] == sent and r["in_order"], (r, sent)
        assert r["samples"] > 100
        assert DEFAULT_BUFFER <= r["max"] <= BOUND, r   # it was full, and held

    with_actor(backend, body, limit=SECONDS + 60)


@pytest.mark.parametrize("where", ["open_context", "open_stream"])
def test_fast_producer_to_parent_is_held_memory_bounded(backend, where):
    async def body(p):
        seen = {"max": 0, "samples": 0}
        tally = {"got": 0, "last": -1, "in_order": True}
        kw = {"allow_overruns": True} if where == "open_context" else {}
        with trio.fail_after(SECONDS + 40):
            async with p.open_context(rs.flood, seconds=SECONDS, **kw) as (ctx, _):
                async with trio.open_nursery() as tn:
                    tn.start_soon(rs._watch, ctx, seen)
                    stream_kw = {"allow_overruns": True} if where == "open_stream" else {}
                    async with ctx.open_stream(**stream_kw) as s:
                        await s.send("go")
                        await rs.read_paced(s, PACE, SECONDS, tally)
                    tn.cancel_scope.cancel()
            sent = await ctx.wait_for_result()
        assert tally["got"] == sent and tally["in_order"], (tally, sent)
        assert seen["samples"] > 100
        assert DEFAULT_BUFFER <= seen["max"] <= BOUND, seen

    with_actor(backend, body, limit=SECONDS + 60)


def test_fast_producer_without_allow_overruns_never_queues_past_the_buffer(backend):
    """The same producer and consumer without flow control: the queue never
    grows past msg_buffer_size; the stream ends in StreamOverrun instead."""
    async def body(p):
        with trio.fail_after(SECONDS + 40):
            with pytest.raises(RemoteActorError) as info:
                async with p.open_context(rs.paced_reader, pace=PACE, seconds=SECONDS,
                                          overruns=False, key="unheld") as (ctx, _):
                    async with ctx.open_stream() as s:
                        assert await s.receive() == "ready"
                        await rs.send_for(s, SECONDS)
        assert info.value.boxed_type is StreamOverrun
        assert f"msg_buffer_size={DEFAULT_BUFFER}" in str(info.value)
        seen = await stashed(p, "unheld")
        # The watcher samples once per scheduler pass; the child's pump takes
        # the producer's burst in batches, so the overrun comes after a few
        # passes (ROOM_PASSES after the inbox filled), not one per item.
        assert seen["samples"] > 5
        assert seen["max"] <= DEFAULT_BUFFER, seen
        # what it read is what came before the first missing item: nothing
        # that arrived after the overrun got in once there was room again
        assert seen["in_order"], seen

    with_actor(backend, body, limit=SECONDS + 60)


# --- cancel: who asked, and what each side sees -------------------------------------

@pytest.mark.parametrize("then", ["nothing", "receive"])
def test_parent_ctx_cancel_is_absorbed_and_names_the_parent(backend, then):
    async def body(p):
        async with p.open_context(rs.sleeper, key="slept") as (ctx, child_uid):
            assert tuple(child_uid) == p.uid
            if then == "receive":
                async with ctx.open_stream() as s:
                    await ctx.cancel()
                    await s.receive()
            else:
                await ctx.cancel()
        res = await ctx.wait_for_result()
        assert isinstance(res, ContextCancelled)
        assert res.canceller == me() == subactor.current_actor().uid
        assert ctx.cancel_called and ctx.cancel_acked
        assert ctx.canceller == me()
        assert ctx.outcome is res
        assert await stashed(p, "slept") == "cancelled"
        assert await p.run(rs.uid) == list(p.uid)  # the actor goes on serving

    with_actor(backend, body)


def test_cancel_actor_under_an_open_context_raises_context_cancelled(backend):
    async def body(p):
        with pytest.raises(ContextCancelled) as info:
            async with p.open_context(rs.sleeper) as (ctx, _):
                assert await p.cancel_actor() is True
                await trio.sleep_forever()
        assert info.value.canceller == me()
        assert not ctx.cancel_called and not ctx.cancel_acked

    with_actor(backend, body)


def test_child_cancelling_itself_names_itself_and_cannot_open_a_stream(backend):
    async def body(p):
        with pytest.raises(ContextCancelled) as info:
            async with p.open_context(rs.cancel_self_then_stream, key="self") as (ctx, _):
                await trio.sleep_forever()
        err = info.value
        assert err.canceller == p.uid
        assert "itself" in err.tb_str
        assert not ctx.cancel_acked
        assert (await stashed(p, "self")).startswith("RuntimeError")

    with_actor(backend, body)


def test_current_ipc_ctx_in_child_task_and_parent_block_only(backend):
    async def body(p):
        assert subactor.current_ipc_ctx() is None
        with pytest.raises(RuntimeError):
            subactor.current_ipc_ctx(error_on_not_set=True)
        async with p.open_context(rs.where_is_ctx) as (ctx, seen):
            assert seen == {"task": True, "subtask": True}
            assert subactor.current_ipc_ctx() is ctx
        assert subactor.current_ipc_ctx() is None
        assert await ctx.wait_for_result() is True
        assert await p.run(rs.ipc_ctx_in_plain_call) is True

    with_actor(backend, body)


# --- remote errors -------------------------------------------------------------------

@pytest.mark.parametrize("kind,expect", [
    ("ValueError", ValueError),
    ("TooSlowError", trio.TooSlowError),
    ("ActorTooSlowError", ActorTooSlowError),
    ("registered", rs.RegisteredError),
    ("unregistered", None),
])
def test_boxed_type_resolves_known_and_registered_types_only(backend, kind, expect):
    subactor.reg_err_types([rs.RegisteredError])

    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(rs.raise_named, kind=kind)
        err = info.value
        assert err.boxed_type is expect
        assert err.boxed_type_str == (expect.__name__ if expect else "UnregisteredError")
        assert err.src_uid == err.relay_uid == p.uid
        assert err.relay_path == [p.uid]
        assert not err.is_inception()

    with_actor(backend, body)


def test_reg_err_types_takes_exception_classes_only():
    with pytest.raises(TypeError, match="exception classes"):
        subactor.reg_err_types([ValueError, "KeyError"])
    assert subactor.get_err_type("NoSuchErrorAnywhere") is None
    assert subactor.get_err_type("builtins.KeyError") is KeyError


def test_relayed_error_names_origin_and_relay(backend):
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(rs.relay_from_child, kind="ValueError", backend=backend)
        err = info.value
        assert err.boxed_type is RemoteActorError
        assert err.src_type is ValueError and err.src_type_str == "ValueError"
        assert err.src_uid[0] == "origin" and err.src_uid != p.uid
        assert err.relay_uid == p.uid
        assert err.relay_path == [err.src_uid, p.uid]
        assert err.is_inception()
        assert "from the origin" in str(err)

    with_actor(backend, body, limit=90)


@pytest.mark.parametrize("how", ["itself", "parent"])
def test_error_masked_by_a_cancel_in_finally_is_reported(backend, how):
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(rs.error_then_cancelled, how=how) as (ctx, _):
                if how == "parent":
                    await trio.sleep(0.2)
                    await ctx.cancel()
                await trio.sleep_forever()
        err = info.value
        assert not isinstance(err, ContextCancelled)
        assert err.boxed_type is KeyError
        assert "the real error" in str(err)

    with_actor(backend, body)


def test_error_right_after_started_wakes_a_block_that_never_touches_the_context(backend):
    """The error often comes in one batch with 'started', before the block
    runs: it must still wake the block (20 tries: one in four used to hang)."""
    async def body(p):
        hung = 0
        for _ in range(20):
            with trio.move_on_after(10) as scope:
                with pytest.raises(RemoteActorError) as info:
                    async with p.open_context(rs.fail_at_once):
                        await trio.sleep_forever()
                assert info.value.boxed_type is KeyError
            hung += scope.cancelled_caught
        assert hung == 0

    with_actor(backend, body, limit=300)


def test_an_error_after_stream_items_wakes_a_block_that_never_reads_them(backend):
    """Items came before the child's error: the block may read them first,
    but one that never reads them must be woken all the same (within the
    drain grace), not wait forever."""
    async def body(p):
        with trio.move_on_after(20) as scope:
            with pytest.raises(RemoteActorError) as info:
                async with p.open_context(remote.error_mid_stream, after=5):
                    await trio.sleep_forever()
            assert info.value.boxed_type is OSError
        assert not scope.cancelled_caught

    with_actor(backend, body, mods=(remote.__name__,))


# --- cancel_actor(timeout=...) -------------------------------------------------------

async def _expect_gone(p, fn):
    with pytest.raises((ContextCancelled, ActorNotAvailable)):
        await p.run(fn)


@pytest.mark.parametrize("raise_on_timeout", [False, True])
def test_cancel_actor_timeout_returns_early_and_the_ladder_still_ends_it(backend, raise_on_timeout):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(backend=backend, grace=3.0, kill_after=20) as an:
                p = await an.start_actor("shielded", enable_modules=[MOD])
                assert await p.run(rs.ready) is True   # in trio mode: the next call starts at once
                async with trio.open_nursery() as tn:
                    tn.start_soon(_expect_gone, p, rs.shielded_sleep)
                    await trio.sleep(0.3)
                    t0 = trio.current_time()
                    if raise_on_timeout:
                        with pytest.raises(ActorTooSlowError, match="shielded"):
                            await p.cancel_actor(timeout=0.2, raise_on_timeout=True)
                    else:
                        assert await p.cancel_actor(timeout=0.2) is False
                    # back at the timeout, long before the grace deadline
                    assert trio.current_time() - t0 < 2.5
                # the call ended: the ladder interrupted the actor at grace
                assert p.rung == 2

    trio.run(main)


def test_cancel_actor_timeout_met_and_bad_timeouts(backend):
    async def body(p):
        with pytest.raises(ValueError, match="timeout"):
            await p.cancel_actor(timeout=-1)
        with pytest.raises(ValueError, match="timeout"):
            await p.cancel_actor(timeout="1")
        assert await p.run(rs.ready) is True
        async with trio.open_nursery() as tn:
            tn.start_soon(_expect_gone, p, rs.sleep_forever)
            await trio.sleep(0.2)
            assert await p.cancel_actor(timeout=20) is True
        assert p.rung == 1

    with_actor(backend, body)


# --- open_stream_from ----------------------------------------------------------------

def test_open_stream_from_async_generator_and_stream_function(backend):
    async def body(p):
        async with p.open_stream_from(rs.agen_count, n=10, key="gen") as s:
            assert not hasattr(s, "send")
            got = [v async for v in s]
            assert s.closed
        assert got == list(range(10))
        assert await stashed(p, "gen") == "finalised"
        async with p.open_stream_from(rs.stream_squares, n=5) as s:
            assert [v async for v in s] == [0, 1, 4, 9, 16]

    with_actor(backend, body)


def test_leaving_open_stream_from_cancels_the_generator(backend):
    async def body(p):
        async with p.open_stream_from(rs.agen_forever, key="forever") as s:
            got = []
            async for v in s:
                got.append(v)
                if len(got) == 5:
                    break
        assert got == [0, 1, 2, 3, 4]
        assert await stashed(p, "forever") == "finalised"
        assert await p.run(rs.uid) == list(p.uid)

    with_actor(backend, body)


def test_open_stream_from_refuses_other_functions(backend):
    async def body(p):
        with pytest.raises(TypeError, match="neither an async generator"):
            async with p.open_stream_from(rs.not_a_generator, n=1):
                pass
        with pytest.raises(TypeError, match="neither an async generator"):
            async with p.open_stream_from(rs.sleeper):
                pass

    with_actor(backend, body)


# --- the MsgStream surface -----------------------------------------------------------

def test_receive_nowait_closed_and_ctx(backend):
    async def body(p):
        async with p.open_context(rs.send_then_wait, n=3) as (ctx, _):
            async with ctx.open_stream() as s:
                assert s.ctx is ctx and not s.closed
                assert await s.receive() == 0
                got = []
                while len(got) < 2:
                    try:
                        got.append(s.receive_nowait())
                    except trio.WouldBlock:
                        await trio.sleep(0.01)
                assert got == [1, 2]
                with pytest.raises(trio.WouldBlock):
                    s.receive_nowait()   # nothing more was sent
                assert not s.closed
            assert s.closed                  # closed by this side
        # the child saw its stream open until this side closed it
        assert await ctx.wait_for_result() == [False, True, True]

        async with p.open_context(rs.flood, n=3) as (ctx, _):
            async with ctx.open_stream() as s:
                await s.send("go")
                assert [v async for v in s] == [0, 1, 2]
                assert s.closed                  # closed by the other side
                with pytest.raises(trio.EndOfChannel):
                    s.receive_nowait()
                with pytest.raises(trio.EndOfChannel):
                    await s.receive()
        assert await ctx.wait_for_result() == 3

    with_actor(backend, body)
