"""A busy machine for the benchmarks' "busy" rows: processes that each spin
a core at normal priority while the figures are taken again.

``with busy():`` starts one busy-loop process per core (at least 2) and
stops them (by their ids) on leaving, whatever happens inside.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

_LOOP = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def busy(n: int | None = None, limit: float = 600.0):
    """Load every core (``n`` processes, default the core count, at least
    2) for the block; each loader also ends by itself after ``limit``
    seconds, so that nothing outlives a benchmark that was killed."""
    n = n or max(2, os.cpu_count() or 2)
    procs = [subprocess.Popen([sys.executable, "-c", _LOOP, str(limit)]) for _ in range(n)]
    try:
        time.sleep(0.2)   # let them get going
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def quiet_then_busy(sample):
    """``sample()`` run twice: on the machine as it is, then under
    :func:`busy`. Returns ``[("quiet", 0, first), ("busy", k, second)]``
    (``k`` busy-loop processes): the loop the call-path benchmarks share
    (bench_api's call rows, bench_pool's warm rows)."""
    out = [("quiet", 0, sample())]
    with busy() as k:
        out.append(("busy", k, sample()))
    return out
