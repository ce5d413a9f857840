"""Module-level functions that tests send to actors (importable by name)."""
import time


def add(a, b):
    return a + b


def boom(msg):
    def inner():
        raise ValueError(msg)

    inner()


def spin():
    while True:
        pass


def sleep_forever():
    time.sleep(1000)


def burn(n):
    total = 0
    for i in range(n):
        total += i
    return total


def import_module(name):
    import importlib

    importlib.import_module(name)
    return name


def whoami():
    from subactor import _ext

    return _ext.current_actor()


def stamped_sleep(seconds):
    """Sleep; return (start, end) on the system-wide monotonic clock (the
    same in every interpreter and process of the machine)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    return t0, time.monotonic()
