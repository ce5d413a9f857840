"""Actor host benchmark: spawn cost, parallel speedup, interrupt latency.

Run: .venv/bin/python bench/bench_host.py [--quick]

Anchors measured in the same run:
- spawn-to-completion of `pass` against CPython's own `_interpreters`
  create/exec/destroy and multiprocessing start+join (spawn, forkserver, fork);
- two CPU-bound actors on 2 cores against the same work run twice in the
  main interpreter (goal: >= 1.75x);
- interrupt latency of a `while True: pass` actor (interrupt() to done).
Medians are quoted; this machine is small and noisy.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time

try:
    import _interpreters
except ImportError:  # Python 3.12 names it so
    import _xxsubinterpreters as _interpreters

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _table import print_table  # noqa: E402

from subactor import _ext  # noqa: E402


def _noop():
    pass


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def _time(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def spawn_rows(quick: bool) -> list[dict]:
    n = 10 if quick else 40

    def subactor_pass():
        a = _ext.spawn("pass", name="bench")
        a.join()

    def interpreters_pass():
        i = _interpreters.create()
        _interpreters.exec(i, "pass")
        _interpreters.destroy(i)

    rows = []
    base = statistics.median(_time(subactor_pass, n))
    rows.append(dict(group="spawn to completion (pass)", case="subactor actor (own GIL, thread, site)",
                     median=base * 1e3, unit="ms", ratio=1.0))
    t = statistics.median(_time(interpreters_pass, n))
    rows.append(dict(group="spawn to completion (pass)", case="_interpreters create/exec/destroy",
                     median=t * 1e3, unit="ms", ratio=t / base))
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)

        def proc():
            p = ctx.Process(target=_noop)
            p.start()
            p.join()

        proc()  # warm (forkserver starts its server once)
        t = statistics.median(_time(proc, max(5, n // (4 if method == "spawn" else 1))))
        rows.append(dict(group="spawn to completion (pass)", case=f"multiprocessing {method} start+join",
                         median=t * 1e3, unit="ms", ratio=t / base))
    return rows


def parallel_rows(quick: bool) -> list[dict]:
    n = 2_000_000 if quick else 5_000_000
    reps = 3 if quick else 5
    code = (
        "from subactor import _ext\n"
        "def burn(n):\n    t = 0\n    for i in range(n):\n        t += (i * i) % 7\n    return t\n"
        f"_ext.set_result(str(burn({n})).encode())\n"
    )

    def two_actors():
        actors = [_ext.spawn(code, name=f"burn-{i}") for i in range(2)]
        for a in actors:
            a.join()
            assert a.outcome()[0] == "ok"

    def twice_in_main():
        burn(n)
        burn(n)

    par = statistics.median(_time(two_actors, reps))
    seq = statistics.median(_time(twice_in_main, reps))
    g = f"CPU-bound burn({n:,}) x2 on {os.cpu_count()} cores"
    return [
        dict(group=g, case="same work twice in the main interpreter", median=seq, unit="s", ratio=1.0),
        dict(group=g, case="two own-GIL actors in parallel", median=par, unit="s", ratio=seq / par,
             note="speedup (goal >= 1.75x)"),
    ]


def interrupt_rows(quick: bool) -> list[dict]:
    n = 10 if quick else 30
    lat = []
    for _ in range(n):
        a = _ext.spawn("while True: pass", name="spin")
        while a.state == "starting":
            time.sleep(0.001)
        time.sleep(0.02)
        t0 = time.perf_counter()
        assert a.interrupt()
        a.join()
        lat.append(time.perf_counter() - t0)
        assert a.outcome()[0] == "interrupted"
    lat.sort()
    g = "interrupt latency, `while True: pass` actor"
    return [
        dict(group=g, case="interrupt() to actor done, median", median=statistics.median(lat) * 1e3, unit="ms"),
        dict(group=g, case="interrupt() to actor done, p90", median=lat[int(len(lat) * 0.9) - 1] * 1e3, unit="ms"),
    ]


def run(quick: bool = False) -> list[dict]:
    return spawn_rows(quick) + parallel_rows(quick) + interrupt_rows(quick)


if __name__ == "__main__":
    print_table("actor host", run(quick="--quick" in sys.argv))
