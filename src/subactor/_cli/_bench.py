"""`python -m subactor bench`: runs the benchmark modules of bench/ (from a
source checkout) and prints their tables; optionally writes JSON."""
from __future__ import annotations

import json
import os
import sys
import time

BENCHES = ["host", "chan", "codec", "struct", "api", "cancel", "process", "pool", "ladder", "sigint_fuzz", "streams",
           "wire", "discovery", "discovery_net", "asyncio", "imports", "log", "scale", "leak"]


def _bench_dir() -> str:
    """The checkout's bench/ folder: above the package (an in-place or
    editable build, or build/asan-lib), else under the current directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = []
    d = here
    for _ in range(4):
        d = os.path.dirname(d)
        candidates.append(os.path.join(d, "bench"))
    candidates.append(os.path.join(os.getcwd(), "bench"))
    for c in candidates:
        if os.path.isfile(os.path.join(c, "bench_host.py")):
            return c
    raise SystemExit(f"benchmarks live in the source checkout's bench/ folder; not found in {candidates}")


def busy_warning() -> str | None:
    """A warning when the 1-minute load average says other work shares the
    cores (above half of them busy): figures measured then run slow."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load <= cores / 2:
        return None
    return (f"WARNING: the machine is busy (load average {load:.2f} on {cores} cores): "
            f"figures measured now are slower and noisier than on an idle machine")


_CHILD = """
import json, sys
sys.path.insert(0, {bench_dir!r})
import bench_{name} as mod
rows = mod.run(quick={quick!r})
sys.stdout.flush()
print("@@ROWS@@" + json.dumps(rows, default=str), flush=True)
"""


def main(quick: bool = False, json_path: str | None = None, only: list[str] | None = None,
         markdown_path: str | None = None) -> int:
    """Run each benchmark in a process of its own: one that abandons actors
    (the cancellation ladder's last rung) must not leave them to the next,
    and a process that still has live subinterpreters must not fork."""
    import subprocess

    names = only or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")
    bench_dir = _bench_dir()
    sys.path.insert(0, bench_dir)
    from _table import format_table, machine, missed

    results = {"machine": machine(), "quick": quick, "tables": {}}
    failed = []
    tables_text: list[tuple[str, str]] = []
    for i, name in enumerate(names, 1):
        busy = busy_warning()
        if busy:
            print(f"[{i}/{len(names)}] {busy}", file=sys.stderr, flush=True)
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
        text = fmt(rows) if fmt else format_table(name, rows)
        print(text, flush=True)
        tables_text.append((name, text))
        print(f"[{i}/{len(names)}] bench_{name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        results["tables"][name] = rows
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"wrote {json_path}", file=sys.stderr)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(f"# Benchmark results\n\nWritten by `make bench` (`python -m subactor bench`) on "
                    f"{results['machine']}, {time.strftime('%Y-%m-%d')}{' (quick)' if quick else ''}. "
                    f"Medians; every anchor was measured in the same run as the figures beside it.\n")
            for name, text in tables_text:
                f.write(f"\n## {name}\n\n```\n{text}\n```\n")
        print(f"wrote {markdown_path}", file=sys.stderr)
    misses = [f"{name}: {r.get('group', '')} / {r.get('case', '')}" for name, rows in results["tables"].items()
              for r in rows if missed(r)]
    if misses:
        print(f"MISSED GOALS ({len(misses)}):", file=sys.stderr)
        for m in misses:
            print(f"  {m}", file=sys.stderr)
    busy = busy_warning()
    if busy:
        print(busy, file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
