"""The call path of portal.run: one-shot reply waiters, the caller taking
its own reply (routing what else it finds), cached function checks, and
the spin back-off for a busy machine.

Bounded in time (pytest-timeout and trio.fail_after around every run); no
timing asserts."""
import random

import pytest
import trio

import subactor
from subactor import _portal, _transport

from . import remote, remote_call

MOD = remote_call.__name__


def _idle(p) -> bool:
    """No call of the portal is left: no waiter, nothing 'running'."""
    return not p._calls and not p.running


async def _until_idle(p, within=10.0):
    with trio.fail_after(within):
        while not _idle(p):
            await trio.sleep(0.01)


@pytest.mark.parametrize("fn", [remote_call.slow_value, remote_call.shielded_value], ids=["sync", "trio-mode"])
def test_a_cancelled_caller_leaves_no_waiter_and_its_late_reply_is_dropped(fn):
    """A caller cancelled while it waits leaves at once; the answer that
    comes later (the function ignores the cancel) finds no call under its
    id: it is dropped, not delivered to the next call, and nothing of the
    call stays in the portal."""
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("late", enable_modules=[MOD])
                for _ in range(3):
                    with trio.move_on_after(0.05) as cs:
                        await p.run(fn, seconds=0.3, value="late")
                    assert cs.cancelled_caught
                    # The next calls get their own answers, not the late one.
                    assert await p.run(remote_call.add, a=1, b=2) == 3
                    assert await p.run(remote_call.async_echo, value="mine") == "mine"
                    await trio.sleep(0.4)   # the late answer has come meanwhile
                    assert await p.run(remote_call.add, a=2, b=2) == 4
                    await _until_idle(p)
                await p.cancel_actor()

    trio.run(main)


def test_callers_cancelled_at_random_moments_leave_the_portal_clean():
    """Calls cancelled at any point of their path (before the send, while
    the caller looks for its reply, while it is parked) leave no waiter and
    do not disturb the calls that go on meanwhile."""
    async def main():
        rnd = random.Random(18)
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("rnd", enable_modules=[MOD])

                async def steady():
                    for i in range(300):
                        assert await p.run(remote_call.add, a=i, b=1) == i + 1

                async with trio.open_nursery() as n:
                    n.start_soon(steady)
                    for i in range(300):
                        with trio.move_on_after(rnd.choice((0, 0, 1e-6, 2e-5, 1e-4, 1e-3))):
                            got = await p.run(remote_call.add, a=i, b=i)
                            assert got == 2 * i
                await _until_idle(p)
                assert await p.run(remote_call.add, a=5, b=6) == 11
                await p.cancel_actor()

    trio.run(main)


def test_many_tasks_calling_one_portal_each_get_their_own_answer():
    """A caller that finds other callers' replies routes them: with many
    tasks calling through one portal at once (sync and async functions),
    every call gets exactly its own answer."""
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("many", enable_modules=[MOD])

                async def caller(k):
                    for i in range(60):
                        if (i + k) % 2:
                            assert await p.run(remote_call.add, a=k, b=i) == k + i
                        else:
                            assert tuple(await p.run(remote_call.async_echo, value=(k, i))) == (k, i)

                async with trio.open_nursery() as n:
                    for k in range(16):
                        n.start_soon(caller, k)
                await _until_idle(p)
                await p.cancel_actor()

    trio.run(main)


def test_calls_while_a_stream_delivers_keep_its_items_in_order():
    """Callers that take messages while the pump is parked hand back what
    only the pump may handle (stream items whose inbox is full, the
    context's end): the stream's items still come all, in order, while
    calls go on through the same portal."""
    n_items = 3000

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("mixed", enable_modules=[remote.__name__, MOD])
                stop = trio.Event()

                async def calls():
                    i = 0
                    while not stop.is_set():
                        assert await p.run(remote_call.add, a=i, b=1) == i + 1
                        i += 1

                async with trio.open_nursery() as n:
                    n.start_soon(calls)
                    n.start_soon(calls)
                    # allow_overruns: a reader that pauses slows the sender
                    # (hold/go) instead of failing the stream.
                    async with p.open_context(remote.count_to, n=n_items) as (ctx, _):
                        # A small inbox: a caller that takes messages while
                        # the pump is parked often finds it full, and hands
                        # the item back for the pump to make room for it.
                        async with ctx.open_stream(allow_overruns=True, msg_buffer_size=4) as stream:
                            got = []
                            async for x in stream:
                                got.append(x)
                    stop.set()
                assert got == list(range(n_items))
                await _until_idle(p)
                await p.cancel_actor()

    trio.run(main)


def test_the_reply_taking_path_is_used():
    """The calling task does take its reply itself (no pump pass between):
    counted by wrapping Portal._take_replies for the run."""
    taken = []
    real = _portal.Portal._take_replies

    def counting(self):
        before = len(self._calls)
        real(self)
        taken.append(before)

    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("take", enable_modules=[MOD])
                for i in range(50):
                    assert await p.run(remote_call.add, a=i, b=0) == i
                await p.cancel_actor()

    _portal.Portal._take_replies = counting
    saved = _transport._calm_after
    _transport._calm_after = 0.0
    try:
        trio.run(main)
    finally:
        _portal.Portal._take_replies = real
        _transport._calm_after = saved
    assert taken, "the caller never looked for its own reply"


def test_a_message_given_back_to_a_parked_receiver_wakes_it_and_comes_first():
    """What a caller took but only the pump may handle is given back: the
    receiver parked in recv() (asleep in epoll by then) wakes and gets it
    before anything queued later, and can_take() is False until it has."""
    from subactor import _ext

    cid = _ext.channel()
    mine, peer = _ext.ChannelEnd(cid, 0), _ext.ChannelEnd(cid, 1)
    got = []

    async def main():
        chan = _transport.TrioChannel(mine)

        async def receiver():
            got.append(await chan.recv())
            got.append(await chan.recv())

        with trio.fail_after(10):
            async with trio.open_nursery() as n:
                n.start_soon(receiver)
                while not chan.can_take():
                    await trio.sleep(0.001)
                await trio.sleep(0.05)   # past its scheduler passes: asleep in epoll
                chan.give_back({"t": "first"})
                assert not chan.can_take()
                while not got:            # woken by the give-back alone: nothing was sent
                    await trio.sleep(0.001)
                peer.send(_ext.dumps({"t": "second"}))

    try:
        trio.run(main)
    finally:
        mine.close()
        peer.close()
    assert got == [{"t": "first"}, {"t": "second"}]


def test_a_reply_waiter_cancelled_while_parked_is_never_woken_later():
    """A caller cancelled while parked in its one-shot waiter forgets its
    task: an answer that lands afterwards (while the caller is still in
    its clean-up, say) must not reschedule a task that waits on something
    else by then."""
    async def main():
        with trio.fail_after(10):
            reply = _portal._Reply("m.f")
            with trio.move_on_after(0.01) as cs:
                await reply.wait()
            assert cs.cancelled_caught and reply.task is None
            reply._deliver({"t": "return", "cid": 1, "v": 1})   # late: must reschedule nobody
            await trio.sleep(0.02)   # a stray reschedule would wake this early, or crash the run
            assert reply.msg["v"] == 1
            # A waiter whose answer is there already returns at once (a checkpoint).
            await reply.wait()

    trio.run(main)


# --- the caller's spin right after its send ---------------------------------------


def _force_spin(monkeypatch, spin=0.05):
    """Spins always allowed and never turned off by a preemption (a busy
    test machine must not change which path is taken), and a spin long
    enough for an answer from a loaded machine."""
    monkeypatch.setattr(_transport, "may_spin", lambda: True)
    monkeypatch.setattr(_transport, "spin_end", lambda start: None)
    monkeypatch.setattr(_portal, "CALL_SPIN", spin)


class _Passes(trio.abc.Instrument):
    """Counts the scheduler's passes (each waits for I/O once)."""

    def __init__(self):
        self.n = 0

    def before_io_wait(self, timeout):
        self.n += 1


def _passes_per_call(calls, fn, **kw):
    """Scheduler passes during each of ``calls`` back-to-back calls of
    ``fn`` in a fresh sync-mode actor."""
    per_call = []

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("spin", enable_modules=[MOD])
                await p.run(fn, **kw)
                passes = _Passes()
                trio.lowlevel.add_instrument(passes)
                for _ in range(calls):
                    before = passes.n
                    await p.run(fn, **kw)
                    per_call.append(passes.n - before)
                trio.lowlevel.remove_instrument(passes)
                await p.cancel_actor()

    trio.run(main)
    return per_call


def test_a_reply_the_caller_finds_right_after_its_send_costs_no_scheduler_pass(monkeypatch):
    """A quick answer is taken by the caller's spin right after the send:
    that call is a cancel point but no scheduler pass, except every
    FAST_OPS-th one, which is a full checkpoint."""
    _force_spin(monkeypatch)
    monkeypatch.setattr(_transport, "FAST_OPS", 8)
    monkeypatch.setattr(_transport, "FAST_WALL", 60.0)   # the count alone decides here
    per_call = _passes_per_call(80, remote_call.add, a=1, b=2)
    assert 0 in per_call, "no call was answered without a scheduler pass"
    # Never more than FAST_OPS - 1 calls in a row without one.
    run = longest = 0
    for n in per_call:
        run = run + 1 if n == 0 else 0
        longest = max(longest, run)
    assert longest < 8, per_call


def test_a_task_calling_back_to_back_still_lets_others_run(monkeypatch):
    """With every answer found by the spin, a tight loop of calls still
    reaches a schedule point at least every FAST_OPS calls: another task
    runs in every such stretch (so do deadlines: a pass of the scheduler
    is what fires them)."""
    _force_spin(monkeypatch)
    ticks_at = []

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("tight", enable_modules=[MOD])
                ticks = 0

                async def ticker():
                    nonlocal ticks
                    while True:
                        ticks += 1
                        await trio.sleep(0)

                async with trio.open_nursery() as n:
                    n.start_soon(ticker)
                    for _ in range(20 * _transport.FAST_OPS):
                        await p.run(remote_call.add, a=1, b=2)
                        ticks_at.append(ticks)
                    n.cancel_scope.cancel()
                await p.cancel_actor()

    trio.run(main)
    k = _transport.FAST_OPS
    for i in range(len(ticks_at) - k):
        assert ticks_at[i + k] > ticks_at[i], f"no other task ran during calls {i}..{i + k}"


def test_a_spin_that_misses_turns_off_for_the_portal_until_an_answer_is_quick(monkeypatch):
    """A call that outlasts the spin (a slow function) turns the spin off
    for that portal; a later answer found within the caller's scheduler
    passes turns it on again. Every call still gets its own answer."""
    _force_spin(monkeypatch, spin=0.001)

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("miss", enable_modules=[MOD])
                assert await p.run(remote_call.add, a=1, b=2) == 3
                assert await p.run(remote_call.slow_value, seconds=0.05, value="slow") == "slow"
                assert p._spin_ok is False
                for i in range(500):
                    assert await p.run(remote_call.add, a=i, b=1) == i + 1
                    if p._spin_ok:
                        break
                assert p._spin_ok, "no answer came within the caller's passes in 500 calls"
                await p.cancel_actor()

    trio.run(main)


# --- check_remote_fn's cache -----------------------------------------------------


def test_check_remote_fn_caches_module_functions_only():
    _portal._checked.clear()
    assert _portal.check_remote_fn(remote_call.add) == (MOD, "add")
    assert (remote_call.add, None) in _portal._checked
    assert _portal.check_remote_fn(remote_call.add) == (MOD, "add")   # from the cache
    # A context function asked for as a plain one and the other way round:
    # cached apart, each answer stays right.
    with pytest.raises(TypeError, match="context"):
        _portal.check_remote_fn(remote.add, want_context=True)
    with pytest.raises(TypeError, match="context"):
        _portal.check_remote_fn(remote.add, want_context=True)   # a failure is never cached
    assert (remote.add, True) not in _portal._checked
    # Something that is not a plain function is checked each time.
    import functools
    part = functools.partial(remote_call.add, 1)
    with pytest.raises(TypeError):
        _portal.check_remote_fn(part)
    assert not any(k[0] is part for k in _portal._checked)


def test_check_remote_fn_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_portal, "_CHECKED_MAX", 4)
    _portal._checked.clear()
    for fn in (remote.add, remote.whoami, remote.get_sys_path, remote.trio_loaded, remote.raise_value_error,
               remote.echo_bytes):
        _portal.check_remote_fn(fn)
        assert len(_portal._checked) <= 4
    assert _portal.check_remote_fn(remote.add) == (remote.__name__, "add")


# --- the spin back-off -----------------------------------------------------------


def test_a_preempted_spin_turns_spinning_off_for_a_while(monkeypatch):
    """A spin phase that got much less CPU than wall time (the thread was
    preempted: the machine is busy) makes may_spin() False for
    BUSY_BACKOFF seconds; a spin that ran on the CPU does not."""
    monkeypatch.setattr(_transport, "_calm_after", 0.0)
    now_wall, now_cpu = _transport.spin_start()
    # Ran its whole wall time on the CPU: not preempted.
    _transport.spin_end((now_wall - 1e-3, now_cpu - 1e-3))
    assert _transport.may_spin()
    # 1 ms of wall time with (almost) no CPU time: preempted.
    _transport.spin_end((now_wall - 1e-3, now_cpu + 1.0))
    assert not _transport.may_spin()
    monkeypatch.setattr(_transport, "_calm_after", now_wall - 1.0)   # the back-off is over
    assert _transport.may_spin()


def test_never_suspends_tells_coroutines_that_cannot_await_from_those_that_can():
    """Only an async function with no await, async for or async with (an
    async comprehension included) may run inline; a generator-based
    coroutine and what has no code never do."""
    import types

    from subactor._actor._trio_mode import _never_suspends

    async def plain(x):
        return x + 1

    async def awaits():
        await trio.sleep(0)

    async def comprehension(xs):
        return [await x for x in xs]

    async def with_(cm):
        async with cm:
            pass

    async def for_(it):
        async for _ in it:
            pass

    @types.coroutine
    def generator_based():
        yield

    assert _never_suspends(plain)
    assert _never_suspends(remote_call.task_name)
    for fn in (awaits, comprehension, with_, for_, generator_based, remote_call.task_name_after_checkpoint):
        assert not _never_suspends(fn), fn
    assert not _never_suspends(len)


def test_an_async_function_that_never_awaits_runs_inline_and_one_that_awaits_gets_a_task():
    """In a trio-mode actor an async function without await runs in the
    message loop's task (no task spawned for it), with a context of its
    own (a variable it sets is not seen by the next call) and its errors
    boxed as any call's; one that awaits runs in a task named after it."""
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("inline", enable_modules=[MOD])
                await p.run(remote_call.async_echo, value=1)   # into trio mode
                for _ in range(3):
                    assert await p.run(remote_call.task_name_after_checkpoint) == "task_name_after_checkpoint"
                    name = await p.run(remote_call.task_name)
                    assert name != "task_name" and "serve" in name, name
                    assert await p.run(remote_call.swap_var, value="mine") == "unset"
                    with pytest.raises(subactor.RemoteActorError) as ei:
                        await p.run(remote_call.async_fail, msg="inline failure")
                    assert ei.value.boxed_type_str == "ValueError" and "inline failure" in str(ei.value)
                await _until_idle(p)
                await p.cancel_actor()

    trio.run(main)


def test_a_pool_call_carries_a_cached_pickle_of_a_function_sent_by_name(monkeypatch):
    """run_sync pickles a module-level function or builtin once (the call
    message carries those bytes, the worker unpickles them once); a
    partial or a callable object is pickled with each call; a function
    whose module no longer binds it under its name is not sent by the old
    pickle (pickle's own error says so, as before the cache)."""
    import functools
    import operator
    import pickle

    from subactor import _pool

    monkeypatch.setattr(_pool, "_FN_REFS", {})
    fn_of = lambda payload: pickle.loads(payload)[0]  # noqa: E731
    first = _pool._encode_call(operator.add, (1, 2))
    assert type(fn_of(first)) is bytes and pickle.loads(fn_of(first)) is operator.add
    assert _pool._FN_REFS[operator.add] == fn_of(first)
    assert fn_of(_pool._encode_call(operator.add, (3, 4))) == fn_of(first)
    assert pickle.loads(_pool._encode_call(operator.add, (3, 4)))[1] == (3, 4)
    part = functools.partial(remote_call.add, 1)
    assert type(fn_of(_pool._encode_call(part, (2,)))) is functools.partial

    f = remote_call.add
    assert type(fn_of(_pool._encode_call(f, (1, 2)))) is bytes
    monkeypatch.setattr(remote_call, "add", remote_call.slow_value)   # the name now binds another function
    with pytest.raises(TypeError, match="cannot be pickled"):
        _pool._encode_call(f, (1, 2))
    assert f not in _pool._FN_REFS


def test_pool_calls_of_cached_functions_and_partials_answer_each_their_own():
    """Through workers: builtins, module functions and partials (cached or
    not) interleaved on one pool each get their own result."""
    import functools
    import operator

    from subactor._pool import open_worker_pool

    async def main():
        with trio.fail_after(60):
            async with open_worker_pool(2) as pool:
                for i in range(30):
                    assert await pool.run_sync(operator.add, i, 1) == i + 1
                    assert await pool.run_sync(operator.mul, i, 3) == 3 * i
                    assert await pool.run_sync(remote_call.add, i, 2) == i + 2
                    assert await pool.run_sync(functools.partial(remote_call.add, i), 5) == i + 5

    trio.run(main)
