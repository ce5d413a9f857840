"""Bad input and what the nursery raises: malformed messages, refused
arguments, the RPC boundary, error groups as tractor raises them, exit
codes, and the parent-side open_context block woken by the callee's end."""
import signal

import pytest
import trio

import subactor
from subactor import ActorNotAvailable, ContextCancelled, ModuleNotExposed, RemoteActorError

from . import remote, remote_ladder
from .conftest import run_child, sigint_child

MOD = remote.__name__
LMOD = remote_ladder.__name__


# --- an empty nursery, an early error --------------------------------------------


def test_empty_nursery_behaves_like_a_trio_nursery():
    async def main():
        for _ in range(30):
            async with subactor.open_nursery():
                pass

    for _ in range(5):
        trio.run(main)


def test_body_error_before_any_actor_is_raised_bare():
    async def main():
        async with subactor.open_nursery():
            raise ValueError("early")

    for _ in range(20):
        with pytest.raises(ValueError, match="early"):
            trio.run(main)


# --- error groups ------------------------------------------------------------------


def test_body_reraising_the_actors_error_gets_it_once_bare():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.run_in_actor(remote.raise_value_error, msg="once")
            await p.wait_for_result()

    with pytest.raises(RemoteActorError) as info:
        trio.run(main)
    assert info.value.boxed_type is ValueError and "once" in str(info.value)


def test_one_actor_error_is_raised_bare_without_the_cancellations_it_caused():
    # The failure cancels the block (its call into the daemon with it) and
    # the daemon: neither cancellation is reported.
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                d1 = await an.start_actor("daemon1", enable_modules=[MOD])
                await an.start_actor("daemon2", enable_modules=[MOD])
                await an.run_in_actor(remote.fail_later, name="failing", seconds=0.2, msg="the one")
                await d1.run(remote.sleep_forever_async)

    with pytest.raises(RemoteActorError) as info:
        trio.run(main)
    assert "the one" in str(info.value)


def test_an_cancel_while_run_in_actor_calls_run_raises_nothing():
    # an.cancel() ends both actors mid-call: their calls end with
    # ContextCancelled, which the nursery caused and does not report.
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                p1 = await an.run_in_actor(remote.sleep_then, name="r1", seconds=30, value=1)
                p2 = await an.run_in_actor(remote.sleep_then, name="r2", seconds=30, value=2)
                await trio.sleep(0.3)
                await an.cancel()
            for p in (p1, p2):
                with pytest.raises((ContextCancelled, ActorNotAvailable)):
                    await p.wait_for_result()

    trio.run(main)


def test_distinct_actor_errors_are_one_flat_group():
    # A run_in_actor actor's failure does not cancel its run_in_actor
    # siblings: both failures are raised, every time.
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                await an.run_in_actor(remote.raise_value_error, name="a", msg="first")
                await an.run_in_actor(remote.fail_later, name="b", seconds=0.3, msg="second")

    for _ in range(3):
        with pytest.raises(ExceptionGroup) as info:
            trio.run(main)
        eg = info.value
        assert all(isinstance(e, RemoteActorError) for e in eg.exceptions), eg.exceptions
        assert sorted(e.remote_message for e in eg.exceptions) == ["first", "second"]


# --- the parent's open_context block is woken --------------------------------------


@pytest.mark.parametrize("how", ["ctx.cancel", "portal.cancel_actor", "actor dies"])
def test_open_context_block_is_woken_when_the_context_ends(how):
    async def main():
        with trio.fail_after(20):
            # A generous grace: on a loaded machine the actor still acks
            # (and says how its context ended) before any interrupt.
            async with subactor.open_nursery(grace=5, kill_after=10) as an:
                p = await an.start_actor("ctx", enable_modules=[MOD])
                raised = None
                try:
                    async with p.open_context(remote.never_returns) as (ctx, first):
                        assert first == "sleeping"
                        async with trio.open_nursery() as tn:
                            async def end_it():
                                await trio.sleep(0.2)
                                if how == "ctx.cancel":
                                    await ctx.cancel()
                                elif how == "portal.cancel_actor":
                                    await p.cancel_actor()
                                else:
                                    p._handle.interrupt()
                            tn.start_soon(end_it)
                            await trio.sleep_forever()  # never woken before the fix
                except BaseException as exc:
                    raised = exc
                if how == "ctx.cancel":
                    await p.cancel_actor()
                return raised

    raised = trio.run(main)
    if how == "ctx.cancel":
        assert raised is None  # asked for by this side: absorbed
    elif how == "portal.cancel_actor":
        assert isinstance(raised, ContextCancelled), repr(raised)
    else:
        assert isinstance(raised, ActorNotAvailable) and "interrupted" in str(raised), repr(raised)


# --- malformed messages fail only that actor's channel -------------------------------


@pytest.mark.parametrize("fn,what", [
    (remote_ladder.send_garbage, "bytes that are not a message"),
    (remote_ladder.send_unknown_kind, "unknown kind 'bogus'"),
    (remote_ladder.send_non_map, "a list where a message map belongs"),
])
def test_a_malformed_message_fails_that_actor_only(fn, what):
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                bad = await an.start_actor("bad", enable_modules=[LMOD])
                good = await an.start_actor("good", enable_modules=[MOD])
                with pytest.raises(ActorNotAvailable) as info:
                    await bad.run(fn)
                assert "'bad'" in str(info.value) and what in str(info.value), str(info.value)
                with pytest.raises(ActorNotAvailable):
                    await bad.run(remote_ladder.ready)
                # The sibling, and the nursery, go on.
                assert await good.run(remote.add, a=2, b=3) == 5
                await bad._ended.wait()
                await good.cancel_actor()

    trio.run(main)


def test_a_malformed_message_from_the_parent_ends_the_actor_with_a_clear_error():
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("victim", enable_modules=[MOD])
                assert await p.run(remote.add, a=1, b=1) == 2
                async with trio.open_nursery() as tn:
                    async def call():
                        with pytest.raises(ActorNotAvailable) as info:
                            await p.run(remote.sleep_then, seconds=30, value=0)
                        return info
                    tn.start_soon(call)
                    await trio.sleep(0.2)
                    p.channel.end.send_nowait(b"\xc1 garbage")
                await p._ended.wait()
                out = p._handle.outcome()
                assert out[0] == "error" and "'victim' got bytes that are not a message (" in out[2], out
                assert out[2].endswith("from its parent: it leaves"), out

    trio.run(main)


# --- arguments that must be refused ----------------------------------------------------


def test_enable_modules_as_a_str_is_refused():
    async def main():
        async with subactor.open_nursery() as an:
            with pytest.raises(TypeError, match=r"enable_modules=\['relmod'\]"):
                await an.start_actor("x", enable_modules="relmod")
            with pytest.raises(TypeError, match="module names"):
                await an.start_actor("x", enable_modules=[1])

    trio.run(main)


def test_a_misspelled_keyword_is_refused_naming_the_closest():
    async def main():
        async with subactor.open_nursery(gracee=1):
            pass

    with pytest.raises(TypeError, match="'gracee'.*did you mean 'grace'"):
        trio.run(main)

    async def tractor_kwargs():
        async with subactor.open_nursery(registry_addrs=[("127.0.0.1", 1616)], start_method="trio"):
            pass

    trio.run(tractor_kwargs)  # tractor's own keywords are accepted


@pytest.mark.parametrize("name,why", [
    ("os.getpid", "'os' is a module"),
    ("getpid", "not a function of module"),
    ("time.sleep", "'time' is a module"),
])
def test_rpc_reaches_only_the_enabled_modules_own_functions(name, why):
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("boundary", enable_modules=[LMOD])
            for _ in range(2):  # sync mode, then trio mode
                with pytest.raises(ModuleNotExposed, match=why):
                    await p.run_from_ns(LMOD, name)
                assert await p.run(remote_ladder.ready)
            await p.cancel_actor()

    trio.run(main)


def test_a_return_value_too_large_for_the_channel_fails_that_call_only():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("big", enable_modules=[LMOD])
                for fn in (remote_ladder.big_value, remote_ladder.big_value_async):
                    with pytest.raises(RemoteActorError, match="cannot be sent back") as info:
                        await p.run(fn, mib=65)
                    assert info.value.boxed_type is ValueError
                    assert len(await p.run(fn, mib=1)) == 1 << 20  # the actor goes on
                await p.cancel_actor()

    trio.run(main)


# --- exits ---------------------------------------------------------------------------


def test_sys_exit_code_of_a_trio_mode_process_actor_is_reported():
    async def main():
        async with subactor.open_nursery(backend="process") as an:
            p = await an.start_actor("exiter", enable_modules=[LMOD])
            with pytest.raises(ActorNotAvailable, match="exited with code 4"):
                await p.run(remote_ladder.exit_with, code=4)
            await p._ended.wait()
            assert p._handle.returncode == 4

    trio.run(main)


def test_os_exit_in_a_subinterpreter_actor_is_an_error_of_that_actor():
    proc = run_child("""
        import trio, subactor
        from tests import remote_ladder
        async def main():
            async with subactor.open_nursery() as an:
                p = await an.start_actor("exits", enable_modules=["tests.remote_ladder"])
                try:
                    await p.run(remote_ladder.os_exit, code=3)
                except subactor.RemoteActorError as exc:
                    print("error:", exc.boxed_type_str, exc.remote_message[:60], flush=True)
                print("still", await p.run(remote_ladder.ready), flush=True)
                await p.cancel_actor()
            print("done", flush=True)
        trio.run(main)
    """, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert "error: RuntimeError os._exit(3) in actor 'exits' would end the whole process" in proc.stdout
    assert "still True" in proc.stdout and "done" in proc.stdout


# --- Ctrl-C: what the user sees --------------------------------------------------------


def test_ctrl_c_shows_one_clean_keyboard_interrupt():
    """No chained Cancelled group before the KeyboardInterrupt, in any of
    several runs with SIGINT at different moments."""
    code = """
        import sys, time, trio, subactor
        from tests import remote
        async def main():
            async with subactor.open_nursery(grace=0.5, kill_after=2) as an:
                p = await an.start_actor("a", enable_modules=["tests.remote"])
                q = await an.start_actor("b", enable_modules=["tests.remote"])
                print("ready", flush=True)
                async with trio.open_nursery() as tn:
                    tn.start_soon(p.run, remote.sleep_forever_async)
                    tn.start_soon(q.run, remote.spin)
                    await trio.sleep_forever()
        trio.run(main)
    """
    for delay in (0.0, 0.1, 0.3):
        rc, out, err, _, _ = sigint_child(code, settle=delay, bound=30)
        assert rc == -signal.SIGINT, (rc, err)
        assert err.count("Traceback") == 1 and err.rstrip().endswith("KeyboardInterrupt"), err
        assert "Cancelled" not in err and "ExceptionGroup" not in err, err
