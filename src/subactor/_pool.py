"""A pool of warm workers: ``await run_sync(fn, *args)`` without making an
interpreter per call.

Modelled on :func:`trio_parallel.run_sync`: the same signature, the same
``cancellable`` and ``limiter`` semantics, a lazily made default pool and an
explicit one (:func:`open_worker_pool`) for configuration and lifetime. A
worker is a long-lived actor (an own-GIL subinterpreter on its own thread)
that runs :mod:`subactor._actor._pool_worker`'s loop: it waits on its channel with
the GIL released, runs one call, sends the answer back. Creating an
interpreter costs about 7-10 ms and, on CPython 3.12/3.13, leaks about
1.7 MiB each time; a warm worker answers a small call in tens of
microseconds and leaks nothing.

The parent side never blocks its event loop: it sends with ``send_nowait``
(one call in flight per worker, so there is always room) and awaits the
channel's readiness eventfd with :func:`trio.lowlevel.wait_readable`, after
looking for the answer during a few passes of the scheduler (a small call
is answered in microseconds, a sleep in epoll costs tens to wake from).

States of a worker, as the pool sees it (every worker is in exactly one):

- *idle*: in ``_idle``, a LIFO deque (the most recently used at the right,
  so the left holds the longest idle, the first to retire);
- *busy*: in ``_busy``, owned by the task whose call it runs;
- *ending*: in ``_ending``, asked to leave (its channel closed, or
  interrupted) and not yet joined; each has a deadline after which it is
  interrupted, and one more ``kill_after`` later abandoned with a warning;
- gone: joined (or abandoned) and dropped.

Cancellation (``cancellable=True``) interrupts the worker
(``ActorInterrupted`` is raised in the call), waits up to ``kill_after``
seconds for it to end, abandons it (an ``AbandonedActorWarning`` names it)
if it is stuck in C, and raises ``trio.Cancelled``; the next call gets a
fresh worker. With ``cancellable=False`` (the default) the call is shielded.

Backends. A backend is one async function ``start(cfg) -> (handle, end)``
(see :func:`_backend`), called with the worker's config (``name``,
``main``: the parent's __main__ file, ``idle``, ``max_blocks``):

- ``handle`` speaks the part of ``_ext.SubintHandle`` the pool uses: ``done``,
  ``fileno()`` (readable once done), ``interrupt()``, ``abandon()``,
  ``join(timeout=None, abandon=True)``, ``outcome()``, ``name``;
- ``end`` speaks the part of ``_ext.ChannelEnd`` it uses: ``send_nowait``,
  ``recv_nowait`` (a Message with ``release()``), ``recv_fileno()``,
  ``close()``, ``closed``, raising ``BlockingIOError``,
  ``_ext.EndOfChannel`` (the worker closed its end: a call it was sent was
  not taken) and ``_ext.BrokenError`` (it died);
- the worker runs ``_pool_worker.main(cfg, end)`` with its own end.

"subint" is :func:`_start_subint`; "process" is
``subactor._spawn_process.spawn_process_worker`` (issue #6), where an
interrupt is SIGINT (it stops ``time.sleep`` too) and abandon is SIGKILL.
"""
from __future__ import annotations

import atexit
import collections
import functools
import itertools
import os
import pickle
import sys
import time
import types
from contextlib import asynccontextmanager
from typing import Any, Callable, NamedTuple, TypeVar

import trio

from subactor import _ext, _spawn
from subactor._actor import _pool_worker
from subactor._errors import check_findable, unbox_error

__all__ = [
    "BrokenWorkerError",
    "PoolStatistics",
    "WorkerPool",
    "default_worker_pool",
    "open_worker_pool",
    "run_sync",
]

T = TypeVar("T")

BACKENDS = ("subint", "process")
DEFAULT_IDLE_TIMEOUT = 600.0  # as trio_parallel
DEFAULT_KILL_AFTER = 1.0
DEFAULT_GRACE = 5.0
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# Scheduler passes a caller yields, looking for its answer, before it
# sleeps on the answer's eventfd (measured: p50 of back-to-back small calls
# about 4x lower on a 2-core VM, whose thread wake-ups cost 20-100 us).
_YIELDS = 4
# One call is in flight per worker; the byte bound is a sanity bound on one
# pickled call or result, not an allocation.
_CHANNEL_MSGS = 4
_CHANNEL_BYTES = 1 << 32
_CO_ASYNC = 0x80 | 0x100 | 0x200  # CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR

# Results may name classes of the parent's __main__ script, which a worker
# knows as __mp_main__ (see _actor._parent_main.install); the parent
# answers to that name too, as multiprocessing makes it do.
if "__main__" in sys.modules:
    sys.modules.setdefault("__mp_main__", sys.modules["__main__"])


class BrokenWorkerError(RuntimeError):
    """A worker died while it ran the call (it was interrupted because its
    pool was closed, it was abandoned, or its loop failed). The call may
    have run in part. Not seen in normal use."""


class PoolStatistics(NamedTuple):
    idle_workers: int     # warm workers waiting for a call
    running_workers: int  # workers running a call now
    ending_workers: int   # workers asked to leave and not yet joined
    workers_started: int  # over the pool's life
    calls: int            # calls answered over the pool's life


# -- backends -------------------------------------------------------------

def _start_worker(backend: str, cfg: dict):
    """A worker of ``backend``: (handle, the pool's end of its channel)."""
    return _spawn.spawn(backend, cfg, entry="worker", channel=(_CHANNEL_MSGS, _CHANNEL_BYTES))


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    return name


# -- calls ------------------------------------------------------------------

def _describe(fn) -> str:
    qual = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{getattr(fn, '__module__', None) or '?'}.{qual}"


def _check_fn(fn) -> None:
    """Refuse, with a clear TypeError, what a worker could not find by name,
    and async functions (run_sync runs sync ones)."""
    check_findable(fn, "a worker")
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, types.FunctionType) and target.__code__.co_flags & _CO_ASYNC:
        raise TypeError(f"{_describe(target)} is an async function: run_sync runs sync functions "
                        f"(an async one needs an actor, see open_nursery)")


def _encode_call(fn, args: tuple) -> bytes:
    _check_fn(fn)
    try:
        return pickle.dumps((fn, args), protocol=_PROTOCOL)
    except Exception as exc:
        try:
            pickle.dumps(fn, protocol=_PROTOCOL)
        except Exception:
            raise TypeError(f"cannot send {_describe(fn)} to a worker: it cannot be pickled "
                            f"({type(exc).__name__}: {exc})") from exc
        raise TypeError(f"cannot send the arguments of {_describe(fn)} to a worker: they cannot be "
                        f"pickled ({type(exc).__name__}: {exc})") from exc


# -- workers ------------------------------------------------------------------

class _Worker:
    """One worker: its backend handle, the pool's end of its channel, and
    the pool's bookkeeping."""

    __slots__ = ("actor", "end", "rfd", "name", "calls", "last_used", "deadline", "interrupted",
                 "abandoned", "why")

    def __init__(self, actor, end, name: str):
        self.actor = actor            # backend handle (see the module docstring)
        self.end = end                # the pool's end of the worker's channel
        self.rfd = end.recv_fileno()  # readable iff an answer (or the end) is there
        self.name = name
        self.calls = 0                # calls answered
        self.last_used = 0.0          # time.monotonic() of its last answer
        self.deadline = 0.0           # while ending: when to escalate
        self.interrupted = False      # interrupt() was called on it
        self.abandoned = False        # abandon() was called on it: never joined
        self.why = ""                 # why the pool ended it, for BrokenWorkerError

    def interrupt(self) -> None:
        self.interrupted = True
        self.actor.interrupt()

    def abandon(self) -> None:
        """Give up on it (the backend warns, naming it); its channel breaks,
        so a task waiting for its answer wakes."""
        if not self.abandoned:
            self.abandoned = True
            self.actor.abandon()

    def __repr__(self) -> str:
        return f"<worker {self.name} calls={self.calls} done={self.actor.done}>"


def _trio_at(mono: float) -> float:
    """trio's clock for a time.monotonic() instant (pools may outlive a run,
    so their own times are monotonic)."""
    return trio.current_time() + (mono - time.monotonic())


class WorkerPool:
    """Warm workers for :meth:`run_sync`. Made by :func:`open_worker_pool`
    (or :func:`default_worker_pool`).

    ``size``: workers kept warm, and the default limiter's tokens (default
    ``os.cpu_count()``). ``max_calls``: a worker is replaced after that
    many calls. ``max_blocks``: a worker is replaced after a call that left
    its interpreter holding more than that many allocated pymalloc blocks
    (``sys.getallocatedblocks()`` in the worker, after a collection; each
    own-GIL subinterpreter has its own allocator, so this counts the
    worker's own live objects of up to 512 bytes; it does not see large
    buffers, and it is not bytes). ``idle_timeout``: seconds an idle worker
    waits for a call before it leaves (None: forever). ``kill_after``:
    seconds a worker gets to end after an interrupt before it is abandoned.
    ``grace``: seconds running calls get to finish when the pool closes
    before they are interrupted.

    Not thread-safe beyond what trio_parallel's default context is: one
    pool may serve several ``trio.run`` one after another; two at once in
    two threads work only because every step on the shared state is short
    and synchronous.
    """

    def __init__(self, size: int | None = None, *, max_calls: int | None = None, max_blocks: int | None = None,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT, kill_after: float = DEFAULT_KILL_AFTER,
                 grace: float = DEFAULT_GRACE, backend: str = "subint"):
        size = (os.cpu_count() or 1) if size is None else size
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        for label, v in (("max_calls", max_calls), ("max_blocks", max_blocks)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{label} must be None or a positive int, got {v!r}")
        if idle_timeout is not None and idle_timeout == float("inf"):
            idle_timeout = None
        for label, v in (("idle_timeout", idle_timeout), ("kill_after", kill_after), ("grace", grace)):
            if v is not None and not v >= 0:
                raise ValueError(f"{label} must be >= 0, got {v!r}")
        self.backend = _check_backend(backend)
        self.size = size
        self.max_calls = max_calls
        self.max_blocks = max_blocks
        self.idle_timeout = idle_timeout
        self.kill_after = float(kill_after)
        self.grace = float(grace)
        self._idle: collections.deque[_Worker] = collections.deque()
        self._busy: set[_Worker] = set()
        self._ending: list[_Worker] = []
        self._closed = False
        self._closing = False
        self._changed: trio.Event | None = None  # set when a busy worker is let go
        self._limiter_var = trio.lowlevel.RunVar(f"subactor.WorkerPool.limiter.{id(self):x}")
        self._ids = itertools.count(1)
        self._started = 0
        self._calls = 0
        self._main_path = getattr(sys.modules.get("__main__"), "__file__", None)

    # -- public ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter run_sync uses when given none: ``size`` tokens, one
        per ``trio.run`` (a limiter belongs to its run)."""
        try:
            return self._limiter_var.get()
        except LookupError:
            limiter = trio.CapacityLimiter(self.size)
            self._limiter_var.set(limiter)
            return limiter

    def statistics(self) -> PoolStatistics:
        """Counts of the pool's workers (reaping those that have ended first)."""
        self._reap()
        return PoolStatistics(len(self._idle), len(self._busy), len(self._ending), self._started, self._calls)

    @trio.lowlevel.enable_ki_protection
    async def run_sync(self, fn: Callable[..., T], *args: Any, cancellable: bool = False,
                       limiter: trio.CapacityLimiter | None = None, kill_on_cancel: bool = False) -> T:
        """Run ``fn(*args)`` in a worker and return its result.

        ``fn`` and ``args`` are pickled (functions by reference, as pickle
        does); a function that a worker could not find by name, or
        arguments that cannot be pickled, raise TypeError here, before
        anything is sent. An exception in ``fn`` is raised here as a
        :class:`subactor.RemoteActorError` carrying the remote type name
        (``boxed_type_str``, ``boxed_type``) and traceback (``tb_str``); the
        worker stays in the pool.

        ``cancellable``: if false (the default) the call is shielded from
        cancellation, as trio_parallel's; if true a cancel interrupts the
        worker (``ActorInterrupted`` in ``fn``), which is then replaced;
        one stuck in C is abandoned after ``kill_after`` seconds.
        ``kill_on_cancel`` is trio_parallel's other name for it (either
        makes the call cancellable).
        ``limiter``: bounds concurrent calls (default :attr:`limiter`); any
        async context manager will do, as in trio_parallel.
        """
        cancellable = cancellable or kill_on_cancel
        payload = _encode_call(fn, args)
        if limiter is None:
            limiter = self.limiter
        async with limiter:
            while True:
                with trio.CancelScope(shield=not cancellable):
                    if self._closed:
                        raise trio.ClosedResourceError("the worker pool is closed")
                    worker = await self._checkout()
                    answer = await self._call(worker, payload, fn)
                if answer is not None:
                    break
                # That worker had left (idle) before it took the call: the
                # call never ran, so another worker may take it.
                await trio.lowlevel.checkpoint_if_cancelled()
        status, value = answer
        if status == _pool_worker.OK:
            return value
        raise unbox_error(value)

    @trio.lowlevel.enable_ki_protection
    async def aclose(self) -> None:
        """Close the pool: idle workers leave at once; running calls get
        ``grace`` seconds to finish, then are interrupted (their callers get
        :class:`BrokenWorkerError`), then, ``kill_after`` later, abandoned.
        Shielded and bounded by those deadlines."""
        self._closed = True
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        with trio.CancelScope(shield=True):
            while self._idle:
                self._let_go(self._idle.pop())
            t0 = time.monotonic()
            await self._wait_busy(t0 + self.grace)
            for w in list(self._busy):
                w.why = "it was interrupted because its pool was closed while it ran the call"
                w.interrupt()
            await self._wait_busy(t0 + self.grace + self.kill_after)
            for w in list(self._busy):
                w.why = "it was abandoned because its pool was closed while it ran the call"
                w.abandon()  # breaks its channel: its caller wakes at once
            await self._wait_busy(time.monotonic() + 1.0)
            while True:
                self._reap()
                if not self._ending:
                    break
                w = min(self._ending, key=lambda x: x.deadline)
                with trio.move_on_at(_trio_at(w.deadline)):
                    await trio.lowlevel.wait_readable(w.actor.fileno())

    # -- the call ----------------------------------------------------------------
    async def _checkout(self) -> _Worker:
        self._reap()
        now = time.monotonic()
        while self._idle:
            w = self._idle.pop()
            if not self._usable(w, now):
                self._let_go(w)
                continue
            self._busy.add(w)
            return w
        name = f"pool-worker-{next(self._ids)}"
        cfg = {"name": name, "main": self._main_path, "idle": self.idle_timeout, "max_blocks": self.max_blocks}
        actor, end = _start_worker(self.backend, cfg)
        w = _Worker(actor, end, name)
        self._started += 1
        self._busy.add(w)
        return w

    async def _call(self, w: _Worker, payload: bytes, fn) -> tuple | None:
        """(status, value), or None if the worker had left before it took
        the call. Raises BrokenWorkerError if it died while it ran it."""
        end = w.end
        try:
            end.send_nowait(payload)
        except _ext.BrokenError:
            self._release(w, retire=True)  # it left (idle) or died while idle
            return None
        except ValueError as exc:
            self._release(w)
            raise ValueError(f"the call to {_describe(fn)} is too large for a worker's channel "
                             f"({len(payload)} bytes pickled): {exc}") from None
        except BaseException:
            self._release(w, retire=True)
            raise
        try:
            yields = _YIELDS
            while True:
                try:
                    msg = end.recv_nowait()
                except BlockingIOError:
                    pass  # (not awaiting in here keeps it out of a cancel's __context__)
                else:
                    break
                if yields:
                    # A small call is answered in a few microseconds: look
                    # again after a pass of the scheduler before sleeping
                    # in epoll, whose wake-up costs more than the call.
                    yields -= 1
                    await trio.lowlevel.checkpoint()
                else:
                    await trio.lowlevel.wait_readable(w.rfd)
        except _ext.EndOfChannel:
            self._release(w, retire=True)
            return None
        except _ext.BrokenError:
            self._release(w, retire=True)
            raise BrokenWorkerError(f"worker {w.name!r} died while it ran {_describe(fn)}: "
                                    f"{w.why or self._outcome_text(w)}") from None
        except BaseException:
            # Cancelled (cancellable=True), KeyboardInterrupt, ...: the
            # call is abandoned, so is the worker.
            await self._kill(w)
            raise
        try:
            status, value, retiring = pickle.loads(msg)
        except Exception as exc:
            # The worker answered: it is fine, the answer is not (a class
            # this interpreter cannot import, say).
            self._release(w)
            raise TypeError(f"the result of {_describe(fn)} could not be unpickled here: "
                            f"{type(exc).__name__}: {exc}") from exc
        finally:
            msg.release()
        w.calls += 1
        self._calls += 1
        self._release(w, retire=retiring)
        return status, value

    async def _kill(self, w: _Worker) -> None:
        """Interrupt a busy worker and wait, shielded, up to kill_after for
        it to end; abandon it (with a warning naming it) if it has not."""
        w.interrupt()
        w.deadline = time.monotonic() + self.kill_after
        try:
            with trio.CancelScope(shield=True):
                with trio.move_on_at(_trio_at(w.deadline)):
                    if not w.actor.done:
                        await trio.lowlevel.wait_readable(w.actor.fileno())
        except BaseException:
            # A KeyboardInterrupt during the wait: the pool (or, at exit,
            # the C hook) finishes the ladder.
            self._busy.discard(w)
            self._ending.append(w)
            self._notify()
            raise
        self._busy.discard(w)
        self._notify()
        if not w.actor.done:
            self._finish(w, abandon=True)
        else:
            self._finish(w)

    # -- bookkeeping (all synchronous) -------------------------------------------
    def _usable(self, w: _Worker, now: float) -> bool:
        """False for an idle worker that has left, or is about to (its idle
        timeout has passed). A worker may still leave between this check
        and the call: that call is sent again (see _call)."""
        return not w.actor.done and (self.idle_timeout is None or now - w.last_used < self.idle_timeout)

    def _release(self, w: _Worker, retire: bool = False) -> None:
        """A busy worker's call is over: back to idle, or let go."""
        self._busy.discard(w)
        self._notify()
        if (retire or self._closed or w.actor.done or len(self._idle) >= self.size
                or (self.max_calls is not None and w.calls >= self.max_calls)):
            self._let_go(w)
        else:
            w.last_used = time.monotonic()
            self._idle.append(w)

    def _let_go(self, w: _Worker) -> None:
        """Close the worker's channel (it leaves when it next looks) and
        track it until it is joined."""
        if not w.end.closed:
            w.end.close()
        w.deadline = time.monotonic() + self.kill_after
        self._ending.append(w)

    def _finish(self, w: _Worker, abandon: bool = False) -> None:
        """Join a worker that is done, or abandon one that is not; either way
        the pool forgets it."""
        if abandon or w.abandoned:
            try:
                w.abandon()
            finally:
                w.end.close()
            return
        w.actor.join()  # done: its thread's last act was to say so; short
        if not w.end.closed:
            w.end.close()

    def _reap(self) -> None:
        """Let go of idle workers that left or are due to; join ending ones
        that are done; interrupt, then abandon, those past their deadline."""
        now = time.monotonic()
        idle = self._idle
        while idle and not self._usable(idle[0], now):
            self._let_go(idle.popleft())
        if not self._ending:
            return
        keep = []
        ending, self._ending = self._ending, keep
        try:
            while ending:
                w = ending.pop()
                if w.actor.done or w.abandoned:
                    self._finish(w)
                elif now < w.deadline:
                    keep.append(w)
                elif not w.interrupted:
                    w.interrupt()
                    w.deadline = now + self.kill_after
                    keep.append(w)
                else:
                    self._finish(w, abandon=True)
        finally:
            keep.extend(ending)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_busy(self, until: float) -> None:
        with trio.move_on_at(_trio_at(until)):
            while self._busy:
                if self._changed is None:
                    self._changed = trio.Event()
                await self._changed.wait()

    @staticmethod
    def _outcome_text(w: _Worker) -> str:
        if not w.actor.done:
            return "its channel broke"
        outcome = w.actor.outcome()
        if outcome[0] == "ok":
            return "it ended"
        return f"{outcome[0]}: {outcome[1]}: {outcome[2]}"

    def _shutdown_now(self, timeout: float) -> None:
        """Synchronous close, for program exit: idle workers are let go and
        joined within `timeout`. Workers still running (a call of another
        thread's trio.run) are left to _ext's own exit hook, which runs
        after this one: it interrupts them, then abandons them."""
        self._closed = True
        while self._idle:
            self._let_go(self._idle.pop())
        deadline = time.monotonic() + timeout
        for w in list(self._ending):
            if w.actor.join(max(0.0, deadline - time.monotonic()), abandon=False):
                self._ending.remove(w)
                self._finish(w)

    def __repr__(self) -> str:
        s = self.statistics()
        state = "closed" if self._closed else "open"
        return (f"<WorkerPool {state} backend={self.backend} size={self.size} idle={s.idle_workers} "
                f"running={s.running_workers}>")


@asynccontextmanager
async def open_worker_pool(size: int | None = None, *, max_calls: int | None = None,
                           max_blocks: int | None = None,
                           idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
                           kill_after: float = DEFAULT_KILL_AFTER, grace: float = DEFAULT_GRACE,
                           backend: str = "subint"):
    """A :class:`WorkerPool` that is closed (see :meth:`WorkerPool.aclose`)
    when the block ends::

        async with subactor.open_worker_pool(size=4, max_calls=1000) as pool:
            result = await pool.run_sync(fn, *args)
    """
    pool = WorkerPool(size, max_calls=max_calls, max_blocks=max_blocks, idle_timeout=idle_timeout,
                      kill_after=kill_after, grace=grace, backend=backend)
    try:
        yield pool
    finally:
        await pool.aclose()


_default_pool: WorkerPool | None = None
_atexit_registered = False


def default_worker_pool() -> WorkerPool:
    """The pool module-level :func:`run_sync` uses: made on first use,
    ``os.cpu_count()`` workers, default settings; closed at program exit
    (idle workers leave and are joined; nothing is abandoned or warned
    about unless a call is still running). Closing it (``await
    default_worker_pool().aclose()``) is allowed: the next use makes a new
    one."""
    global _default_pool, _atexit_registered
    pool = _default_pool
    if pool is None or pool._closed:
        pool = _default_pool = WorkerPool()
        if not _atexit_registered:
            # Registered after _ext's own hook, so it runs before it.
            atexit.register(_shutdown_default_pool)
            _atexit_registered = True
    return pool


def _shutdown_default_pool(timeout: float = 2.0) -> None:
    pool = _default_pool
    if pool is not None:
        pool._shutdown_now(timeout)


async def run_sync(fn: Callable[..., T], *args: Any, cancellable: bool = False,
                   limiter: trio.CapacityLimiter | None = None, kill_on_cancel: bool = False) -> T:
    """Run ``fn(*args)`` in a warm worker of the default pool and return its
    result: :meth:`WorkerPool.run_sync` on :func:`default_worker_pool`. A
    drop-in for :func:`trio_parallel.run_sync`, except that an exception of
    ``fn`` arrives as :class:`subactor.RemoteActorError`."""
    return await default_worker_pool().run_sync(fn, *args, cancellable=cancellable, limiter=limiter,
                                                kill_on_cancel=kill_on_cancel)
