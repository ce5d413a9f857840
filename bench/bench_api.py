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

Spawn, warm and cold (issue 18): ``start_actor`` to its first answer, for
a sync actor (a sync function) and for one that needs trio (an async
function: the actor imports trio and switches to trio mode), each cold
(reserve off) and from a warm interpreter (``warm_interpreters=1``; the
reserve is let refill before each warm repetition, which is what "from
warm" means), next to multiprocessing fork / forkserver / spawn start to
first answer and a process actor (``backend="process"``), all interleaved
in each of >= 5 repetitions, medians. Goals: sync <= 1.5 ms warm, <= 6 ms
cold; trio <= 5 ms warm, <= 60 ms cold. ``--spawn`` runs this part alone.
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


SPAWN_GOALS = {("sync", "warm"): 1.5, ("sync", "cold"): 6.0, ("trio", "warm"): 5.0, ("trio", "cold"): 60.0}


async def _first_answer(an, name: str, fn, **kw) -> float:
    """Seconds from start_actor to the first answer of fn; the actor is then
    cancelled (outside the measure)."""
    t0 = time.perf_counter()
    p = await an.start_actor(name, enable_modules=[MOD], **kw)
    await p.run(fn, a=1, b=2)
    dt = time.perf_counter() - t0
    await p.cancel_actor()
    return dt


async def _spawn_samples(reps: int) -> dict:
    """{case: [seconds per repetition]}, every case once per repetition."""
    from subactor import _ext, _warm

    out: dict = {k: [] for k in (("sync", "warm"), ("trio", "warm"), ("sync", "cold"), ("trio", "cold"), "process")}

    async def settled() -> None:
        """Until the actors measured before have ended (their interpreters'
        teardown runs in the background and would load the next measure)."""
        with trio.fail_after(60):
            while _ext.live_counts()["threads"] > _ext.warm_info()["alive"]:
                await trio.sleep(0.005)
        await trio.sleep(0.05)

    async def refilled(n: int) -> None:
        with trio.fail_after(60):
            while _ext.warm_info()["parked"] < n:
                await trio.sleep(0.005)
        await settled()

    async with subactor.open_root_actor(warm_interpreters=0):
        async with subactor.open_nursery() as an:
            for i in range(reps):
                _warm.turn_on(1)
                for kind, fn in (("sync", remote.add), ("trio", remote.async_add)):
                    await refilled(1)
                    takes = _ext.warm_info()["takes"]
                    out[(kind, "warm")].append(await _first_answer(an, f"w{kind}{i}", fn))
                    assert _ext.warm_info()["takes"] == takes + 1, "the warm row was not served warm"
                _warm.turn_off()
                with trio.fail_after(60):
                    while _ext.warm_info()["alive"]:
                        await trio.sleep(0.005)
                for kind, fn in (("sync", remote.add), ("trio", remote.async_add)):
                    await settled()
                    out[(kind, "cold")].append(await _first_answer(an, f"c{kind}{i}", fn))
                await settled()
                out["process"].append(await _first_answer(an, f"p{i}", remote.add, backend="process"))
                await settled()
    return out


# One repetition of the multiprocessing anchors, each the second of two
# starts (the first pays for loading multiprocessing's machinery and, for
# forkserver, starting the server: not what the anchor means).
_MP_ANCHORS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from _anchors import start_to_first_answer
print(json.dumps({m: start_to_first_answer(m, 2)[-1] for m in ("fork", "forkserver", "spawn")}))
"""


def spawn_rows(quick: bool = False) -> list[dict]:
    """Spawn to first answer, warm and cold (see the module's docstring)."""
    import json
    import subprocess

    reps = 5 if quick else 9
    mp: dict = {m: [] for m in ("fork", "forkserver", "spawn")}
    ours: dict = {}
    for _ in range(reps):   # subactor's cases and the anchors interleaved, one repetition at a time
        # Each repetition of subactor's cases runs in a fresh process: on
        # 3.13 every ended interpreter keeps its memory, and a process grown
        # by them would slow the anchors' fork() (and the next repetition).
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--spawn-rep"], capture_output=True,
                             text=True, check=True, timeout=300).stdout
        for k, v in json.loads(out.splitlines()[-1]):
            ours.setdefault(k if isinstance(k, str) else tuple(k), []).extend(v)
        # The anchors run in a small `python -c` process too: mp's spawn and
        # forkserver children import the parent's __main__ script, which would
        # be this file (trio, subactor) when it is run directly.
        out = subprocess.run([sys.executable, "-c", _MP_ANCHORS, HERE], capture_output=True, text=True, check=True,
                             timeout=300).stdout
        for m, v in json.loads(out.splitlines()[-1]).items():
            mp[m].append(v)
    med = {k: statistics.median(v) * 1e3 for k, v in {**ours, **{("mp", m): v for m, v in mp.items()}}.items()}
    fork = med[("mp", "fork")]
    g = f"spawn to first answer, warm and cold: ms, median of {reps} interleaved repetitions"
    rows = [dict(group=g, case=f"anchor: multiprocessing {m}, start to first answer", median=med[("mp", m)],
                 unit="ms", ratio=med[("mp", m)] / fork, note="ratio to mp fork") for m in mp]
    rows.append(dict(group=g, case="anchor: process actor (backend='process'), sync fn", median=med["process"],
                     unit="ms", ratio=med["process"] / fork, note="ratio to mp fork"))
    for kind, what in (("sync", "sync fn"), ("trio", "async fn: the actor imports trio")):
        for temp in ("warm", "cold"):
            m = med[(kind, temp)]
            goal = SPAWN_GOALS[(kind, temp)]
            extra = " (reserve refilled before each repetition)" if temp == "warm" else " (warm_interpreters=0)"
            other = med[(kind, "cold" if temp == "warm" else "warm")]
            rows.append(dict(group=g, case=f"subactor start_actor, {what}, {temp}", median=m, unit="ms",
                             ratio=m / fork, goal_met=m <= goal,
                             note=f"ratio to mp fork; {m / other:.2f}x the {'cold' if temp == 'warm' else 'warm'} "
                                  f"row; goal <= {goal:g} ms{extra}"))
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
    return out + spawn_rows(quick) + call_rows(quick)


if __name__ == "__main__":
    if "--calls" in sys.argv:   # the call path only (quiet and busy)
        print_table("trio API: call path", call_rows(quick="--quick" in sys.argv))
    elif "--spawn-rep" in sys.argv:   # one repetition of spawn_rows's subactor cases, as JSON
        import json

        print(json.dumps([[k, v] for k, v in trio.run(_spawn_samples, 1).items()]))
    elif "--spawn" in sys.argv:   # spawn to first answer, warm and cold
        print_table("trio API: spawn", spawn_rows(quick="--quick" in sys.argv))
    else:
        print_table("trio API", run(quick="--quick" in sys.argv))
