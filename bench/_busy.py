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
