"""The worker pool: run_sync on warm interpreters (issue 7).

Every test closes its pools (the autouse fixture checks that no actor,
thread, interpreter or channel is left). Tests that abandon a worker, or
that test program exit, run in a child process.
"""
try:
    import _interpreters
except ImportError:  # Python 3.12 names it so
    import _xxsubinterpreters as _interpreters
import _thread
import collections
import enum
import os
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest
import trio

from subactor import _ext
from subactor._exceptions import RemoteActorError
from subactor._pool import BrokenWorkerError, WorkerPool, open_worker_pool

from . import helpers
from .conftest import run_child

interp_id = _interpreters.get_current  # a call that says which worker ran it


class Color(enum.IntEnum):
    RED = 1


async def _async_fn():
    pass


def test_results_and_exceptions_with_remote_traceback():
    async def main():
        async with open_worker_pool(2) as pool:
            assert await pool.run_sync(helpers.add, 2, 3) == 5
            first = await pool.run_sync(interp_id)
            with pytest.raises(RemoteActorError) as info:
                await pool.run_sync(helpers.boom, "bad things")
            err = info.value
            assert err.boxed_type is ValueError
            assert err.boxed_type_str == "ValueError"
            assert err.remote_message == "bad things"
            # The remote traceback starts at the called function.
            assert "in boom" in err.tb_str and "in inner" in err.tb_str
            assert "_pool_worker" not in err.tb_str
            assert "bad things" in str(err) and "in inner" in str(err)
            # The worker that raised is still the pool's.
            assert await pool.run_sync(interp_id) == first
            # Results come back as pickle made them: subclasses and all.
            assert await pool.run_sync(collections.OrderedDict, [("a", 1)]) == collections.OrderedDict(a=1)
            assert type(await pool.run_sync(bytearray, b"xy")) is bytearray
            assert await pool.run_sync(Color, 1) is Color.RED
            assert pool.statistics().workers_started == 1

    trio.run(main)


def test_10000_small_calls_without_growth():
    before = _ext.live_counts()
    threads_before = threading.active_count()
    seen = set()

    async def caller(pool, n):
        for i in range(n):
            ident = await pool.run_sync(interp_id)
            seen.add(ident[0])

    async def main():
        async with open_worker_pool(2) as pool:
            async with trio.open_nursery() as nursery:
                for _ in range(4):  # more tasks than workers: the limiter queues them
                    nursery.start_soon(caller, pool, 2500)
            during = _ext.live_counts()
            assert during["threads"] - before["threads"] <= 2
            assert during["interpreters"] - before["interpreters"] <= 2
            stats = pool.statistics()
            assert stats.calls == 10_000 and stats.workers_started <= 2

    trio.run(main)
    assert 1 <= len(seen) <= 2, seen
    assert threading.active_count() == threads_before
    # The workers are gone after the pool: nothing grew.
    deadline = time.monotonic() + 5
    while _ext.live_counts() != before and time.monotonic() < deadline:
        _ext.reap()
        time.sleep(0.01)
    assert _ext.live_counts() == before


def test_cancel_a_tight_loop_replaces_the_worker():
    async def main():
        async with open_worker_pool(1) as pool:
            first = await pool.run_sync(interp_id)
            t0 = trio.current_time()
            with trio.move_on_after(0.2) as scope:
                await pool.run_sync(helpers.spin, cancellable=True)
            elapsed = trio.current_time() - t0
            assert scope.cancelled_caught
            # Cancelled promptly: the interrupt lands in milliseconds.
            assert elapsed < 0.2 + 0.5, elapsed
            s = pool.statistics()
            assert s.running_workers == 0 and s.idle_workers == 0
            # The next call gets a fresh worker, which works.
            second = await pool.run_sync(interp_id)
            assert second != first
            assert await pool.run_sync(helpers.add, 1, 1) == 2
            assert pool.statistics().workers_started == 2

    trio.run(main)


def test_not_cancellable_is_shielded():
    async def main():
        async with open_worker_pool(1) as pool:
            first = await pool.run_sync(interp_id)
            t0 = trio.current_time()
            result = "unset"
            with trio.move_on_after(0.05):
                result = await pool.run_sync(time.sleep, 0.3)
            assert result is None  # the call ran to its end and returned
            assert trio.current_time() - t0 >= 0.29
            # ... in the same worker, which is still the pool's.
            assert await pool.run_sync(interp_id) == first

    trio.run(main)


def test_workers_recycled_after_max_calls():
    async def main():
        async with open_worker_pool(1, max_calls=3) as pool:
            ids = [(await pool.run_sync(interp_id))[0] for _ in range(9)]
            assert len(set(ids)) == 3
            assert ids[0] == ids[1] == ids[2] != ids[3]
            assert pool.statistics().workers_started == 3

    trio.run(main)


def test_workers_recycled_over_memory_ceiling():
    # The ceiling counts pymalloc blocks. Under `make asan` pymalloc is off
    # in this process (PYTHONMALLOC=malloc), so the check runs in a child
    # with pymalloc on: never skipped.
    proc = run_child("""
        import trio
        from subactor import open_worker_pool
        try:
            from _interpreters import get_current as interp_id
        except ImportError:  # Python 3.12
            from _xxsubinterpreters import get_current as interp_id
        async def main():
            # No interpreter holds fewer than one block: every call retires.
            async with open_worker_pool(1, max_blocks=1) as pool:
                ids = {(await pool.run_sync(interp_id))[0] for _ in range(3)}
                assert len(ids) == 3, ids
            async with open_worker_pool(1, max_blocks=10**9) as pool:
                ids = {(await pool.run_sync(interp_id))[0] for _ in range(3)}
                assert len(ids) == 1, ids
            print("ok")
        trio.run(main)
    """, timeout=120, env={"PYTHONMALLOC": "pymalloc"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_idle_workers_retire():
    before = _ext.live_counts()

    async def main():
        async with open_worker_pool(2, idle_timeout=0.2) as pool:
            first = await pool.run_sync(interp_id)
            assert _ext.live_counts()["threads"] == before["threads"] + 1
            # The worker leaves on its own once idle for 0.2 s.
            deadline = trio.current_time() + 5
            while _ext.live_counts()["threads"] != before["threads"]:
                assert trio.current_time() < deadline, "the idle worker did not leave"
                await trio.sleep(0.02)
            assert pool.statistics().idle_workers == 0
            second = await pool.run_sync(interp_id)
            assert second != first

    trio.run(main)


def test_idle_timeout_race_retries_on_another_worker():
    # Calls land around the moment the worker retires; a call a worker never
    # took goes to another one, and every call gets its answer.
    async def main():
        async with open_worker_pool(1, idle_timeout=0.01) as pool:
            for i in range(40):
                assert await pool.run_sync(helpers.add, i, 1) == i + 1
                await trio.sleep((i % 5) * 0.005)

    trio.run(main)


class _BlindPool(WorkerPool):
    """A pool that does not notice that an idle worker has left."""

    def _usable(self, w, now):
        return True


def test_a_call_to_a_worker_that_left_goes_to_a_fresh_one():
    before = _ext.live_counts()

    async def main():
        pool = _BlindPool(1, idle_timeout=0.05)
        try:
            first = await pool.run_sync(interp_id)
            while _ext.live_counts()["threads"] != before["threads"]:
                await trio.sleep(0.01)  # it left, and the pool still lists it as idle
            assert pool.statistics().idle_workers == 1
            # The send finds its channel closed: the call never ran there.
            second = await pool.run_sync(interp_id)
            assert second != first
            assert pool.statistics().workers_started == 2
        finally:
            await pool.aclose()

    trio.run(main)


def test_limiter_bounds_concurrency():
    # How many calls ran at once, from their own start and end stamps (no
    # wall-clock bound on the batch: spawning workers on a loaded machine
    # takes what it takes).
    def most_at_once(spans):
        return max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)

    async def batch(pool, n, seconds, limiter=None):
        spans = []

        async def one():
            spans.append(await pool.run_sync(helpers.stamped_sleep, seconds, limiter=limiter))

        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
        return most_at_once(spans)

    async def main():
        async with open_worker_pool(2) as pool:
            assert pool.limiter.total_tokens == 2
            # Six calls on two workers: never more than two at once ...
            assert await batch(pool, 6, 0.05) == 2
            assert pool.statistics().workers_started == 2
            # ... and all four at once with a limiter of four (each call
            # long enough for the two new workers to start meanwhile).
            assert await batch(pool, 4, 1.5, trio.CapacityLimiter(4)) == 4
            s = pool.statistics()
            assert s.workers_started == 4 and s.idle_workers == 2  # only `size` kept warm

    trio.run(main)


def test_shutdown_with_busy_workers_is_bounded():
    async def main():
        errors = []

        async def runner(pool):
            try:
                await pool.run_sync(helpers.spin)  # shielded: only the pool can end it
            except BrokenWorkerError as exc:
                errors.append(exc)

        t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            async with open_worker_pool(2, grace=0.2, kill_after=1.0) as pool:
                nursery.start_soon(runner, pool)
                nursery.start_soon(runner, pool)
                await trio.sleep(0.1)
                assert pool.statistics().running_workers == 2
            # The pool waited `grace`, then interrupted both.
            assert trio.current_time() - t0 < 0.1 + 0.2 + 1.0
        assert len(errors) == 2
        assert "pool was closed" in str(errors[0])
        with pytest.raises(trio.ClosedResourceError):
            await pool.run_sync(helpers.add, 1, 2)

    trio.run(main)


def test_bad_inputs_fail_at_the_caller_and_leave_the_worker_usable():
    closure_value = 3

    def closure():
        return closure_value

    dyn = types.ModuleType("made_at_run_time")
    exec("def f():\n    return 1\n", dyn.__dict__)
    sys.modules["made_at_run_time"] = dyn

    async def main():
        async with open_worker_pool(1) as pool:
            with pytest.raises(TypeError, match="lambda"):
                await pool.run_sync(lambda: 1)
            with pytest.raises(TypeError, match="closure"):
                await pool.run_sync(closure)
            with pytest.raises(TypeError, match="made_at_run_time.*cannot be imported"):
                await pool.run_sync(dyn.f)
            with pytest.raises(TypeError, match="async function"):
                await pool.run_sync(_async_fn)
            with pytest.raises(TypeError, match="arguments of tests.helpers.add.*cannot be pickled"):
                await pool.run_sync(helpers.add, threading.Lock(), 1)
            with pytest.raises(TypeError, match="needs a callable"):
                await pool.run_sync(42)
            # Nothing was sent: no worker was even started.
            assert pool.statistics().workers_started == 0

            first = await pool.run_sync(interp_id)
            # A result that cannot be pickled: a clear error, same worker.
            with pytest.raises(RemoteActorError, match="cannot be pickled") as info:
                await pool.run_sync(_thread.allocate_lock)
            assert info.value.boxed_type is TypeError
            assert await pool.run_sync(interp_id) == first
            # A function whose module refuses subinterpreters: the worker
            # says so (it could not load the call) and stays usable.
            if _can_import("readline"):
                import readline

                with pytest.raises(RemoteActorError, match="backend=.process.") as info:
                    await pool.run_sync(readline.get_history_length)
                assert issubclass(info.value.boxed_type, ImportError)
                assert await pool.run_sync(interp_id) == first
            # A function that raises SystemExit is an error like any other.
            with pytest.raises(RemoteActorError) as info:
                await pool.run_sync(sys.exit, 3)
            assert info.value.boxed_type is SystemExit
            assert await pool.run_sync(interp_id) == first
            assert pool.statistics().workers_started == 1

    try:
        trio.run(main)
    finally:
        del sys.modules["made_at_run_time"]


def _can_import(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'threads'"):
        WorkerPool(backend="threads")


def test_process_backend():
    from subactor._spawn._process import live_processes

    async def main():
        async with open_worker_pool(2, backend="process", kill_after=2.0) as pool:
            assert await pool.run_sync(helpers.add, 2, 3) == 5
            pid = await pool.run_sync(os.getpid)
            assert pid != os.getpid()
            with pytest.raises(RemoteActorError) as info:
                await pool.run_sync(helpers.boom, "in a process")
            assert info.value.boxed_type is ValueError and "in inner" in info.value.tb_str
            # What a subinterpreter refuses, a process loads.
            if _can_import("readline"):
                import readline

                assert isinstance(await pool.run_sync(readline.get_history_length), int)
            assert await pool.run_sync(os.getpid) == pid
            # A process worker blocked in C is interrupted (SIGINT), not abandoned.
            t0 = trio.current_time()
            with trio.move_on_after(0.2):
                await pool.run_sync(helpers.sleep_forever, cancellable=True)
            assert trio.current_time() - t0 < 1.5
            assert await pool.run_sync(os.getpid) != pid
            assert pool.statistics().workers_started == 2

    trio.run(main)
    assert live_processes() == []


def test_function_from_a_main_script(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import trio
        from subactor._pool import open_worker_pool

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        def square(x):
            return x * x

        def make_point(x):
            return Point(x, -x)

        def move(p):
            return Point(p.x + 1, p.y)

        async def main(backend):
            async with open_worker_pool(2, backend=backend) as pool:
                print(await pool.run_sync(square, 7))
                p = await pool.run_sync(make_point, 2)
                print(type(p).__name__, p.x, p.y, isinstance(p, Point))
                q = await pool.run_sync(move, Point(5, 6))
                print(q.x, q.y)

        if __name__ == "__main__":
            import sys
            for backend in sys.argv[1:]:
                trio.run(main, backend)
    """))
    backends = ["subint", "process"]
    proc = subprocess.run([sys.executable, str(script), *backends], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == ["49", "Point 2 -2 True", "6 6"] * len(backends)
    assert proc.stderr == ""


def test_program_exit_with_the_default_pool_in_use():
    proc = run_child("""
        import trio
        from subactor._pool import run_sync, default_worker_pool
        from tests import helpers

        async def main():
            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(run_sync, helpers.add, i, 1)
            print(await run_sync(helpers.add, 20, 22))
            print(default_worker_pool().statistics().idle_workers > 0)

        trio.run(main)
        # A second run reuses the same warm workers.
        trio.run(main)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42", "True", "42", "True"]
    assert proc.stderr == ""


def test_cancel_a_worker_stuck_in_c_abandons_and_replaces_it():
    proc = run_child("""
        import time, trio
        from subactor import _ext
        from subactor._pool import BrokenWorkerError, open_worker_pool
        from tests import helpers

        async def main():
            async with open_worker_pool(1, grace=0.1, kill_after=0.3) as pool:
                await pool.run_sync(helpers.add, 1, 1)
                t0 = time.monotonic()
                with trio.move_on_after(0.2):
                    await pool.run_sync(helpers.sleep_forever, cancellable=True)
                print("cancelled after", round(time.monotonic() - t0, 2))
                print(await pool.run_sync(helpers.add, 2, 3))
            print("abandoned", _ext.live_counts()["abandoned"])

            # Closing a pool whose worker is stuck in C: grace, interrupt,
            # kill_after, abandon; the caller gets BrokenWorkerError.
            async def runner(pool):
                try:
                    await pool.run_sync(helpers.sleep_forever)
                except BrokenWorkerError as exc:
                    print("caller:", type(exc).__name__, "abandoned" in str(exc))

            t0 = time.monotonic()
            async with trio.open_nursery() as nursery:
                async with open_worker_pool(1, grace=0.1, kill_after=0.3) as pool:
                    nursery.start_soon(runner, pool)
                    await trio.sleep(0.1)
            print("closed after", round(time.monotonic() - t0, 2))
            print("abandoned", _ext.live_counts()["abandoned"])

        trio.run(main)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    # move_on_after(0.2), then kill_after=0.3 before it was abandoned.
    assert lines[0].startswith("cancelled after ") and 0.45 <= float(lines[0].split()[-1]) < 1.5, proc.stdout
    assert lines[1:3] == ["5", "abandoned 1"]
    assert lines[3] == "caller: BrokenWorkerError True", proc.stdout
    # sleep 0.1, then abandoned kill_after=0.3 after the close began (both
    # deadlines count from the start of the ladder).
    assert lines[4].startswith("closed after ") and 0.35 <= float(lines[4].split()[-1]) < 1.5, proc.stdout
    assert lines[5] == "abandoned 2", proc.stdout
    assert proc.stderr.count("AbandonedActorWarning") == 2
    assert "'pool-worker-1'" in proc.stderr


def test_ctrl_c_during_a_shielded_call_interrupts_the_worker():
    proc = run_child("""
        import os, signal, threading, time, trio
        from subactor._pool import run_sync
        from tests import helpers

        signal.signal(signal.SIGINT, signal.default_int_handler)

        async def main():
            assert await run_sync(helpers.add, 1, 1) == 2
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
            await run_sync(helpers.spin)  # not cancellable: only Ctrl-C ends it

        t0 = time.monotonic()
        try:
            trio.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt after", round(time.monotonic() - t0, 2))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # The Ctrl-C came at 0.3 s; the spinning worker was interrupted at once.
    words = proc.stdout.split()
    assert words[:2] == ["KeyboardInterrupt", "after"] and 0.25 <= float(words[2]) < 1.3, proc.stdout
    assert proc.stderr == ""


def test_ctrl_c_between_the_send_and_the_wait_stops_the_call():
    # The fast path waits a few scheduler passes with no cancel scope
    # before it watches for Ctrl-C: a SIGINT counted in that window stops
    # the call as one during the wait does (the worker goes down its
    # ladder). The window is simulated: the count moves on after the send.
    proc = run_child("""
        import time, trio
        from subactor import _sigint
        from subactor._pool import open_worker_pool
        from tests import helpers

        async def main():
            async with open_worker_pool(1, grace=0.2) as pool:
                assert await pool.run_sync(helpers.add, 1, 1) == 2
                counts = iter(range(100))
                _sigint.sigints = lambda: next(counts)
                t0 = time.monotonic()
                try:
                    await pool.run_sync(helpers.spin)
                except KeyboardInterrupt as exc:
                    print("stopped", "Ctrl-C" in str(exc), round(time.monotonic() - t0, 2))

        trio.run(main)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[:2] == ["stopped", "True"] and float(words[2]) < 10, proc.stdout


def test_a_quick_call_holds_the_limiters_token_for_its_task_while_it_runs():
    # The fast path takes the token for the calling task (the limiter's
    # statistics name it) and gives it back after the answer, an error, or
    # a call that raised in the worker.
    seen = []

    async def main():
        with trio.fail_after(60):
            async with open_worker_pool(1) as pool:
                limiter = pool.limiter
                assert await pool.run_sync(helpers.add, 1, 1) == 2   # a warm worker
                assert limiter.borrowed_tokens == 0

                done = trio.Event()

                async def caller():
                    seen.append(trio.lowlevel.current_task())
                    await pool.run_sync(time.sleep, 0.3)
                    done.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(caller)
                    while limiter.borrowed_tokens == 0 and not done.is_set():
                        await trio.sleep(0.001)
                    stats = limiter.statistics()
                    assert stats.borrowers == seen and stats.tasks_waiting == 0
                assert limiter.borrowed_tokens == 0
                with pytest.raises(RemoteActorError):
                    await pool.run_sync(helpers.boom, "x")
                assert limiter.borrowed_tokens == 0
                with pytest.raises(TypeError):
                    await pool.run_sync(helpers.add, lambda: 0, 1)   # not picklable: refused before any token
                assert limiter.borrowed_tokens == 0

    trio.run(main)


def test_a_call_waits_through_scheduler_passes_only_while_spinning_pays(monkeypatch):
    # While the answer is not there, a call looks for it during a few
    # scheduler passes, timed as _transport's spins are (spin_start, then
    # spin_end when they found nothing, which notes a preempted spin); once
    # the machine was seen too busy (may_spin() false) it parks at once.
    from subactor import _pool

    starts, ends = [], []
    real_start = _pool.spin_start
    monkeypatch.setattr(_pool, "spin_start", lambda: starts.append(1) or real_start())
    monkeypatch.setattr(_pool, "spin_end", ends.append)
    monkeypatch.setattr(_pool, "may_spin", lambda: True)   # (a busy machine may have turned it off)

    async def main():
        with trio.fail_after(60):
            async with open_worker_pool(1) as pool:
                for cancellable in (False, True):
                    assert await pool.run_sync(helpers.add, 1, 1) == 2   # a warm worker
                    starts.clear()
                    ends.clear()
                    await pool.run_sync(time.sleep, 0.05, cancellable=cancellable)
                    assert starts and len(ends) == 1, (cancellable, starts, ends)
                monkeypatch.setattr(_pool, "may_spin", lambda: False)
                for cancellable in (False, True):
                    starts.clear()
                    ends.clear()
                    await pool.run_sync(time.sleep, 0.05, cancellable=cancellable)
                    assert await pool.run_sync(helpers.add, 2, 2) == 4
                    assert not starts and not ends, cancellable

    trio.run(main)
