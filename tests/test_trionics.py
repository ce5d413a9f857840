"""subactor.trionics: the broadcast receiver, the exception-group helpers,
start_or_cancel, the unmasking of errors hidden by a cancellation, and the
context-manager helpers (maybe_open_nursery, gather_contexts,
maybe_open_context), and the fixes of trionics.patches."""
import subprocess
import sys
import textwrap
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import subactor
from subactor.trionics import (
    BroadcastReceiver, Lagged, broadcast_receiver, collapse_eg, gather_contexts, get_collapsed_eg,
    is_multi_cancelled, maybe_open_context, maybe_open_nursery, maybe_raise_from_masking_exc,
    start_or_cancel,
)

from . import remote_trionics

BOUND = 10  # seconds for any one test's trio part; the work takes milliseconds


def run(fn):
    async def bounded():
        with trio.fail_after(BOUND):
            await fn()

    trio.run(bounded)


# --- broadcast_receiver ---------------------------------------------------------


def test_every_subscriber_gets_every_value_in_order():
    async def main():
        tx, rx = trio.open_memory_channel(0)
        brx = broadcast_receiver(rx, 10)
        got = {}

        async def consume(name):
            async with brx.subscribe() as sub:
                got[name] = [v async for v in sub]

        async with trio.open_nursery() as n:
            for i in range(3):
                n.start_soon(consume, i)
            await trio.testing.wait_all_tasks_blocked()
            async with tx:
                for v in range(50):
                    await tx.send(v)
        assert got == {i: list(range(50)) for i in range(3)}

    run(main)


def test_a_subscriber_more_than_the_buffer_behind_gets_lagged_then_the_oldest_kept():
    async def main():
        tx, rx = trio.open_memory_channel(100)
        brx = broadcast_receiver(rx, 4)
        async with brx.subscribe() as slow:
            for v in range(10):
                tx.send_nowait(v)
            # The first receiver takes all ten from the channel; the slow one
            # was 10 behind with 4 kept.
            assert [await brx.receive() for _ in range(10)] == list(range(10))
            with pytest.raises(Lagged):
                await slow.receive()
            assert [await slow.receive() for _ in range(4)] == [6, 7, 8, 9]
            assert isinstance(Lagged("x"), trio.TooSlowError)

    run(main)


def test_raise_on_lag_false_skips_to_the_oldest_kept():
    async def main():
        tx, rx = trio.open_memory_channel(100)
        brx = broadcast_receiver(rx, 3)
        async with brx.subscribe(raise_on_lag=False) as slow:
            for v in range(8):
                tx.send_nowait(v)
            for _ in range(8):
                await brx.receive()
            assert [await slow.receive() for _ in range(3)] == [5, 6, 7]

    run(main)


def test_the_end_of_the_channel_reaches_every_subscriber_after_its_buffered_values():
    async def main():
        tx, rx = trio.open_memory_channel(10)
        brx = broadcast_receiver(rx, 10)
        async with brx.subscribe() as a, brx.subscribe() as b:
            async with tx:
                for v in range(3):
                    tx.send_nowait(v)
            assert [v async for v in a] == [0, 1, 2]
            assert [v async for v in b] == [0, 1, 2]
            # the first receiver took them all from the channel
            assert [await brx.receive() for _ in range(3)] == [0, 1, 2]
            with pytest.raises(trio.EndOfChannel):
                await brx.receive()

    run(main)


def test_a_cancelled_receiving_task_hands_over_to_a_waiting_one():
    async def main():
        tx, rx = trio.open_memory_channel(1)
        brx = broadcast_receiver(rx, 1)
        async with trio.open_nursery() as n:
            cs = trio.CancelScope()

            async def first():
                with cs:
                    async with brx.subscribe() as sub:
                        await sub.receive()

            n.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            assert brx._state.recv_ready is not None  # that task waits on the channel
            got = []

            async def second():
                got.append(await brx.receive())

            n.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            cs.cancel()
            await trio.testing.wait_all_tasks_blocked()
            await tx.send("v")
        assert got == ["v"]

    run(main)


def test_closing_a_receiver_ends_its_waiting_task_and_its_subscriptions():
    async def main():
        tx, rx = trio.open_memory_channel(1)
        brx = broadcast_receiver(rx, 2)
        async with trio.open_nursery() as n:
            async with brx.subscribe() as sub:
                n.start_soon(sub.receive)         # the channel's receiver
                await trio.testing.wait_all_tasks_blocked()
                waiter_err = []

                async def waits():
                    try:
                        await brx.receive()
                    except trio.ClosedResourceError as exc:
                        waiter_err.append(exc)

                n.start_soon(waits)
                await trio.testing.wait_all_tasks_blocked()
                await brx.aclose()
                await trio.testing.wait_all_tasks_blocked()
                assert len(waiter_err) == 1
                assert brx.key not in brx._state.subs
                with pytest.raises(trio.ClosedResourceError):
                    async with brx.subscribe():
                        pass
                await tx.send(1)
        await brx.aclose()  # closing twice is fine

    run(main)


def test_any_object_with_async_receive_or_a_receive_function():
    class Source:
        def __init__(self):
            self.n = 0

        async def receive(self):
            await trio.sleep(0)
            if self.n == 3:
                raise trio.EndOfChannel
            self.n += 1
            return self.n

    async def main():
        brx = broadcast_receiver(Source(), 4)
        assert isinstance(brx, BroadcastReceiver)
        assert [v async for v in brx] == [1, 2, 3]
        src = Source()
        calls = []

        async def recv():
            calls.append(1)
            return await src.receive()

        brx = broadcast_receiver(object(), 4, receive_afunc=recv)
        async with brx.subscribe() as sub:
            assert await brx.receive() == 1
            assert await sub.receive() == 1
        assert len(calls) == 1

    run(main)


def test_broadcast_receiver_bad_input():
    tx, rx = trio.open_memory_channel(1)
    with pytest.raises(ValueError, match="max_buffer_size"):
        broadcast_receiver(rx, 0)
    with pytest.raises(TypeError, match="receive"):
        broadcast_receiver(object(), 4)


# --- exception groups -----------------------------------------------------------


def test_collapse_eg_raises_a_lone_error_bare_at_any_depth():
    async def main():
        err = ValueError("x")
        with pytest.raises(ValueError) as info:
            async with collapse_eg():
                raise BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [err])])
        assert info.value is err
        with pytest.raises(KeyboardInterrupt):
            async with collapse_eg(), trio.open_nursery():
                raise KeyboardInterrupt
        with pytest.raises(ExceptionGroup) as info:
            async with collapse_eg():
                raise ExceptionGroup("two", [ValueError(), TypeError()])
        assert len(info.value.exceptions) == 2
        with pytest.raises(ExceptionGroup):
            async with collapse_eg(ignore={ValueError}):
                raise ExceptionGroup("one", [ValueError()])

    run(main)


def test_get_collapsed_eg_and_is_multi_cancelled():
    err = ValueError()
    assert get_collapsed_eg(ExceptionGroup("g", [ExceptionGroup("h", [err])])) is err
    assert get_collapsed_eg(ExceptionGroup("g", [err, TypeError()])) is None
    with pytest.raises(TypeError):
        get_collapsed_eg(err)

    group = None

    async def make_group():
        nonlocal group
        with trio.CancelScope() as cs:
            try:
                async with trio.open_nursery() as n:
                    for _ in range(2):
                        n.start_soon(trio.sleep_forever)
                    await trio.testing.wait_all_tasks_blocked()
                    cs.cancel()
                    await trio.sleep_forever()
            except BaseExceptionGroup as eg:
                group = eg
                raise

    trio.run(make_group)
    assert group is not None and is_multi_cancelled(group) is group
    mixed = BaseExceptionGroup("m", [*group.exceptions, ValueError()])
    assert is_multi_cancelled(mixed) is False
    assert is_multi_cancelled(ValueError()) is False
    assert is_multi_cancelled(mixed, ignore_nested={ValueError}) is mixed


# --- start_or_cancel --------------------------------------------------------------


async def _absorbs_cancel(task_status=trio.TASK_STATUS_IGNORED):
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        return


def test_start_or_cancel_raises_the_cancellation_not_trios_runtime_error():
    async def fails():
        await trio.lowlevel.checkpoint()
        raise ValueError("sibling")

    async def main():
        with pytest.raises(ExceptionGroup) as info:
            async with trio.open_nursery() as n:
                n.start_soon(fails)
                await start_or_cancel(n, _absorbs_cancel)
        assert [type(e) for e in info.value.exceptions] == [ValueError]

    run(main)


def test_start_or_cancel_keeps_a_genuine_startup_error_and_the_tasks_own():
    async def exits_early(task_status=trio.TASK_STATUS_IGNORED):
        await trio.lowlevel.checkpoint()

    own = RuntimeError("child exited without calling task_status.started()")

    async def raises_lookalike(task_status=trio.TASK_STATUS_IGNORED):
        cs.cancel()
        raise own

    cs = trio.CancelScope()

    async def main():
        async with trio.open_nursery() as n:
            with pytest.raises(RuntimeError, match="without calling"):
                await start_or_cancel(n, exits_early)

            async def started(*args, task_status=trio.TASK_STATUS_IGNORED):
                task_status.started((args, trio.lowlevel.current_task().name))

            assert await start_or_cancel(n, started, 1, 2, name="doggy") == ((1, 2), "doggy")
        with pytest.raises(ExceptionGroup) as info:
            with cs:
                async with trio.open_nursery() as n:
                    await start_or_cancel(n, raises_lookalike)
        assert info.value.exceptions == (own,)

    run(main)


# --- maybe_raise_from_masking_exc -------------------------------------------------


def test_an_error_masked_by_a_cancellation_is_raised():
    async def main():
        with trio.CancelScope() as cs:
            with pytest.raises(KeyError) as info:
                async with maybe_raise_from_masking_exc():
                    try:
                        raise KeyError("hidden")
                    finally:
                        cs.cancel()
                        await trio.lowlevel.checkpoint()  # raises Cancelled, masking the KeyError
        assert isinstance(info.value.__cause__, trio.Cancelled)

        with trio.CancelScope() as cs:
            async with maybe_raise_from_masking_exc(raise_unmasked=False) as box:
                try:
                    raise KeyError("hidden")
                finally:
                    cs.cancel()
                    await trio.lowlevel.checkpoint()
        assert cs.cancelled_caught
        assert isinstance(box.value, trio.Cancelled) and isinstance(box.masked, KeyError)

    run(main)


async def _hold_a_while(lock):
    async with lock:
        await trio.sleep_forever()


def test_a_cancelled_lock_acquire_is_not_unmasked():
    async def main():
        lock = trio.Lock()
        async with trio.open_nursery() as n:
            n.start_soon(_hold_a_while, lock)
            await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(0.05) as cs:
                async with maybe_raise_from_masking_exc():
                    await lock.acquire()  # cancelled inside its handler of WouldBlock
            assert cs.cancelled_caught
            n.cancel_scope.cancel()

    run(main)


def test_unmask_from_must_be_a_tuple_of_exception_types():
    async def main():
        with pytest.raises(TypeError, match="unmask_from"):
            async with maybe_raise_from_masking_exc(unmask_from=trio.Cancelled):
                pass

    run(main)


# --- maybe_open_nursery, gather_contexts -----------------------------------------


def test_maybe_open_nursery():
    async def main():
        async with trio.open_nursery() as outer:
            async with maybe_open_nursery(outer) as n:
                assert n is outer
        done = []
        async with maybe_open_nursery(shield=True) as n:
            assert isinstance(n, trio.Nursery) and n.cancel_scope.shield

            async def later():
                await trio.sleep(0.01)
                done.append(1)

            n.start_soon(later)
        assert done == [1]  # the new nursery waited for its task

    run(main)


def test_gather_contexts_enters_all_at_once_and_exits_them_all():
    events = [trio.Event() for _ in range(3)]
    log = []

    @asynccontextmanager
    async def needs_the_others(i):
        events[i].set()
        for ev in events:  # entered one after the other, this would hang
            await ev.wait()
        log.append(("in", i))
        try:
            yield i * 10
        finally:
            log.append(("out", i))

    async def main():
        async with gather_contexts([needs_the_others(i) for i in range(3)]) as values:
            assert values == (0, 10, 20)
            assert sorted(log) == [("in", 0), ("in", 1), ("in", 2)]
        assert sorted(e for e in log if e[0] == "out") == [("out", 0), ("out", 1), ("out", 2)]
        with pytest.raises(ValueError, match="no context managers"):
            async with gather_contexts([]):
                pass
        with pytest.raises(TypeError, match="not an async context manager"):
            async with gather_contexts([object()]):
                pass

    run(main)


# --- maybe_open_context -------------------------------------------------------------


class Resource:
    def __init__(self):
        self.entered = 0
        self.exited = 0
        self.live = 0

    @asynccontextmanager
    async def open(self, tag=None):
        self.entered += 1
        self.live += 1
        await trio.lowlevel.checkpoint()
        try:
            yield (tag, self.entered)
        finally:
            await trio.lowlevel.checkpoint()
            self.live -= 1
            self.exited += 1


def test_one_entry_for_many_tasks_torn_down_when_the_last_leaves():
    res = Resource()

    async def main():
        hits = []
        release = trio.Event()

        async def user():
            async with maybe_open_context(res.open, kwargs={"tag": "a"}) as (hit, value):
                hits.append(hit)
                assert value == ("a", 1)
                await release.wait()

        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(user)
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(hits) == [False, True, True, True, True]
            assert (res.entered, res.live) == (1, 1)
            release.set()
        assert (res.entered, res.exited, res.live) == (1, 1, 0)
        # Gone with its last user: the next one enters it anew.
        async with maybe_open_context(res.open, kwargs={"tag": "a"}) as (hit, value):
            assert not hit and value == ("a", 2)

    run(main)


def test_keys_separate_entries():
    res = Resource()

    async def main():
        async with maybe_open_context(res.open, kwargs={"tag": "a"}) as (hit_a, a):
            async with maybe_open_context(res.open, kwargs={"tag": "b"}) as (hit_b, b):
                assert not hit_a and not hit_b and a != b
            async with maybe_open_context(res.open, kwargs={"tag": "c"}, key="a-key") as (hit, c):
                async with maybe_open_context(res.open, kwargs={"tag": "d"}, key="a-key") as (hit2, d):
                    assert not hit and hit2 and c == d
        with pytest.raises(TypeError, match="not hashable"):
            async with maybe_open_context(res.open, kwargs={"tag": []}):
                pass
        with pytest.raises(TypeError, match="must be a dict"):
            async with maybe_open_context(res.open, kwargs=[("tag", 1)]):
                pass

    run(main)


def test_the_last_user_waits_for_the_exit_and_gets_its_error():
    class ExitError(Exception):
        pass

    err = ExitError()
    exit_started = trio.Event()
    allow_exit = trio.Event()

    @asynccontextmanager
    async def slow_exit():
        yield
        exit_started.set()
        await allow_exit.wait()
        raise err

    async def main():
        returned = []

        async def user():
            with pytest.raises(ExitError) as info:
                async with maybe_open_context(slow_exit):
                    pass
            assert info.value is err
            returned.append(1)

        async with trio.open_nursery() as n:
            n.start_soon(user)
            await exit_started.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert not returned
            allow_exit.set()
        assert returned == [1]

    run(main)


def test_a_cancelled_last_user_still_waits_for_the_exit():
    exited = trio.Event()

    @asynccontextmanager
    async def res():
        try:
            yield
        finally:
            await trio.sleep(0.01)  # shielded by the cache's wait, not by us
            exited.set()

    async def main():
        with trio.CancelScope() as cs:
            async with maybe_open_context(res):
                cs.cancel()
                await trio.sleep_forever()
        assert cs.cancelled_caught and exited.is_set()

    run(main)


def test_entering_while_the_previous_one_exits_gets_a_fresh_one():
    generation = 0
    in_exit = trio.Event()
    allow_exit = trio.Event()

    @asynccontextmanager
    async def res():
        nonlocal generation
        generation += 1
        mine = generation
        yield mine
        if mine == 1:
            in_exit.set()
            await allow_exit.wait()

    async def main():
        async def first():
            async with maybe_open_context(res) as (hit, value):
                assert (hit, value) == (False, 1)

        async def again():
            await in_exit.wait()
            async with maybe_open_context(res) as (hit, value):
                assert (hit, value) == (False, 2)

        async with trio.open_nursery() as n:
            n.start_soon(first)
            n.start_soon(again)
            await in_exit.wait()
            await trio.testing.wait_all_tasks_blocked()
            allow_exit.set()

    run(main)


def test_an_error_entering_reaches_the_task_and_leaves_nothing_cached():
    calls = 0

    @asynccontextmanager
    async def fails_once():
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("no")
        yield calls

    async def main():
        with pytest.raises(OSError):
            async with maybe_open_context(fails_once):
                pass
        async with maybe_open_context(fails_once) as (hit, value):
            assert (hit, value) == (False, 2)

    run(main)


def test_a_given_nursery_must_enclose_the_task():
    res = Resource()

    async def main():
        async with trio.open_nursery() as tn:
            async with maybe_open_context(res.open, tn=tn) as (hit, _):
                assert not hit

            async def child():
                async with maybe_open_context(res.open, tn=tn) as (hit, _):
                    assert not hit

            tn.start_soon(child)
        # A nursery of a sibling task does not enclose this one.
        async with trio.open_nursery() as n:
            theirs = []
            done = trio.Event()

            async def sibling():
                async with trio.open_nursery() as own:
                    theirs.append(own)
                    await done.wait()

            n.start_soon(sibling)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(RuntimeError, match="does not run inside"):
                async with maybe_open_context(res.open, tn=theirs[0]):
                    pass
            done.set()


    run(main)


def test_the_cache_is_shared_by_the_tasks_of_an_actor():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("cache", enable_modules=[remote_trionics.__name__])
            async with trio.open_nursery() as n:
                results = []

                async def call():
                    results.append(await p.run(remote_trionics.use_cached, hold=0.3))

                for _ in range(3):
                    n.start_soon(call)
            # One entry for the three calls, then gone.
            assert sorted(hit for hit, _ in results) == [False, True, True]
            assert {value for _, value in results} == {1}
            assert await p.run(remote_trionics.use_cached, hold=0) == [False, 2]
            await p.cancel_actor()

    run(main)


def test_import_subactor_does_not_import_trionics():
    from .conftest import run_child

    r = run_child("import sys, subactor; print(sorted(m for m in sys.modules if m.startswith('subactor')))")
    assert r.returncode == 0, r.stderr
    assert "trionics" not in r.stdout and "subactor.log" not in r.stdout


# --- supervise_run_process -----------------------------------------------------------
# In a child process: trio starts processes from a worker thread, which its
# thread cache keeps for a while after the test.

_RELAY_PRELUDE = """
    import subprocess, sys
    from functools import partial
    import trio
    from subactor.trionics import _subproc, collapse_eg, supervise_run_process

    relayed = []
    _subproc.log.io = lambda msg, *a, **k: relayed.append(msg)
"""


def test_supervise_run_process_relays_lines_off_the_terminal():
    from .conftest import run_child

    r = run_child(_RELAY_PRELUDE + """
    async def main():
        with trio.fail_after(30):
            async with trio.open_nursery() as n:
                proc = await n.start(partial(supervise_run_process,
                                             ["sh", "-c", "echo a; echo b; readlink /proc/self/fd/0"],
                                             label="t", relay_stdout=True))
                assert isinstance(proc, trio.Process)
            # One line longer than any pipe buffer, without a newline: read as
            # it comes (else the child blocks in write), relayed in pieces.
            async with trio.open_nursery() as n:
                await n.start(partial(supervise_run_process,
                                      [sys.executable, "-c", "import sys; sys.stdout.write('x' * 200000)"],
                                      label="big", relay_stdout=True))

    trio.run(main)
    assert [ln for ln in relayed if ln.startswith("[t:out] ")] == ["[t:out] a", "[t:out] b", "[t:out] /dev/null"]
    pieces = [ln.removeprefix("[big:out] ") for ln in relayed if ln.startswith("[big:out] ")]
    assert "".join(pieces) == "x" * 200000 and len(pieces) > 1, len(pieces)
    print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_supervise_run_process_raises_a_failure_with_its_stderr():
    from .conftest import run_child

    r = run_child(_RELAY_PRELUDE + """
    async def main():
        with trio.fail_after(30):
            for relay in (True, False):
                relayed.clear()
                try:
                    async with collapse_eg(), trio.open_nursery() as n:
                        await n.start(partial(supervise_run_process, ["sh", "-c", "echo boom >&2; exit 3"],
                                              label="e", relay_stderr=relay))
                except subprocess.CalledProcessError as exc:
                    assert exc.returncode == 3 and b"boom" in exc.stderr, exc
                    assert any("boom" in note for note in exc.__notes__)
                else:
                    raise AssertionError("no CalledProcessError")
                assert (relayed == ["[e:err] boom"]) is relay, relayed
            for kw, err in (({"stderr": None}, TypeError), ({"stdout": subprocess.PIPE}, ValueError)):
                try:
                    await supervise_run_process(["true"], **kw)
                except err:
                    pass
                else:
                    raise AssertionError(f"{kw} accepted")

    trio.run(main)
    print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_lone_receiver_buffers_nothing():
    async def main():
        tx, rx = trio.open_memory_channel(10)
        brx = broadcast_receiver(rx, 4)
        for v in range(3):
            tx.send_nowait(v)
        assert [await brx.receive() for _ in range(3)] == [0, 1, 2]
        assert len(brx._state.queue) == 0
        async with brx.subscribe() as sub:
            tx.send_nowait(3)
            assert await brx.receive() == 3 and await sub.receive() == 3
            assert list(brx._state.queue) == [3]

    run(main)


# --- trionics.patches ------------------------------------------------------------


def test_wakeup_socketpair_patch_stops_drain_at_end_of_file():
    # In a child: the fix changes trio's class for the whole process, and
    # without it the reproduction spins forever (the bound kills it).
    code = textwrap.dedent("""
        from subactor.trionics import patches
        from subactor.trionics.patches import _wakeup_socketpair as w
        assert w.is_needed() in (True, False)
        first, second = patches.apply_all(), patches.apply_all()
        assert set(first) == {"wakeup_socketpair"} and second == {"wakeup_socketpair": False}, (first, second)
        w.repro()
        print("drained", first["wakeup_socketpair"] == w.is_needed())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["drained", "True"], out.stderr
