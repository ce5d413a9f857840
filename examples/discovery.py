"""Actors find each other by name: a worker calls a service it never
spawned. (Across programs, give every root the same
``registry_addrs=[("127.0.0.1", 1616)]``; see docs/design.md.)"""
import trio

import subactor

_store: dict = {}


def put(key, value):
    _store[key] = value


def get(key):
    return _store.get(key)


async def worker(key: str, value: str) -> str:
    async with subactor.wait_for_actor("kv") as kv:
        await kv.run(put, key=key, value=value)
        return await kv.run(get, key=key)


async def main():
    async with subactor.open_nursery() as an:
        await an.start_actor("kv", enable_modules=[__name__])
        w = await an.start_actor("worker", enable_modules=[__name__])
        print("the worker read back:", await w.run(worker, key="greeting", value="hello"))
        async with subactor.find_actor("kv") as kv:
            print("the root reads:", await kv.run(get, key="greeting"))
        await an.cancel()


if __name__ == "__main__":
    trio.run(main)
