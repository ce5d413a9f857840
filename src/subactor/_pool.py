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
- *ending*: in ``_ending``, asked to leave (its channel closed and its
  cancel flag set) and not yet joined; each has its ladder
  (:mod:`subactor._ladder`): interrupted ``grace`` seconds after it was let
  go, abandoned with a warning ``kill_after`` seconds after. The pool
  advances those ladders whenever it looks at its workers (every call,
  ``statistics()``), and drives them to their end when it closes;
- gone: joined (or abandoned) and dropped.

Cancellation (``cancellable=True``) takes the worker down the ladder with
no grace: it is interrupted at once (``ActorInterrupted`` is raised in the
call), abandoned (an ``AbandonedActorWarning`` names it) if it has not
ended ``kill_after`` seconds after the cancel, and ``trio.Cancelled`` is
raised; the next call gets a fresh worker. With ``cancellable=False`` (the
default) the call is shielded from cancellation, but not from Ctrl-C: the
first SIGINT takes its worker down the ladder with the pool's ``grace``
and ``kill_after`` (see :mod:`subactor._sigint`), and the call then raises
the cancellation Ctrl-C caused in its task, or KeyboardInterrupt.

Backends. Workers are started through the backend contract of
:mod:`subactor._spawn` (entry point "worker"), with the worker's config
(``name``, ``main``: the parent's __main__ file, ``idle``, ``max_blocks``);
the worker runs ``_actor._pool_worker.main(cfg, end)`` with its own end.
The pool's end raises ``_ext.EndOfChannel`` when the worker closed its end
(a call it was sent was not taken) and ``_ext.BrokenError`` when it died.
"subint" and "process" are the backends; for "process" an interrupt is
SIGINT (it stops ``time.sleep`` too) and abandon is SIGKILL.
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

from subactor import _ext, _ladder, _main_script, _sigint, _spawn
from subactor._transport import may_spin, spin_end, spin_start
from subactor._ladder import DEFAULT_GRACE, DEFAULT_KILL_AFTER
from subactor._actor import _pool_worker
from subactor._exceptions import check_findable, unbox_error

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
# The status of a call whose worker Ctrl-C took down (see _call).
_STOPPED = "stopped"

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


# A module-level function's or builtin's pickle (it goes by name), made
# once: pickling a function looks its module up and checks the name each
# time (~3 us of a ~1 us call message). Bounded: cleared when full.
_FN_REFS: dict = {}
_FN_REFS_MAX = 256
_BY_NAME_TYPES = (types.FunctionType, types.BuiltinFunctionType)


def _by_name(fn) -> bool:
    """True for a function pickle sends by its module and name alone, and
    that its module binds under that name now (so its pickle made earlier
    still names this very function)."""
    t = type(fn)
    if t is types.FunctionType:
        name = fn.__qualname__
        if "." in name or fn.__module__ == "__mp_main__":   # (checked anew while the main module loads)
            return False
    elif t is types.BuiltinFunctionType and isinstance(fn.__self__, types.ModuleType):
        name = fn.__name__
    else:
        return False
    mod = sys.modules.get(fn.__module__)
    return mod is not None and getattr(mod, name, None) is fn


def _fn_ref(fn):
    """What a call message carries for ``fn``: its pickle (bytes, made once,
    see _FN_REFS) for a function sent by name, else ``fn`` itself (pickled
    with each call: a partial, a callable object). Checked as _check_fn
    does, once per function for those that are cached."""
    if type(fn) in _BY_NAME_TYPES:
        ref = _FN_REFS.get(fn)
        if ref is not None:
            # Cached only if _by_name held: its qualified name has no dot
            # (a builtin's is its name), so this is _by_name's last check.
            if getattr(sys.modules.get(fn.__module__), fn.__qualname__, None) is fn:
                return ref
            del _FN_REFS[fn]
    _check_fn(fn)
    if not _by_name(fn):
        return fn
    try:
        ref = pickle.dumps(fn, protocol=_PROTOCOL)
    except Exception:
        return fn   # (the message's own pickling says why)
    if len(_FN_REFS) >= _FN_REFS_MAX:
        _FN_REFS.clear()
    _FN_REFS[fn] = ref
    return ref


def _encode_call(fn, args: tuple) -> bytes:
    ref = _fn_ref(fn)
    try:
        return pickle.dumps((ref, args), protocol=_PROTOCOL)
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

    __slots__ = ("actor", "end", "rfd", "name", "calls", "last_used", "ladder", "why")

    def __init__(self, actor, end, name: str):
        self.actor = actor            # backend handle (see the module docstring)
        self.end = end                # the pool's end of the worker's channel
        self.rfd = end.recv_fileno()  # readable iff an answer (or the end) is there
        self.name = name
        self.calls = 0                # calls answered
        self.last_used = 0.0          # time.monotonic() of its last answer
        self.ladder: _ladder.Ladder | None = None  # set once it is being ended
        self.why = ""                 # why the pool ended it, for BrokenWorkerError

    def __repr__(self) -> str:
        return f"<worker {self.name} calls={self.calls} done={self.actor.done}>"


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
    waits for a call before it leaves (None: forever). ``grace`` and
    ``kill_after`` are the ladder's (:mod:`subactor._ladder`), counted from
    the moment the pool ends a worker: when the pool closes, or on Ctrl-C,
    running calls get ``grace`` seconds to finish before their worker is
    interrupted, and it is abandoned at ``kill_after``; a cancelled
    ``cancellable=True`` call's worker is interrupted at once and abandoned
    at ``kill_after``.

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
        if idle_timeout is not None and not idle_timeout >= 0:
            raise ValueError(f"idle_timeout must be None or >= 0, got {idle_timeout!r}")
        self.grace, self.kill_after = _ladder.check_deadlines(grace, kill_after)
        self.backend = _check_backend(backend)
        self.size = size
        self.max_calls = max_calls
        self.max_blocks = max_blocks
        self.idle_timeout = idle_timeout
        self._idle: collections.deque[_Worker] = collections.deque()
        self._busy: set[_Worker] = set()
        self._ending: list[_Worker] = []
        self._closed = False
        self._closing = False
        self._limiter_var = trio.lowlevel.RunVar(f"subactor.WorkerPool.limiter.{id(self):x}")
        self._ids = itertools.count(1)
        self._started = 0
        self._calls = 0
        self._main_path = _main_script.main_file()

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
        cancellation, as trio_parallel's (but Ctrl-C still takes its worker
        down the ladder with ``grace`` and ``kill_after``); if true a cancel
        interrupts the worker at once (``ActorInterrupted`` in ``fn``),
        which is then replaced; one stuck in C is abandoned ``kill_after``
        seconds after the cancel.
        ``kill_on_cancel`` is trio_parallel's other name for it (either
        makes the call cancellable).
        ``limiter``: bounds concurrent calls (default :attr:`limiter`); any
        async context manager will do, as in trio_parallel.
        """
        cancellable = cancellable or kill_on_cancel
        payload = _encode_call(fn, args)
        if limiter is None:
            limiter = self.limiter
        if not cancellable and type(limiter) is trio.CapacityLimiter:
            # The fast path: a token free now, taken without a pass of the
            # scheduler, and no cancel scope unless the answer is slow.
            # (The limiter's *_on_behalf_of methods with the task are what
            # acquire_nowait() and release() call: two calls fewer each.)
            await trio.lowlevel.checkpoint_if_cancelled()
            task = trio.lowlevel.current_task()
            try:
                limiter.acquire_on_behalf_of_nowait(task)
            except trio.WouldBlock:
                pass
            else:
                try:
                    answer = await self._run_quick(payload, fn)
                finally:
                    limiter.release_on_behalf_of(task)
                if answer[0] == _pool_worker.OK:
                    return answer[1]
                return await self._result(answer)
        async with limiter:
            while True:
                with trio.CancelScope(shield=not cancellable):
                    if self._closed:
                        raise trio.ClosedResourceError("the worker pool is closed")
                    worker = self._checkout()
                    answer = await self._call(worker, payload, fn, cancellable)
                if answer is not None:
                    break
                # That worker had left (idle) before it took the call: the
                # call never ran, so another worker may take it.
                await trio.lowlevel.checkpoint_if_cancelled()
        return await self._result(answer)

    async def _result(self, answer: tuple):
        status, value = answer
        if status == _pool_worker.OK:
            return value
        if status is _STOPPED:
            # Outside the shield: the cancellation Ctrl-C caused, if it has
            # reached this task, is raised here; else the Ctrl-C itself,
            # which is what ended the call (an actor nursery around it
            # reports one KeyboardInterrupt for all).
            await trio.lowlevel.checkpoint_if_cancelled()
            raise KeyboardInterrupt(value)
        raise unbox_error(value)

    async def _run_quick(self, payload: bytes, fn) -> tuple:
        """A call that is not cancellable, without a cancel scope while its
        answer comes within a few passes of the scheduler (they are
        cancel-shielded checkpoints); a slower answer is awaited as the
        general path does, shielded and watching for Ctrl-C (one that came
        meanwhile is taken into account)."""
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the worker pool is closed")
            w = self._checkout()
            if not self._send(w, payload, fn):
                await trio.lowlevel.checkpoint_if_cancelled()
                continue
            since = _sigint.sigints()
            end = w.end
            msg = None
            # Passes of the scheduler while the answer comes, unless this
            # interpreter lately saw the machine too busy for spinning
            # (see _transport.BUSY_BACKOFF): then it parks at once.
            passes = _YIELDS if may_spin() else 0
            spun = None
            try:
                while True:
                    try:
                        msg = end.recv_nowait()
                        break
                    except BlockingIOError:
                        pass
                    if not passes:
                        break
                    if spun is None:
                        spun = spin_start()
                    passes -= 1
                    await trio.lowlevel.cancel_shielded_checkpoint()
            except _ext.EndOfChannel:
                self._release(w, retire=True)
                await trio.lowlevel.checkpoint_if_cancelled()
                continue
            except _ext.BrokenError:
                self._release(w, retire=True)
                raise self._broken(w, fn) from None
            if msg is not None:
                if spun is None:
                    # Answered before any pass of the scheduler: still a
                    # schedule point, as every trio call is.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return self._decode(w, msg, fn)
            if spun is not None:
                spin_end(spun)   # preempted while it spun: park at once for a while
            with trio.CancelScope(shield=True):
                answer = await self._finish(w, fn, False, since, yields=0)
            if answer is not None:
                return answer
            await trio.lowlevel.checkpoint_if_cancelled()

    @trio.lowlevel.enable_ki_protection
    async def aclose(self) -> None:
        """Close the pool: idle workers leave at once; each running call's
        worker goes down the ladder (its call gets ``grace`` seconds to
        finish, then the worker is interrupted and its caller gets
        :class:`BrokenWorkerError`, then at ``kill_after`` it is abandoned).
        Shielded and bounded by those deadlines."""
        self._closed = True
        if self._closing:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        with trio.CancelScope(shield=True):
            while self._idle:
                self._let_go(self._idle.pop())
            async with trio.open_nursery() as n:
                for w in list(self._busy):
                    w.why = "its pool was closed while it ran the call"
                    n.start_soon(self._end_worker, w, self.grace)
                for w in list(self._ending):
                    n.start_soon(self._end_worker, w, self.grace)
            self._reap()

    # -- the call ----------------------------------------------------------------
    def _checkout(self) -> _Worker:
        """An idle worker, or a new one (synchronous: a worker is owned by
        the pool from the moment it exists)."""
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

    async def _call(self, w: _Worker, payload: bytes, fn, cancellable: bool) -> tuple | None:
        """(status, value), or None if the worker had left before it took
        the call, or (_STOPPED, why) if Ctrl-C took its worker down. Raises
        BrokenWorkerError if it died while it ran it."""
        if not self._send(w, payload, fn):
            return None
        return await self._finish(w, fn, cancellable)

    def _send(self, w: _Worker, payload: bytes, fn) -> bool:
        """Hand the call to the worker; False if it had left (idle) or died
        while idle (it is retired)."""
        try:
            w.end.send_nowait(payload)
        except _ext.BrokenError:
            self._release(w, retire=True)  # it left (idle) or died while idle
            return False
        except ValueError as exc:
            self._release(w)
            raise ValueError(f"the call to {_describe(fn)} is too large for a worker's channel "
                             f"({len(payload)} bytes pickled): {exc}") from None
        except BaseException:
            self._release(w, retire=True)
            raise
        return True

    def _broken(self, w: _Worker, fn) -> BrokenWorkerError:
        return BrokenWorkerError(f"worker {w.name!r} died while it ran {_describe(fn)}: {self._why(w)}")

    async def _finish(self, w: _Worker, fn, cancellable: bool, since: int | None = None,
                      yields: int | None = None) -> tuple | None:
        """The rest of :meth:`_call` once the call is sent. ``since``: the
        count of SIGINTs when the call was sent, if that was before this
        wait began (a Ctrl-C in between stops the call as one during it).
        ``yields``: passes of the scheduler before it parks (see _answer)."""
        stopped = False
        try:
            if cancellable:
                msg = await self._answer(w, yields)
            else:
                # Shielded from cancellation, not from Ctrl-C.
                with _sigint.watch() as sigint:
                    if since is not None and _sigint.sigints() != since:
                        sigint.cancel()
                    msg = await self._answer(w, yields)
                stopped = sigint.cancelled_caught
        except _ext.EndOfChannel:
            self._release(w, retire=True)
            return None
        except _ext.BrokenError:
            self._release(w, retire=True)
            raise self._broken(w, fn) from None
        except BaseException as exc:
            # Cancelled (cancellable=True): the call is abandoned, so is its
            # worker, at once. KeyboardInterrupt (delivered to the main
            # task, shields or not): the worker gets the pool's grace.
            w.why = "its call was cancelled"
            try:
                await self._end_worker(w, 0.0 if isinstance(exc, trio.Cancelled) else self.grace)
            finally:
                # Also when a KeyboardInterrupt cut the ladder short: the
                # pool advances it when it next looks.
                self._release(w, retire=True)
            raise
        if stopped:
            w.why = "Ctrl-C stopped it while it ran the call"
            try:
                await self._end_worker(w, self.grace)
            finally:
                self._release(w, retire=True)
            return _STOPPED, f"worker {w.name!r} was stopped while it ran {_describe(fn)}: {w.why}"
        return self._decode(w, msg, fn)

    def _decode(self, w: _Worker, msg, fn) -> tuple:
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

    async def _answer(self, w: _Worker, yields: int | None = None):
        """The worker's answer (a Message). Raises what its end raises.
        ``yields``: passes of the scheduler it looks for the answer in
        before it parks (None: _YIELDS, or none while spinning is off)."""
        end = w.end
        if yields is None:
            yields = _YIELDS if may_spin() else 0
        spun = None
        while True:
            try:
                return end.recv_nowait()
            except BlockingIOError:
                pass  # (not awaiting in here keeps it out of a cancel's __context__)
            if yields:
                # A small call is answered in a few microseconds: look
                # again after a pass of the scheduler before sleeping
                # in epoll, whose wake-up costs more than the call.
                if spun is None:
                    spun = spin_start()
                yields -= 1
                await trio.lowlevel.checkpoint()
            else:
                if spun is not None:
                    spin_end(spun)
                    spun = None
                await trio.lowlevel.wait_readable(w.rfd)

    async def _end_worker(self, w: _Worker, grace: float) -> None:
        """Take a worker down its ladder (shielded, bounded by kill_after).
        A worker that already has a ladder (it is leaving, or another task
        ends it) is driven on that one. A busy worker stays busy: its caller,
        woken by its answer or by its end, releases it."""
        if w.ladder is None:
            w.ladder = _ladder.Ladder(w.actor, grace=grace, kill_after=self.kill_after)
            w.ladder.start()
        await w.ladder.run()

    # -- bookkeeping (all synchronous) -------------------------------------------
    def _usable(self, w: _Worker, now: float) -> bool:
        """False for an idle worker that has left, or is about to (its idle
        timeout has passed). A worker may still leave between this check
        and the call: that call is sent again (see _call)."""
        return not w.actor.done and (self.idle_timeout is None or now - w.last_used < self.idle_timeout)

    def _release(self, w: _Worker, retire: bool = False) -> None:
        """A busy worker's call is over: back to idle, or let go."""
        self._busy.discard(w)
        if (retire or self._closed or w.ladder is not None or w.actor.done or len(self._idle) >= self.size
                or (self.max_calls is not None and w.calls >= self.max_calls)):
            self._let_go(w)
        else:
            w.last_used = time.monotonic()
            self._idle.append(w)

    def _let_go(self, w: _Worker) -> None:
        """Close the worker's channel (an idle worker leaves when it next
        looks) and start its ladder, whose cooperative rung that is; track
        it until the ladder is over. No task may be waiting on the end: only
        idle workers and workers whose caller is done with them get here."""
        if not w.end.closed:
            w.end.close()
        if w.ladder is None:
            w.ladder = _ladder.Ladder(w.actor, grace=self.grace, kill_after=self.kill_after)
            w.ladder.start()
        if not w.ladder.finished and w not in self._ending:
            self._ending.append(w)

    def _reap(self) -> None:
        """Let go of idle workers that left or are due to; advance the
        ladders of ending workers, and forget those whose ladder is over."""
        now = time.monotonic()
        idle = self._idle
        while idle and not self._usable(idle[0], now):
            self._let_go(idle.popleft())
        if self._ending:
            self._ending = [w for w in self._ending if not w.ladder.advance()]

    @staticmethod
    def _why(w: _Worker) -> str:
        """Why a worker's call broke, for BrokenWorkerError."""
        if w.ladder is not None and w.ladder.rung == 3:
            how = "it was abandoned at its hard deadline"
        elif w.ladder is not None and w.ladder.rung == 2:
            how = "it was interrupted"
        elif not w.actor.done:
            how = "its channel broke"
        else:
            outcome = w.actor.outcome()
            how = "it ended" if outcome[0] == "ok" else f"{outcome[0]}: {outcome[1]}: {outcome[2]}"
        return f"{w.why}; {how}" if w.why else how

    def _shutdown_now(self) -> None:
        """Synchronous close, for program exit: idle workers are let go
        (each leaves within milliseconds). Whatever is still alive then,
        ending or running a call of another thread's trio.run, is taken down
        by the ladder at exit (subactor._ladder.at_exit), which _ext's exit
        hook runs after this one, with the exit deadlines."""
        self._closed = True
        while self._idle:
            self._let_go(self._idle.pop())

    def __repr__(self) -> str:
        s = self.statistics()
        state = "closed" if self._closed else "open"
        return (f"<WorkerPool {state} backend={self.backend} size={self.size} idle={s.idle_workers} "
                f"running={s.running_workers}>")


@asynccontextmanager
@trio.lowlevel.enable_ki_protection
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


def _shutdown_default_pool() -> None:
    pool = _default_pool
    if pool is not None:
        pool._shutdown_now()


async def run_sync(fn: Callable[..., T], *args: Any, cancellable: bool = False,
                   limiter: trio.CapacityLimiter | None = None, kill_on_cancel: bool = False) -> T:
    """Run ``fn(*args)`` in a warm worker of the default pool and return its
    result: :meth:`WorkerPool.run_sync` on :func:`default_worker_pool`. A
    drop-in for :func:`trio_parallel.run_sync`, except that an exception of
    ``fn`` arrives as :class:`subactor.RemoteActorError`."""
    return await default_worker_pool().run_sync(fn, *args, cancellable=cancellable, limiter=limiter,
                                                kill_on_cancel=kill_on_cancel)
