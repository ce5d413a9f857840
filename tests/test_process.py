"""The process backend (issue 6): actors in child processes.

The API behaviours of test_api.py / test_context.py run here against both
backends; then what only processes do: NumPy, a child that dies on its own,
SIGINT and SIGKILL rungs, no zombies, mixed trees, and the socket end.
Every test also checks that no child process (zombie or not) is left."""
import glob
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import trio

import subactor
from subactor import ActorNotAvailable, ContextCancelled, ModuleNotExposed, RemoteActorError
from subactor import _ext
from subactor._spawn._sockend import SocketEnd
from subactor._exceptions import box_error
from subactor._spawn import spawn
from subactor._spawn._process import ProcessHandle, live_processes

from . import remote, remote_np
from .conftest import ROOT, popen_child, run_child

MOD = remote.__name__
NP = remote_np.__name__
BACKENDS = ["subint", "process"]


def _children() -> set[int]:
    pids = set()
    for f in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(f) as fh:
                pids.update(int(x) for x in fh.read().split())
        except OSError:
            pass
    return pids


@pytest.fixture(autouse=True)
def no_child_processes():
    before = _children()
    yield
    deadline = time.monotonic() + 5
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    left = _children() - before
    assert not left, f"child processes left (zombies included): {sorted(left)}"
    assert not live_processes(), f"unreaped process actors: {live_processes()}"


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def run(main, *args, limit=60):
    async def bounded():
        with trio.fail_after(limit):
            await main(*args)

    trio.run(bounded)


def with_actor(backend, body, name="ctx-actor", mods=(MOD,)):
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            p = await an.start_actor(name, enable_modules=list(mods))
            try:
                await body(p)
            finally:
                await p.cancel_actor()

    run(main)


# --- the API on both backends (from test_api.py) ----------------------------------


def test_start_actor_run_sync_and_async(backend):
    async def body(p):
        assert p.backend == backend
        assert await p.run(remote.add, a=1, b=2) == 3
        assert await p.run(remote.async_add, a=3, b=4) == 7
        assert await p.run_from_ns(MOD, "add", a=5, b=6) == 11

    with_actor(backend, body)


def test_identity_and_no_trio_for_sync_only(backend):
    async def body(p):
        name, uid, trio_loaded = await p.run(remote.whoami)
        assert name == "ident" and p.uid == ("ident", uid)
        assert trio_loaded is False
        await p.run(remote.async_add, a=1, b=1)
        assert await p.run(remote.trio_loaded) is True

    with_actor(backend, body, name="ident")


def test_start_actor_backend_argument_overrides_nursery():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("proc", enable_modules=[NP], backend="process")
            s = await an.start_actor("sub", enable_modules=[NP])
            (_, ppid, pinterp), (_, spid, sinterp) = await p.run(remote_np.where_am_i), await s.run(remote_np.where_am_i)
            assert ppid != os.getpid() and pinterp == 0
            assert spid == os.getpid() and sinterp != 0
            await an.cancel()

    run(main)


def test_run_in_actor_results_and_nursery_waits(backend):
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            portals = [await an.run_in_actor(remote.add, name=f"adder-{i}", a=i, b=i) for i in range(3)]
            p_async = await an.run_in_actor(remote.sleep_then, seconds=0.05, value="late")
        assert [await p.wait_for_result() for p in portals] == [0, 2, 4]
        assert await p_async.result() == "late"

    run(main)


def test_run_in_actor_backend_argument():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.run_in_actor(remote_np.pid_and_parent, backend="process")
        pid, ppid = await p.wait_for_result()
        assert pid != os.getpid() and ppid == os.getpid()

    run(main)


def test_remote_error_boxed_with_traceback(backend):
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(remote.raise_value_error, msg="nope")
        err = info.value
        assert err.boxed_type is ValueError and err.src_actor == "err"
        assert "raise_value_error" in err.tb_str and "ValueError: nope" in err.tb_str
        with pytest.raises(RemoteActorError) as info:
            await p.run(remote.async_raise, msg="k")
        assert info.value.boxed_type is KeyError
        assert await p.run(remote.add, a=1, b=1) == 2

    with_actor(backend, body, name="err")


def test_module_not_exposed_and_bad_return(backend):
    async def body(p):
        with pytest.raises(ModuleNotExposed, match=MOD):
            await p.run(remote.add, a=1, b=2)
        with pytest.raises(ModuleNotExposed):
            await p.run_from_ns("os", "getpid")

    with_actor(backend, body, mods=())

    async def body2(p):
        with pytest.raises(RemoteActorError, match="cannot be sent back"):
            await p.run(remote.not_serializable)
        assert await p.run(remote.add, a=2, b=2) == 4

    with_actor(backend, body2)


def test_portal_of_dead_actor_raises_clearly(backend):
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            p = await an.start_actor("short-lived", enable_modules=[MOD])
            assert await p.cancel_actor() is True
            with pytest.raises(ActorNotAvailable, match="short-lived"):
                await p.run(remote.add, a=1, b=2)

    run(main)


def test_error_in_run_in_actor_cancels_the_block_and_start_actor_actors(backend):
    async def main():
        with trio.move_on_after(20) as bound:
            with pytest.raises(RemoteActorError) as info:
                async with subactor.open_nursery(backend=backend) as an:
                    sleeper = await an.start_actor("sleeper", enable_modules=[MOD])
                    await an.run_in_actor(remote.fail_in_child, name="failing", msg="boom")
                    await trio.sleep_forever()
        assert not bound.cancelled_caught
        assert info.value.boxed_type is ValueError and info.value.src_actor == "failing"
        assert not sleeper._alive

    run(main)


def test_error_in_nursery_block_cancels_actors(backend):
    async def main():
        with pytest.raises(ZeroDivisionError):
            async with subactor.open_nursery(backend=backend) as an:
                p = await an.start_actor("victim", enable_modules=[MOD])
                await p.run(remote.add, a=1, b=1)
                1 / 0
        assert p._ended.is_set()

    run(main)


def test_cancel_scope_around_portal_run(backend):
    async def body(p):
        with trio.move_on_after(0.3) as scope:
            await p.run(remote.sleep_forever_async)
        assert scope.cancelled_caught
        assert await p.run(remote.add, a=1, b=2) == 3

    with_actor(backend, body)


def test_cancel_actor_with_running_async_call(backend):
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            p = await an.start_actor("busy-async", enable_modules=[MOD])
            errors = []

            async def call():
                try:
                    await p.run(remote.sleep_forever_async)
                except (RemoteActorError, ActorNotAvailable) as exc:
                    errors.append(exc)

            async with trio.open_nursery() as tn:
                tn.start_soon(call)
                await trio.sleep(0.2)
                assert await p.cancel_actor() is True
            assert len(errors) == 1
            assert isinstance(errors[0], (ContextCancelled, ActorNotAvailable))

    run(main)


def test_many_concurrent_rpcs(backend):
    async def body(p):
        results = {}

        async def one(i):
            results[i] = await p.run(remote.sleep_then, seconds=0.1, value=i)

        async with trio.open_nursery() as tn:
            for i in range(30):
                tn.start_soon(one, i)
        assert results == {i: i for i in range(30)}

    with_actor(backend, body)


def test_nursery_cancel_ends_all_actors(backend):
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            ps = [await an.start_actor(f"d{i}", enable_modules=[MOD]) for i in range(3)]
            for p in ps:
                assert await p.run(remote.add, a=1, b=1) == 2
            await an.cancel()
            assert all(p._ended.is_set() for p in ps)

    run(main)


def test_actor_sees_parent_sys_path(backend):
    async def body(p):
        assert await p.run(remote.get_sys_path) == [x for x in sys.path if x]

    with_actor(backend, body)


def test_process_child_environment_is_the_parents():
    async def body(p):
        # PYTHONPATH carried the parent's sys.path to the child only to start
        # it; the child's environment is the parent's again.
        assert await p.run(remote_np.env_pythonpath) == os.environ.get("PYTHONPATH")
        pid, ppid = await p.run(remote_np.pid_and_parent)
        assert ppid == os.getpid() and os.getpgid(pid) == pid  # own process group

    with_actor("process", body, mods=[NP])


# --- contexts and streams on both backends (from test_context.py) ------------------


def test_context_started_value_and_result(backend):
    async def body(p):
        async with p.open_context(remote.echo_started, value={"a": [1, 2]}) as (ctx, first):
            assert first == {"a": [1, 2]}
        assert await ctx.wait_for_result() == "done"

    with_actor(backend, body)


def test_stream_both_ways(backend):
    async def body(p):
        async with p.open_context(remote.echo_stream, prefix="> ") as (ctx, first):
            assert first == "ready"
            async with ctx.open_stream() as stream:
                for i in range(20):
                    await stream.send(i)
                    assert await stream.receive() == f"> {i}"
        assert await ctx.wait_for_result() == "echo finished"

    with_actor(backend, body)


def test_callee_streams_and_caller_streams(backend):
    async def body(p):
        async with p.open_context(remote.count_to, n=200) as (ctx, first):
            async with ctx.open_stream() as stream:
                got = [v async for v in stream]
        assert got == list(range(200)) and await ctx.wait_for_result() == 200
        async with p.open_context(remote.sum_stream) as (ctx, _):
            async with ctx.open_stream() as stream:
                for i in range(1000):
                    await stream.send(i)
        assert await ctx.wait_for_result() == sum(range(1000))

    with_actor(backend, body)


def test_early_close_either_side(backend):
    async def body(p):
        async with p.open_context(remote.early_close_callee, n=3) as (ctx, _):
            async with ctx.open_stream() as stream:
                got = [v async for v in stream]
        assert got == [0, 1, 2] and await ctx.wait_for_result() == "closed early"
        async with p.open_context(remote.count_received) as (ctx, _):
            async with ctx.open_stream() as stream:
                await stream.send("a")
                await stream.send("b")
        assert await ctx.wait_for_result() == ["a", "b"]

    with_actor(backend, body)


def test_context_errors_before_after_and_mid_stream(backend):
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.error_before_started):
                pytest.fail("the block must not run")
        assert info.value.boxed_type is ValueError
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.error_after_started) as (ctx, first):
                assert first == "ok so far"
        assert info.value.boxed_type is RuntimeError
        got = []
        with pytest.raises(RemoteActorError) as info:
            async with p.open_context(remote.error_mid_stream, after=5) as (ctx, _):
                async with ctx.open_stream() as stream:
                    async for v in stream:
                        got.append(v)
        assert got == [0, 1, 2, 3, 4] and info.value.boxed_type is OSError

    with_actor(backend, body)


def test_context_cancellation(backend):
    async def body(p):
        with pytest.raises(KeyError):
            async with p.open_context(remote.never_returns) as (ctx, first):
                raise KeyError("caller failed")
        assert await p.run(remote.add, a=1, b=1) == 2
        async with p.open_context(remote.never_returns) as (ctx, _):
            await ctx.cancel()
        res = await ctx.wait_for_result()
        assert isinstance(res, ContextCancelled) and ctx.cancel_called and ctx.cancel_acked
        with pytest.raises(ContextCancelled) as info:
            async with p.open_context(remote.callee_cancels_itself) as (ctx, _):
                await ctx.wait_for_result()
        assert info.value.src_actor == "ctx-actor"
        with trio.move_on_after(0.3) as scope:
            async with p.open_context(remote.never_returns) as (ctx, _):
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert await p.run(remote.add, a=2, b=3) == 5

    with_actor(backend, body)


def test_many_concurrent_contexts(backend):
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
            for i in range(20):
                tn.start_soon(one, i)
        assert results == {i: "echo finished" for i in range(20)}

    with_actor(backend, body)


def test_large_messages_both_ways(backend):
    """Messages larger than the socket buffer (partial writes, the send
    queue, frames read straight into their own buffer) in both directions."""
    size, count = 3 * 1024 * 1024, 4

    async def body(p):
        async with p.open_context(remote_np.blob_stream, size=size, count=count) as (ctx, first):
            assert first == size
            async with ctx.open_stream() as stream:
                for _ in range(count):
                    v = await stream.receive()
                    assert len(v) == size and v[:1] == b"x" and v[-1:] == b"x"
                for n in (1, 70_000, size, 8 * 1024 * 1024):
                    await stream.send(b"y" * n)
                    assert await stream.receive() == n
        assert await ctx.wait_for_result() == 1 + 70_000 + size + 8 * 1024 * 1024

    with_actor(backend, body, mods=[NP])


# --- what a process can do ------------------------------------------------------


def test_numpy_in_a_process_actor():
    async def body(p):
        assert await p.run(remote_np.numpy_sum, n=1000) == 499500
        assert await p.run(remote_np.numpy_version) == __import__("numpy").__version__

    with_actor("process", body, mods=[NP])


def test_numpy_in_a_subinterpreter_fails_naming_module_and_backend():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(remote_np.numpy_sum, n=10)
        err = info.value
        assert err.boxed_type is ImportError
        assert "numpy" in str(err) and 'backend="process"' in str(err)
        # The actor survives the failed import.
        assert await p.run(remote_np.echo, value=1) == 1

    with_actor("subint", body, mods=[NP])


def test_readline_needs_a_process():
    pytest.importorskip("readline")
    helpers = "tests.helpers"

    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("rl-proc", enable_modules=[helpers], backend="process")
            assert await p.run_from_ns(helpers, "import_module", name="readline") == "readline"
            s = await an.start_actor("rl-sub", enable_modules=[helpers])
            with pytest.raises(RemoteActorError) as info:
                await s.run_from_ns(helpers, "import_module", name="readline")
            assert "'readline'" in str(info.value) and 'backend="process"' in str(info.value)
            await an.cancel()

    run(main)


def test_box_error_names_the_process_backend():
    def chained():
        try:
            raise ImportError("module numpy._core._multiarray_umath does not support loading in subinterpreters")
        except ImportError as inner:
            raise ImportError("Importing the numpy C-extensions failed.\nOriginal error was: " + str(inner)) from inner

    with pytest.raises(ImportError) as info:
        chained()
    msg = box_error(info.value, "a")["msg"]
    assert "'numpy._core._multiarray_umath'" in msg and 'backend="process"' in msg
    assert msg.endswith(str(info.value))
    msg = box_error(ImportError("module readline does not support loading in subinterpreters"), "a")["msg"]
    assert "'readline'" in msg and 'backend="process"' in msg
    for other in (ImportError("No module named 'nope'"), ValueError("does not support loading in subinterpreters")):
        assert box_error(other, "a")["msg"] == str(other)


@pytest.mark.parametrize("fn", [remote_np.exit_now, remote_np.exit_now_async])
def test_child_that_dies_breaks_the_portal_at_once(fn):
    async def main():
        async with subactor.open_nursery(backend="process") as an:
            p = await an.start_actor("dies", enable_modules=[NP])
            assert await p.run(remote_np.echo, value=1) == 1
            t0 = time.monotonic()
            with pytest.raises(ActorNotAvailable, match="dies"):
                await p.run(fn, code=3)
            assert time.monotonic() - t0 < 2.0
            await p._ended.wait()
            assert p._handle.outcome()[0] == "error" and p._handle.info()["returncode"] == 3
            with pytest.raises(ActorNotAvailable):
                await p.run(remote_np.echo, value=1)

    run(main, limit=30)


@pytest.mark.parametrize("fn", [remote_np.sleep_forever, remote_np.sleep_forever_blocking_async])
def test_cancel_of_a_blocked_process_ends_by_sigint(fn):
    async def main():
        async with subactor.open_nursery(backend="process", grace=0.2, kill_after=5.0) as an:
            p = await an.start_actor("sleeper", enable_modules=[NP, MOD])
            # Up and in the mode the blocking call runs in, so that the call
            # is blocking when the cancel comes.
            if fn is remote_np.sleep_forever:
                await p.run(remote_np.echo, value=1)
            else:
                await p.run(remote.async_add, a=1, b=1)
            errors = []

            async def call():
                try:
                    await p.run(fn)
                except ActorNotAvailable as exc:
                    errors.append(exc)

            async with trio.open_nursery() as tn:
                tn.start_soon(call)
                await trio.sleep(0.3)
                t0 = time.monotonic()
                assert await p.cancel_actor() is True
                assert time.monotonic() - t0 < 2.0
            await p._ended.wait()
            assert len(errors) == 1
            assert p.rung == 2
            assert p._handle.state == "interrupted" and p._handle.interrupts == 1

    run(main, limit=30)


def test_process_ignoring_sigint_is_killed_at_the_hard_deadline():
    async def main():
        async with subactor.open_nursery(backend="process", grace=0.2, kill_after=0.5) as an:
            p = await an.start_actor("stubborn", enable_modules=[NP])
            await p.run(remote_np.echo, value=1)
            async with trio.open_nursery() as tn:
                async def call():
                    with pytest.raises(ActorNotAvailable):
                        await p.run(remote_np.ignore_sigint_and_sleep)

                tn.start_soon(call)
                await trio.sleep(0.3)
                t0 = time.monotonic()
                with pytest.warns(subactor.AbandonedActorWarning, match="stubborn"):
                    assert await p.cancel_actor() is False
                assert 0.4 < time.monotonic() - t0 < 2.0
            await p._ended.wait()
            assert p.rung == 3
            assert p._handle.state == "killed" and p._handle.killed and p._handle.done
            assert p._handle.outcome()[0] == "killed"

    run(main, limit=30)


def test_sleep_wakes_on_cancel_in_a_process_actor():
    """The cancel pipe is the process actor's wake descriptor, so a
    cancellable time.sleep ends at the cooperative rung, as in a
    subinterpreter actor."""
    async def main():
        async with subactor.open_nursery(backend="process", grace=5.0, kill_after=10.0) as an:
            p = await an.start_actor("napper", enable_modules=[NP], sleep_wakes_on_cancel=True)
            await p.run(remote_np.echo, value=1)
            async with trio.open_nursery() as tn:
                async def call():
                    with pytest.raises(ActorNotAvailable):
                        await p.run(remote_np.sleep_forever)

                tn.start_soon(call)
                await trio.sleep(0.3)
                t0 = time.monotonic()
                assert await p.cancel_actor() is True
                assert time.monotonic() - t0 < 2.0
            await p._ended.wait()
            assert p.rung == 1 and p._handle.interrupts == 0

    run(main, limit=30)


def test_out_of_band_cancel_alone_ends_the_actor():
    """handle.cancel() (the cancel pipe) ends an actor without any message,
    in sync mode and in trio mode."""
    async def main():
        for warm_trio in (False, True):
            handle, end = spawn("process",
                {"name": "oob", "uid": "u", "mods": [MOD], "parent": "root", "main": None})
            from subactor._transport import TrioChannel

            chan = TrioChannel(end)
            try:
                cid = 1 if not warm_trio else 2
                fn = "add" if not warm_trio else "async_add"
                await chan.send({"t": "run", "cid": cid, "ns": MOD, "fn": fn, "kw": {"a": 1, "b": 2}})
                assert (await chan.recv())["v"] == 3
                assert handle.cancel() is True
                with trio.fail_after(5):
                    await trio.lowlevel.wait_readable(handle.fileno())
                assert handle.join() is True and handle.state == "exited-ok", handle.info()
                # It left without 'bye' (that answers the in-band cancel_actor)
                # and closed its end properly.
                with pytest.raises(trio.EndOfChannel):
                    await chan.recv()
            finally:
                chan.close()
                handle.join(timeout=5)

    run(main)


def test_no_zombies_after_many_spawn_cancel_cycles():
    """200 spawn/cancel cycles, 10 at a time: every child is reaped."""
    async def main():
        # A long grace: ten processes ending at once on a busy 2-core machine
        # can take more than the default 1 s, and then the ladder's rung 2
        # ends them ('interrupted'); this test is about the cooperative path.
        async with subactor.open_nursery(backend="process", grace=20, kill_after=25) as an:
            for round_ in range(20):
                ps = []

                async def start(i):
                    ps.append(await an.start_actor(f"c{round_}-{i}", enable_modules=[MOD]))

                async with trio.open_nursery() as tn:
                    for i in range(10):
                        tn.start_soon(start, i)
                async with trio.open_nursery() as tn:
                    for p in ps:
                        tn.start_soon(p.cancel_actor)
                # cancel_actor returns once the actor acknowledged; the
                # process exits (and is reaped) right after.
                for p in ps:
                    await p._ended.wait()
                assert all(p._handle.state == "exited-ok" for p in ps), [p._handle.info() for p in ps if p._handle.state != "exited-ok"]
                assert not live_processes()

    t0 = time.monotonic()
    run(main, limit=90)
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("chain", [
    ["subint", "process"],
    ["process", "subint"],
    ["process", "process"],
    ["subint", "process", "subint", "process"],
])
def test_mixed_trees(chain):
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("top", enable_modules=[NP], backend=chain[0])
            async with p.open_context(remote_np.spawn_chain, backends=chain[1:]) as (ctx, first):
                assert first[0] == "top"
                levels = await ctx.wait_for_result()
            await p.cancel_actor()
        assert len(levels) == len(chain)
        parent_pid = os.getpid()
        for (name, pid, interp), kind in zip(levels, chain):
            if kind == "process":
                assert pid != parent_pid and interp == 0, (name, kind)
            else:
                assert pid == parent_pid and interp != 0, (name, kind)
            parent_pid = pid

    run(main)


def test_orphans_die_with_their_parent():
    """A parent killed with SIGKILL leaves no process actor behind, even one
    stuck in a blocking call."""
    proc = run_child("""
        import os, signal, sys, trio, subactor
        sys.path.insert(0, os.getcwd())
        from tests import remote_np

        async def main():
            async with subactor.open_nursery(backend="process") as an:
                p = await an.start_actor("orphan", enable_modules=[remote_np.__name__])
                pid, _ = await p.run(remote_np.pid_and_parent)
                print(pid, flush=True)
                async with trio.open_nursery() as tn:
                    tn.start_soon(p.run, remote_np.sleep_forever)
                    await trio.sleep(0.3)
                    os.kill(os.getpid(), signal.SIGKILL)

        trio.run(main)
    """, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    assert _pid_gone(pid, 5.0), f"orphan actor {pid} still runs"


def _pid_gone(pid: int, timeout: float) -> bool:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def test_function_of_the_parents_main_script(tmp_path):
    script = tmp_path / "main_script.py"
    script.write_text(textwrap.dedent("""
        import os, trio, subactor

        def triple(x):
            return [3 * x, os.getpid() != PARENT]

        PARENT = int(os.environ.get("PARENT_PID", os.getpid()))

        async def main():
            async with subactor.open_nursery(backend="process") as an:
                p = await an.run_in_actor(triple, x=14)
            print(await p.wait_for_result())

        if __name__ == "__main__":
            os.environ["PARENT_PID"] = str(os.getpid())
            trio.run(main)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[42, True]"


def test_ctrl_c_in_the_root_cancels_process_actors():
    """SIGINT reaches only the root (the children have their own process
    group); the root turns it into a cancel of the tree, and the ladder ends
    a process actor blocked in time.sleep by its own SIGINT."""
    code = """
        import os, sys, trio, subactor
        sys.path.insert(0, os.getcwd())
        from tests import remote_np

        async def main():
            async with subactor.open_nursery(backend="process", grace=0.3, kill_after=5) as an:
                p = await an.start_actor("blocked", enable_modules=[remote_np.__name__])
                pid, _ = await p.run(remote_np.pid_and_parent)
                print(pid, flush=True)
                await p.run(remote_np.sleep_forever)

        try:
            trio.run(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
    """
    proc = popen_child(code)  # SIGINT handled as Python does, however the suite was started
    try:
        pid = int(proc.stdout.readline())
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out, err
    assert _pid_gone(pid, 5.0)
    proc.stdout.close()
    proc.stderr.close()


def test_handle_without_nursery_is_killed_when_dropped():
    async def main():
        handle, end = spawn("process",
            {"name": "dropped", "uid": "u", "mods": [], "parent": "root", "main": None})
        assert isinstance(handle, ProcessHandle) and not handle.done
        pid = handle.pid
        end.close()
        del handle
        import gc

        gc.collect()
        assert not live_processes()
        assert pid not in _children()

    run(main)


def test_process_worker_pool():
    """subactor._pool's backend="process" runs process workers: NumPy
    works, a cancellable call is interrupted (SIGINT raises ActorInterrupted,
    which the worker never catches), a worker that dies breaks its call."""
    from subactor._pool import BrokenWorkerError, open_worker_pool

    async def main():
        async with open_worker_pool(2, backend="process", kill_after=5.0) as pool:
            assert await pool.run_sync(remote_np.numpy_sum, 1000) == 499500
            pid, ppid = await pool.run_sync(remote_np.pid_and_parent)
            assert ppid == os.getpid()
            with trio.move_on_after(0.3) as scope:
                await pool.run_sync(remote_np.sleep_forever, cancellable=True)
            assert scope.cancelled_caught
            with pytest.raises(BrokenWorkerError, match="exit_now"):
                await pool.run_sync(remote_np.exit_now, 3)
            assert await pool.run_sync(remote_np.echo, "still") == "still"

    run(main)


# --- the socket end ---------------------------------------------------------------


def _pair(**kw):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return SocketEnd(a.detach(), side="a", **kw), SocketEnd(b.detach(), side="b", **kw)


def _readable(fd, timeout=0.0):
    return bool(select.select([fd], [], [], timeout)[0])


def test_sockend_frames_and_clean_close():
    a, b = _pair()
    try:
        with pytest.raises(ValueError):
            b.send_nowait(b"")
        with pytest.raises(BlockingIOError):
            b.recv_nowait()
        assert not _readable(b.recv_fileno())
        msgs = [b"x", b"hello" * 1000, bytes(range(256)) * 300, b"z"]
        for m in msgs:
            a.send_nowait(m)
        assert _readable(b.recv_fileno(), 1.0)
        got = []
        for _ in msgs:
            m = b.recv(timeout=5)
            got.append(bytes(m))
            m.release()
        assert got == msgs
        a.send_nowait(_ext.dumps({"t": "bye"}))
        a.close()
        assert _ext.loads(b.recv(timeout=5)) == {"t": "bye"}
        with pytest.raises(_ext.EndOfChannel):
            b.recv_nowait()
        with pytest.raises(_ext.BrokenError):
            b.send_nowait(b"late")
        with pytest.raises(_ext.ClosedError):
            a.send_nowait(b"x")
    finally:
        a.close()
        b.close()
    assert a.closed and b.closed


def test_sockend_peer_death_is_a_break():
    # EOF without the close marker, at a frame boundary and mid-frame.
    for tail in (b"", b"\x10\x00\x00\x00abc"):
        s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        b = SocketEnd(s2.detach(), side="b")
        try:
            s1.sendall(b"\x02\x00\x00\x00ok" + tail)
            s1.close()
            assert bytes(b.recv(timeout=5)) == b"ok"
            with pytest.raises(_ext.BrokenError, match="middle" if tail else "without closing"):
                b.recv_nowait()
            assert _readable(b.recv_fileno())
        finally:
            b.close()


def test_sockend_send_queue_is_bounded_and_drains():
    a, b = _pair(limit=1 << 20)
    try:
        blob = b"q" * (256 * 1024)
        sent = 0
        with pytest.raises(BlockingIOError):
            for _ in range(100):
                a.send_nowait(blob)
                sent += 1
        assert 1 < sent < 100 and a.pending() > 0
        # Queued output makes recv_fileno readable once the socket can take
        # bytes: the receiving side is what flushes it.
        assert not _readable(a.send_fileno())
        got = 0
        deadline = time.monotonic() + 10
        while got < sent and time.monotonic() < deadline:
            try:
                m = b.recv_nowait()
            except BlockingIOError:
                select.select([a.recv_fileno(), b.recv_fileno()], [], [], 1.0)
                if _readable(a.recv_fileno()):
                    with pytest.raises(BlockingIOError):
                        a.recv_nowait()  # flushes
                continue
            assert len(m) == len(blob)
            got += 1
        assert got == sent and a.pending() == 0
        assert _readable(a.send_fileno())
        a.send_nowait(blob)  # room again
    finally:
        a.close()
        b.close()


def test_sockend_close_flushes_queued_messages():
    a, b = _pair(linger=5.0)
    blob = b"w" * (1024 * 1024)
    try:
        a.send_nowait(blob)
        a.send_nowait(blob)
        assert a.pending() > 0

        # The reader runs in another thread while close() blocks here.
        import threading

        result = []

        def reader():
            n = 0
            for _ in range(2):
                n += len(b.recv(timeout=10))
            try:
                b.recv(timeout=10)
            except _ext.EndOfChannel:
                result.append(n)

        t = threading.Thread(target=reader)
        t.start()
        a.close()
        t.join(10)
        assert result == [2 * len(blob)]
    finally:
        a.close()
        b.close()
