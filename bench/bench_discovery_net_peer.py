"""The far program of bench_discovery_net.py: a registrar root at the TCP
address given (and a UDS address), an actor "target", and raw trio echo
and blast servers for the anchors. Prints one JSON line of its ports, then
serves until stdin closes."""
import json
import sys

import trio

import subactor

MOD = "bench_discovery_net_remote"


async def echo(stream):
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def blast(stream):
    """Read an item count n and a size, send n items of that size, then wait for one byte."""
    hdr = b""
    while len(hdr) < 8:
        hdr += await stream.receive_some(8 - len(hdr))
    n, size = int.from_bytes(hdr[:4], "big"), int.from_bytes(hdr[4:], "big")
    chunk = b"x" * size
    for _ in range(n):
        await stream.send_all(chunk)
    await stream.receive_some(1)


async def main(port: int, uds: str):
    async with subactor.open_root_actor(name="far", registry_addrs=[("127.0.0.1", port)],
                                        tpt_bind_addrs=[("127.0.0.1", port), tuple(uds.rsplit("/", 1))]):
        async with subactor.open_nursery() as an:
            await an.start_actor("target", enable_modules=[MOD])
            async with trio.open_nursery() as n:
                e = (await n.start(trio.serve_tcp, echo, 0))[0].socket.getsockname()[1]
                b = (await n.start(trio.serve_tcp, blast, 0))[0].socket.getsockname()[1]
                print(json.dumps({"echo": e, "blast": b}), flush=True)
                await trio.lowlevel.wait_readable(sys.stdin.fileno())
                n.cancel_scope.cancel()
            await an.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), sys.argv[2])
