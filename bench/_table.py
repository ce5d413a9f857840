"""Printing of benchmark rows as one table per benchmark.

A row is a dict with: group, case, median, unit, and optionally ratio (to
the group's first row unless `note` says otherwise), note, and goal_met
(False marks the row "MISSED GOAL" in the table and in the run's summary).
"""
from __future__ import annotations

import os
import platform


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def progress(bench: str, what: str) -> None:
    """One progress line on stderr inside a benchmark module (stdout carries
    its rows), so a long module does not run silently."""
    import sys
    import time

    print(f"    {time.strftime('%H:%M:%S')} bench_{bench}: {what}", file=sys.stderr, flush=True)


def missed(row: dict) -> bool:
    """Whether a row reports a goal it did not reach: goal_met is False, or
    its note says MISSED / MISS (as some benchmarks write it)."""
    if row.get("goal_met") is False:
        return True
    note = str(row.get("note", ""))
    return "MISSED" in note or "(MISS" in note or "missed in" in note


def format_table(title: str, rows: list[dict]) -> str:
    out = [f"== {title} ({machine()}) =="]
    group = None
    w = max((len(str(r.get("case", ""))) for r in rows), default=10)
    for r in rows:
        if r.get("group") != group:
            group = r.get("group")
            out.append(f"-- {group}")
        ratio = r.get("ratio")
        ratio_s = f"{ratio:8.2f}x" if isinstance(ratio, (int, float)) else " " * 9
        val = r.get("median")
        val_s = f"{val:12.3f}" if isinstance(val, float) else f"{val!s:>12}"
        note = r.get("note", "")
        if missed(r):
            note = f"<< MISSED GOAL >> {note}"
        out.append(f"  {str(r.get('case', '')):<{w}}  {val_s} {r.get('unit', ''):<6} {ratio_s}  {note}".rstrip())
    return "\n".join(out)


def print_table(title: str, rows: list[dict]) -> None:
    print(format_table(title, rows), flush=True)
