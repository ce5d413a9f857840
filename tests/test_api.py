"""The trio API with tractor's names: nursery, portals, RPC, spawning.

Written fresh for the behaviours tractor's test_spawning.py and
test_cancellation.py cover (contexts and streams: test_context.py)."""
import sys

import pytest
import trio

import subactor
from subactor import ActorNotAvailable, ModuleNotExposed, RemoteActorError

from . import remote

MOD = remote.__name__


def run(fn, *args):
    return trio.run(fn, *args)


def module_level_in_test_module(x):
    """A function of the test module itself, called in an actor."""
    return x * 2


# --- spawning -----------------------------------------------------------------


def test_start_actor_run_sync_and_async():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("calc", enable_modules=[MOD])
            assert await p.run(remote.add, a=1, b=2) == 3
            assert await p.run(remote.async_add, a=3, b=4) == 7
            assert await p.run_from_ns(MOD, "add", a=5, b=6) == 11
            await p.cancel_actor()

    run(main)


def test_actor_identity_and_no_trio_for_sync_only():
    async def main():
        async with subactor.open_nursery() as an:
            root = subactor.current_actor()
            assert root.name == "root" and root.is_root
            p = await an.start_actor("ident", enable_modules=[MOD])
            name, uid, trio_loaded = await p.run(remote.whoami)
            assert name == "ident" and p.uid == ("ident", uid)
            assert p.channel.uid == p.chan.uid == ("ident", uid)   # tractor's Channel.uid
            # An actor that only ran sync functions never imported trio.
            assert trio_loaded is False
            await p.run(remote.async_add, a=1, b=1)
            assert await p.run(remote.trio_loaded) is True
            await p.cancel_actor()

    run(main)


@pytest.mark.parametrize("backend", ["subint", "process"])
def test_sync_calls_in_a_trio_mode_actor(backend):
    # Once an actor serves an async call it is in trio mode; its sync calls
    # then run in its message loop: their values, errors, unsendable
    # results and their order with the actor's end are as for any call.
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            p = await an.start_actor("mixed", enable_modules=[MOD])
            assert await p.run(remote.async_add, a=1, b=1) == 2   # now in trio mode
            assert await p.run(remote.add, a=2, b=3) == 5
            with pytest.raises(RemoteActorError, match="boom") as info:
                await p.run(remote.raise_value_error, msg="boom")
            assert info.value.boxed_type is ValueError
            with pytest.raises(RemoteActorError, match="cannot be sent back"):
                await p.run(remote.not_serializable)
            big = await p.run(remote.echo_bytes, n=8 << 20)   # more than the channel takes at once
            assert len(big) == 8 << 20
            async with trio.open_nursery() as n:
                got = []

                async def one(i):
                    got.append(await p.run(remote.add, a=i, b=0))

                for i in range(50):
                    n.start_soon(one, i)
            assert sorted(got) == list(range(50))
            name, _, trio_loaded = await p.run(remote.whoami)
            assert name == "mixed" and trio_loaded
            await p.cancel_actor()

    run(main)


def test_run_in_actor_results_and_nursery_waits():
    async def main():
        async with subactor.open_nursery() as an:
            portals = [await an.run_in_actor(remote.add, name=f"adder-{i}", a=i, b=i) for i in range(4)]
            p_async = await an.run_in_actor(remote.sleep_then, seconds=0.05, value="late")
        # The block waited: every result is there.
        assert [await p.wait_for_result() for p in portals] == [0, 2, 4, 6]
        assert await p_async.result() == "late"

    run(main)


def test_function_of_the_test_module_runs_in_an_actor():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.run_in_actor(module_level_in_test_module, x=21)
            assert await p.wait_for_result() == 42

    run(main)


def test_many_concurrent_rpcs_in_one_actor():
    async def main():
        results = {}
        async with subactor.open_nursery() as an:
            p = await an.start_actor("busy", enable_modules=[MOD])

            async def one(i):
                results[i] = await p.run(remote.sleep_then, seconds=0.2, value=i)

            with trio.fail_after(30):
                async with trio.open_nursery() as tn:
                    for i in range(50):
                        tn.start_soon(one, i)
            await p.cancel_actor()
        assert results == {i: i for i in range(50)}

    run(main)


# --- errors -----------------------------------------------------------------


def test_remote_error_boxed_with_traceback():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("err", enable_modules=[MOD])
            with pytest.raises(RemoteActorError) as info:
                await p.run(remote.raise_value_error, msg="nope")
            err = info.value
            assert err.boxed_type is ValueError
            assert err.src_actor == "err"
            assert "raise_value_error" in err.tb_str and "ValueError: nope" in err.tb_str
            with pytest.raises(RemoteActorError) as info:
                await p.run(remote.async_raise, msg="k")
            assert info.value.boxed_type is KeyError
            # The actor survived both errors.
            assert await p.run(remote.add, a=1, b=1) == 2
            await p.cancel_actor()

    run(main)


def test_module_not_exposed():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("closed", enable_modules=[])
            with pytest.raises(ModuleNotExposed, match=MOD):
                await p.run(remote.add, a=1, b=2)
            await p.cancel_actor()

    run(main)


def test_bad_calls_give_clear_errors_and_the_actor_keeps_working():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("robust", enable_modules=[MOD, "json"])
            with pytest.raises(TypeError, match="lambda"):
                await p.run(lambda: 1)

            def closure():
                return 1

            with pytest.raises(TypeError, match="closure"):
                await p.run(closure)
            with pytest.raises(TypeError, match=r"cannot be sent.*object"):
                await p.run(remote.add, a=object(), b=1)
            with pytest.raises(RemoteActorError, match="no function 'nope'") as info:
                await p.run_from_ns(MOD, "nope")
            assert info.value.boxed_type is AttributeError
            with pytest.raises(ModuleNotExposed):
                await p.run_from_ns("os", "getpid")
            with pytest.raises(RemoteActorError, match="cannot be sent back"):
                await p.run(remote.not_serializable)
            with pytest.raises(TypeError, match="context"):
                async with p.open_context(remote.not_a_context):
                    pass
            with pytest.raises(TypeError, match="open_context"):
                await p.run(remote.echo_started, value=1)
            with pytest.raises(TypeError, match="function object"):
                await p.run("add")
            # ... and after all that, it still answers.
            assert await p.run(remote.add, a=2, b=2) == 4
            assert await p.run_from_ns("json", "dumps", obj=[1]) == "[1]"
            await p.cancel_actor()

    run(main)


def test_portal_of_dead_actor_raises_clearly():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("short-lived", enable_modules=[MOD])
            assert await p.cancel_actor() is True
            with pytest.raises(ActorNotAvailable, match="short-lived"):
                await p.run(remote.add, a=1, b=2)

    run(main)


def test_error_in_run_in_actor_cancels_the_block_and_start_actor_actors_one_cancels_all():
    # Once no run_in_actor actor runs any more, a failure among them cancels
    # the block (which would wait forever) and the start_actor actors.
    async def main():
        with trio.fail_after(60):
            with trio.move_on_after(20) as bound:
                with pytest.raises(RemoteActorError) as info:
                    async with subactor.open_nursery() as an:
                        sleeper = await an.start_actor("sleeper", enable_modules=[MOD])
                        await an.run_in_actor(remote.fail_in_child, name="failing", msg="boom")
                        await trio.sleep_forever()  # the failure cancels this
            assert not bound.cancelled_caught
            assert info.value.boxed_type is ValueError and info.value.src_actor == "failing"
            assert not sleeper._alive and an.cancel_called

    run(main)


def test_error_in_nursery_block_cancels_actors():
    async def main():
        with trio.fail_after(30):
            with pytest.raises(ZeroDivisionError):
                async with subactor.open_nursery() as an:
                    p = await an.start_actor("victim", enable_modules=[MOD])
                    await p.run(remote.add, a=1, b=1)
                    1 / 0
            assert p._ended.is_set()

    run(main)


def test_cancel_scope_around_portal_run_cancels_the_call():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("cancellable", enable_modules=[MOD])
            with trio.move_on_after(0.3) as scope:
                await p.run(remote.sleep_forever_async)
            assert scope.cancelled_caught
            # The actor is still there.
            assert await p.run(remote.add, a=1, b=2) == 3
            await p.cancel_actor()

    run(main)


def test_nursery_cancel_ends_all_actors():
    async def main():
        async with subactor.open_nursery() as an:
            ps = [await an.start_actor(f"d{i}", enable_modules=[MOD]) for i in range(3)]
            for p in ps:
                assert await p.run(remote.add, a=1, b=1) == 2
            await an.cancel()
            assert all(p._ended.is_set() for p in ps)

    run(main)


def test_cancel_actor_with_running_async_call_reports_cancelled():
    async def main():
        async with subactor.open_nursery() as an:
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
                await p.cancel_actor()
            assert len(errors) == 1
            assert isinstance(errors[0], (subactor.ContextCancelled, ActorNotAvailable))

    run(main)


def test_nested_actor_tree():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("level-2", enable_modules=[MOD])
            async with p.open_context(remote.spawn_grandchild, depth=2) as (ctx, first):
                assert first == "level-2"
                names = await ctx.wait_for_result()
            assert names == ["level-2", "level-1", "level-0"]
            await p.cancel_actor()

    run(main)


def test_actor_sees_parent_sys_path():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("paths", enable_modules=[MOD])
            assert await p.run(remote.get_sys_path) == [x or "." for x in sys.path]
            await p.cancel_actor()

    run(main)


def test_an_enabled_module_that_cannot_import_ends_the_actor_at_once():
    """The call goes to a good module; the bad one must still fail the
    actor at its start (not hang the call, not pass unnoticed)."""
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("imports", enable_modules=["tests.remote", "tests.remote_badimport"])
                with pytest.raises(subactor.ActorNotAvailable) as info:
                    await p.run(remote.sleep_then, seconds=60, value=1)
                text = str(info.value)
                assert "tests.remote_badimport" in text and "no_such_module_for_subactor_tests" in text, text

    trio.run(main)


@pytest.mark.parametrize("how", ["run_in_actor", "start_actor"])
def test_an_actor_that_fails_on_its_own_is_an_error_of_the_nursery(how):
    """Not a silent end: a run_in_actor actor whose enabled module does not
    import, and a start_actor actor that fails while nobody calls it."""
    async def main():
        with trio.fail_after(30):
            async with subactor.open_nursery() as an:
                if how == "run_in_actor":
                    await an.run_in_actor(remote.add, a=1, b=2, enable_modules=["tests.remote_badimport"])
                else:
                    await an.start_actor("fails", enable_modules=["tests.remote_badimport"])
                await trio.sleep(30)   # woken by the failure, not by this bound

    with pytest.raises(ActorNotAvailable) as info:
        trio.run(main)
    assert "tests.remote_badimport" in str(info.value), str(info.value)


def test_portal_run_by_module_path_and_name_as_tractors_older_form():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("named", enable_modules=[remote.__name__])
                with pytest.warns(DeprecationWarning, match="run_from_ns"):
                    assert await p.run(remote.__name__, "add", a=1, b=2) == 3
                with pytest.raises(TypeError, match="module path"):
                    await p.run(remote.add, "add")
                # A keyword of the remote function's named fn_name is its own.
                assert await p.run(remote.takes_fn_name, fn_name="x") == "x"
                with pytest.raises(TypeError, match="name as a str"):
                    await p.run(remote.__name__)
                await an.cancel()

    trio.run(main)


def test_an_actor_spawns_actors_that_serve_the_programs_main_script(tmp_path):
    # In an actor the script is loaded as __mp_main__ (its __name__ there):
    # enable_modules=[__name__] from it still means the program's __main__,
    # and the grandchild loads the same script.
    import subprocess
    import sys
    import textwrap

    from .conftest import CHILD_PRELUDE, ROOT

    script = tmp_path / "tree.py"
    script.write_text(textwrap.dedent("""
        import os, trio, subactor

        def leaf():
            return subactor.current_actor().name, os.getpid()

        async def spawn_leaf():
            async with subactor.open_nursery() as an:
                p = await an.start_actor("leaf", enable_modules=[__name__])
                got = await p.run(leaf)
                await an.cancel()
                return got

        async def main():
            with trio.fail_after(60):
                async with subactor.open_nursery() as an:
                    p = await an.start_actor("mid", enable_modules=[__name__])
                    print(await p.run(spawn_leaf))
                    await an.cancel()

        if __name__ == "__main__":
            """ + CHILD_PRELUDE.strip() + """
            trio.run(main)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("('leaf', "), out.stdout
