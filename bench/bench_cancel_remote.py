"""Functions the cancellation benchmark runs inside actors."""
import time


def ready():
    return True


def spin():
    while True:
        pass


def sleep_forever():
    time.sleep(1000)


async def sleep_forever_async():
    import trio

    await trio.sleep_forever()
