"""`make demo` / `python -m subactor demo`.

1. A small actor tree does real parallel work: one worker actor per core
   generates its share of a data set of a few hundred MB, hashes it
   (sha256) and checksums it in pure Python, streaming progress back to the
   root over a context stream; the root shows a live progress line. The
   same work then runs in the main interpreter alone, for the speedup.
2. Three stuck actors are cancelled through the ladder, with timings: one
   that checkpoints (ends at rung 1), a `while True: pass` (rung 2,
   interrupted after the grace period) and one blocked in C in
   `time.sleep(1000)` (rung 3, abandoned at the hard deadline).
"""
from __future__ import annotations

import hashlib
import os
import random
import sys
import time

import subactor

BLOCK = 4 << 20  # bytes per block


def crunch_block(rng: random.Random, h, acc: int) -> int:
    """Generate one block, hash it, and fold a pure-Python checksum of it."""
    data = rng.randbytes(BLOCK)
    h.update(data)
    for i in range(0, BLOCK, 64):  # pure Python: this is where a GIL would bite
        acc = (acc * 31 + data[i]) & 0xFFFFFFFF
    return acc


def crunch(seed: int, blocks: int) -> tuple[str, int]:
    rng, h, acc = random.Random(seed), hashlib.sha256(), 0
    for _ in range(blocks):
        acc = crunch_block(rng, h, acc)
    return h.hexdigest(), acc


@subactor.context
async def crunch_ctx(ctx, seed: int, blocks: int):
    """One worker: streams the number of blocks done, returns its digest."""
    rng, h, acc = random.Random(seed), hashlib.sha256(), 0
    await ctx.started(blocks)
    async with ctx.open_stream() as stream:
        for i in range(blocks):
            acc = crunch_block(rng, h, acc)
            await stream.send(i + 1)
    return [h.hexdigest(), acc]


def spin():
    while True:
        pass


def sleep_long():
    time.sleep(1000)


async def sleep_forever_async():
    import trio

    await trio.sleep_forever()


async def _tree(workers: int, blocks: int) -> list:
    import trio

    done = [0] * workers
    results: list = [None] * workers
    total = workers * blocks

    async def worker(an, i):
        p = await an.start_actor(f"worker-{i}", enable_modules=[__name__])
        async with p.open_context(crunch_ctx, seed=i, blocks=blocks) as (ctx, _):
            async with ctx.open_stream() as stream:
                async for n in stream:
                    done[i] = n
        results[i] = tuple(await ctx.wait_for_result())
        await p.cancel_actor()

    async def progress():
        # A live line on a terminal; a line per quarter when piped.
        tty = sys.stdout.isatty()
        t0 = time.perf_counter()
        shown = -1
        while True:
            mb = sum(done) * BLOCK / 2**20
            quarter = 4 * sum(done) // total
            line = (f"  [{'#' * int(30 * sum(done) / total):<30}] {mb:6.0f} / {total * BLOCK / 2**20:.0f} MB  "
                    f"{mb / max(time.perf_counter() - t0, 1e-9):6.0f} MB/s  "
                    + " ".join(f"w{i}:{d}/{blocks}" for i, d in enumerate(done)))
            if tty:
                sys.stdout.write("\r" + line)
            elif quarter != shown:
                sys.stdout.write(line + "\n")
                shown = quarter
            sys.stdout.flush()
            await trio.sleep(0.1)

    async with subactor.open_nursery() as an:
        async with trio.open_nursery() as tn:
            tn.start_soon(progress)
            async with trio.open_nursery() as workers_nursery:
                for i in range(workers):
                    workers_nursery.start_soon(worker, an, i)
            tn.cancel_scope.cancel()
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    return results


async def _ladder() -> list[tuple[str, int, float]]:
    import warnings

    import trio

    rows = []
    async with subactor.open_nursery(grace=0.5, kill_after=1.5) as an:
        for label, fn in (("checkpointing (trio.sleep_forever)", sleep_forever_async),
                          ("busy loop (while True: pass)", spin),
                          ("blocked in C (time.sleep(1000))", sleep_long)):
            p = await an.start_actor(f"stuck-{fn.__name__}", enable_modules=[__name__])

            async def call(p=p, fn=fn):
                try:
                    await p.run(fn)
                except Exception:
                    pass

            async with trio.open_nursery() as tn:
                tn.start_soon(call)
                await trio.sleep(0.2)
                t0 = time.perf_counter()
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    await p.cancel_actor()
                rows.append((label, p.rung, time.perf_counter() - t0))
    return rows


def main(total_mb: int = 256) -> int:
    import trio

    workers = os.cpu_count() or 1
    blocks = max(1, total_mb * 2**20 // BLOCK // workers)
    mb = workers * blocks * BLOCK // 2**20
    print(f"subactor demo on {workers} cores, Python {sys.version.split()[0]}")
    print(f"1. {workers} worker actors (own-GIL subinterpreters) generate, hash and checksum {mb} MB,")
    print("   streaming progress back over context streams:")
    t0 = time.perf_counter()
    par = trio.run(_tree, workers, blocks)
    t_par = time.perf_counter() - t0
    print(f"   actor tree: {t_par:5.2f} s")
    print("   the same work in the main interpreter alone ...", end="", flush=True)
    t0 = time.perf_counter()
    seq = [crunch(i, blocks) for i in range(workers)]
    t_seq = time.perf_counter() - t0
    print(f" {t_seq:5.2f} s")
    if par != seq:
        print("   RESULTS DIFFER:", par, seq)
        return 1
    print(f"   results identical (sha256 {seq[0][0][:16]}...); speedup {t_seq / t_par:.2f}x")

    print("2. stuck actors cancelled through the ladder (grace 0.5 s, hard deadline 1.5 s):")
    for label, rung, secs in trio.run(_ladder):
        how = {1: "cooperative cancel", 2: "interrupted", 3: "abandoned"}[rung]
        print(f"   {label:<38} rung {rung} ({how:<18}) {secs * 1e3:7.1f} ms")
    print("   (the abandoned actor's thread stays blocked in C; the process still exits at once)")
    return 0
