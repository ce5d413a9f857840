"""Functions bench_discovery.py runs in actors."""
import time

import subactor


async def async_add(a, b):
    return a + b


async def timed_calls(portal, n: int, warm: int = 100) -> list[float]:
    """n round-trip times (s) of portal.run(async_add), after ``warm`` calls."""
    for _ in range(warm):
        await portal.run(async_add, a=1, b=2)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await portal.run(async_add, a=1, b=2)
        lat.append(time.perf_counter() - t0)
    return lat


async def peer_latencies(name: str, n: int) -> list[float]:
    """timed_calls to peer ``name``, found with wait_for_actor."""
    async with subactor.wait_for_actor(name) as portal:
        return await timed_calls(portal, n)


async def find_times(name: str, n: int) -> list[float]:
    """n times (s) for find_actor(name) to yield a portal."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with subactor.find_actor(name) as portal:
            out.append(time.perf_counter() - t0)
            assert portal is not None
    return out
