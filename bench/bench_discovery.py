"""Discovery benchmark: peer calls inside one process, and finding an actor.

Run: .venv/bin/python bench/bench_discovery.py [--quick]

Cases, in one run, the repetitions interleaved:

- anchor: the parent's ``portal.run`` of an async function in a trio-mode
  child (the parent-child call every other row is compared with);
- the root calling the same actor through a portal from ``find_actor``
  (a peer's channel, handed over by the hub);
- an actor calling a sibling it found with ``wait_for_actor`` (measured
  inside the calling actor);
- ``find_actor`` to a yielded portal, from the root and from an actor.

Medians of >= 5 repetitions (3 with --quick); p50 of each repetition's calls.
Goal (issue 13): a peer ``portal.run`` within 1.5x of a parent-child call.
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

import bench_discovery_remote as remote  # noqa: E402

MOD = remote.__name__
GOAL_PEER_RATIO = 1.5


async def measure(quick: bool) -> dict[str, list[float]]:
    reps = 3 if quick else 5
    n = 500 if quick else 2000
    got: dict[str, list[float]] = {k: [] for k in ("child", "root_peer", "actor_peer", "find_root", "find_actor")}
    async with subactor.open_nursery() as an:
        a = await an.start_actor("target", enable_modules=[MOD])
        b = await an.start_actor("caller", enable_modules=[MOD])
        await a.run(remote.async_add, a=0, b=0)
        for _ in range(reps):
            got["child"].append(statistics.median(await remote.timed_calls(a, n)))
            async with subactor.find_actor("target") as p:
                got["root_peer"].append(statistics.median(await remote.timed_calls(p, n)))
            got["actor_peer"].append(statistics.median(await b.run(remote.peer_latencies, name="target", n=n)))
            t = []
            for _ in range(50):
                t0 = time.perf_counter()
                async with subactor.find_actor("target") as p:
                    t.append(time.perf_counter() - t0)
            got["find_root"].append(statistics.median(t))
            got["find_actor"].append(statistics.median(await b.run(remote.find_times, name="target", n=50)))
        await an.cancel()
    return got


def run(quick: bool = False) -> list[dict]:
    got = trio.run(measure, quick)
    med = {k: statistics.median(v) * 1e6 for k, v in got.items()}
    child = med["child"]
    rt = "peer round trip, portal.run(async fn) (p50)"
    return [
        dict(group=rt, case="parent -> child (anchor)", median=med["child"], unit="us", ratio=1.0),
        dict(group=rt, case="root -> actor, portal from find_actor", median=med["root_peer"], unit="us",
             ratio=med["root_peer"] / child, note=f"goal <= {GOAL_PEER_RATIO}x"),
        dict(group=rt, case="actor -> sibling actor, wait_for_actor", median=med["actor_peer"], unit="us",
             ratio=med["actor_peer"] / child, note=f"goal <= {GOAL_PEER_RATIO}x"),
        dict(group="find_actor to a portal", case="from the root", median=med["find_root"], unit="us",
             ratio=med["find_root"] / child, note="ratio to the anchor call"),
        dict(group="find_actor to a portal", case="from an actor", median=med["find_actor"], unit="us",
             ratio=med["find_actor"] / child, note="ratio to the anchor call"),
    ]


if __name__ == "__main__":
    print_table("discovery", run(quick="--quick" in sys.argv))
