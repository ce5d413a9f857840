"""What logging costs: portal.run and an actor's spawn-to-end cycle with
logging off, on but filtered, and on and emitting.

Run: .venv/bin/python bench/bench_log.py [--quick]

Each variant runs in a fresh process (logging is set up per process), the
variants interleaved, 5 repetitions (3 with --quick); rows are medians of
the repetitions' medians.

- off (anchor): the program never imports subactor.log; neither do its
  actors (no loglevel given).
- filtered: ``log.get_console_log("warning")`` in the root and
  ``loglevel="warning"`` for the actor: handlers installed, the runtime's
  lifecycle records (runtime, cancel) made and dropped by level.
- emitting: the same at ``"cancel"``, stderr to /dev/null: every lifecycle
  record is formatted and written.

Goal: with logging off or filtered, portal.run is not measurably slower
than with it off (the per-call path makes no logging call).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _table import print_table  # noqa: E402

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, {here!r})
import trio, subactor
import bench_api_remote as remote
level = {level!r}
if level:
    from subactor import log
    log.get_console_log(level)

async def main():
    calls, cycles = [], []
    async with subactor.open_nursery(loglevel=level or None) as an:
        for i in range({cycles}):
            t0 = time.perf_counter()
            p = await an.start_actor(f"c{{i}}", enable_modules=[remote.__name__])
            await p.run(remote.add, a=1, b=2)
            await p.cancel_actor()
            cycles.append(time.perf_counter() - t0)
        p = await an.start_actor("rt", enable_modules=[remote.__name__])
        for _ in range(200):
            await p.run(remote.add, a=1, b=2)
        for _ in range({calls}):
            t0 = time.perf_counter()
            await p.run(remote.add, a=1, b=2)
            calls.append(time.perf_counter() - t0)
        await p.cancel_actor()
    print(json.dumps({{"call": statistics.median(calls), "cycle": statistics.median(cycles)}}))

trio.run(main)
"""

VARIANTS = {"off": "", "filtered (warning)": "warning", "emitting (cancel, to /dev/null)": "cancel"}


def _one(level: str, quick: bool) -> dict:
    code = CHILD.format(here=HERE, level=level, cycles=5 if quick else 15, calls=1000 if quick else 3000)
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=True, timeout=300, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    got: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    for _ in range(3 if quick else 5):
        for k, level in VARIANTS.items():
            got[k].append(_one(level, quick))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("call", "cycle")} for k, v in got.items()}
    rows = []
    off = med["off"]
    for k in VARIANTS:
        note = "anchor" if k == "off" else ""
        extra = {}
        if k.startswith("filtered"):
            note = "goal: not measurably slower than off (within 10%)"
            extra["goal_met"] = med[k]["call"] / off["call"] <= 1.10
        rows.append(dict(group="portal.run(sync fn) p50, sync-mode actor", case=f"logging {k}",
                         median=med[k]["call"] * 1e6, unit="us", ratio=med[k]["call"] / off["call"], note=note,
                         **extra))
    for k in VARIANTS:
        rows.append(dict(group="start_actor + first answer + cancel_actor (median cycle)", case=f"logging {k}",
                         median=med[k]["cycle"] * 1e3, unit="ms", ratio=med[k]["cycle"] / off["cycle"],
                         note="anchor" if k == "off" else ""))
    return rows


if __name__ == "__main__":
    print_table("logging cost", run(quick="--quick" in sys.argv))
