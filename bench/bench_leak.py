"""Memory kept per actor: RSS growth per spawn/end cycle of an actor
interpreter, bare and with trio imported in it, on this Python.

Run: .venv/bin/python bench/bench_leak.py [--quick]
(on Python 3.14: `tools/py314-chroot.sh` builds a venv; see its header)

Each case runs in a fresh process: a few warm-up cycles, then N cycles of
spawn -> run -> end (joined, the interpreter destroyed); the figure is the
growth of VmRSS over the N cycles divided by N. The anchor is CPython's own
``_interpreters.create()`` / ``run_string`` / ``destroy()`` of the same code,
in the same run: what the interpreter itself keeps, without subactor.
Python 3.13 keeps about 1.7 MiB per interpreter (more when it imported
trio); 3.14 keeps none. This is why the docs recommend 3.14 (or the worker
pool, whose workers are reused) for long-running programs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _table import print_table  # noqa: E402

CHILD = r"""
import gc, json, sys
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
how, code, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if how == "subactor":
    from subactor import _ext
    def cycle():
        a = _ext.spawn(code + "\nfrom subactor import _ext\n_ext.set_result(b'ok')", name="leak")
        assert a.join(60), "actor did not end"
        assert a.outcome()[0] == "ok", a.outcome()
else:
    import _interpreters
    def cycle():
        i = _interpreters.create()
        try:
            _interpreters.run_string(i, code)
        finally:
            _interpreters.destroy(i)
for _ in range(3):
    cycle()
gc.collect()
before = rss()
for _ in range(n):
    cycle()
gc.collect()
print(json.dumps({"per_cycle": (rss() - before) / n, "before": before}))
"""

CASES = [("bare", "pass"), ("with trio", "import trio")]


def _measure(how: str, code: str, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, how, code, str(n)], capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout)


def run(quick: bool = False) -> list[dict]:
    n = 20 if quick else 60
    ver = sys.version.split()[0]
    rows = []
    for label, code in CASES:
        g = f"RSS kept per spawn/end cycle, {label}, Python {ver} ({n} cycles)"
        anchor = _measure("interpreters", code, n)
        ours = _measure("subactor", code, n)
        mib = 2**20
        rows.append(dict(group=g, case="_interpreters create/run/destroy (anchor)",
                         median=anchor["per_cycle"] / mib, unit="MiB", ratio=1.0))
        rows.append(dict(group=g, case="subactor actor spawn/end", median=ours["per_cycle"] / mib, unit="MiB",
                         ratio=(ours["per_cycle"] / anchor["per_cycle"]) if anchor["per_cycle"] > 0.05 * mib else None,
                         note=f"process RSS at the start {ours['before'] / mib:.0f} MiB"))
        print(f"  {g}: anchor {anchor['per_cycle'] / mib:.2f} MiB, subactor {ours['per_cycle'] / mib:.2f} MiB",
              file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    print_table("leak", run(quick="--quick" in sys.argv))
