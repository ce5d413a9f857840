"""asyncio inside actors: infect_asyncio=True, subactor.to_asyncio, an
infected root (run_as_asyncio_guest), the ladder in an infected actor, and
a real asyncio library (httpx) in an own-GIL subinterpreter actor."""
import asyncio
import textwrap

import pytest
import trio

import subactor
from subactor import RemoteActorError, to_asyncio

from . import remote_asyncio as ra
from .conftest import run_child

MOD = ra.__name__
BACKENDS = ["subint", "process"]


def run(body, backend="subint", bound=60):
    """Start one infected actor of ``backend`` serving remote_asyncio and
    run ``body(portal)``; bounded before anything starts."""
    async def main():
        with trio.fail_after(bound):
            async with subactor.open_nursery(backend=backend) as an:
                p = await an.start_actor("aio", enable_modules=[MOD], infect_asyncio=True)
                try:
                    return await body(p)
                finally:
                    await p.cancel_actor()

    return trio.run(main)


def boxed(exc_info) -> type | None:
    return exc_info.value.boxed_type


# -- starting an infected actor ----------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_run_task_returns_the_asyncio_value(backend):
    async def body(p):
        return [await p.run(ra.state), await p.run(ra.add, a=2, b=3)]

    assert run(body, backend) == [[True, True], 5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_in_actor_infected(backend):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(backend=backend) as an:
                p = await an.run_in_actor(ra.echo_through, values=[1, "two", {"3": [3]}], infect_asyncio=True)
                return await p.wait_for_result()

    assert trio.run(main) == [[1, "two", {"3": [3]}, None], 3]


def test_a_plain_actor_is_not_infected_and_says_how_to_be():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("plain", enable_modules=[MOD])
                assert await p.run(ra.state) == [False, False]
                with pytest.raises(RemoteActorError) as info:
                    await p.run(ra.add, a=1, b=2)
                await p.cancel_actor()
        return info

    info = trio.run(main)
    assert boxed(info) is RuntimeError
    assert "infect_asyncio=True" in str(info.value)


def test_to_asyncio_in_the_root_under_trio_run_says_how():
    async def main():
        with pytest.raises(RuntimeError, match=r"run_as_asyncio_guest|infect_asyncio=True"):
            await to_asyncio.run_task(ra.aio_add, a=1, b=2)
        with pytest.raises(RuntimeError, match="infect_asyncio=True"):
            async with to_asyncio.open_channel_from(ra.echo):
                pass

    trio.run(main)


def test_bad_input_is_a_clear_error():
    async def main():
        async with subactor.open_nursery() as an:
            with pytest.raises(TypeError, match="infect_asyncio=.*must be a bool"):
                await an.start_actor("x", enable_modules=[MOD], infect_asyncio="yes")

    trio.run(main)

    async def body(p):
        errors = []
        for fn, kw in [("not_async", {}), ("aio_add", {"a": 1, "bee": 2})]:
            with pytest.raises(RemoteActorError) as info:
                await p.run(ra.run_task_of, fn_name=fn, **kw)
            errors.append((boxed(info), str(info.value)))
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.open_with, target_name="no_chan_param")
        errors.append((boxed(info), str(info.value)))
        return errors

    (t1, m1), (t2, m2), (t3, m3) = run(body)
    assert t1 is TypeError and "needs an async function" in m1 and "not_async" in m1
    assert t2 is TypeError and "bee" in m2
    assert t3 is TypeError and "chan" in m3 and "no_chan_param" in m3


# -- run_task: errors and cancellation both ways -------------------------------

def test_asyncio_error_crosses_with_its_type():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.run_task_of, fn_name="aio_raise", msg="boom")
        return info

    info = run(body)
    assert boxed(info) is ValueError and "boom" in str(info.value)


def test_trio_cancel_cancels_the_asyncio_task():
    async def body(p):
        return await p.run(ra.cancel_run_task, key="k")

    assert run(body) == [True, "CancelledError"]


def test_asyncio_self_cancel_is_asyncio_cancelled_on_the_trio_side():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.run_task_of, fn_name="aio_cancels_itself")
        return info

    info = run(body)
    assert boxed(info) is to_asyncio.AsyncioCancelled
    assert "on purpose" in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_actor_ends_an_asyncio_task_at_the_cooperative_rung(backend):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(backend=backend) as an:
                p = await an.start_actor("aio", enable_modules=[MOD], infect_asyncio=True)
                async with trio.open_nursery() as tn:
                    async def call():
                        with pytest.raises(subactor.ContextCancelled):
                            await p.run(ra.sleep_in_asyncio, key="k")
                    tn.start_soon(call)
                    await trio.sleep(0.2)
                    child = p._child
                    assert await p.cancel_actor()
                    assert child.rung == 1

    trio.run(main)


# -- open_channel_from -------------------------------------------------------------

def test_channel_streams_both_ways_then_end_of_channel():
    async def body(p):
        return await p.run(ra.echo_through, values=list(range(50)))

    assert run(body) == [[*range(50), None], 50]


def test_asyncio_return_ends_the_stream():
    async def body(p):
        return [await p.run(ra.pull, count=20),
                await p.run(ra.pull, count=20, fan_out=True)]

    plain, fanned = run(body)
    assert plain == [list(range(20)), "returned"]
    assert fanned == [list(range(20)), list(range(20)), "returned"]


def test_asyncio_exits_early_without_suppression_is_asyncio_task_exited():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.pull, count=20, exit_at=5, suppress=False)
        return info, await p.run(ra.stash_pop, key="got")

    info, got = run(body)
    assert boxed(info) is to_asyncio.AsyncioTaskExited
    assert got == list(range(6))   # everything it sent came first


def test_asyncio_error_cancels_the_trio_block_and_is_raised():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.pull, count=20, fail_at=5)
        return info, await p.run(ra.stash_pop, key="got")

    info, got = run(body)
    assert boxed(info) is KeyError
    assert got == list(range(6))


@pytest.mark.parametrize("suppress", [True, False])
def test_trio_leaves_early_cancels_the_asyncio_task(suppress):
    async def body(p):
        if suppress:
            return await p.run(ra.pull, count=1000, trio_exit_at=5, suppress=True)
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.pull, count=1000, trio_exit_at=5, suppress=False)
        return info, await p.run(ra.stash_pop, key="push")

    out = run(body)
    if suppress:
        assert out == [list(range(6)), "CancelledError, then TrioTaskExited, then TrioTaskExited"]
    else:
        info, how = out
        assert boxed(info) is to_asyncio.TrioTaskExited
        assert how == "CancelledError, then TrioTaskExited, then TrioTaskExited"


@pytest.mark.parametrize("fail_on_cancel", [False, True])
def test_trio_error_cancels_the_asyncio_task_and_wins(fail_on_cancel):
    # Also over an error the asyncio task raises once cancelled.
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.trio_fails_while_asyncio_runs, key="k", fail_on_cancel=fail_on_cancel)
        return info, await p.run(ra.stash_pop, key="k")

    info, how = run(body)
    assert boxed(info) is LookupError
    assert how == "CancelledError, then TrioCancelled, then TrioCancelled"


def test_asyncio_task_that_ends_before_started():
    async def body(p):
        out = []
        for target in ("raise_before_started", "return_before_started"):
            with pytest.raises(RemoteActorError) as info:
                await p.run(ra.open_with, target_name=target)
            out.append(boxed(info))
        return out

    assert run(body) == [RuntimeError, to_asyncio.AsyncioTaskExited]


# -- the ladder in an infected actor (children: they interrupt and abandon) ----

LADDER = """
    import os, tempfile, time, trio, warnings, subactor
    from tests import remote_asyncio as ra
    warnings.simplefilter("ignore")   # the abandon's AbandonedActorWarning

    async def main(tmp):
        flag = os.path.join(tmp, "in-task")
        async with subactor.open_nursery(grace=0.5, kill_after=1.5, backend={backend!r}) as an:
            p = await an.start_actor("aio", enable_modules=[ra.__name__], infect_asyncio=True)
            async with trio.open_nursery() as tn:
                async def call():
                    try:
                        await p.run(ra.{fn}, flag=flag)
                    except Exception as exc:
                        pass
                tn.start_soon(call)
                # Until it is in its asyncio task, past its last await (an
                # infected actor can take seconds to start on a busy machine).
                with trio.fail_after(30):
                    while not os.path.exists(flag):
                        await trio.sleep(0.02)
                await trio.sleep(0.1)
                child = p._child
                t0 = time.monotonic()
                await p.cancel_actor()
                print("rung", child.rung, "after", round(time.monotonic() - t0, 1), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, tmp)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_asyncio_task_that_never_yields_is_interrupted(backend):
    r = run_child(LADDER.format(backend=backend, fn="spin"), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["rung", "2"], (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr


def test_an_asyncio_task_blocked_in_c_is_abandoned():
    r = run_child(LADDER.format(backend="subint", fn="block_in_c"), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["rung", "3"], (r.stdout, r.stderr)


# -- an infected root --------------------------------------------------------------

def test_run_as_asyncio_guest_runs_the_root_infected():
    async def trio_main(n):
        assert asyncio.get_running_loop() is not None   # asyncio hosts this trio run
        with trio.fail_after(60):
            return await infected_root(n)

    async def infected_root(n):
        async with subactor.open_root_actor():
            assert subactor.current_actor().is_infected_aio()
            assert subactor.get_runtime_vars()["_is_infected_aio"]
            local = await to_asyncio.run_task(ra.aio_add, a=n, b=1)
            async with subactor.open_nursery() as an:
                p = await an.run_in_actor(ra.add, a=n, b=2, infect_asyncio=True)
                remote = await p.wait_for_result()
        return [local, remote]

    assert to_asyncio.run_as_asyncio_guest(trio_main, 40) == [41, 42]
    assert subactor.get_runtime_vars()["_is_infected_aio"] is False


def test_run_as_asyncio_guest_raises_a_lone_error_bare():
    async def trio_main():
        with trio.fail_after(30):
            async with trio.open_nursery() as tn:
                tn.start_soon(trio.sleep_forever)
                async with to_asyncio.open_channel_from(ra.raise_before_started):
                    pass

    with pytest.raises(RuntimeError, match="before started"):
        to_asyncio.run_as_asyncio_guest(trio_main)


def test_run_as_asyncio_guest_bad_input():
    with pytest.raises(TypeError, match="async function"):
        to_asyncio.run_as_asyncio_guest(ra.not_async)


def test_run_as_asyncio_guest_inside_an_actor_is_refused():
    async def body(p):
        with pytest.raises(RemoteActorError) as info:
            await p.run(ra.guest_in_actor)
        return info

    info = run(body)
    assert boxed(info) is RuntimeError and "infect_asyncio=True" in str(info.value)


# -- a real asyncio library in an own-GIL subinterpreter -----------------------------

async def _serve_http(chan):
    """A tiny asyncio HTTP/1.1 server on a free port of 127.0.0.1; its
    port is the channel's first value; it serves until the trio side leaves."""
    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        body = f"hello {path}".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Server: test-asyncio\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        chan.started_nowait(server.sockets[0].getsockname()[1])
        await chan.get()   # until the trio side leaves (TrioTaskExited) or is cancelled
    except to_asyncio.TrioTaskExited:
        pass
    finally:
        server.close()
        await server.wait_closed()


def test_httpx_in_an_infected_subinterpreter_actor():
    # httpx (asyncio, through anyio) loads in an own-GIL subinterpreter;
    # the server is the test's own, in this process's asyncio loop.
    async def trio_main():
        with trio.fail_after(60):
            async with to_asyncio.open_channel_from(_serve_http) as (chan, port):
                async with subactor.open_nursery() as an:
                    p = await an.start_actor("web", enable_modules=[MOD], infect_asyncio=True)
                    assert not await p.run(ra.httpx_loaded)
                    out = [await p.run(ra.fetch, url=f"http://127.0.0.1:{port}/a{i}") for i in range(3)]
                    await p.cancel_actor()
        return out

    assert to_asyncio.run_as_asyncio_guest(trio_main) == [[200, f"hello /a{i}", "test-asyncio"] for i in range(3)]


def test_an_asyncio_loop_stopped_under_trio_is_a_translation_error():
    # asyncio code that stops the loop hosting trio abandons trio's run:
    # said as AsyncioRuntimeTranslationError (a child: the abandoned run
    # is left to the garbage collector).
    r = run_child("""
        import asyncio, warnings
        warnings.simplefilter("ignore")
        from subactor import to_asyncio

        async def stop_the_loop():
            asyncio.get_running_loop().stop()
            await asyncio.sleep(3600)

        async def trio_main():
            await to_asyncio.run_task(stop_the_loop)

        try:
            to_asyncio.run_as_asyncio_guest(trio_main)
        except to_asyncio.AsyncioRuntimeTranslationError as exc:
            print("translation error:", "loop.stop()" in str(exc))
    """, timeout=60)
    assert r.stdout.strip() == "translation error: True", (r.stdout, r.stderr)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_infected_actor_runs_its_own_tree(backend):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(backend=backend) as an:
                p = await an.run_in_actor(ra.tree, infect_asyncio=True)
                return await p.wait_for_result()

    assert trio.run(main) == [3, 7, 11]


def test_ctrl_c_in_an_infected_root():
    # One KeyboardInterrupt: the root's asyncio task and the infected
    # actor's are cancelled on the way out, nothing is printed.
    from .conftest import sigint_child

    code = """
        import trio, subactor
        from subactor import to_asyncio
        from tests import remote_asyncio as ra

        async def main():
            async with subactor.open_nursery() as an:
                p = await an.start_actor("aio", enable_modules=[ra.__name__], infect_asyncio=True)
                async with trio.open_nursery() as tn:
                    tn.start_soon(lambda: p.run(ra.sleep_in_asyncio, key="k"))
                    tn.start_soon(lambda: to_asyncio.run_task(ra.aio_sleep_recording, key="root"))
                    await trio.sleep(0.2)
                    print("ready", flush=True)
                    await trio.sleep_forever()

        try:
            to_asyncio.run_as_asyncio_guest(main)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", ra.STASH.get("root"), flush=True)
    """
    rc, out, err, _, elapsed = sigint_child(code, bound=30)
    assert rc == 0, err
    assert out.split() == ["KeyboardInterrupt", "CancelledError"], (out, err)
    assert err == "", err
