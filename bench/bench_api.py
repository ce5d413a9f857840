"""trio API benchmark: spawn to first answer, portal.run and context round trips.

Run: .venv/bin/python bench/bench_api.py [--quick]

Anchors in the same run: multiprocessing (Pipe round trip between two
processes; spawn/forkserver/fork start to first answer over a Pipe).
tractor is not an anchor: the release on PyPI (0.1.0a5) does not install on
Python 3.13 (it requires pdbpp from a git URL; installed without its
dependencies it imports trio.MultiError, removed in trio 0.25, and trio
0.22, which still has it, does not import on 3.13).
Goals: spawn to first answer <= 10 ms without trio in the child;
portal.run round trip <= 50 us p50.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402
from _anchors import pct, pipe_round_trips, start_to_first_answer  # noqa: E402
from _table import print_table  # noqa: E402

import subactor  # noqa: E402

import bench_api_remote as remote  # noqa: E402

MOD = remote.__name__


def mp_rows(quick: bool) -> list:
    lat = pipe_round_trips(500 if quick else 3000)
    rows = [("rt", "multiprocessing Pipe round trip (2 processes)", statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6)]
    for method in ("fork", "forkserver", "spawn"):
        times = start_to_first_answer(method, 3 if quick else (5 if method == "spawn" else 15))
        rows.append(("spawn", f"multiprocessing {method}: start to first answer", statistics.median(times) * 1e3, None))
    return rows


async def subactor_rows(quick: bool) -> list:
    rows = []
    n = 500 if quick else 3000
    spawn_times = []
    async with subactor.open_nursery() as an:
        for i in range(5 if quick else 15):
            t0 = time.perf_counter()
            p = await an.start_actor(f"first-{i}", enable_modules=[MOD])
            await p.run(remote.add, a=1, b=2)
            spawn_times.append(time.perf_counter() - t0)
            assert await p.run(remote.trio_loaded) is False
            await p.cancel_actor()
        rows.append(("spawn", "subactor: start_actor to first answer (no trio in child)",
                     statistics.median(spawn_times) * 1e3, None))

        p = await an.start_actor("rt", enable_modules=[MOD])
        for _ in range(100):
            await p.run(remote.add, a=1, b=2)
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            await p.run(remote.add, a=1, b=2)
            lat.append(time.perf_counter() - t0)
        rows.append(("rt", "subactor portal.run(sync fn), sync-mode actor", statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6))
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            await p.run(remote.async_add, a=1, b=2)
            lat.append(time.perf_counter() - t0)
        rows.append(("rt", "subactor portal.run(async fn), trio-mode actor", statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6))
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            await p.run(remote.add, a=1, b=2)
            lat.append(time.perf_counter() - t0)
        rows.append(("rt", "subactor portal.run(sync fn), trio-mode actor", statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6))
        lat = []
        for _ in range(n // 5):
            t0 = time.perf_counter()
            async with p.open_context(remote.echo_once) as (ctx, _):
                async with ctx.open_stream() as s:
                    await s.send(1)
                    await s.receive()
            lat.append(time.perf_counter() - t0)
        rows.append(("rt", "subactor open_context + 1 stream msg each way + close", statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6))
        async with p.open_context(remote.echo_forever) as (ctx, _):
            async with ctx.open_stream() as s:
                lat = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    await s.send(1)
                    await s.receive()
                    lat.append(time.perf_counter() - t0)
        rows.append(("rt", "subactor stream message round trip (open stream)", statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6))
        await p.cancel_actor()
    return rows


def run(quick: bool = False) -> list[dict]:
    raw = trio.run(subactor_rows, quick) + mp_rows(quick)
    out = []
    pipe = next(r[2] for r in raw if r[1].startswith("multiprocessing Pipe"))
    fork = next(r[2] for r in raw if "fork: start" in r[1])
    for kind, case, med, p99 in sorted(raw, key=lambda r: r[0], reverse=True):
        if kind == "spawn":
            out.append(dict(group="spawn to first answer", case=case, median=med, unit="ms",
                            ratio=med / fork, note="ratio to mp fork" + (" (goal <= 10 ms)" if "subactor" in case else "")))
        else:
            out.append(dict(group="round trip (p50; p99 in note)", case=case, median=med, unit="us",
                            ratio=med / pipe, note=f"p99 {p99:.0f} us; ratio to Pipe" + (" (goal <= 50 us)" if "portal.run(sync" in case else "")))
    return out


if __name__ == "__main__":
    print_table("trio API", run(quick="--quick" in sys.argv))
