"""Channel throughput and latency, against the anchors that bound them.

Run: ``.venv/bin/python bench/bench_chan.py [--quick]``. ``run(quick=False)``
returns the rows as dicts (for ``python -m subactor bench``) and prints
nothing; ``main()`` prints one table.

Cases (each measured `repeat` times, the median is reported):

- chan actor->trio: an actor sends N messages, a trio task in the main
  interpreter receives them (``recv_nowait`` / ``recv_many_nowait``, and
  ``trio.lowlevel.wait_readable`` on the recv fd when empty). "1/call" sends
  and receives one message per call; "batch" uses ``send_many`` and
  ``recv_many_nowait`` (256 messages per call).
- chan trio->actor: the same the other way (``send_nowait`` /
  ``send_many_nowait`` and the send fd; the actor blocks in ``recv``).
- mp.Pipe: ``send_bytes``/``recv_bytes`` between two processes.
- _interpqueues: CPython 3.13's private cross-interpreter queue; an actor
  puts, the main interpreter busy-polls ``get``.
- memcpy: ``ctypes.memmove`` of the message size, one call per message:
  the cost of the one copy a channel makes, with Python call overhead.
- ping-pong: round trip of a 64-byte message between a trio task (send,
  then ``wait_readable`` for the reply) and an actor blocked in ``recv``
  with its GIL released; also both sides blocking, the trio case with the
  pre-sleep spin of blocking calls turned off (``_ext._chan_spin(0)``: the
  kernel wake-up floor), and mp.Pipe.

Timing starts when the parent sends "go" (actor and process start-up are
not counted) and stops when the last message is received.
"""
import ctypes
import multiprocessing
import queue
import statistics
import sys
import textwrap
import time

import trio

from subactor import _ext
from _table import progress  # noqa: E402  (bench/ is on sys.path: run directly or by `subactor bench`)

SIZES = (64, 4096, 1 << 20)
BATCH = 256
GOALS = {"msgs_64": 1_000_000, "gbps_1m": 6.0, "rtt_p50_us": 25.0}


def _count(size, quick):
    """Messages per measurement: enough for ~0.1-0.5 s each."""
    n = {64: 400_000, 4096: 200_000, 1 << 20: 3000}[size]
    return max(n // 10, 100) if quick else n


def _join(act):
    if not act.join(60):
        raise RuntimeError(f"benchmark actor {act!r} did not finish")
    out = act.outcome()
    if out[0] != "ok":
        raise RuntimeError(f"benchmark actor failed: {out[1]}: {out[2]}\n{out[3]}")
    return out[1]


def _spawn(code, *args):
    return _ext.spawn(textwrap.dedent(code), input=" ".join(map(str, args)).encode())


# ---------------------------------------------------------------------------
# channel: actor -> trio

SENDER = """
    from subactor import _ext
    cid, size, n, batch = map(int, _ext.actor_input().split())
    end = _ext.ChannelEnd(cid, 1)
    payload = b"x" * size
    end.recv(timeout=60)                    # go
    if batch == 1:
        send = end.send
        for _ in range(n):
            send(payload)
    else:
        msgs = [payload] * batch
        for _ in range(n // batch):
            end.send_many(msgs)
    end.recv(timeout=60)                    # the parent got everything
    end.close()
"""


def chan_actor_to_trio(size, n, batch):
    n -= n % batch
    cid = _ext.channel()
    end = _ext.ChannelEnd(cid, 0)
    act = _spawn(SENDER, cid, size, n, batch)

    async def main():
        fd = end.recv_fileno()
        got = 0
        end.send(b"go")
        t0 = time.perf_counter()
        if batch == 1:
            recv = end.recv_nowait
            while got < n:
                try:
                    recv()
                    got += 1
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
        else:
            recv_many = end.recv_many_nowait
            while got < n:
                try:
                    got += len(recv_many(4 * batch))
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
        return time.perf_counter() - t0

    dt = trio.run(main)
    end.send(b"done")
    _join(act)
    end.close()
    return dt, n


# ---------------------------------------------------------------------------
# channel: trio -> actor

RECEIVER = """
    from subactor import _ext
    cid, n, batch = map(int, _ext.actor_input().split())
    end = _ext.ChannelEnd(cid, 1)
    end.send(b"ready")
    got = 0
    if batch == 1:
        recv = end.recv
        while got < n:
            recv()
            got += 1
    else:
        while got < n:
            got += len(end.recv_many(4 * batch))
    end.send(b"done")
    end.close()
"""


def chan_trio_to_actor(size, n, batch):
    n -= n % batch
    cid = _ext.channel()
    end = _ext.ChannelEnd(cid, 0)
    act = _spawn(RECEIVER, cid, n, batch)
    payload = b"x" * size

    async def arecv():
        while True:
            try:
                return end.recv_nowait()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(end.recv_fileno())

    async def main():
        sfd = end.send_fileno()
        await arecv()  # ready
        t0 = time.perf_counter()
        if batch == 1:
            send = end.send_nowait
            for _ in range(n):
                while True:
                    try:
                        send(payload)
                        break
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(sfd)
        else:
            msgs = [payload] * batch
            for _ in range(n // batch):
                left = msgs
                while left:
                    try:
                        left = left[end.send_many_nowait(left):]
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(sfd)
        await arecv()  # done
        return time.perf_counter() - t0

    dt = trio.run(main)
    _join(act)
    end.close()
    return dt, n


# ---------------------------------------------------------------------------
# anchors


def _pipe_child(conn, size, n):
    payload = b"x" * size
    conn.recv_bytes()
    for _ in range(n):
        conn.send_bytes(payload)
    conn.close()


def mp_pipe(size, n):
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_pipe_child, args=(child, size, n))
    p.start()
    child.close()
    parent.send_bytes(b"go")
    t0 = time.perf_counter()
    recv = parent.recv_bytes
    for _ in range(n):
        recv()
    dt = time.perf_counter() - t0
    p.join(60)
    parent.close()
    return dt, n


QUEUE_SENDER = """
    import queue
    import time
    import _interpqueues as q
    from subactor import _ext
    qid, ctl, size, n = map(int, _ext.actor_input().split())
    payload = b"x" * size
    put = q.put
    while q.get_count(ctl) == 0:   # the parent's "go"
        pass
    q.get(ctl)
    for _ in range(n):
        while True:
            try:
                put(qid, payload, 0, 1)
                break
            except queue.Full:
                pass
    # Items put by an interpreter go with it: stay until the parent has all.
    while q.get_count(ctl) == 0:
        time.sleep(0.001)
"""


def interpqueues(size, n):
    import _interpqueues as q

    qid, ctl = q.create(1024, 0, 1), q.create(1, 0, 1)
    try:
        act = _spawn(QUEUE_SENDER, qid, ctl, size, n)
        time.sleep(0.05)  # let the actor start polling
        q.put(ctl, b"go", 0, 1)
        t0 = time.perf_counter()
        got, get = 0, q.get
        while got < n:
            try:
                get(qid)
                got += 1
            except queue.Empty:
                pass
        dt = time.perf_counter() - t0
        while q.get_count(ctl):  # the actor took "go" long ago; this is quick
            pass
        q.put(ctl, b"done", 0, 1)
        _join(act)
    finally:
        q.destroy(qid)
        q.destroy(ctl)
    return dt, n


def memcpy(size, n):
    src, dst = bytearray(b"x" * size), bytearray(size)
    s = ctypes.addressof((ctypes.c_char * size).from_buffer(src))
    d = ctypes.addressof((ctypes.c_char * size).from_buffer(dst))
    move = ctypes.memmove
    t0 = time.perf_counter()
    for _ in range(n):
        move(d, s, size)
    return time.perf_counter() - t0, n


# ---------------------------------------------------------------------------
# round trips

ECHO = """
    from subactor import _ext
    end = _ext.ChannelEnd(int(_ext.actor_input()), 1)
    while True:
        try:
            m = end.recv()
        except _ext.EndOfChannel:
            break
        end.send(m)
"""


def _percentiles(samples_ns):
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1e3, s[min(len(s) - 1, int(len(s) * 0.99))] / 1e3


def pingpong_trio(n):
    cid = _ext.channel()
    end = _ext.ChannelEnd(cid, 0)
    act = _spawn(ECHO, cid)
    payload = b"p" * 64

    async def main():
        fd = end.recv_fileno()
        samples = []
        for i in range(n + 100):
            t0 = time.perf_counter_ns()
            end.send_nowait(payload)
            while True:
                try:
                    end.recv_nowait()
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
            if i >= 100:  # warm-up
                samples.append(time.perf_counter_ns() - t0)
        return samples

    samples = trio.run(main)
    end.close()
    _join(act)
    return _percentiles(samples)


def pingpong_blocking(n):
    cid = _ext.channel()
    end = _ext.ChannelEnd(cid, 0)
    act = _spawn(ECHO, cid)
    payload = b"p" * 64
    samples = []
    for i in range(n + 100):
        t0 = time.perf_counter_ns()
        end.send(payload)
        end.recv()
        if i >= 100:
            samples.append(time.perf_counter_ns() - t0)
    end.close()
    _join(act)
    return _percentiles(samples)


def _pipe_echo(conn):
    while True:
        m = conn.recv_bytes()
        if not m:
            break
        conn.send_bytes(m)


def pingpong_pipe(n):
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_pipe_echo, args=(child,))
    p.start()
    child.close()
    payload = b"p" * 64
    samples = []
    for i in range(n + 100):
        t0 = time.perf_counter_ns()
        parent.send_bytes(payload)
        parent.recv_bytes()
        if i >= 100:
            samples.append(time.perf_counter_ns() - t0)
    parent.send_bytes(b"")
    p.join(60)
    parent.close()
    return _percentiles(samples)


# ---------------------------------------------------------------------------


def _median_rate(fn, size, n, repeat):
    times = []
    for _ in range(repeat):
        dt, count = fn(size, n)
        times.append(dt / count)
    per = statistics.median(times)
    return {"msgs_per_s": 1 / per, "gb_per_s": size / per / 1e9, "us_per_msg": per * 1e6}


def run(quick=False):
    """Measure every case; a list of dicts, one per (case, size)."""
    repeat = 1 if quick else 3
    rows = []
    cases = [
        ("chan actor->trio 1/call", lambda s, n: chan_actor_to_trio(s, n, 1)),
        ("chan actor->trio batch", lambda s, n: chan_actor_to_trio(s, n, BATCH)),
        ("chan trio->actor 1/call", lambda s, n: chan_trio_to_actor(s, n, 1)),
        ("chan trio->actor batch", lambda s, n: chan_trio_to_actor(s, n, BATCH)),
        ("mp.Pipe (2 processes)", mp_pipe),
        ("_interpqueues (busy get)", interpqueues),
        ("memcpy (ctypes.memmove)", memcpy),
    ]
    for size in SIZES:
        n = _count(size, quick)
        for name, fn in cases:
            # per-call paths are slower; fewer messages keep the run short
            m = n // 4 if ("1/call" in name or "Pipe" in name or "interp" in name) and size == 64 else n
            progress("chan", f"{name}, {size} B messages")
            r = _median_rate(fn, size, max(m, 100), repeat)
            rows.append({"case": name, "size": size, **r})
    n = 500 if quick else 5000

    def nospin(fn):
        def run_nospin(n):
            old = _ext._chan_spin(0)
            try:
                return fn(n)
            finally:
                _ext._chan_spin(old)
        return run_nospin

    for name, fn in [("ping-pong trio<->actor", pingpong_trio),
                     ("ping-pong blocking<->actor", pingpong_blocking),
                     ("ping-pong trio<->actor nospin", nospin(pingpong_trio)),
                     ("ping-pong mp.Pipe", pingpong_pipe)]:
        progress("chan", name)
        p50s, p99s = zip(*(fn(n) for _ in range(repeat)))
        rows.append({"case": name, "size": 64, "p50_us": statistics.median(p50s),
                     "p99_us": statistics.median(p99s)})
    return rows


def _fmt_size(size):
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size >= 1024 else f"{size} B"


def table(rows):
    by = {(r["case"], r["size"]): r for r in rows}
    lines = [f"{'case':28} {'size':>7} {'msgs/s':>12} {'GB/s':>7} {'vs Pipe':>8} {'vs iq':>7} {'vs memcpy':>9}"]
    for r in rows:
        if "msgs_per_s" not in r:
            continue
        pipe = by[("mp.Pipe (2 processes)", r["size"])]["msgs_per_s"]
        iq = by[("_interpqueues (busy get)", r["size"])]["msgs_per_s"]
        mc = by[("memcpy (ctypes.memmove)", r["size"])]["msgs_per_s"]
        lines.append(f"{r['case']:28} {_fmt_size(r['size']):>7} {r['msgs_per_s']:12,.0f} {r['gb_per_s']:7.2f} "
                     f"{r['msgs_per_s'] / pipe:7.2f}x {r['msgs_per_s'] / iq:6.2f}x {r['msgs_per_s'] / mc:8.2f}x")
    lines.append("")
    lines.append(f"{'round trip (64 B)':30} {'p50 us':>8} {'p99 us':>10}")
    for r in rows:
        if "p50_us" in r:
            lines.append(f"{r['case']:30} {r['p50_us']:8.1f} {r['p99_us']:10.1f}")
    best64 = max(r["msgs_per_s"] for r in rows if r["size"] == 64 and r["case"].startswith("chan actor->trio"))
    best1m = max(r["gb_per_s"] for r in rows if r["size"] == 1 << 20 and r["case"].startswith("chan actor->trio"))
    rtt = by[("ping-pong trio<->actor", 64)]["p50_us"]
    lines.append("")
    lines.append("goals (actor->trio): "
                 f"64 B {best64:,.0f} msg/s (goal {GOALS['msgs_64']:,}: {best64 / GOALS['msgs_64']:.2f}x), "
                 f"1 MiB {best1m:.2f} GB/s (goal {GOALS['gbps_1m']}: {best1m / GOALS['gbps_1m']:.2f}x), "
                 f"round trip p50 {rtt:.1f} us (goal <= {GOALS['rtt_p50_us']}: {GOALS['rtt_p50_us'] / rtt:.2f}x)")
    return "\n".join(lines)


def main():
    quick = "--quick" in sys.argv
    rows = run(quick=quick)
    print(table(rows))


if __name__ == "__main__":
    main()
