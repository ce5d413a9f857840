"""Functions the nursery-error and runtime-state tests call inside actors.
No pytest import here: actors import this module by name."""
import os
import time

import subactor


def sync_fail_later(seconds, msg):
    time.sleep(seconds)
    raise ValueError(msg)


async def spawn_two_failing():
    """An actor whose own nursery fails with a group of two failures."""
    from tests import remote

    async with subactor.open_nursery() as an:
        await an.run_in_actor(remote.raise_value_error, name="a1", msg="a1")
        await an.run_in_actor(remote.raise_value_error, name="a2", msg="a2")


def identity():
    """What current_actor() and the runtime-state functions say in here."""
    a = subactor.current_actor()
    return {
        "name": a.name, "uid": list(a.uid), "aid": [a.aid.name, a.aid.uuid, list(a.aid.uid), a.aid.pid],
        "is_root": a.is_root, "is_registrar": a.is_registrar, "is_root_process": subactor.is_root_process(),
        "loglevel": a.loglevel, "msg_buffer_size": a.msg_buffer_size, "pid": os.getpid(),
        "parent_main": a._parent_main_data, "vars": subactor.get_runtime_vars(),
    }


_path = None


def _unlink():
    os.remove(_path)


async def clean_up_at_the_end(path, fail):
    """Register removing `path` on the actor's lifetime stack, then fail or
    wait to be cancelled."""
    import trio

    global _path
    _path = path
    subactor.current_actor().lifetime_stack.callback(_unlink)
    await trio.sleep(0.05)
    if fail:
        raise ValueError("failing on purpose")
    await trio.sleep_forever()


def sync_clean_up_at_the_end(path):
    """The same from a sync-only actor: removed when it is cancelled."""
    global _path
    _path = path
    subactor.current_actor().lifetime_stack.callback(_unlink)
    return True


def main_script_function():
    """Used by the inherit_parent_main test through a __main__ script."""
    return "from main"


@subactor.context
async def open_a_root_here(ctx):
    async with subactor.open_root_actor():
        pass
