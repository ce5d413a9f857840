"""multiprocessing anchors shared by the benchmarks: a Pipe round trip
between two processes, and start-to-first-answer of a child process."""
from __future__ import annotations

import multiprocessing as mp
import time


def pct(xs, q):
    """The q-quantile of xs (0 <= q <= 1), by rank."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def pipe_child(conn):
    """Answers {"a", "b"} with their sum until it gets None."""
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg["a"] + msg["b"])


def pipe_round_trips(n: int) -> list[float]:
    """n round-trip times (s) of a small message to a forked child over a Pipe."""
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=pipe_child, args=(b,))
    p.start()
    for _ in range(50):
        a.send({"a": 1, "b": 2})
        a.recv()
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        a.send({"a": 1, "b": 2})
        a.recv()
        lat.append(time.perf_counter() - t0)
    a.send(None)
    p.join()
    return lat


def start_to_first_answer(method: str, reps: int) -> list[float]:
    """Times (s) from creating a child with `method` to its first answer."""
    c = mp.get_context(method)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x, y = c.Pipe()
        proc = c.Process(target=pipe_child, args=(y,))
        proc.start()
        x.send({"a": 1, "b": 2})
        x.recv()
        times.append(time.perf_counter() - t0)
        x.send(None)
        proc.join()
    return times
