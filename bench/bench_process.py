"""Process backend benchmark: spawn, round trip and stream throughput of
process actors, against subinterpreter actors and multiprocessing.

Run: .venv/bin/python bench/bench_process.py [--quick]

Cases:
- spawn to first answer: ``start_actor`` until the first ``portal.run``
  of a sync function has answered (the child never imports trio), for
  ``backend="process"`` and the default subinterpreter backend; anchors:
  multiprocessing fork and spawn, Process start until a Pipe answer.
- round trip: ``portal.run`` of a sync function (actor in sync mode) and of
  an async one (actor in trio mode), p50 with p99 in the note; anchor: a
  multiprocessing Pipe round trip between two processes.
- stream throughput: 1 MiB ``bytes`` items over a context's stream, the
  actor sending to the parent and the parent sending to the actor, in MB/s
  (1 MB = 10^6 bytes); anchor: multiprocessing Pipe ``send_bytes`` of 1 MiB.

The functions the actors run live in this module (imported by name as
``bench_process`` in the actors).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import subactor  # noqa: E402
from _anchors import pct, pipe_round_trips, start_to_first_answer  # noqa: E402
from bench_api_remote import add, async_add, trio_loaded  # noqa: E402

MB = 1_000_000
BLOB = 1 << 20


# -- functions run inside the actors ----------------------------------------------

@subactor.context
async def blob_source(ctx, size, count):
    await ctx.started()
    blob = b"x" * size
    async with ctx.open_stream() as s:
        for _ in range(count):
            await s.send(blob)


@subactor.context
async def blob_sink(ctx):
    await ctx.started()
    total = 0
    async with ctx.open_stream() as s:
        async for v in s:
            total += len(v)
    return total


# -- multiprocessing anchors ------------------------------------------------------

def _pipe_blob_child(conn, size, count):
    blob = b"x" * size
    conn.recv_bytes()
    for _ in range(count):
        conn.send_bytes(blob)


def mp_rows(quick: bool) -> list[dict]:
    rows = []
    for method in ("fork", "spawn"):
        times = start_to_first_answer(method, 3 if quick else (5 if method == "spawn" else 15))
        rows.append(dict(group="spawn", case=f"multiprocessing {method}: start to first answer",
                         median=statistics.median(times) * 1e3))
    lat = pipe_round_trips(500 if quick else 3000)
    rows.append(dict(group="rt", case="multiprocessing Pipe round trip", median=statistics.median(lat) * 1e6,
                     p99=pct(lat, 0.99) * 1e6))
    ctx = mp.get_context("fork")
    count = 50 if quick else 300
    speeds = []
    for _ in range(3):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_pipe_blob_child, args=(b, BLOB, count))
        p.start()
        t0 = time.perf_counter()
        a.send_bytes(b"go")
        for _ in range(count):
            a.recv_bytes()
        speeds.append(count * BLOB / (time.perf_counter() - t0) / MB)
        p.join()
    rows.append(dict(group="tp", case="multiprocessing Pipe 1 MiB send_bytes, process -> parent",
                     median=statistics.median(speeds)))
    return rows


# -- subactor ------------------------------------------------------------------

async def backend_rows(backend: str, quick: bool) -> list[dict]:
    import trio

    rows = []
    label = "process" if backend == "process" else "subint"
    async with subactor.open_nursery(backend=backend) as an:
        times = []
        for i in range(5 if quick else 15):
            t0 = time.perf_counter()
            p = await an.start_actor(f"first-{i}", enable_modules=[__name__, "bench_api_remote"])
            await p.run(add, a=1, b=2)
            times.append(time.perf_counter() - t0)
            assert await p.run(trio_loaded) is False
            await p.cancel_actor()
        rows.append(dict(group="spawn", case=f"{label}: start_actor to first answer",
                         median=statistics.median(times) * 1e3))

        p = await an.start_actor("rt", enable_modules=[__name__, "bench_api_remote"])
        n = 500 if quick else 3000
        for fn, mode in ((add, "sync fn, sync-mode actor"), (async_add, "async fn, trio-mode actor")):
            for _ in range(100):
                await p.run(fn, a=1, b=2)
            lat = []
            for _ in range(n):
                t0 = time.perf_counter()
                await p.run(fn, a=1, b=2)
                lat.append(time.perf_counter() - t0)
            rows.append(dict(group="rt", case=f"{label}: portal.run({mode})",
                             median=statistics.median(lat) * 1e6, p99=pct(lat, 0.99) * 1e6))

        count = 50 if quick else 300
        speeds = []
        for _ in range(3):
            async with p.open_context(blob_source, size=BLOB, count=count) as (ctx, _):
                t0 = time.perf_counter()
                async with ctx.open_stream() as s:
                    got = 0
                    async for v in s:
                        got += len(v)
                speeds.append(got / (time.perf_counter() - t0) / MB)
        rows.append(dict(group="tp", case=f"{label}: 1 MiB stream items, actor -> parent",
                         median=statistics.median(speeds)))
        speeds = []
        blob = b"y" * BLOB
        for _ in range(3):
            async with p.open_context(blob_sink) as (ctx, _):
                t0 = time.perf_counter()
                async with ctx.open_stream() as s:
                    for _ in range(count):
                        await s.send(blob)
                total = await ctx.wait_for_result()
            speeds.append(total / (time.perf_counter() - t0) / MB)
        rows.append(dict(group="tp", case=f"{label}: 1 MiB stream items, parent -> actor",
                         median=statistics.median(speeds)))
        await p.cancel_actor()
        del trio
    return rows


def run(quick: bool = False) -> list[dict]:
    import trio

    raw = []
    for backend in ("process", "subint"):
        raw += trio.run(backend_rows, backend, quick)
    raw += mp_rows(quick)
    fork = next(r["median"] for r in raw if r["case"].startswith("multiprocessing fork"))
    pipe = next(r["median"] for r in raw if r["group"] == "rt" and r["case"].startswith("multiprocessing"))
    pipe_tp = next(r["median"] for r in raw if r["group"] == "tp" and r["case"].startswith("multiprocessing"))
    out = []
    for group, title in (("spawn", "spawn to first answer"), ("rt", "round trip (p50; p99 in note)"),
                         ("tp", "stream throughput, 1 MiB items")):
        for r in (r for r in raw if r["group"] == group):
            row = dict(group=title, case=r["case"], median=r["median"])
            if group == "spawn":
                row.update(unit="ms", ratio=r["median"] / fork, note="ratio to mp fork")
            elif group == "rt":
                row.update(unit="us", ratio=r["median"] / pipe,
                           note=f"p99 {r['p99']:.0f} us; ratio to Pipe")
            else:
                row.update(unit="MB/s", ratio=r["median"] / pipe_tp, note="ratio to Pipe send_bytes")
            out.append(row)
    return out


if __name__ == "__main__":
    # Run under the module's importable name, so that the actors find the
    # functions as bench_process.<name> (not the parent's __main__).
    import bench_process
    from _table import print_table

    print_table("process backend", bench_process.run(quick="--quick" in sys.argv))
