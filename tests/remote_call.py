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


async def task_name():
    """The name of the trio task this runs in (no await: the actor runs it
    inline, in its message loop's task)."""
    import trio

    return trio.lowlevel.current_task().name


async def task_name_after_checkpoint():
    """task_name, after a checkpoint: a task of its own, named after it."""
    import trio

    await trio.lowlevel.checkpoint()
    return trio.lowlevel.current_task().name


_VAR = None


async def swap_var(value):
    """Sets a context variable (made on first use) and returns what it held
    before: a call's variables are its own, so always the default."""
    global _VAR
    import contextvars

    if _VAR is None:
        _VAR = contextvars.ContextVar("call_path_var", default="unset")
    old = _VAR.get()
    _VAR.set(value)
    return old


async def async_fail(msg):
    raise ValueError(msg)
