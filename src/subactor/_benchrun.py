"""`python -m subactor bench`: runs the benchmark modules of bench/ (from a
source checkout) and prints their tables; optionally writes JSON."""
from __future__ import annotations

import json
import os
import sys
import time

BENCHES = ["host", "chan", "codec", "api", "cancel", "process", "pool"]


def _bench_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.path.normpath(os.path.join(here, "..", "..", "bench"))
    if not os.path.isdir(d):
        raise SystemExit(f"benchmarks live in the source checkout's bench/ folder; not found at {d}")
    return d


_CHILD = """
import json, sys
sys.path.insert(0, {bench_dir!r})
import bench_{name} as mod
rows = mod.run(quick={quick!r})
sys.stdout.flush()
print("@@ROWS@@" + json.dumps(rows, default=str), flush=True)
"""


def main(quick: bool = False, json_path: str | None = None, only: list[str] | None = None) -> int:
    """Run each benchmark in a process of its own: one that abandons actors
    (the cancellation ladder's last rung) must not leave them to the next,
    and a process that still has live subinterpreters must not fork."""
    import subprocess

    bench_dir = _bench_dir()
    sys.path.insert(0, bench_dir)
    from _table import format_table, machine

    names = only or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")
    results = {"machine": machine(), "quick": quick, "tables": {}}
    failed = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] running bench_{name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD.format(bench_dir=bench_dir, name=name, quick=quick)],
            stdout=subprocess.PIPE, text=True, cwd=bench_dir, timeout=1800,
        )
        marker = [line for line in proc.stdout.splitlines() if line.startswith("@@ROWS@@")]
        if proc.returncode != 0 or not marker:
            print(f"[{i}/{len(names)}] bench_{name} FAILED (exit {proc.returncode})", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        rows = json.loads(marker[-1][len("@@ROWS@@"):])
        # A benchmark may format its own table (bench_chan's rows are a grid).
        import importlib

        fmt = getattr(importlib.import_module(f"bench_{name}"), "table", None)
        print(fmt(rows) if fmt else format_table(name, rows), flush=True)
        print(f"[{i}/{len(names)}] bench_{name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        results["tables"][name] = rows
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"wrote {json_path}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
