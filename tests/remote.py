"""Functions that the API tests call inside actors. No pytest import here:
actors import this module by name."""
import sys
import time

import subactor


def add(a, b):
    return a + b


def whoami():
    a = subactor.current_actor()
    return [a.name, a.uid[1], "trio" in sys.modules]


def get_sys_path():
    return list(sys.path)


def trio_loaded():
    return "trio" in sys.modules


async def async_add(a, b):
    import trio

    await trio.sleep(0)
    return a + b


async def sleep_then(seconds, value):
    import trio

    await trio.sleep(seconds)
    return value


def raise_value_error(msg):
    raise ValueError(msg)


async def async_raise(msg):
    raise KeyError(msg)


def echo_bytes(n):
    return b"x" * n


def not_serializable():
    return object()


def spin():
    while True:
        pass


def sleep_forever():
    time.sleep(1000)


async def sleep_forever_async():
    import trio

    await trio.sleep_forever()


def lambda_holder():
    return 1


@subactor.context
async def echo_started(ctx, value):
    await ctx.started(value)
    return "done"


@subactor.context
async def echo_stream(ctx, prefix=""):
    await ctx.started("ready")
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(f"{prefix}{msg}")
    return "echo finished"


@subactor.context
async def count_to(ctx, n):
    await ctx.started(n)
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
    return n


@subactor.context
async def sum_stream(ctx):
    await ctx.started()
    total = 0
    async with ctx.open_stream() as stream:
        async for v in stream:
            total += v
    return total


@subactor.context
async def error_before_started(ctx):
    raise ValueError("failed before started")


@subactor.context
async def error_after_started(ctx):
    await ctx.started("ok so far")
    raise RuntimeError("failed after started")


@subactor.context
async def error_mid_stream(ctx, after):
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(after):
            await stream.send(i)
        raise OSError("stream broke")


@subactor.context
async def never_returns(ctx):
    import trio

    await ctx.started("sleeping")
    await trio.sleep_forever()


@subactor.context
async def callee_cancels_itself(ctx):
    import trio

    await ctx.started()
    await ctx.cancel()
    await trio.sleep_forever()


@subactor.context
async def returns_without_started(ctx):
    return 1


@subactor.context
async def early_close_callee(ctx, n):
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
        # closes its side after n items; the caller's `async for` ends
    return "closed early"


@subactor.context
async def count_received(ctx):
    await ctx.started()
    got = []
    async with ctx.open_stream() as stream:
        async for v in stream:
            got.append(v)
    return got


async def not_a_context(ctx):
    return 1


@subactor.context
async def spawn_grandchild(ctx, depth):
    """Nested actors: spawn a child which spawns ... `depth` levels."""
    await ctx.started(subactor.current_actor().name)
    if depth == 0:
        return [subactor.current_actor().name]
    async with subactor.open_nursery() as an:
        p = await an.start_actor(f"level-{depth - 1}", enable_modules=[__name__])
        async with p.open_context(spawn_grandchild, depth=depth - 1) as (c, _):
            names = await c.wait_for_result()
        await p.cancel_actor()
    return [subactor.current_actor().name, *names]


def fail_in_child(msg):
    raise ValueError(msg)


async def fail_later(seconds, msg):
    import trio

    await trio.sleep(seconds)
    raise ValueError(msg)


async def shielded_sleep():
    import trio

    with trio.CancelScope(shield=True):
        await trio.sleep(1000)


@subactor.context
async def count_forever(ctx):
    await ctx.started()
    async with ctx.open_stream() as stream:
        i = 0
        while True:
            await stream.send(i)
            i += 1
            import trio

            await trio.sleep(0.001)


@subactor.context
async def started_unsendable(ctx):
    await ctx.started(object())


@subactor.context
async def stream_then_fail(ctx, n):
    """Stream n items, close the stream, then fail."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
    raise RuntimeError("after the stream")


def takes_fn_name(fn_name):
    return fn_name
