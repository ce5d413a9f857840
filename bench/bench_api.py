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

The call path (issue 18): portal.run of a sync function (sync-mode actor),
of an async function and of a sync function in a trio-mode actor, each
p50 and p99, the median over interleaved repetitions, next to the raw
channel round trip (trio task <-> actor, 64 bytes: the floor) and the
multiprocessing Pipe round trip from the same run. Goals: sync <= 15 us,
async / trio-mode <= 20 us. An async function that never awaits runs
inline in the actor's message loop, as a sync one does; the row of one
that awaits a checkpoint is the path of a call that gets a task. Then the same on a busy machine (one busy-loop
process per core, see _busy.py): p50 within 3x of the quiet run, p99 under
1 ms (bounded: no lock-in).
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


CALL_GOALS = {"sync": 15.0, "async": 20.0, "async-await": 20.0, "trio-sync": 20.0}
CALL_CASES = (("sync", "portal.run(sync fn), sync-mode actor"),
              ("async", "portal.run(async fn), trio-mode actor"),
              ("async-await", "portal.run(async fn awaiting a checkpoint), trio-mode actor"),
              ("trio-sync", "portal.run(sync fn), trio-mode actor"))


async def _call_samples(n: int, reps: int) -> dict:
    """{case: [(p50, p99) per repetition]} in microseconds, the cases
    interleaved in each repetition. The sync-mode actor is a fresh one that
    never runs an async function; the trio-mode one ran one first."""
    out = {k: [] for k, _ in CALL_CASES}

    async def lat(p, fn) -> tuple:
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            await p.run(fn, a=1, b=2)
            xs.append(time.perf_counter() - t0)
        return statistics.median(xs) * 1e6, pct(xs, 0.99) * 1e6

    async with subactor.open_nursery() as an:
        ps = await an.start_actor("call-sync", enable_modules=[MOD])
        pt = await an.start_actor("call-trio", enable_modules=[MOD])
        await pt.run(remote.async_add, a=1, b=2)
        for _ in range(100):
            await ps.run(remote.add, a=1, b=2)
            await pt.run(remote.async_add, a=1, b=2)
        for _ in range(reps):
            out["sync"].append(await lat(ps, remote.add))
            out["async"].append(await lat(pt, remote.async_add))
            out["async-await"].append(await lat(pt, remote.async_add_checkpoint))
            out["trio-sync"].append(await lat(pt, remote.add))
        await ps.cancel_actor()
        await pt.cancel_actor()
    return out


def _anchor_samples(n: int, reps: int) -> dict:
    from bench_chan import pingpong_trio

    out = {"raw": [], "pipe": []}
    for _ in range(reps):
        out["raw"].append(pingpong_trio(n))
        lat = pipe_round_trips(n)
        out["pipe"].append((statistics.median(lat) * 1e6, pct(lat, 0.99) * 1e6))
    return out


def call_rows(quick: bool = False) -> list[dict]:
    """The call path, quiet and busy (see the module's docstring)."""
    from _busy import quiet_then_busy

    n, reps = (300, 3) if quick else (2000, 5)
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    rows = []
    quiet = None
    for load, k, (calls, anchors) in quiet_then_busy(
            lambda: (trio.run(_call_samples, n, reps), _anchor_samples(n, reps))):
        g = (f"call path, {load}" + (f" ({k} busy-loop processes)" if k else "")
             + f": p50 us, median of {reps} interleaved runs (p99 in note)")
        raw50, pipe50 = med(anchors["raw"], 0), med(anchors["pipe"], 0)
        rows.append(dict(group=g, case="anchor: raw channel round trip (trio <-> actor, 64 B)", median=raw50,
                         unit="us", ratio=1.0, note=f"p99 {med(anchors['raw'], 1):.0f} us; the floor"))
        rows.append(dict(group=g, case="anchor: multiprocessing Pipe round trip", median=pipe50, unit="us",
                         ratio=pipe50 / raw50, note=f"p99 {med(anchors['pipe'], 1):.0f} us"))
        for key, case in CALL_CASES:
            p50, p99 = med(calls[key], 0), med(calls[key], 1)
            if load == "quiet":
                ok = p50 <= CALL_GOALS[key]
                goal = f"goal <= {CALL_GOALS[key]:.0f} us"
            else:
                q = quiet[key]
                ok = p50 <= 3 * q and p99 <= 1000
                goal = f"goal: p50 <= 3x quiet ({3 * q:.0f} us), p99 <= 1000 us"
            rows.append(dict(group=g, case=f"subactor {case}", median=p50, unit="us", ratio=p50 / raw50,
                             note=f"p99 {p99:.0f} us; ratio to raw channel; {goal}", goal_met=ok))
        if load == "quiet":
            quiet = {key: med(calls[key], 0) for key, _ in CALL_CASES}
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
    return out + call_rows(quick)


if __name__ == "__main__":
    if "--calls" in sys.argv:   # the call path only (quiet and busy)
        print_table("trio API: call path", call_rows(quick="--quick" in sys.argv))
    else:
        print_table("trio API", run(quick="--quick" in sys.argv))
