"""Discovery inside one process: actors find each other through the root's
hub and call each other over a direct channel (subactor.discovery).

Pins: find_actor / wait_for_actor / get_registry / query_actor by
tractor's names; peer portals (run, errors with the peer's uid, contexts
with streams both ways, leaving the block cancels what was left running
in the peer and only that, a peer's cancel_actor ends the peer);
registration from spawn to end, whatever the end (cancel, an error of its
own, an abandon); bad input.
"""
import os

import pytest
import trio

import subactor
from subactor import RemoteActorError

from . import remote_discovery as rd
from .conftest import run_child, run_bounded as run

MOD = rd.__name__




async def names():
    async with subactor.get_registry() as reg:
        return sorted(k.split(".")[0] for k in await reg.run_from_ns("self", "get_registry"))


def test_an_actor_calls_a_peer_it_found_by_name():
    async def main():
        async with subactor.open_nursery() as an:
            alice = await an.start_actor("alice", enable_modules=[MOD])
            bob = await an.start_actor("bob", enable_modules=[MOD])
            who = await bob.run(rd.call_peer, name="alice", fn_name="whoami")
            assert who == [alice.uid[0], alice.uid[1]]
            await an.cancel()

    run(main)


def test_the_root_finds_an_actor_and_a_missing_name_is_none():
    async def main():
        async with subactor.open_nursery() as an:
            a = await an.start_actor("alice", enable_modules=[MOD])
            async with subactor.find_actor("alice") as p:
                assert p is not None and p.uid == a.uid
                assert await p.run(rd.whoami) == list(a.uid)
            async with subactor.find_actor("nobody") as p:
                assert p is None
            with pytest.raises(RuntimeError, match="nobody"):
                async with subactor.find_actor("nobody", raise_on_none=True):
                    pass
            # ... also from an actor
            assert await a.run(rd.find_missing, name="nobody") is True
            await an.cancel()

    run(main)


def test_only_first_false_gives_a_portal_to_each_actor_of_the_name():
    async def main():
        async with subactor.open_nursery() as an:
            w1 = await an.start_actor("worker", enable_modules=[MOD])
            w2 = await an.start_actor("worker", enable_modules=[MOD])
            other = await an.start_actor("other", enable_modules=[MOD])
            got = await other.run(rd.all_named, name="worker")
            assert got == sorted([list(w1.uid), list(w2.uid)])
            await an.cancel()

    run(main)


def test_registry_holds_each_actor_from_spawn_to_end():
    async def main():
        async with subactor.open_nursery() as an:
            a = await an.start_actor("alice", enable_modules=[MOD])
            b = await an.start_actor("bob", enable_modules=[MOD])
            assert await names() == ["alice", "bob", "root"]
            # an actor sees the same registry
            assert await a.run(rd.registry_names) == ["alice", "bob", "root"]
            await b.cancel_actor()
            assert await names() == ["alice", "root"]
            async with subactor.get_registry() as reg:
                assert reg.actor is subactor.current_actor()
                assert await reg.run_from_ns("self", "find_actor", name="bob") is None
            await an.cancel()
        assert await names() == ["root"]

    async def outer():
        async with subactor.open_root_actor():
            await main()

    run(outer)


def test_an_actor_that_fails_on_its_own_is_unregistered():
    async def main():
        async with subactor.open_root_actor():
            with pytest.raises(RemoteActorError, match="gone wrong"):
                async with subactor.open_nursery() as an:
                    await an.run_in_actor(rd.boom, msg="gone wrong", name="crasher")
            assert await names() == ["root"]

    run(main)


def test_errors_of_a_peer_name_the_peer():
    async def main():
        async with subactor.open_nursery() as an:
            alice = await an.start_actor("alice", enable_modules=[MOD])
            bob = await an.start_actor("bob", enable_modules=[MOD])
            got = await bob.run(rd.peer_error, name="alice", msg="bad value")
            assert got["type"] == "ValueError"
            assert got["src"] == list(alice.uid)
            assert "bad value" in got["msg"]
            await an.cancel()

    run(main)


def test_a_context_with_a_peer_streams_both_ways():
    async def main():
        async with subactor.open_nursery() as an:
            await an.start_actor("alice", enable_modules=[MOD])
            bob = await an.start_actor("bob", enable_modules=[MOD])
            got = await bob.run(rd.stream_with_peer, name="alice", items=["a", "b", "c"], n=100)
            assert got == {"first": "ready", "echo": ["alice:a", "alice:b", "alice:c"],
                           "tail": list(range(100)), "result": 3}
            await an.cancel()

    run(main)


def test_leaving_the_block_cancels_what_ran_in_the_peer_and_the_peer_goes_on():
    async def main():
        async with subactor.open_nursery() as an:
            alice = await an.start_actor("alice", enable_modules=[MOD])
            bob = await an.start_actor("bob", enable_modules=[MOD])
            assert await bob.run(rd.call_and_leave, name="alice", key="left") is True
            with trio.fail_after(10):
                while await alice.run(rd.stash_pop, key="left") != "cancelled":
                    await trio.sleep(0.02)
            # alice still serves, her parent and her peers
            assert await alice.run(rd.whoami) == list(alice.uid)
            assert await bob.run(rd.call_peer, name="alice", fn_name="whoami") == list(alice.uid)
            await an.cancel()

    run(main)


def test_a_peer_can_end_an_actor_with_cancel_actor():
    async def main():
        async with subactor.open_nursery() as an:
            await an.start_actor("alice", enable_modules=[MOD])
            bob = await an.start_actor("bob", enable_modules=[MOD])
            assert await bob.run(rd.cancel_peer, name="alice") is True
            with trio.fail_after(10):
                while "alice" in await names():
                    await trio.sleep(0.02)
            await an.cancel()

    run(main)


def test_wait_for_actor_waits_for_the_spawn():
    async def main():
        async with subactor.open_nursery() as an:
            got = []

            async def waiter():
                async with subactor.wait_for_actor("late") as p:
                    got.append(await p.run(rd.whoami))

            async with trio.open_nursery() as tn:
                tn.start_soon(waiter)
                await trio.sleep(0.2)
                assert got == []
                late = await an.start_actor("late", enable_modules=[MOD])
            assert got == [list(late.uid)]
            await an.cancel()

    run(main)


def test_wait_for_actor_is_bounded_by_its_caller():
    async def main():
        async with subactor.open_nursery():
            with trio.move_on_after(0.3) as scope:
                async with subactor.wait_for_actor("never"):
                    pass
            assert scope.cancelled_caught

    run(main)


def test_a_peer_calls_the_roots_enabled_modules():
    async def main():
        async with subactor.open_root_actor(name="boss", enable_modules=[MOD]):
            async with subactor.open_nursery() as an:
                a = await an.start_actor("alice", enable_modules=[MOD])
                root = subactor.current_actor()
                assert await a.run(rd.call_peer, name="boss", fn_name="whoami") == [root.name, root.aid.uuid]
                await an.cancel()

    run(main)


def test_query_actor_names_where_an_actor_is():
    async def main():
        async with subactor.open_nursery() as an:
            a = await an.start_actor("alice", enable_modules=[MOD])
            async with subactor.query_actor("alice") as (addr, reg):
                assert addr == ("inproc", a.uid[1])
                assert reg is not None
            async with subactor.query_actor("nobody") as (addr, _):
                assert addr is None
            await an.cancel()

    run(main)


def test_bad_input_gets_clear_errors():
    with pytest.raises(subactor.NoRuntime):
        trio.run(_enter, subactor.find_actor("x"))

    async def main():
        async with subactor.open_nursery():
            with pytest.raises(TypeError, match="non-empty str"):
                async with subactor.find_actor(123):
                    pass
            with pytest.raises(TypeError, match="not an address"):
                async with subactor.find_actor("x", registry_addrs=[object()]):
                    pass
            async with subactor.get_registry() as reg:
                with pytest.raises(NotImplementedError, match="get_registry"):
                    await reg.run_from_ns("os", "system", command="true")

    run(main)


async def _enter(mgr):
    async with mgr:
        pass


def test_garbage_from_a_peer_costs_only_its_connection():
    async def main():
        async with subactor.open_nursery() as an:
            a = await an.start_actor("alice", enable_modules=[MOD])
            # bring alice into trio mode, so she serves peers at once
            assert await a.run(rd.call_peer, name="alice", fn_name="whoami") == list(a.uid)
            async with subactor.find_actor("alice") as p:
                p.channel.end.send_nowait(b"\xc1 not a message")
                with trio.fail_after(10):
                    while p._alive:
                        await trio.sleep(0.02)
            assert await a.run(rd.whoami) == list(a.uid)
            async with subactor.find_actor("alice") as p:
                assert await p.run(rd.whoami) == list(a.uid)
            await an.cancel()

    run(main)


def test_an_abandoned_actor_is_unregistered(tmp_path):
    # Abandoning leaves a thread running until the process ends: in a child.
    code = f"""
        import trio, subactor, warnings
        warnings.simplefilter("ignore")
        from tests import remote_ladder

        async def names():
            async with subactor.get_registry() as reg:
                return sorted(k.split(".")[0] for k in await reg.run_from_ns("self", "get_registry"))

        async def hog(p):
            try:
                await p.run(remote_ladder.gil_hog, path={str(tmp_path / "mark")!r})
            except subactor.ActorNotAvailable:
                pass

        async def main():
            async with subactor.open_nursery(grace=0.2, kill_after=0.5) as an:
                await an.start_actor("fine", enable_modules=["tests.remote_ladder"])
                p = await an.start_actor("stuck", enable_modules=["tests.remote_ladder"])
                async with trio.open_nursery() as tn:
                    tn.start_soon(hog, p)
                    await trio.sleep(0.5)
                    print(await names())
                    assert not await p.cancel_actor()   # abandoned
                    tn.cancel_scope.cancel()
                print(await names())
                await an.cancel()

        trio.run(main)
    """
    out = run_child(code, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-2:] == ["['fine', 'root', 'stuck']", "['fine', 'root']"]


def test_a_peer_that_leaves_before_the_actor_attached_costs_nothing():
    async def main():
        async with subactor.open_nursery() as an:
            a = await an.start_actor("alice", enable_modules=[MOD])
            b = await an.start_actor("bob", enable_modules=[MOD])
            await a.run(rd.call_peer, name="alice", fn_name="whoami")   # trio mode: serves peers
            assert await b.run(rd.find_and_leave, name="alice", n=200) == 200
            assert await a.run(rd.whoami) == list(a.uid)
            await an.cancel()

    run(main)


def test_channels_handed_to_an_actor_that_never_attached_them_go_with_it():
    # An actor that ends before attaching its hub channel (interrupted while
    # starting) leaves that channel, and a peer channel the hub handed it,
    # with messages queued toward a side nobody will attach: the hub must
    # close those sides when the actor is gone (the leak fixture checks).
    from subactor import _ext
    from subactor.discovery import _hub

    async def main():
        async with subactor.open_nursery():
            hub = _hub.local()
            hub_chan = _ext.channel()
            hub.adopt(hub_chan, "starting", "u" * 32, 1)
            cid, aid = hub._connect(("starting", "u" * 32), ("asker", "a" * 32, 1))
            assert aid[0] == "starting"
            asker = _ext.ChannelEnd(cid, 0)
            asker.send(_ext.dumps({"t": "run", "cid": 1, "ns": MOD, "fn": "whoami"}))
            asker.close()
            hub.gone(("starting", "u" * 32))
            await trio.sleep(0)
            for c in (hub_chan, cid):
                assert _ext._chan_info(c) is None, (c, _ext._chan_info(c))

    run(main)


def test_process_actors_are_registered_and_reach_and_are_reached_by_peers():
    # A process actor's hub link is a socket pair; peers reach it on its own
    # Unix socket, and it reaches this process's actors through the root's.
    async def main():
        async with subactor.open_root_actor(enable_modules=[MOD]), subactor.open_nursery() as an:
            p = await an.start_actor("proc", enable_modules=[MOD], backend="process")
            q = await an.start_actor("proc2", enable_modules=[MOD], backend="process")
            s = await an.start_actor("sub", enable_modules=[MOD])
            ppid = await p.run(rd.pid)
            assert ppid != os.getpid()
            assert {"proc", "proc2", "sub", "root"} <= set(await names())
            async with subactor.find_actor("proc") as portal:          # root -> process actor
                assert await portal.run(rd.pid) == ppid
                assert portal.chan.raddr.unwrap()[1].endswith(".sock")  # over its Unix socket
            async with subactor.find_actor("sub") as portal:
                assert portal.chan.raddr.unwrap() == ("inproc", portal.chan.aid.uuid)
                assert portal.actor is subactor.current_actor()
            assert await s.run(rd.call_peer, name="proc", fn_name="pid") == ppid        # subint -> process
            assert await p.run(rd.call_peer, name="sub", fn_name="pid") == os.getpid()  # process -> subint
            assert await q.run(rd.call_peer, name="proc", fn_name="pid") == ppid        # process -> process
            assert await p.run(rd.call_peer, name="root", fn_name="pid") == os.getpid()  # process -> root
            err = await s.run(rd.peer_error, name="proc", msg="from a peer")
            assert err["type"] == "ValueError" and err["src"][0] == "proc" and "from a peer" in err["msg"]
            await an.cancel()

    run(main)


def test_a_killed_process_actor_leaves_the_registry():
    async def main():
        async with subactor.open_root_actor():
            with pytest.raises(subactor.ActorNotAvailable, match="SIGKILL"):
                async with subactor.open_nursery() as an:
                    p = await an.start_actor("doomed", enable_modules=[MOD], backend="process")
                    assert "doomed" in await names()
                    os.kill(await p.run(rd.pid), 9)
                    await trio.sleep_forever()   # the nursery fails with it
            assert "doomed" not in await names()

    run(main)
