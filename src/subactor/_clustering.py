"""``open_actor_cluster``: N actors serving the same modules, one per core
by default (tractor's name and arguments)."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator

import trio

if TYPE_CHECKING:
    from subactor._portal import Portal


@asynccontextmanager
async def open_actor_cluster(modules: list[str] | tuple[str, ...], count: int | None = None, names: list[str] | None = None,
                             hard_kill: bool = False, **runtime_kwargs: Any) -> AsyncIterator[dict[str, Portal]]:
    """Start ``count`` actors (``os.cpu_count()`` by default, or one per
    name of ``names``) serving ``modules``, all at once, and yield
    ``{name: Portal}``; leaving the block cancels them (``hard_kill``:
    straight past the cooperative rung). Each actor is named
    ``"<this actor's name>.<name>"``, names defaulting to ``worker_<i>``.
    ``runtime_kwargs`` go to :func:`subactor.open_nursery`."""
    from subactor import _state
    from subactor._nursery import _check_modules, open_nursery
    from subactor.trionics import collapse_eg

    mods = _check_modules(modules)
    if count is None:
        count = len(names) if names else (os.cpu_count() or 1)
    if type(count) is not int or count < 1:
        raise ValueError(f"open_actor_cluster(count=...) must be an int >= 1, got {count!r}")
    if names is None:
        names = [f"worker_{i}" for i in range(count)]
    names = list(names)
    if len(names) != count:
        raise ValueError(f"open_actor_cluster(): {len(names)} names for count={count} actors")
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"open_actor_cluster(names=...) must be distinct non-empty strs, got {names!r}")
    portals: dict = {}
    async with open_nursery(**runtime_kwargs) as an:
        prefix = _state.current_actor().name

        async def start(name: str) -> None:
            full = f"{prefix}.{name}"
            portals[full] = await an.start_actor(full, enable_modules=mods)

        async with collapse_eg(), trio.open_nursery() as tn:
            for name in names:
                tn.start_soon(start, name)
        yield portals
        await an.cancel(hard_kill=hard_kill)
