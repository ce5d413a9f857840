"""The far side of bench_wire: a process that serves every case at once and
prints its addresses (one JSON line), then runs until killed.

Listeners:
- raw_tcp / raw_uds / raw_tls (if given a certificate): trio SocketStreams
  (SSLStreams). A connection starts with one
  byte: b"e" echoes 64-byte pings; b"s" then an 8-byte count N and an
  8-byte size: it reads N * size bytes and answers b"k".
- ipc_tcp, ipc_tcp_key, ipc_uds, ipc_tls (if given a certificate):
  ``subactor.ipc.serve``; the handler echoes every message, except
  {"sink": N}: it then reads N messages and answers {"got": N}.

Run: python bench_wire_peer.py KEYHEX UDSDIR [CERT KEYFILE]
"""
from __future__ import annotations

import functools
import json
import os
import ssl
import sys

import trio

from subactor import ipc


async def raw_handler(stream):
    kind = await stream.receive_some(1)
    if kind == b"e":
        while True:
            got = b""
            while len(got) < 64:
                b = await stream.receive_some(64 - len(got))
                if not b:
                    return
                got += b
            await stream.send_all(got)
    elif kind == b"s":
        head = b""
        while len(head) < 16:
            head += await stream.receive_some(16 - len(head))
        n, size = int.from_bytes(head[:8], "little"), int.from_bytes(head[8:], "little")
        left = n * size
        while left:
            b = await stream.receive_some(min(left, 1 << 20))
            if not b:
                return
            left -= len(b)
        await stream.send_all(b"k")


async def ipc_handler(conn):
    ch = conn.channel()
    try:
        while True:
            m = await ch.recv()
            if "sink" in m:
                n = m["sink"]
                for _ in range(n):
                    await ch.recv()
                await ch.send({"got": n})
            else:
                await ch.send(m)
    except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def serve_raw_uds(path, task_status=trio.TASK_STATUS_IGNORED):
    import socket

    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(path)
    raw.listen(16)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(raw))
    task_status.started()
    await trio.serve_listeners(raw_handler, [listener])


async def main():
    key = bytes.fromhex(sys.argv[1])
    udsdir = sys.argv[2]
    out = {}
    async with trio.open_nursery() as n:
        listeners = await n.start(functools.partial(trio.serve_tcp, raw_handler, 0, host="127.0.0.1"))
        out["raw_tcp"] = list(listeners[0].socket.getsockname())
        path = os.path.join(udsdir, "raw.sock")
        await n.start(serve_raw_uds, path)
        out["raw_uds"] = path
        start = lambda addr, **kw: n.start(lambda task_status: ipc.serve(addr, ipc_handler, task_status=task_status,
                                                                       **kw))
        out["ipc_tcp"] = str(await start("tcp://127.0.0.1:0", authkey=None))
        out["ipc_tcp_key"] = str(await start("tcp://127.0.0.1:0", authkey=key))
        out["ipc_uds"] = str(await start(f"uds://{udsdir}/ipc.sock", authkey=None))
        if len(sys.argv) > 4:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(sys.argv[3], sys.argv[4])
            out["ipc_tls"] = str(await start("tcp://127.0.0.1:0", authkey=None, ssl_context=ctx))
            tls = await n.start(functools.partial(trio.serve_ssl_over_tcp, raw_handler, 0, ctx, host="127.0.0.1"))
            out["raw_tls"] = list(tls[0].transport_listener.socket.getsockname())
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    trio.run(main)
