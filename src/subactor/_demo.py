"""`make demo` / `python -m subactor demo`: one actor per core running a
CPU-bound pure-Python function, then the same work in the main interpreter."""
from __future__ import annotations

import os
import time


def burn(n: int) -> int:
    """Pure-Python CPU work: no C call releases the GIL in here."""
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


async def _parallel(n: int, workers: int) -> list[int]:
    import trio

    from subactor._host import run_in_subinterpreter

    results = [0] * workers

    async def one(i: int) -> None:
        results[i] = await run_in_subinterpreter(burn, n, name=f"burn-{i}")

    async with trio.open_nursery() as nursery:
        for i in range(workers):
            nursery.start_soon(one, i)
    return results


def main(n: int = 6_000_000) -> int:
    import trio

    workers = os.cpu_count() or 1
    print(f"subactor demo: {workers} actors (one per core), each running burn({n:,}) in pure Python")
    t0 = time.perf_counter()
    par = trio.run(_parallel, n, workers)
    t_par = time.perf_counter() - t0
    print(f"  {workers} own-GIL actors in parallel : {t_par:6.2f} s")
    t0 = time.perf_counter()
    seq = [burn(n) for _ in range(workers)]
    t_seq = time.perf_counter() - t0
    print(f"  same work in the main interpreter: {t_seq:6.2f} s")
    assert par == seq, (par, seq)
    print(f"  speedup: {t_seq / t_par:.2f}x on {workers} cores (results identical)")
    return 0
