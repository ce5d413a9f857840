"""Functions that test_trionics.py and test_log.py call inside actors. No
pytest import here: actors import this module by name."""
import sys
from contextlib import asynccontextmanager

import subactor

_entered = 0


@asynccontextmanager
async def _counted():
    global _entered
    _entered += 1
    yield _entered


async def use_cached(hold):
    """Enter the actor-wide cached resource, hold it ``hold`` seconds, and
    return [cache_hit, its value]."""
    import trio

    from subactor.trionics import maybe_open_context

    async with maybe_open_context(_counted) as (hit, value):
        await trio.sleep(hold)
        return [hit, value]


def loglevel_info(use_log=False):
    """[this actor's loglevel, whether logging was imported, the level of
    the subactor logger tree], after importing subactor.log if ``use_log``
    (as code that logs does)."""
    level = getattr(subactor.current_actor(), "loglevel", None)
    imported = "logging" in sys.modules
    if use_log:
        from subactor import log  # noqa: F401
    tree = None
    if "logging" in sys.modules:
        import logging

        tree = logging.getLevelName(logging.getLogger("subactor").getEffectiveLevel())
    return [level, imported, tree]


def log_at(level, msg):
    """Log ``msg`` at ``level`` through subactor.log; return [name, uid]."""
    from subactor import log

    getattr(log.get_logger(), level)(msg)
    a = subactor.current_actor()
    return [a.name, a.uid[1]]
