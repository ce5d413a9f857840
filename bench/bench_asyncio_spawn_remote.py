"""The function bench_asyncio.py's spawn rows call: it imports nothing, so
that a plain actor pays for trio alone and an infected one for asyncio too."""


async def noop():
    return None
