"""Import cost: ``import subactor`` next to ``import trio``, each in a fresh
interpreter process, and what ``import subactor`` loads.

Run: .venv/bin/python bench/bench_imports.py [--quick]

Rows: the wall time of ``python -c "pass"`` (anchor), ``-c "import
subactor"`` and ``-c "import trio"``, medians of 15 interleaved runs (7
with --quick); and, from ``python -X importtime -c "import subactor"``,
the cumulative import time CPython reports for subactor itself, and
whether trio, asyncio or logging came in with it (an actor must not pay for
what it does not use).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _table import print_table  # noqa: E402

CASES = {"pass": "pass", "subactor": "import subactor", "trio": "import trio"}


def _wall(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    return time.perf_counter() - t0


def _importtime() -> tuple[float, set[str]]:
    """subactor's cumulative import time (us) and the top-level packages loaded."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import subactor"], capture_output=True,
                         text=True, check=True, timeout=60).stderr
    cumulative = 0.0
    loaded = set()
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if not parts[0].isdigit():
            continue
        name = parts[2]
        loaded.add(name.strip().split(".")[0])
        if name.strip() == "subactor":
            cumulative = float(parts[1])
    return cumulative, loaded


def run(quick: bool = False) -> list[dict]:
    reps = 7 if quick else 15
    got: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(reps):
        for k, code in CASES.items():
            got[k].append(_wall(code))
    med = {k: statistics.median(v) * 1e3 for k, v in got.items()}
    cum, loaded = _importtime()
    heavy = [m for m in ("trio", "asyncio", "logging", "ssl") if m in loaded]
    g = "a fresh interpreter, to the end of the import (wall, median)"
    return [
        dict(group=g, case='python -c "pass" (anchor)', median=med["pass"], unit="ms", ratio=1.0),
        dict(group=g, case='python -c "import subactor"', median=med["subactor"], unit="ms",
             ratio=med["subactor"] / med["pass"], note=f"{med['subactor'] - med['pass']:.1f} ms over the anchor"),
        dict(group=g, case='python -c "import trio"', median=med["trio"], unit="ms",
             ratio=med["trio"] / med["pass"], note=f"{med['trio'] - med['pass']:.1f} ms over the anchor"),
        dict(group="python -X importtime -c \"import subactor\"", case="subactor, cumulative", median=cum / 1e3,
             unit="ms", ratio=1.0,
             note=("it loads no trio, asyncio, logging nor ssl" if not heavy else f"it loads {', '.join(heavy)}")),
    ]


if __name__ == "__main__":
    print_table("imports", run(quick="--quick" in sys.argv))
