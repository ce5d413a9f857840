"""Scale: many idle actors alive at once, in one process.

Run: .venv/bin/python bench/bench_scale.py [--quick]

Starts sync-mode actors (a function of bench_api_remote, no trio in the
child) one after another up to N (1,000; 200 with --quick) and keeps them
alive. At each step (25, 100, 200, 500, 1,000 alive) it reports:

- the process's RSS over its baseline (before the first actor), per alive
  actor (goal: <= 3 MiB);
- the median time of the last 10 spawns (start_actor to its first answer):
  flat in N is the goal; the anchor is the median of the first 10;
- portal.run of a sync function on the newest actor, p50 of 200 calls:
  flat in N;
- how many of the modules an actor imports it compiles from source (no
  .pyc, or one older than its source: goal 0). Each actor compiles its own
  copy, and what the compiler leaves behind stays in the actor's allocator:
  subactor's own modules compiled per actor cost ~0.9 MiB more per idle
  actor (3.56 vs 2.67 MiB in one run). With PYTHONDONTWRITEBYTECODE set
  nothing writes the .pyc files but `make` (compileall); a script run as
  the program's main module (__mp_main__) never has one and is left out.
- at the end, how long an.cancel() of all of them takes with the default
  ladder (grace 1 s, kill_after 3 s), and how many were abandoned (goal 0:
  an idle actor answers its cancel at once; what takes the time is ending
  the interpreters, a few at a time).

The anchor for the spawns and calls is the same measure with the fewest
actors alive, in the same run.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402
from _table import print_table  # noqa: E402

import subactor  # noqa: E402
from subactor import AbandonedActorWarning  # noqa: E402

import bench_api_remote as remote  # noqa: E402

MOD = remote.__name__


def stale_sources(files: list[tuple[str, str]]) -> list[str]:
    """The modules of `files` ((name, path) pairs) whose .pyc is missing or
    does not match its source, so an actor importing them compiles them
    itself (see subactor's doctor)."""
    from subactor._cli._doctor import pyc_is_current

    return [name for name, path in files if name != "__mp_main__" and not pyc_is_current(path)]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


async def _measure(quick: bool) -> list[tuple]:
    steps = [25, 100, 200] if quick else [25, 100, 200, 500, 1000]
    out = []
    base = _rss_mib()
    spawns: list[float] = []
    first10 = None
    # The default ladder (1 s / 3 s) ends them: ending 1,000 at once must
    # not abandon any (each one's cancel is answered in time; their
    # interpreters then end a few at a time, C's ending gate).
    async with subactor.open_nursery() as an:
        portals = []
        for n in steps:
            while len(portals) < n:
                t0 = time.perf_counter()
                p = await an.start_actor(f"idle-{len(portals)}", enable_modules=[MOD])
                await p.run(remote.add, a=1, b=2)
                spawns.append(time.perf_counter() - t0)
                portals.append(p)
                if len(portals) % 100 == 0:
                    print(f"  ... {len(portals)} actors alive", file=sys.stderr, flush=True)
            if first10 is None:
                first10 = statistics.median(spawns[:10])
            lat = []
            p = portals[-1]
            for _ in range(200):
                t0 = time.perf_counter()
                await p.run(remote.add, a=1, b=2)
                lat.append(time.perf_counter() - t0)
            rss = _rss_mib() - base
            out.append((n, rss / n, statistics.median(spawns[-10:]), statistics.median(lat)))
        files = await portals[-1].run(remote.module_files)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AbandonedActorWarning)
            await an.cancel()
        ended = time.perf_counter() - t0
        abandoned = sum(1 for w in caught if issubclass(w.category, AbandonedActorWarning))
    return out + [("ended", (len(portals), ended, abandoned)), ("files", files), ("first10", first10)]


def run(quick: bool = False) -> list[dict]:
    raw = trio.run(_measure, quick)
    first10 = raw[-1][1]
    files = raw[-2][1]
    n_ended, ended, abandoned = raw[-3][1]
    steps = raw[:-3]
    stale = stale_sources(files)
    call0 = steps[0][3]
    rows = []
    for n, per, spawn, call in steps:
        rows.append(dict(group="RSS over the baseline, per idle actor (goal <= 3 MiB)", case=f"{n} actors alive",
                         median=per, unit="MiB", goal_met=per <= 3.0))
    rows.append(dict(group="RSS over the baseline, per idle actor (goal <= 3 MiB)",
                     case="modules an actor compiles from source", median=len(stale), unit="",
                     goal_met=not stale,
                     note=(f"of {len(files)}: {', '.join(stale)} (.pyc missing or stale: run make; "
                           f"~0.9 MiB more per actor when all of subactor's are)") if stale else
                     f"of {len(files)} (each has a current .pyc)"))
    rows.append(dict(group="spawn to first answer, median of the last 10 (flat in N)",
                     case="the first 10 spawns (anchor)", median=first10 * 1e3, unit="ms", ratio=1.0))
    for n, per, spawn, call in steps:
        rows.append(dict(group="spawn to first answer, median of the last 10 (flat in N)", case=f"up to {n} alive",
                         median=spawn * 1e3, unit="ms", ratio=spawn / first10))
    for n, per, spawn, call in steps:
        rows.append(dict(group="portal.run(sync fn) on the newest actor, p50 (flat in N)", case=f"{n} alive",
                         median=call * 1e6, unit="us", ratio=call / call0,
                         note="anchor" if n == steps[0][0] else ""))
    rows.append(dict(group="ending them, the default ladder (grace 1 s, kill_after 3 s)",
                     case=f"an.cancel() of {n_ended} idle actors", median=ended, unit="s",
                     note=f"{ended / n_ended * 1e3:.2f} ms per actor"))
    rows.append(dict(group="ending them, the default ladder (grace 1 s, kill_after 3 s)",
                     case="actors abandoned (goal 0)", median=abandoned, unit="", goal_met=abandoned == 0))
    return rows


if __name__ == "__main__":
    print_table("scale", run(quick="--quick" in sys.argv))
