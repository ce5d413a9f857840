"""Module-level functions that tests/test_discovery.py runs in actors (and,
through ``open_root_actor(enable_modules=...)``, in the root)."""
import trio

import subactor

STASH: dict = {}


def stash_pop(key):
    return STASH.pop(key, None)


def whoami():
    a = subactor.current_actor()
    return [a.name, a.aid.uuid]


def pid():
    import os

    return os.getpid()


def netns():
    """This process's network namespace (its inode)."""
    import os

    return str(os.stat("/proc/self/ns/net").st_ino)


def boom(msg):
    raise ValueError(msg)


async def call_peer(name, fn_name, **kw):
    """Find ``name`` and call ``fn_name`` of this module in it."""
    async with subactor.wait_for_actor(name) as portal:
        return await portal.run(globals()[fn_name], **kw)


async def find_missing(name):
    async with subactor.find_actor(name) as portal:
        return portal is None


async def peer_error(name, msg):
    """Call ``boom`` in peer ``name``; describe the error it gave."""
    async with subactor.wait_for_actor(name) as portal:
        try:
            await portal.run(boom, msg=msg)
        except subactor.RemoteActorError as err:
            return {"type": err.boxed_type_str, "src": list(err.src_uid), "msg": str(err)}
    return None


@subactor.context
async def ticker(ctx, n):
    """Started with "ready"; echoes what it gets on the stream with its
    name; then sends n items; returns how many it echoed."""
    await ctx.started("ready")
    echoed = 0
    async with ctx.open_stream() as stream:
        async for item in stream:
            if item == "done":
                break
            await stream.send(f"{subactor.current_actor().name}:{item}")
            echoed += 1
        for i in range(n):
            await stream.send(i)
    return echoed


async def stream_with_peer(name, items, n):
    """Open ``ticker`` in peer ``name`` and use its stream both ways."""
    async with subactor.wait_for_actor(name) as portal:
        async with portal.open_context(ticker, n=n) as (ctx, first):
            got = []
            async with ctx.open_stream() as stream:
                for item in items:
                    await stream.send(item)
                    got.append(await stream.receive())
                await stream.send("done")
                tail = [await stream.receive() for _ in range(n)]
            result = await ctx.wait_for_result()
    return {"first": first, "echo": got, "tail": tail, "result": result}


async def sleep_and_note(key):
    """Sleep until cancelled; note how it ended."""
    try:
        await trio.sleep_forever()
    finally:
        STASH[key] = "cancelled"


async def call_and_leave(name, key):
    """Start a long call in peer ``name`` and leave the find_actor block
    while it runs: the peer's call is cancelled, the peer goes on."""
    async with subactor.wait_for_actor(name) as portal:
        with trio.move_on_after(0.3):
            await portal.run(sleep_and_note, key=key)
    return True


async def cancel_peer(name):
    """Ask peer ``name`` to end itself; True if it acknowledged."""
    async with subactor.wait_for_actor(name) as portal:
        return await portal.cancel_actor()


async def all_named(name):
    async with subactor.find_actor(name, only_first=False) as portals:
        if portals is None:
            return []
        return sorted([await p.run(whoami) for p in portals])


async def registry_names():
    async with subactor.get_registry() as reg:
        found = await reg.run_from_ns("self", "get_registry")
    return sorted(k.split(".")[0] for k in found)


async def sleep_forever():
    await trio.sleep_forever()


async def find_and_leave(name, n):
    """Find ``name`` and leave at once, ``n`` times (the peer may not even
    have attached its side of the channel yet)."""
    for _ in range(n):
        async with subactor.find_actor(name) as portal:
            assert portal is not None
    return n
