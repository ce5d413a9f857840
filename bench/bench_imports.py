"""Import cost: ``import subactor`` next to ``import trio``, each in a fresh
interpreter process, and what ``import subactor`` loads.

Run: .venv/bin/python bench/bench_imports.py [--quick]

Rows: the wall time of ``python -c "pass"`` (anchor), ``-c "import
subactor"`` and ``-c "import trio"``, medians of 15 interleaved runs (7
with --quick); and, from ``python -X importtime -c "import subactor"``,
the cumulative import time CPython reports for subactor itself, and
whether trio, asyncio or logging came in with it (an actor must not pay for
what it does not use).

What an actor's fresh subinterpreter pays (issue 18's cold path), from
``-X importtime`` of a process that makes subinterpreters as the C host
does (``_interpreters``, own GIL), medians of 7 (3 with --quick): ``site``
and ``_distutils_hack`` inside it (while the interpreter is made), the
actor runtime (``subactor._ext`` + ``subactor._actor._runtime``), ``import
trio`` and the biggest parts of it. ``-X importtime`` adds its own cost:
read the parts against their total.
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


_SUBINT_SCRIPT = r"""
import os, sys
import _interpreters
path = [p or os.getcwd() for p in sys.path]
for _ in range(int(sys.argv[1])):
    sys.stderr.write("=== CREATE\n"); sys.stderr.flush()
    i = _interpreters.create()
    _interpreters.exec(i, "import sys; sys.path[:] = %r" % (path,))
    sys.stderr.write("=== RUNTIME\n"); sys.stderr.flush()
    _interpreters.exec(i, "import subactor._ext, subactor._actor._runtime")
    sys.stderr.write("=== TRIO\n"); sys.stderr.flush()
    _interpreters.exec(i, "import trio")
    sys.stderr.write("=== END\n"); sys.stderr.flush()
    _interpreters.destroy(i)
"""

# Parts of trio's import worth naming (cumulative, wherever they appear).
TRIO_PARTS = ("attr", "typing", "inspect", "trio._dtls", "ssl", "logging", "ctypes.util", "socket", "enum",
              "sortedcontainers", "trio._core._run")


def _segments(text: str) -> dict[str, list[dict[str, int]]]:
    """{segment: [{module: cumulative us} per repetition]} from the script's stderr."""
    out: dict[str, list[dict[str, int]]] = {}
    seg = None
    for line in text.splitlines():
        if line.startswith("=== "):
            seg = line[4:].strip()
            out.setdefault(seg, []).append({})
            continue
        if seg is None or not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if parts[1].isdigit():
            cur = out[seg][-1]
            cur[parts[2]] = max(cur.get(parts[2], 0), int(parts[1]))
    return out


def subint_rows(quick: bool = False) -> list[dict]:
    reps = 3 if quick else 7
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", _SUBINT_SCRIPT, str(reps)], capture_output=True,
                         text=True, check=True, timeout=300).stderr
    segs = _segments(err)

    def med(seg: str, mod: str) -> float:
        return statistics.median(r.get(mod, 0) for r in segs[seg]) / 1e3

    g = "an actor's fresh subinterpreter: -X importtime, cumulative ms, median"
    site, hack = med("CREATE", "site"), med("CREATE", "_distutils_hack")
    rt = med("RUNTIME", "subactor._ext") + med("RUNTIME", "subactor._actor._runtime")
    trio_ms = med("TRIO", "trio")
    rows = [
        dict(group=g, case="site (while the interpreter is made)", median=site, unit="ms", ratio=1.0,
             note=f"_distutils_hack {hack:.2f} ms of it: kept (it makes `import distutils` work; docs/design.md)"),
        dict(group=g, case="the actor runtime (subactor._ext + subactor._actor._runtime)", median=rt, unit="ms",
             ratio=rt / site, note="ratio to site"),
        dict(group=g, case="import trio", median=trio_ms, unit="ms", ratio=trio_ms / site,
             note="ratio to site; a warm interpreter has paid it (subactor._warm)"),
    ]
    for part in TRIO_PARTS:
        m = med("TRIO", part)
        if m:
            rows.append(dict(group=g, case=f"  of which {part}", median=m, unit="ms", ratio=m / trio_ms,
                             note="share of import trio (parts overlap: inspect is inside attr)"))
    return rows


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
    ] + subint_rows(quick)


if __name__ == "__main__":
    print_table("imports", run(quick="--quick" in sys.argv))
