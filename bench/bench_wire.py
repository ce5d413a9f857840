"""Network wire benchmark (subactor.ipc): round trips, throughput and
connection set-up over TCP loopback and Unix sockets, against raw trio
sockets measured in the same run.

Run: .venv/bin/python bench/bench_wire.py [--quick]

The far side is one process (bench_wire_peer.py) serving every case; this
process is the client, one trio task. Cases:

- round trip, 64 B: a 64-byte payload there and back, p50 over N trips.
  Anchors: raw ``trio.SocketStream`` ping-pong (64 raw bytes) over TCP and
  over UDS. subactor: ``connect()`` + ``TrioChannel`` (a ``SocketEnd``)
  sending ``{"v": <64 bytes>}`` over TCP without a key, with a key (the
  key only changes the handshake: goal <= 10% over no key), over UDS, and
  over TLS (``StreamChannel``; anchor: a raw ``trio.SSLStream``), if
  ``openssl`` can make a certificate.
- one way, 1 MiB items over TCP: N items sent, then one answer; raw
  ``SocketStream.send_all`` (and ``SSLStream.send_all``) of the same bytes
  as the anchors.
- connection set-up: ``connect()`` to its first usable channel (TCP
  connect, authentication, hellos), p50.

Medians of 5 interleaved repetitions (3 with --quick), after one untimed
repetition of everything. Both processes share the machine's cores: the
round trips depend on whether the two land on the same core, so compare
figures of one run only.
"""
from __future__ import annotations

import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trio  # noqa: E402
from _anchors import pct  # noqa: E402
from _table import print_table  # noqa: E402

from subactor import ipc  # noqa: E402

GOAL_AUTH = 1.10
PING = b"x" * 64
MIB = 1 << 20


def _start_peer(tmp: str, key: bytes, cert: tuple[str, str] | None) -> tuple[subprocess.Popen, dict]:
    argv = [sys.executable, os.path.join(HERE, "bench_wire_peer.py"), key.hex(), tmp, *(cert or ())]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=HERE)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"the peer process failed to start (exit {proc.wait()})")
    return proc, json.loads(line)


def _make_cert(tmp: str) -> tuple[str, str] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bench",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


# -- raw trio sockets -----------------------------------------------------------------------

async def _raw_open(addr, ssl_context=None):
    if isinstance(addr, str):
        return await trio.open_unix_socket(addr)
    if ssl_context is not None:
        return await trio.open_ssl_over_tcp_stream(*addr, ssl_context=ssl_context)
    return await trio.open_tcp_stream(*addr)


async def _recv_n(stream, n: int) -> None:
    got = 0
    while got < n:
        b = await stream.receive_some(n - got)
        if not b:
            raise EOFError
        got += len(b)


async def raw_rtt(addr, n: int, ssl_context=None) -> list[float]:
    stream = await _raw_open(addr, ssl_context)
    try:
        await stream.send_all(b"e")
        lat = []
        for i in range(n + 200):
            t0 = time.perf_counter()
            await stream.send_all(PING)
            await _recv_n(stream, 64)
            if i >= 200:
                lat.append(time.perf_counter() - t0)
        return lat
    finally:
        await stream.aclose()


async def raw_tput(addr, n: int, size: int, ssl_context=None) -> float:
    stream = await _raw_open(addr, ssl_context)
    blob = b"x" * size
    try:
        await stream.send_all(b"s" + n.to_bytes(8, "little") + size.to_bytes(8, "little"))
        t0 = time.perf_counter()
        for _ in range(n):
            await stream.send_all(blob)
        await _recv_n(stream, 1)
        return time.perf_counter() - t0
    finally:
        await stream.aclose()


# -- subactor.ipc -----------------------------------------------------------------------------

async def ipc_rtt(addr: str, n: int, **kw) -> list[float]:
    conn = await ipc.connect(addr, {"bench": "rtt"}, **kw)
    ch = conn.channel()
    msg = {"v": PING}
    try:
        lat = []
        for i in range(n + 200):
            t0 = time.perf_counter()
            await ch.send(msg)
            await ch.recv()
            if i >= 200:
                lat.append(time.perf_counter() - t0)
        return lat
    finally:
        await conn.aclose()


async def ipc_tput(addr: str, n: int, size: int, **kw) -> float:
    conn = await ipc.connect(addr, {"bench": "tput"}, **kw)
    ch = conn.channel()
    msg = {"v": b"x" * size}
    try:
        await ch.send({"sink": n})
        t0 = time.perf_counter()
        for _ in range(n):
            await ch.send(msg)
        assert await ch.recv() == {"got": n}
        return time.perf_counter() - t0
    finally:
        await conn.aclose()


async def ipc_setup(addr: str, n: int, **kw) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn = await ipc.connect(addr, {"bench": "setup"}, **kw)
        conn.channel()
        times.append(time.perf_counter() - t0)
        await conn.aclose()
    return times


# ----------------------------------------------------------------------------------------------

def run(quick: bool = False) -> list[dict]:
    reps = 3 if quick else 5
    n_rtt = 1000 if quick else 5000
    n_mib = 100 if quick else 400
    n_setup = 20 if quick else 100
    key = os.urandom(32)
    tmp = tempfile.mkdtemp(prefix="sa-bench-wire-")  # mode 0700
    try:
        cert = _make_cert(tmp)
        client_tls = ssl.create_default_context(cafile=cert[0]) if cert else None
        proc, a = _start_peer(tmp, key, cert)
        try:
            rtt_cases = [
                ("raw trio SocketStream, TCP", lambda: raw_rtt(tuple(a["raw_tcp"]), n_rtt)),
                ("ipc TrioChannel, TCP, no key", lambda: ipc_rtt(a["ipc_tcp"], n_rtt, authkey=None)),
                ("ipc TrioChannel, TCP, key", lambda: ipc_rtt(a["ipc_tcp_key"], n_rtt, authkey=key)),
                ("raw trio SocketStream, UDS", lambda: raw_rtt(a["raw_uds"], n_rtt)),
                ("ipc TrioChannel, UDS, no key", lambda: ipc_rtt(a["ipc_uds"], n_rtt, authkey=None)),
            ]
            tput_cases = [
                ("raw trio SocketStream, TCP", lambda: raw_tput(tuple(a["raw_tcp"]), n_mib, MIB)),
                ("ipc TrioChannel, TCP, no key", lambda: ipc_tput(a["ipc_tcp"], n_mib, MIB, authkey=None)),
            ]
            setup_cases = [
                ("TCP, no key", lambda: ipc_setup(a["ipc_tcp"], n_setup, authkey=None)),
                ("TCP, key", lambda: ipc_setup(a["ipc_tcp_key"], n_setup, authkey=key)),
                ("UDS, no key", lambda: ipc_setup(a["ipc_uds"], n_setup, authkey=None)),
            ]
            if cert:
                rtt_cases.append(("raw trio SSLStream, TLS over TCP", lambda: raw_rtt(
                    tuple(a["raw_tls"]), n_rtt, ssl_context=client_tls)))
                rtt_cases.append(("ipc StreamChannel, TLS over TCP", lambda: ipc_rtt(
                    a["ipc_tls"], n_rtt, authkey=None, ssl_context=client_tls)))
                tput_cases.append(("raw trio SSLStream, TLS over TCP", lambda: raw_tput(
                    tuple(a["raw_tls"]), n_mib, MIB, ssl_context=client_tls)))
                tput_cases.append(("ipc StreamChannel, TLS over TCP", lambda: ipc_tput(
                    a["ipc_tls"], n_mib, MIB, authkey=None, ssl_context=client_tls)))
                setup_cases.append(("TLS over TCP, no key", lambda: ipc_setup(
                    a["ipc_tls"], n_setup, authkey=None, ssl_context=client_tls)))

            rtt = {name: [] for name, _ in rtt_cases}
            p99 = {name: [] for name, _ in rtt_cases}
            tput = {name: [] for name, _ in tput_cases}
            setup = {name: [] for name, _ in setup_cases}

            async def one_rep():
                for name, fn in rtt_cases:
                    lat = await fn()
                    rtt[name].append(statistics.median(lat) * 1e6)
                    p99[name].append(pct(lat, 0.99) * 1e6)
                for name, fn in tput_cases:
                    tput[name].append(n_mib * MIB / await fn() / 1e9)
                for name, fn in setup_cases:
                    setup[name].append(statistics.median(await fn()) * 1e6)

            trio.run(one_rep)  # a warm-up: the first connections and runs are slower
            for d in (rtt, p99, tput, setup):
                for v in d.values():
                    v.clear()
            for _ in range(reps):
                trio.run(one_rep)
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    med = {k: statistics.median(v) for k, v in rtt.items()}
    raw_tcp, raw_uds = med["raw trio SocketStream, TCP"], med["raw trio SocketStream, UDS"]
    g = f"round trip, 64 B payload, loopback (p50 in us; median of {reps} runs of {n_rtt})"
    for name, _ in rtt_cases:
        note = f"p99 {statistics.median(p99[name]):.0f} us"
        if name == "ipc TrioChannel, TCP, key":
            r = med[name] / med["ipc TrioChannel, TCP, no key"]
            note += f"; vs no key {r:.3f}x (goal <= {GOAL_AUTH:.2f}x: {'met' if r <= GOAL_AUTH else 'NOT met'})"
        if "UDS" in name and not name.startswith("raw"):
            note += f"; vs raw UDS {med[name] / raw_uds:.2f}x"
        if name.startswith("ipc") and "TLS" in name:
            note += f"; vs raw SSLStream {med[name] / med['raw trio SSLStream, TLS over TCP']:.2f}x"
        rows.append(dict(group=g, case=name, median=med[name], unit="us", ratio=med[name] / raw_tcp,
                         note=note + "; ratio to raw TCP"))
    g = f"one way, 1 MiB items over TCP loopback (GB/s; median of {reps} runs of {n_mib} items)"
    base = statistics.median(tput["raw trio SocketStream, TCP"])
    for name, _ in tput_cases:
        m = statistics.median(tput[name])
        note = f"{m * 1e9 / MIB:.0f} items/s; ratio to raw TCP (higher is faster)"
        if name.startswith("ipc") and "TLS" in name:
            note += f"; vs raw SSLStream {m / statistics.median(tput['raw trio SSLStream, TLS over TCP']):.2f}x"
        rows.append(dict(group=g, case=name, median=m, unit="GB/s", ratio=m / base, note=note))
    g = f"connection set-up: connect() to a usable channel (p50 in us; median of {reps} runs of {n_setup})"
    base = statistics.median(setup["TCP, no key"])
    for name, _ in setup_cases:
        m = statistics.median(setup[name])
        rows.append(dict(group=g, case=name, median=m, unit="us", ratio=m / base))
    return rows


if __name__ == "__main__":
    print_table("wire", run(quick="--quick" in sys.argv))
