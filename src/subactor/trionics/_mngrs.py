"""Async context managers with trio semantics: optional nurseries, entering
many managers at once, and an actor-wide cache of entered managers."""
from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Hashable, Sequence

import trio


@asynccontextmanager
async def maybe_open_nursery(nursery: Any = None, shield: bool = False, lib: ModuleType = trio,
                             **kwargs: Any) -> AsyncIterator[Any]:
    """``nursery`` itself when one is given, else a new nursery of ``lib``
    (trio, or subactor for an actor nursery) for the block, opened with
    ``kwargs``; ``shield`` shields a new trio nursery's scope."""
    if nursery is not None:
        yield nursery
        return
    async with lib.open_nursery(**kwargs) as nursery:
        if lib is trio:
            nursery.cancel_scope.shield = shield
        yield nursery


@asynccontextmanager
async def gather_contexts(mngrs: Sequence[AsyncContextManager[Any]], tn: trio.Nursery | None = None
                          ) -> AsyncIterator[tuple[Any, ...]]:
    """Enter every async context manager of ``mngrs`` at once, each in a
    task of its own (in ``tn`` if given), and yield their values in the
    order of ``mngrs`` once all are entered; they are all exited, at once,
    when the block ends."""
    if isinstance(mngrs, (str, bytes)) or not hasattr(mngrs, "__iter__"):
        raise TypeError(f"gather_contexts() takes a sequence of async context managers, got {mngrs!r}")
    mngrs = list(mngrs)
    if not mngrs:
        raise ValueError("gather_contexts() got no context managers (an empty sequence, or a generator "
                         "that was already consumed)")
    for m in mngrs:
        if not hasattr(m, "__aenter__") or not hasattr(m, "__aexit__"):
            raise TypeError(f"gather_contexts(): {m!r} is not an async context manager")
    missing = object()
    values: list[Any] = [missing] * len(mngrs)
    entered = trio.Event()
    leave = trio.Event()
    pending = len(mngrs)

    async def hold(i: int, mngr: AsyncContextManager[Any]) -> None:
        nonlocal pending
        async with mngr as value:
            values[i] = value
            pending -= 1
            if not pending:
                entered.set()
            await leave.wait()

    try:
        async with maybe_open_nursery(tn) as nursery:
            for i, mngr in enumerate(mngrs):
                nursery.start_soon(hold, i, mngr)
            await entered.wait()
            try:
                yield tuple(values)
            finally:
                leave.set()
    finally:
        leave.set()


# -- the resource cache -------------------------------------------------------
class _Service:
    """A nursery that lives as long as the trio run (a system task holds it),
    for cached resources that outlive the task that first entered them."""

    def __init__(self) -> None:
        self.ready = trio.Event()
        self.nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.ready.set()
            await trio.sleep_forever()


_service = trio.lowlevel.RunVar("subactor.trionics service nursery")


async def _service_nursery() -> trio.Nursery:
    """This trio run's service nursery, started on first use. Its tasks are
    cancelled when the run's main task has returned."""
    try:
        svc = _service.get()
    except LookupError:
        svc = _Service()
        _service.set(svc)
        trio.lowlevel.spawn_system_task(svc.run, name="subactor.trionics service nursery")
    await svc.ready.wait()
    return svc.nursery


class _Entry:
    """One cached, entered context manager."""

    __slots__ = ("value", "users", "no_more_users", "done", "exit_error")

    def __init__(self) -> None:
        self.value: Any = None
        self.users = 0
        self.no_more_users = trio.Event()
        self.done = trio.Event()          # its __aexit__ is over (or it never got entered)
        self.exit_error: Exception | None = None


class _Cache:
    def __init__(self) -> None:
        self.locks: dict[Hashable, trio.StrictFIFOLock] = {}
        self.entries: dict[Hashable, _Entry] = {}


_cache = trio.lowlevel.RunVar("subactor.trionics context cache")


def _the_cache() -> _Cache:
    try:
        return _cache.get()
    except LookupError:
        cache = _Cache()
        _cache.set(cache)
        return cache


async def _hold(mngr: AsyncContextManager[Any], entry: _Entry,
                task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    entered = False
    try:
        async with mngr as value:
            entered = True
            entry.value = value
            task_status.started(value)
            await entry.no_more_users.wait()
    except Exception as exc:
        if not entered:
            raise  # out of start(), to the task that entered it
        entry.exit_error = exc  # to the last user, at its block's end
    finally:
        entry.done.set()


def _cache_key(acm_func: Callable[..., Any], kwargs: dict, key: Any) -> Hashable:
    if inspect.isfunction(key) or inspect.ismethod(key):
        ctx_key = (acm_func, key(**kwargs))
    elif key is not None:
        ctx_key = (acm_func, key)
    else:
        ctx_key = (acm_func, tuple(sorted(kwargs.items(), key=lambda kv: kv[0])))
    try:
        hash(ctx_key)
    except TypeError as exc:
        raise TypeError(f"maybe_open_context({getattr(acm_func, '__qualname__', acm_func)}): the cache key "
                        f"{ctx_key[1]!r} is not hashable ({exc}); pass a hashable key=") from None
    return ctx_key


def _check_encloses(tn: trio.Nursery) -> None:
    """The calling task runs inside ``tn`` (a child of it at some depth, or
    the task that opened it, inside its block); else RuntimeError."""
    task = trio.lowlevel.current_task()
    inner: trio.Nursery | None = None   # the nursery we came up through
    while task is not None:
        opened = task.child_nurseries
        if tn in opened and (inner is None or (inner in opened and opened.index(tn) < opened.index(inner))):
            return
        parent = task.parent_nursery
        if parent is None:
            break
        if parent is tn:
            return
        inner, task = parent, parent.parent_task
    raise RuntimeError(f"maybe_open_context(tn=...): the calling task {trio.lowlevel.current_task().name!r} "
                       f"does not run inside the given nursery; its resources would outlive their users")


@asynccontextmanager
async def maybe_open_context(acm_func: Callable[..., AsyncContextManager[Any]], kwargs: dict | None = None,
                             key: Any = None, tn: trio.Nursery | None = None
                             ) -> AsyncIterator[tuple[bool, Any]]:
    """Enter ``acm_func(**kwargs)`` once for all the tasks of this actor
    that ask for the same key, and yield ``(cache_hit, value)``: False for
    the task that entered it, True for the tasks that got the cached value.

    The key is ``key`` (or ``key(**kwargs)`` for a function) else
    ``kwargs``, per ``acm_func``. The manager runs in a service task (of
    ``tn`` if given, else of a nursery that lives as long as the trio run),
    so it outlives the task that entered it; it is exited when its last user
    leaves, and that user waits for the exit (shielded) and gets its error.
    A task that asks while the manager is exiting waits, then enters a new
    one."""
    if not callable(acm_func):
        raise TypeError(f"maybe_open_context() takes a function returning an async context manager, "
                        f"got {acm_func!r}")
    if kwargs is None:
        kwargs = {}
    elif not isinstance(kwargs, dict):
        raise TypeError(f"maybe_open_context(kwargs=...) must be a dict, got {type(kwargs).__name__}")
    ctx_key = _cache_key(acm_func, kwargs, key)
    if tn is not None:
        _check_encloses(tn)
        service = tn
    else:
        service = await _service_nursery()
    cache = _the_cache()
    # No checkpoint between fetching the lock and queueing on it: the last
    # user drops a lock nobody waits on.
    lock = cache.locks.get(ctx_key)
    if lock is None:
        lock = cache.locks[ctx_key] = trio.StrictFIFOLock()
    await lock.acquire()
    try:
        entry = cache.entries.get(ctx_key)
        if entry is None:
            mngr = acm_func(**kwargs)
            if not hasattr(mngr, "__aenter__") or not hasattr(mngr, "__aexit__"):
                raise TypeError(f"maybe_open_context(): {acm_func!r} returned {mngr!r}, not an async "
                                f"context manager")
            entry = _Entry()
            try:
                await service.start(_hold, mngr, entry)
            except BaseException:
                # Not entered, or entered but this task was cancelled on its
                # way out of start(): the manager must not wait for users.
                entry.no_more_users.set()
                raise
            cache.entries[ctx_key] = entry
            hit = False
        else:
            hit = True
        entry.users += 1
    finally:
        lock.release()

    last = False
    try:
        yield hit, entry.value
    finally:
        # The teardown holds the key's lock: a task that asks for the key
        # meanwhile gets a fresh manager once this one is exited.
        with trio.CancelScope(shield=True):
            async with lock:
                entry.users -= 1
                if entry.users == 0:
                    last = True
                    if cache.entries.get(ctx_key) is entry:
                        del cache.entries[ctx_key]
                    entry.no_more_users.set()
                    await entry.done.wait()
                    if not lock.statistics().tasks_waiting and cache.locks.get(ctx_key) is lock:
                        del cache.locks[ctx_key]
        if last and entry.exit_error is not None:
            raise entry.exit_error
