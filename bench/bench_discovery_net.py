"""Discovery across programs: a peer's portal over TCP and UDS, 1 MiB
stream items over TCP, and find_actor through a registrar, against raw
trio sockets to the same far program in the same run.

Run: .venv/bin/python bench/bench_discovery_net.py [--quick]

The far program (bench_discovery_net_peer.py) is the registrar: its root
listens on TCP and UDS and runs an actor "target"; it also serves a raw
trio echo (64 B ping-pong anchor) and a raw blast of 1 MiB writes (the
throughput anchor). This program's root registers with it. Cases:

- round trip, ``portal.run(async_add)``, p50: parent -> child in this
  process (anchor of the in-process figures); the same child through the
  portal ``find_actor`` yields (a peer in this process); the far actor through the
  portal ``find_actor`` yields (TCP), the same through its UDS address;
  raw ``trio.SocketStream`` 64 B ping-pong to the far program (anchor of
  the network rows).
- 1 MiB items streamed from the far actor over a context stream (TCP),
  against raw ``SocketStream`` reads of the same bytes.
- ``find_actor`` to a yielded portal (ask the registrar, connect,
  authenticate, the far root hands the connection to the actor), p50.
- a remote spawn through the far program (a daemon): ``start_actor(...,
  host=...)`` to the first answer of ``portal.run`` of a sync function
  (the new actor imports no trio), against a local spawn to its first
  answer, p50 of 5 per repetition.

Both programs share a key (SUBACTOR_AUTHKEY, set here): a daemon starts
actors only for authenticated parents.

Medians of 5 interleaved repetitions (3 with --quick). Both programs share
the machine's 2 cores: compare figures of one run only.
"""
from __future__ import annotations

import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402
from _table import print_table  # noqa: E402

import subactor  # noqa: E402

import bench_discovery_net_remote as remote  # noqa: E402

MOD = remote.__name__
MiB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY = "bench-discovery-net-key-0123456789"


def _start_far(port: int, uds: str):
    os.environ["SUBACTOR_AUTHKEY"] = KEY
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bench_discovery_net_peer.py"), str(port), uds],
                            cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if not select.select([proc.stdout], [], [], 60)[0]:
        proc.kill()
        raise SystemExit("the far program did not start within 60 s")
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the far program failed (exit {proc.wait()})")
    return proc, json.loads(line)


async def _timed_calls(portal, n: int) -> float:
    for _ in range(50):
        await portal.run(remote.async_add, a=1, b=2)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await portal.run(remote.async_add, a=1, b=2)
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat)


async def _raw_pingpong(port: int, n: int) -> float:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    payload = b"p" * 64
    lat = []
    async with stream:
        for i in range(n + 50):
            t0 = time.perf_counter()
            await stream.send_all(payload)
            got = 0
            while got < 64:
                got += len(await stream.receive_some(64 - got))
            if i >= 50:
                lat.append(time.perf_counter() - t0)
    return statistics.median(lat)


async def _raw_blast(port: int, n: int) -> float:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        t0 = time.perf_counter()
        await stream.send_all(n.to_bytes(4, "big") + MiB.to_bytes(4, "big"))
        left = n * MiB
        while left:
            left -= len(await stream.receive_some(min(left, 1 << 18)))
        dt = time.perf_counter() - t0
        await stream.send_all(b"k")
    return n * MiB / dt / 1e9


async def _stream_items(portal, n: int) -> float:
    """GB/s of n 1 MiB items, timed from the stream's opening to its last item."""
    async with portal.open_context(remote.items, n=n, size=MiB) as (ctx, _):
        async with ctx.open_stream() as stream:
            t0 = time.perf_counter()
            got = 0
            async for item in stream:
                got += len(item)
            dt = time.perf_counter() - t0
    assert got == n * MiB
    return n * MiB / dt / 1e9


async def _uds_portal(uds: str):
    """A portal to the far actor through its root's UDS address only."""
    from subactor.discovery import _hub
    from subactor.discovery._api import open_portal

    hub = _hub.local()
    entry = (await hub.find("target"))[-1]
    entry = dict(entry, addrs=[a for a in entry["addrs"] if str(a[0]).startswith("/")])
    assert entry["addrs"], "the far root has no UDS address"
    chan, aid = await hub.connect((entry["name"], entry["uuid"]), entry)
    return open_portal(chan, aid)


async def measure(quick: bool, port: int, uds: str, far: dict) -> dict[str, list[float]]:
    reps = 3 if quick else 5
    n = 300 if quick else 1000
    items = 20 if quick else 50
    keys = ("child", "local_peer", "raw_tcp", "tcp_peer", "uds_peer", "raw_blast", "stream_tcp", "find", "spawn_local",
            "spawn_remote")
    got: dict[str, list[float]] = {k: [] for k in keys}
    async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]) as root:
        assert not root.is_registrar
        async with subactor.open_nursery() as an:
            child = await an.start_actor("local", enable_modules=[MOD])
            for _ in range(reps + 1):   # the first repetition warms up, untimed
                row = {"child": await _timed_calls(child, n), "raw_tcp": await _raw_pingpong(far["echo"], n)}
                async with subactor.find_actor("local") as p:
                    row["local_peer"] = await _timed_calls(p, n)
                async with subactor.find_actor("target") as p:
                    row["tcp_peer"] = await _timed_calls(p, n)
                    row["stream_tcp"] = await _stream_items(p, items)
                async with await _uds_portal(uds) as p:
                    row["uds_peer"] = await _timed_calls(p, n)
                row["raw_blast"] = await _raw_blast(far["blast"], items)
                t = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    async with subactor.find_actor("target") as p:
                        t.append(time.perf_counter() - t0)
                row["find"] = statistics.median(t)
                for where, host in (("spawn_local", None), ("spawn_remote", f"tcp://127.0.0.1:{port}")):
                    t = []
                    for i in range(5):
                        t0 = time.perf_counter()
                        p = await an.start_actor(f"sp{i}", enable_modules=[MOD], host=host)
                        await p.run(remote.sync_add, a=1, b=2)   # a sync call: no trio in the new actor
                        t.append(time.perf_counter() - t0)
                        await p.cancel_actor()
                    row[where] = statistics.median(t)
                if _ > 0:
                    for k, v in row.items():
                        got[k].append(v)
            await an.cancel()
    return got


def run(quick: bool = False) -> list[dict]:
    port = _free_port()
    uds = os.path.join(tempfile.mkdtemp(prefix="subactor-bench-"), "far.sock")
    proc, far = _start_far(port, uds)
    try:
        got = trio.run(measure, quick, port, uds, far)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    med = {k: statistics.median(v) for k, v in got.items()}
    us = {k: med[k] * 1e6 for k in ("child", "local_peer", "raw_tcp", "tcp_peer", "uds_peer", "find")}
    ms = {k: med[k] * 1e3 for k in ("spawn_local", "spawn_remote")}
    rt = "portal.run round trip (p50)"
    return [
        dict(group=rt, case="parent -> child, this process (anchor)", median=us["child"], unit="us", ratio=1.0),
        dict(group=rt, case="portal.run, peer in this process (find_actor)", median=us["local_peer"], unit="us",
             ratio=us["local_peer"] / us["child"], note="goal <= 1.5x"),
        dict(group=rt, case="raw trio SocketStream 64 B ping-pong, TCP", median=us["raw_tcp"], unit="us",
             ratio=us["raw_tcp"] / us["child"], note="anchor of the network rows"),
        dict(group=rt, case="portal.run, peer in another program, TCP", median=us["tcp_peer"], unit="us",
             ratio=us["tcp_peer"] / us["child"], note=f"vs raw TCP {us['tcp_peer'] / us['raw_tcp']:.2f}x"),
        dict(group=rt, case="portal.run, peer in another program, UDS", median=us["uds_peer"], unit="us",
             ratio=us["uds_peer"] / us["child"], note=f"vs raw TCP {us['uds_peer'] / us['raw_tcp']:.2f}x"),
        dict(group="1 MiB items from another program, TCP", case="raw trio SocketStream reads (anchor)",
             median=med["raw_blast"], unit="GB/s", ratio=1.0),
        dict(group="1 MiB items from another program, TCP", case="context stream items",
             median=med["stream_tcp"], unit="GB/s", ratio=med["stream_tcp"] / med["raw_blast"],
             note="higher is faster"),
        dict(group="find_actor to a portal, through the registrar", case="actor of another program (TCP)",
             median=us["find"], unit="us", ratio=us["find"] / us["child"], note="ratio to the anchor call"),
        dict(group="spawn to the first answer", case="local subinterpreter actor (anchor)", median=ms["spawn_local"],
             unit="ms", ratio=1.0),
        dict(group="spawn to the first answer", case="remote spawn through a daemon (TCP)",
             median=ms["spawn_remote"], unit="ms", ratio=ms["spawn_remote"] / ms["spawn_local"]),
    ]


if __name__ == "__main__":
    print_table("discovery across programs", run(quick="--quick" in sys.argv))
