"""The child program of bench_sigint_fuzz: a small actor tree that Ctrl-C
hits at some moment.

    python bench_sigint_fuzz_child.py GRACE KILL_AFTER STUCK STEADY

The tree, all under one root nursery (grace GRACE, kill_after KILL_AFTER):

- "nest", an actor that opens a nursery of its own and starts "grandchild"
  (stuck at a checkpoint);
- "echo", with a context and a stream open to it: the root sends a number
  every 10 ms and reads it back;
- a pool call (subactor.run_sync, shielded, 50 ms) in flight, again and
  again;
- "stuck", an actor in bench_ladder_remote.STUCK[STUCK] ("spin" or
  "gil_c").

It prints "@@T <phase> <time.monotonic()>" as it goes: "spawning" before
the first actor is started, "steady" once every part runs, "teardown" STEADY
seconds later (then it ends the tree itself), "done" when the tree is down.
The benchmark sends SIGINT at a random moment after "spawning".
"""
from __future__ import annotations

import os
import sys
import time
from functools import partial

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402

import subactor  # noqa: E402

import bench_ladder_remote as remote  # noqa: E402

MOD = remote.__name__


def mark(phase: str) -> None:
    print(f"@@T {phase} {time.monotonic():.6f}", flush=True)


async def _stream(portal, started: trio.Event) -> None:
    async with portal.open_context(remote.echo) as (ctx, _first):
        async with ctx.open_stream() as stream:
            i = 0
            while True:
                await stream.send(i)
                assert await stream.receive() == i
                started.set()
                i += 1
                await trio.sleep(0.01)


async def _pool(started: trio.Event) -> None:
    while True:
        await subactor.run_sync(remote.pool_work, 0.05)
        started.set()


async def main(grace: float, kill_after: float, stuck: str, steady: float) -> None:
    mark("spawning")
    r, w = os.pipe()
    async with subactor.open_nursery(grace=grace, kill_after=kill_after) as an:
        async with trio.open_nursery() as tn:
            nest = await an.start_actor("nest", enable_modules=[MOD])
            tn.start_soon(partial(nest.run, remote.nested, grace=grace, kill_after=kill_after, fd=w))
            echo = await an.start_actor("echo", enable_modules=[MOD])
            streaming = trio.Event()
            tn.start_soon(_stream, echo, streaming)
            pooled = trio.Event()
            tn.start_soon(_pool, pooled)
            stuck_p = await an.start_actor("stuck", enable_modules=[MOD])
            tn.start_soon(partial(stuck_p.run, remote.STUCK[stuck], fd=w))
            # The grandchild and the stuck actor each write one byte once
            # they are in place.
            with trio.fail_after(20):
                got = 0
                while got < 2:
                    await trio.lowlevel.wait_readable(r)
                    got += len(os.read(r, 2))
                await streaming.wait()
                await pooled.wait()
            mark("steady")
            await trio.sleep(steady)
            mark("teardown")
            tn.cancel_scope.cancel()
        await an.cancel()
    mark("done")


if __name__ == "__main__":
    grace, kill_after, stuck, steady = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    trio.run(main, grace, kill_after, stuck, steady)
