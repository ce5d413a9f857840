"""The child programs of bench_ladder: one sample each, in a fresh process
(an abandoned actor outlives its ladder; the process must end with it).

    python bench_ladder_child.py ladder KIND GRACE KILL_AFTER
        One actor of KIND stuck, cancelled with portal.cancel_actor() while a
        heartbeat task watches the event loop; prints one line
        "@@SAMPLE@@{json}" with the figures (seconds, perf_counter).
    python bench_ladder_child.py sigint KIND GRACE KILL_AFTER
        One actor of KIND stuck; prints "ready" once it is, then waits for
        Ctrl-C (the benchmark sends SIGINT and times the exit).

    python bench_ladder_child.py mass N GRACE KILL_AFTER
        N idle trio-mode actors cancelled at once with an.cancel() while the
        heartbeat watches; prints "@@SAMPLE@@{json}" (how long, the longest
        stall, the rungs they ended on, how many were warned as abandoned).

KIND is one of bench_ladder_remote.STUCK.
"""
from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402

import subactor  # noqa: E402

import bench_ladder_remote as remote  # noqa: E402

MOD = remote.__name__
READY_TIMEOUT = 20.0


class Heartbeat:
    """A task that sleeps 1 ms in a loop; ``max_gap`` is the longest time
    between two of its wake-ups (or from the last to ``stop()``) since
    ``arm()``: how long the event loop could not run it."""

    def __init__(self):
        self.max_gap = 0.0
        self.beats = 0
        self._last = None
        self._on = False

    def arm(self):
        self._last = time.perf_counter()
        self.max_gap = 0.0
        self.beats = 0
        self._on = True

    def stop(self) -> float:
        if self._on:
            self.max_gap = max(self.max_gap, time.perf_counter() - self._last)
            self._on = False
        return self.max_gap

    async def run(self):
        while True:
            await trio.sleep(0.001)
            now = time.perf_counter()
            if self._on:
                self.max_gap = max(self.max_gap, now - self._last)
                self.beats += 1
            self._last = now


async def _start_stuck(an, kind, tn, name):
    """Start an actor of ``kind``, make it stuck, and return its portal
    once it is (its function wrote to the pipe)."""
    p = await an.start_actor(name, enable_modules=[MOD])
    await p.run(remote.ready_trio if kind == "checkpoint" else remote.ready_sync)
    r, w = os.pipe()

    async def call():
        try:
            await p.run(remote.STUCK[kind], fd=w)
        except Exception:
            pass  # ActorNotAvailable once it is gone
        finally:
            os.close(w)

    tn.start_soon(call)
    with trio.fail_after(READY_TIMEOUT):
        await trio.lowlevel.wait_readable(r)
    os.read(r, 1)
    os.close(r)
    return p


async def ladder(kind, grace, kill_after):
    out = {"kind": kind}
    hb = Heartbeat()
    async with subactor.open_nursery(grace=grace, kill_after=kill_after) as an:
        async with trio.open_nursery() as tn:
            tn.start_soon(hb.run)
            p = await _start_stuck(an, kind, tn, f"ladder-{kind}")
            # The event loop idle for 200 ms first: the machine's own noise.
            hb.arm()
            await trio.sleep(0.2)
            out["idle_gap"] = hb.stop()
            hb.arm()
            t0 = time.perf_counter()
            out["ended"] = await p.cancel_actor()
            t1 = time.perf_counter()
            await p._ended.wait()
            t2 = time.perf_counter()
            out["stall"] = hb.stop()
            out["beats"] = hb.beats
            out["returned"] = t1 - t0
            out["gone"] = t2 - t0
            out["rung"] = p.rung
            out["state"] = p._handle.state
            tn.cancel_scope.cancel()
    print("@@SAMPLE@@" + json.dumps(out), flush=True)


async def sigint(kind, grace, kill_after):
    async with subactor.open_nursery(grace=grace, kill_after=kill_after) as an:
        async with trio.open_nursery() as tn:
            await _start_stuck(an, kind, tn, f"sigint-{kind}")
            print("ready", flush=True)
            await trio.sleep_forever()


async def mass(n, grace, kill_after):
    import warnings
    from collections import Counter

    out = {"n": n}
    hb = Heartbeat()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        async with subactor.open_nursery(grace=grace, kill_after=kill_after) as an:
            portals = [await an.start_actor(f"idle{i}", enable_modules=[MOD]) for i in range(n)]
            async with trio.open_nursery() as tn:
                for p in portals:
                    tn.start_soon(p.run, remote.ready_trio)
            async with trio.open_nursery() as tn:
                tn.start_soon(hb.run)
                await trio.sleep(0.5)
                hb.arm()
                t0 = time.perf_counter()
                await an.cancel()
                out["took"] = time.perf_counter() - t0
                out["stall"] = hb.stop()
                tn.cancel_scope.cancel()
        out["rungs"] = dict(Counter(str(p.rung) for p in portals))
        out["abandoned"] = sum(1 for w in warned if issubclass(w.category, subactor.AbandonedActorWarning))
    print("@@SAMPLE@@" + json.dumps(out), flush=True)


def main(argv):
    what, kind, grace, kill_after = argv[0], argv[1], float(argv[2]), float(argv[3])
    if what == "mass":
        trio.run(mass, int(kind), grace, kill_after)
        return
    if kind not in remote.STUCK:
        raise SystemExit(f"unknown kind {kind!r}; choose from {sorted(remote.STUCK)}")
    trio.run({"ladder": ladder, "sigint": sigint}[what], kind, grace, kill_after)


if __name__ == "__main__":
    main(sys.argv[1:])
