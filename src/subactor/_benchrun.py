"""`python -m subactor bench`: runs the benchmark modules of bench/ (from a
source checkout) and prints their tables; optionally writes JSON."""
from __future__ import annotations

import importlib
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


def main(quick: bool = False, json_path: str | None = None, only: list[str] | None = None) -> int:
    sys.path.insert(0, _bench_dir())
    from _table import format_table, machine

    names = only or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")
    results = {"machine": machine(), "quick": quick, "tables": {}}
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] running bench_{name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        mod = importlib.import_module(f"bench_{name}")
        rows = mod.run(quick=quick)
        print(format_table(name, rows), flush=True)
        print(f"[{i}/{len(names)}] bench_{name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        results["tables"][name] = rows
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"wrote {json_path}", file=sys.stderr)
    return 0
