"""asyncio inside actors: what crossing between trio and asyncio costs in an
infected actor, and what infecting costs at spawn.

Run: .venv/bin/python bench/bench_asyncio.py [--quick]

Cases, in one run, the repetitions interleaved:

- round trip inside one infected actor (p50 of each repetition):
  ``to_asyncio.run_task`` of an asyncio function that returns at once, and
  64 B to an asyncio task and back over ``open_channel_from``; anchor: 64 B
  from a trio task to another and back over trio memory channels, in the
  same actor (and, for what guest mode costs trio itself, the same in a
  plain actor);
- 64 B messages one way (time per message, n in a row): asyncio -> trio
  (``chan.send_nowait``, the trio side receiving) and trio -> asyncio
  (``chan.send``, ``chan.get()``); anchor: a trio memory channel between
  two trio tasks of the same actor;
- spawn: ``start_actor`` to the answer of a first async call (the call
  that starts the actor's loop), plain against ``infect_asyncio=True``, on
  the subinterpreter and the process backends (the actor then cancelled,
  outside the timing); the called module imports nothing, so the plain
  actor imports trio and the infected one asyncio too.

Medians of >= 5 repetitions (3 with --quick).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402
from _table import print_table  # noqa: E402

import subactor  # noqa: E402

import bench_asyncio_remote as remote  # noqa: E402
import bench_asyncio_spawn_remote as spawn_remote  # noqa: E402

MOD = remote.__name__
SPAWN_BACKENDS = ("subint", "process")


async def _spawn_once(backend: str, infect: bool) -> float:
    async with subactor.open_nursery(backend=backend) as an:
        t0 = time.perf_counter()
        p = await an.start_actor("spawned", enable_modules=[spawn_remote.__name__], infect_asyncio=infect)
        await p.run(spawn_remote.noop)
        dt = time.perf_counter() - t0
        await p.cancel_actor()
    return dt


async def measure(quick: bool) -> dict[str, list[float]]:
    reps = 3 if quick else 5
    n_rtt = 500 if quick else 2000
    n_way = 5000 if quick else 20000
    got: dict[str, list[float]] = {}

    def add(key, value):
        got.setdefault(key, []).append(value)

    async with subactor.open_nursery() as an:
        p = await an.start_actor("infected", enable_modules=[MOD], infect_asyncio=True)
        plain = await an.start_actor("plain", enable_modules=[MOD])
        await p.run(remote.chan_rtt, n=100)   # warm: the loop, the imports
        await plain.run(remote.memchan_rtt, n=100)
        for _ in range(reps):
            add("rtt_mem_plain", statistics.median(await plain.run(remote.memchan_rtt, n=n_rtt)))
            for key, fn in (("rtt_mem", remote.memchan_rtt), ("rtt_task", remote.run_task_rtt),
                            ("rtt_chan", remote.chan_rtt)):
                add(key, statistics.median(await p.run(fn, n=n_rtt)))
            for key, fn in (("way_mem", remote.memchan_one_way), ("way_a2t", remote.aio_to_trio),
                            ("way_t2a", remote.trio_to_aio)):
                add(key, await p.run(fn, n=n_way))
        await p.cancel_actor()
        await plain.cancel_actor()
    for _ in range(reps):
        for backend in SPAWN_BACKENDS:
            for infect in (False, True):
                add(f"spawn_{backend}_{infect}", await _spawn_once(backend, infect))
    return got


def run(quick: bool = False) -> list[dict]:
    got = trio.run(measure, quick)
    med = {k: statistics.median(v) * 1e6 for k, v in got.items()}
    rows = []
    g = "round trip in one infected actor, 64 B (p50)"
    rows.append(dict(group=g, case="trio memory channels, trio task <-> trio task (anchor)",
                     median=med["rtt_mem"], unit="us", ratio=1.0))
    rows.append(dict(group=g, case="the same in a plain (trio.run) actor", median=med["rtt_mem_plain"],
                     unit="us", ratio=med["rtt_mem_plain"] / med["rtt_mem"]))
    rows.append(dict(group=g, case="to_asyncio.run_task(asyncio fn that returns)", median=med["rtt_task"],
                     unit="us", ratio=med["rtt_task"] / med["rtt_mem"]))
    rows.append(dict(group=g, case="open_channel_from: send, asyncio get + send_nowait, receive",
                     median=med["rtt_chan"], unit="us", ratio=med["rtt_chan"] / med["rtt_mem"]))
    g = "64 B one way, per message"
    rows.append(dict(group=g, case="trio memory channel, trio task -> trio task (anchor)", median=med["way_mem"],
                     unit="us", ratio=1.0))
    rows.append(dict(group=g, case="asyncio -> trio: send_nowait / receive", median=med["way_a2t"], unit="us",
                     ratio=med["way_a2t"] / med["way_mem"]))
    rows.append(dict(group=g, case="trio -> asyncio: send / get", median=med["way_t2a"], unit="us",
                     ratio=med["way_t2a"] / med["way_mem"]))
    for backend in SPAWN_BACKENDS:
        g = f"spawn to a first async answer, backend={backend}"
        plain, infected = med[f"spawn_{backend}_False"] / 1e3, med[f"spawn_{backend}_True"] / 1e3
        rows.append(dict(group=g, case="plain actor (anchor)", median=plain, unit="ms", ratio=1.0))
        rows.append(dict(group=g, case="infect_asyncio=True", median=infected, unit="ms", ratio=infected / plain))
    return rows


if __name__ == "__main__":
    print_table("asyncio", run(quick="--quick" in sys.argv))
