"""Functions the call-path tests (test_call_path.py) run in actors."""
import time


def add(a, b):
    return a + b


def slow_value(seconds, value):
    """A sync function that answers late (a cancel of its caller does not
    stop it: the answer still comes)."""
    time.sleep(seconds)
    return value


async def async_echo(value):
    return value


async def shielded_value(seconds, value):
    """Answers after ``seconds`` even if its call is cancelled."""
    import trio

    with trio.CancelScope(shield=True):
        await trio.sleep(seconds)
    return value
