"""Functions the cancellation benchmark runs inside actors."""
import time


async def ready_trio():
    """Async: the actor is in its trio loop (trio imported) before the
    measured call starts, so the cancel measures the ladder, not an import."""
    return True


def ready_sync():
    """Sync: the actor stays in its trio-free sync loop."""
    return True


def spin():
    while True:
        pass


def sleep_forever():
    time.sleep(1000)


async def sleep_forever_async():
    import trio

    await trio.sleep_forever()
