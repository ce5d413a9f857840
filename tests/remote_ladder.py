"""Functions that the ladder, Ctrl-C and protocol tests run inside actors
(importable by name; no pytest here)."""
import os
import sys
import time
from os import getpid  # noqa: F401  (an imported name RPC must not reach)

import subactor


def mark(path):
    """Say "I am about to get stuck" through a file the test polls."""
    with open(path, "w") as f:
        f.write("stuck")


def gil_hog(path):
    """One C call that holds the actor's GIL for minutes: an interrupt can
    only land when it returns."""
    mark(path)
    return sum(range(10**12))


def gil_hog_n(path, n):
    """A GIL-holding C call of bounded length."""
    mark(path)
    return sum(range(n))


def spin_marked(path):
    mark(path)
    while True:
        pass


def sleep_marked(path, seconds=1000):
    mark(path)
    time.sleep(seconds)


async def ready():
    """Any async function: switches the actor to trio mode."""
    return True


async def checkpointing_marked(path):
    import trio

    mark(path)
    await trio.sleep_forever()


def _my_channel_end():
    from subactor._actor import _runtime

    return _runtime.current().end


def send_garbage():
    """Bytes that are not a message, on the actor's own channel."""
    _my_channel_end().send(b"\xc1\xc1\xc1 not msgpack")
    return "sent"


def send_unknown_kind():
    from subactor import _ext

    _my_channel_end().send(_ext.dumps({"t": "bogus", "cid": 1}))
    return "sent"


def send_non_map():
    from subactor import _ext

    _my_channel_end().send(_ext.dumps([1, 2, 3]))
    return "sent"


async def exit_with(code):
    """sys.exit() inside a trio-mode actor."""
    sys.exit(code)


def os_exit(code):
    os._exit(code)


@subactor.context
async def started_then_block(ctx, seconds):
    """Sends its first value, then blocks its whole event loop (a sync sleep
    in an async function): nothing the parent sends is read meanwhile."""
    await ctx.started("blocking")
    time.sleep(seconds)


def big_value(mib):
    return b"x" * (mib << 20)


async def big_value_async(mib):
    return b"x" * (mib << 20)


def poll_cancel(path):
    """A one-shot function that leaves when its parent asks."""
    from subactor import _ext

    while not _ext.cancel_requested():
        time.sleep(0.001)
    with open(path, "w") as f:
        f.write("cancel requested")


def pool_sleep(seconds):
    time.sleep(seconds)
    return seconds


def pool_spin():
    while True:
        pass
