"""Cancellation benchmark: time from a cancel request to the actor's end,
for each rung of the ladder.

Run: .venv/bin/python bench/bench_cancel.py [--quick]

Rungs: 1 a checkpointing actor (trio.sleep_forever), 2 a `while True: pass`
actor (measured from the grace deadline), 3 an actor blocked in C
(time.sleep(1000)), abandoned at the hard deadline (measured against it).
Anchors in the same run: multiprocessing.Process.terminate() and .kill() of
a busy process (call to join), and trio_parallel.run_sync(cancellable=True)
of a busy loop (cancel to return).
Goals: rung 1 <= 5 ms; rung 2 <= 20 ms after the grace deadline; rung 3 at
the hard deadline +-10%.
Rung 3 leaves abandoned actors behind (blocked in C): this process ends
with os._exit-style shutdown afterwards, as designed.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402
from _table import print_table  # noqa: E402

import subactor  # noqa: E402

import bench_cancel_remote as remote  # noqa: E402

MOD = remote.__name__
GRACE = 0.2
KILL_AFTER = 0.5


def _busy():
    while True:
        pass


async def _rung(fn, n, ready, grace=GRACE, kill_after=KILL_AFTER):
    out = []
    async with subactor.open_nursery(grace=grace, kill_after=kill_after) as an:
        for i in range(n):
            p = await an.start_actor(f"victim-{i}", enable_modules=[MOD])
            assert await p.run(ready) is True

            async def call():
                try:
                    await p.run(fn)
                except Exception:
                    pass

            async with trio.open_nursery() as tn:
                tn.start_soon(call)
                await trio.sleep(0.05)
                t0 = time.perf_counter()
                await p.cancel_actor()
                t1 = time.perf_counter()
                await p._ended.wait()
                out.append((t1 - t0, p.rung, time.perf_counter() - t0))
    return out


def subactor_rows(quick: bool) -> list[dict]:
    import warnings

    n = 5 if quick else 15
    rows = []
    r1 = trio.run(_rung, remote.sleep_forever_async, n, remote.ready_trio)
    assert all(r == 1 for _, r, _ in r1), r1
    rows.append(dict(group="cancel to end", case="subactor rung 1: checkpointing actor (trio), cancel to ack",
                     median=statistics.median(t for t, _, _ in r1) * 1e3, unit="ms", note="goal <= 5 ms"))
    rows.append(dict(group="cancel to end", case="subactor rung 1: ... to interpreter ended and joined",
                     median=statistics.median(t for _, _, t in r1) * 1e3, unit="ms",
                     note="Py_EndInterpreter of an interpreter that imported trio"))
    r2 = trio.run(_rung, remote.spin, n, remote.ready_sync)
    assert all(r == 2 for _, r, _ in r2), r2
    rows.append(dict(group="cancel to end", case=f"subactor rung 2: tight loop (sync actor), after the {GRACE}s grace",
                     median=statistics.median(t - GRACE for t, _, _ in r2) * 1e3, unit="ms",
                     note="goal <= 20 ms after grace"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r3 = trio.run(_rung, remote.sleep_forever, 3 if quick else 5, remote.ready_sync)
    assert all(r == 3 for _, r, _ in r3), r3
    med = statistics.median(t for t, _, _ in r3)
    rows.append(dict(group="cancel to end", case=f"subactor rung 3: blocked in C, hard deadline {KILL_AFTER}s",
                     median=med * 1e3, unit="ms", ratio=med / KILL_AFTER,
                     note=f"ratio to the deadline (goal 0.9-1.1); worst {max(t for t, _, _ in r3) / KILL_AFTER:.3f}"))
    return rows


def mp_rows(quick: bool) -> list[dict]:
    rows = []
    ctx = mp.get_context("fork")
    for how in ("terminate", "kill"):
        ts = []
        for _ in range(5 if quick else 15):
            p = ctx.Process(target=_busy)
            p.start()
            time.sleep(0.05)
            t0 = time.perf_counter()
            getattr(p, how)()
            p.join()
            ts.append(time.perf_counter() - t0)
        rows.append(dict(group="cancel to end", case=f"multiprocessing Process.{how}() of a busy process",
                         median=statistics.median(ts) * 1e3, unit="ms"))
    return rows


async def _trio_parallel(n):
    import trio_parallel

    ts = []
    async with trio_parallel.open_worker_context() as wctx:
        await wctx.run_sync(int)  # warm a worker
        for _ in range(n):
            with trio.CancelScope() as scope:
                async def cancel_later():
                    await trio.sleep(0.05)
                    ts.append(time.perf_counter())
                    scope.cancel()

                async with trio.open_nursery() as tn:
                    tn.start_soon(cancel_later)
                    await wctx.run_sync(_busy, cancellable=True)
            ts[-1] = time.perf_counter() - ts[-1]
    return ts


def trio_parallel_rows(quick: bool) -> list[dict]:
    ts = trio.run(_trio_parallel, 5 if quick else 10)
    return [dict(group="cancel to end", case="trio_parallel.run_sync(cancellable=True), busy loop",
                 median=statistics.median(ts) * 1e3, unit="ms")]


def run(quick: bool = False) -> list[dict]:
    return mp_rows(quick) + trio_parallel_rows(quick) + subactor_rows(quick)


if __name__ == "__main__":
    print_table("cancellation", run(quick="--quick" in sys.argv))
