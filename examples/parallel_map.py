"""CPU-bound work on every core, inside one process: one actor per core,
each with its own GIL, fed through portals."""
import os
import time

import trio

import subactor


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def count_primes(lo: int, hi: int) -> int:
    return sum(is_prime(n) for n in range(lo, hi))


async def main():
    n, parts = 400_000, os.cpu_count() or 2
    step = n // parts
    t0 = time.perf_counter()
    async with subactor.open_actor_cluster(modules=[__name__], count=parts) as portals:
        results = {}
        async with trio.open_nursery() as tn:
            for i, portal in enumerate(portals.values()):
                async def one(i=i, portal=portal):
                    hi = n if i == parts - 1 else (i + 1) * step
                    results[i] = await portal.run(count_primes, lo=i * step, hi=hi)
                tn.start_soon(one)
    print(f"{sum(results.values())} primes below {n}, on {parts} actors in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    trio.run(main)
