"""What an actor nursery raises when several things fail, and what it
cancels (docs/cancellation.md, "What the nursery raises"): every
run_in_actor actor's own failure is kept, the nursery's own cancellations
never appear, a lone error is bare."""
import pytest
import trio

import subactor
from subactor import RemoteActorError

from . import remote, remote_nursery

MOD = remote.__name__


def _remote_messages(eg):
    assert all(isinstance(e, RemoteActorError) for e in eg.exceptions), eg.exceptions
    return sorted(e.remote_message for e in eg.exceptions)


def test_every_run_in_actor_failure_is_kept_when_they_fail_at_once():
    # Each fails as soon as it runs, while the block is still starting the
    # others: none is cancelled by another's failure.
    n = 6

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                for i in range(n):
                    await an.run_in_actor(remote.raise_value_error, name=f"f{i}", msg=f"m{i}")

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main)
    assert _remote_messages(info.value) == sorted(f"m{i}" for i in range(n))
    assert all(e.boxed_type is ValueError for e in info.value.exceptions)


def test_every_run_in_actor_failure_is_kept_when_they_fail_one_after_another():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                for i in range(4):
                    await an.run_in_actor(remote.fail_later, name=f"f{i}", seconds=0.2 * (i + 1), msg=f"m{i}")

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main)
    assert _remote_messages(info.value) == ["m0", "m1", "m2", "m3"]


def test_a_sibling_still_running_returns_its_value():
    async def main():
        with trio.fail_after(60):
            with pytest.raises(RemoteActorError, match="boom"):
                async with subactor.open_nursery() as an:
                    await an.run_in_actor(remote.fail_in_child, name="failing", msg="boom")
                    slow = await an.run_in_actor(remote.sleep_then, name="slow", seconds=0.5, value="done")
            assert an.cancel_called
            assert await slow.wait_for_result() == "done"

    trio.run(main)


def test_the_block_reraising_a_failure_keeps_waiting_for_the_others():
    # The block re-raises one actor's failure: that is the same failure,
    # not a new error of the block, so the other actor is not cancelled and
    # its own failure is raised too (tractor's test_multierror).
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                await an.run_in_actor(remote.fail_later, name="later", seconds=0.5, msg="second")
                first = await an.run_in_actor(remote.raise_value_error, name="first", msg="first")
                await first.wait_for_result()

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main)
    assert _remote_messages(info.value) == ["first", "second"]


def test_the_block_reraising_failures_in_a_group_of_its_own_keeps_waiting():
    # A trio nursery in the block awaits two results and raises their
    # failures as its group: still the actors' failures, not the block's.
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                await an.run_in_actor(remote.fail_later, name="later", seconds=0.5, msg="third")
                a = await an.run_in_actor(remote.raise_value_error, name="a", msg="first")
                b = await an.run_in_actor(remote.raise_value_error, name="b", msg="second")
                async with trio.open_nursery() as tn:
                    tn.start_soon(a.wait_for_result)
                    tn.start_soon(b.wait_for_result)

    with pytest.raises(ExceptionGroup) as info:
        trio.run(main)
    assert _remote_messages(info.value) == ["first", "second", "third"]


def test_a_lone_reraised_failure_is_bare():
    async def main():
        async with subactor.open_nursery() as an:
            p = await an.run_in_actor(remote.raise_value_error, name="only", msg="once")
            await p.wait_for_result()

    with pytest.raises(RemoteActorError, match="once") as info:
        trio.run(main)
    assert info.value.boxed_type is ValueError


def test_a_block_error_cancels_run_in_actor_actors_and_keeps_earlier_failures():
    # One actor failed before the block's own error: both are raised; the
    # other actor, cancelled by the block's error, adds nothing.
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                failed = await an.run_in_actor(remote.raise_value_error, name="failed", msg="early")
                await an.run_in_actor(remote.sleep_then, name="sleeper", seconds=1000, value=1)
                with pytest.raises(RemoteActorError):
                    await failed.wait_for_result()  # the failure is in, the block goes on
                raise KeyError("block")

    with pytest.raises(BaseExceptionGroup) as info:
        trio.run(main)
    kinds = sorted(type(e).__name__ for e in info.value.exceptions)
    assert kinds == ["KeyError", "RemoteActorError"], info.value.exceptions


def test_a_failure_that_arrives_during_the_teardown_is_kept():
    # The block fails while an actor runs sync code that raises before its
    # grace is over: that failure is its own, not the nursery's cancel.
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(grace=10, kill_after=20) as an:
                await an.run_in_actor(remote_nursery.sync_fail_later, name="sync", seconds=0.5, msg="own")
                await trio.sleep(0.2)
                raise KeyError("block")

    with pytest.raises(BaseExceptionGroup) as info:
        trio.run(main)
    excs = info.value.exceptions
    assert sorted(type(e).__name__ for e in excs) == ["KeyError", "RemoteActorError"], excs
    assert next(e for e in excs if isinstance(e, RemoteActorError)).remote_message == "own"


def test_cancel_called_says_whether_the_nursery_cancelled_its_actors():
    async def clean():
        async with subactor.open_nursery() as an:
            p = await an.run_in_actor(remote.add, a=1, b=2)
        assert await p.wait_for_result() == 3
        return an.cancel_called

    async def block_error():
        try:
            async with subactor.open_nursery() as an:
                await an.start_actor("d", enable_modules=[MOD])
                raise KeyError("x")
        except KeyError:
            return an.cancel_called

    async def actor_error():
        try:
            async with subactor.open_nursery() as an:
                await an.start_actor("d", enable_modules=[MOD])
                await an.run_in_actor(remote.raise_value_error, msg="x")
        except RemoteActorError:
            return an.cancel_called

    async def main():
        with trio.fail_after(60):
            assert await clean() is False
            assert await block_error() is True
            assert await actor_error() is True

    trio.run(main)


def test_nested_groups_cross_as_remote_errors_of_the_group():
    # An actor whose own nursery raised a group fails with it: the parent
    # sees a RemoteActorError whose boxed type is ExceptionGroup.
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                await an.run_in_actor(remote_nursery.spawn_two_failing, name="spawner")

    with pytest.raises(RemoteActorError) as info:
        trio.run(main)
    assert info.value.boxed_type is ExceptionGroup
    assert "a1" in info.value.tb_str and "a2" in info.value.tb_str
