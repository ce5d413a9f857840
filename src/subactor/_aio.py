"""asyncio inside actors: trio as the guest of an asyncio loop, and linked
trio/asyncio task pairs. The public face is :mod:`subactor.to_asyncio`.

An *infected* actor (``start_actor(..., infect_asyncio=True)``) runs, once
its first async call arrives, an asyncio event loop in its thread with
trio's run as that loop's guest (``trio.lowlevel.start_guest_run``): one
thread, two schedulers, asyncio drives and trio's ticks are callbacks of
its loop. The root does the same with :func:`run_as_asyncio_guest`.

A trio task starts an asyncio task with :func:`run_task` (one result) or
:func:`open_channel_from` (a two-way channel, :class:`LinkedTaskChannel`).
The two tasks are linked as a trio nursery links its tasks, and neither
outlives the trio block that started the pair:

- the trio side fails or is cancelled: the asyncio task is cancelled (its
  code sees ``asyncio.CancelledError``; the channel's ``get()`` and
  ``send_nowait()`` raise :class:`TrioCancelled` from then on), the block
  waits for it to end and raises its own error;
- the trio side leaves the block while the asyncio task still runs: the
  task is cancelled the same way (the channel raises
  :class:`TrioTaskExited`); the block raises ``TrioTaskExited`` itself only
  with ``suppress_graceful_exits=False``;
- the asyncio task raises: the trio block is cancelled and raises that
  error (the same type: it is this interpreter's exception). An error of
  the trio side's own, if it came first, wins;
- the asyncio task is cancelled, not by its trio side: the trio block is
  cancelled and raises :class:`AsyncioCancelled`;
- the asyncio task returns: ``run_task`` returns its value; a channel's
  ``receive()`` gives what was sent, then ``trio.EndOfChannel`` (or
  :class:`AsyncioTaskExited` with ``suppress_graceful_exits=False``), and
  ``wait_for_result()`` its value. The trio block goes on.

No helper thread: trio's guest mode waits for I/O in a thread of trio's
thread cache, a daemon thread, which an own-GIL subinterpreter refuses (and
which would outlive the interpreter); and every wake-up would cross two
threads. Here the asyncio loop does that wait itself
(:class:`_LoopIoWait`): trio's guest tick is pointed at it, in the
interpreter that hosts the run and for guest runs of ours only (trio is
pinned, see pyproject.toml).
"""
from __future__ import annotations

import collections
import inspect
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

if TYPE_CHECKING:
    import asyncio

import trio

from subactor._exceptions import (AsyncioCancelled, AsyncioRuntimeTranslationError, AsyncioTaskExited,
                                  TrioCancelled, TrioTaskExited)

__all__ = ["LinkedTaskChannel", "run_task", "open_channel_from", "run_as_asyncio_guest",
           "AsyncioCancelled", "AsyncioTaskExited", "TrioCancelled", "TrioTaskExited",
           "AsyncioRuntimeTranslationError"]

# Values an open_channel_from's asyncio task may send ahead of its trio
# task before send_nowait() raises trio.WouldBlock (as tractor's).
CHANNEL_BUFFER = 2 ** 8


class _Host(threading.local):
    """The guest run hosted in this thread, if any."""

    loop = None       # the asyncio loop hosting trio here
    token = None      # the trio run it hosts (its TrioToken)
    io = None         # that run's _LoopIoWait


_host = _Host()


# -- the guest run ----------------------------------------------------------

class _LoopIoWait:
    """trio's guest-mode I/O waits, done by the host loop itself (see the
    module's doc): trio's epoll descriptor is readable once trio has
    events, so the asyncio loop watches it, with a timer for trio's
    timeout, where trio would block a thread in ``epoll_wait``. When either
    fires, the events are taken without waiting and handed to trio's
    ``deliver``, which schedules trio's next tick on the loop. One wait at
    a time (trio asks for the next one from the tick it delivers to)."""

    def __init__(self, loop):
        self._loop = loop
        self._fd: int | None = None    # trio's epoll descriptor, watched now
        self._timer = None             # the asyncio timer of trio's timeout
        self._fire = None              # what the reader and the timer call

    def start_soon(self, fn, deliver, name=None) -> None:
        import outcome

        timeout, io_manager = _guest_wait_of(fn)
        fd = io_manager._epoll.fileno()

        def fire() -> None:
            if self._fire is not fire:
                return
            self.close()
            deliver(outcome.capture(io_manager.get_events, 0))

        self._fire = fire
        self._fd = fd
        self._loop.add_reader(fd, fire)
        self._timer = self._loop.call_later(timeout, fire)

    def close(self) -> None:
        """Stop watching (the run ended, or was abandoned)."""
        self._fire = None
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _guest_wait_of(fn) -> tuple[float, Any]:
    """(timeout, io manager) of the I/O wait trio's guest tick hands to
    ``start_thread_soon``: a closure over the tick's ``timeout`` and its
    guest state (trio 0.35, pinned in pyproject.toml)."""
    try:
        cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
        return float(cells["timeout"]), cells["self"].runner.io_manager
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise AsyncioRuntimeTranslationError(
            f"trio's guest mode is not the one subactor._aio knows (trio {trio.__version__}): {exc!r}; "
            f"subactor pins the trio it was written for") from None


_trio_start_thread_soon = None  # trio's own, for guest runs that are not ours (set once patched)


def _start_thread_soon(fn, deliver, name=None):
    io = _host.io
    if io is None:   # a guest run that is not ours (another host loop in this interpreter)
        return _trio_start_thread_soon(fn, deliver, name=name)
    io.start_soon(fn, deliver, name)


def _point_trio_at_io_threads() -> None:
    """Point trio's guest tick at :func:`_start_thread_soon` (once per
    interpreter), after checking that the tick is the one we know: the
    wait it hands over is a closure ``get_events`` over ``self`` and
    ``timeout``. Another trio is an error here, before any run starts,
    not a hang in the middle of one."""
    global _trio_start_thread_soon
    from trio._core import _run

    if _trio_start_thread_soon is None:
        tick = getattr(getattr(_run, "GuestState", None), "guest_tick", None)
        known = any(getattr(c, "co_name", None) == "get_events" and {"self", "timeout"} <= set(c.co_freevars)
                    for c in getattr(getattr(tick, "__code__", None), "co_consts", ()))
        if not known or not callable(getattr(_run, "start_thread_soon", None)):
            raise AsyncioRuntimeTranslationError(
                f"trio's guest mode is not the one subactor._aio knows (trio {trio.__version__}); "
                f"subactor pins the trio it was written for")
        _trio_start_thread_soon = _run.start_thread_soon
        _run.start_thread_soon = _start_thread_soon


def is_hosted() -> bool:
    """True in trio code that runs as the guest of an asyncio loop of ours
    (an infected actor, or the root under :func:`run_as_asyncio_guest`)."""
    if _host.loop is None:
        return False
    try:
        return trio.lowlevel.current_trio_token() is _host.token
    except RuntimeError:
        return False


def _loop_for(what: str):
    """The hosting asyncio loop, or the error that says how to get one."""
    if not is_hosted():
        raise RuntimeError(
            f"to_asyncio.{what}() needs trio to run as the guest of an asyncio loop, and this trio run is not: "
            f"start the actor with infect_asyncio=True (start_actor(..., infect_asyncio=True) or "
            f"run_in_actor(fn, infect_asyncio=True)), or run the root with to_asyncio.run_as_asyncio_guest()")
    return _host.loop


def _lone(exc: BaseException) -> BaseException:
    """A group holding one error (besides trio's cancellations) as that
    error, as an actor nursery raises it; anything else as it is."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    from subactor._actor._runtime import _lone_error

    return _lone_error(exc) or exc


def run_guest(async_fn: Callable, *args: Any, collapse: bool = False) -> Any:
    """Run ``async_fn(*args)`` in trio, as the guest of a new asyncio loop
    in this thread; return its value or raise its error (a lone error of a
    group bare if ``collapse``). An exception that ends the asyncio loop
    itself (an actor's interrupt landing in asyncio's own code) abandons
    the guest run and is raised as it is.

    Used by an infected actor's runtime and by :func:`run_as_asyncio_guest`."""
    import asyncio

    if _host.loop is not None:
        raise RuntimeError("an asyncio loop already hosts trio in this thread")
    _point_trio_at_io_threads()
    loop = asyncio.new_event_loop()
    done = loop.create_future()
    io = _LoopIoWait(loop)

    async def guest():
        _host.token = trio.lowlevel.current_trio_token()
        return await async_fn(*args)

    def finished(outcome) -> None:
        if not done.done():
            done.set_result(outcome)

    _host.loop, _host.io = loop, io
    ended = False
    try:
        asyncio.set_event_loop(loop)
        trio.lowlevel.start_guest_run(guest, run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                                      run_sync_soon_not_threadsafe=loop.call_soon, done_callback=finished)
        try:
            result = loop.run_until_complete(done)
        except RuntimeError as exc:
            if done.done() or "stopped before Future completed" not in str(exc):
                raise
            raise AsyncioRuntimeTranslationError(
                "the asyncio loop hosting trio was stopped (loop.stop()) before trio's run ended: "
                "its trio tasks were abandoned") from None
        ended = True
        _finish_loop(loop)
    finally:
        _host.loop = _host.token = _host.io = None
        asyncio.set_event_loop(None)
        io.close()
        if not ended:
            # Abandoned (an interrupt): the tasks of either loop that are
            # left say nothing when they are collected.
            loop.set_exception_handler(lambda loop, context: None)
        loop.close()
    error = getattr(result, "error", None)
    if collapse and error is not None:
        lone = _lone(error)
        if lone is not error:
            raise lone
    return result.unwrap()


def _finish_loop(loop) -> None:
    """What asyncio.run does at its end: cancel the asyncio tasks still
    there (ones that asyncio code started and left), run them to their
    end, close async generators and the default executor."""
    import asyncio

    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


def run_as_asyncio_guest(trio_main: Callable[..., Any], *args: Any) -> Any:
    """Run ``trio_main(*args)`` (an async function of trio) as the guest of
    a new asyncio loop in this thread, and return its value: the root of
    an actor tree that uses asyncio libraries itself (``open_root_actor``
    or ``open_nursery`` inside ``trio_main``), where ``to_asyncio`` works.
    Use it instead of ``trio.run``. A lone error (with trio's cancellations
    around it in groups) is raised bare, as an actor nursery raises it.

    Inside an actor the loop is its runtime's: start the actor with
    ``infect_asyncio=True`` instead."""
    from subactor import _state

    if not callable(trio_main) or not inspect.iscoroutinefunction(trio_main):
        raise TypeError(f"run_as_asyncio_guest() needs an async function of trio, got {trio_main!r}")
    if _state.in_actor():
        raise RuntimeError("run_as_asyncio_guest() in an actor: an actor's loop is its runtime's; start the "
                           "actor with infect_asyncio=True to run asyncio in it")
    _state.set_infected(True)
    try:
        return run_guest(trio_main, *args, collapse=True)
    finally:
        _state.set_infected(False)


# -- linked task pairs -------------------------------------------------------

def _check_async(fn, what: str) -> None:
    if not callable(fn) or not inspect.iscoroutinefunction(fn):
        kind = "a non-async function" if callable(fn) else type(fn).__name__
        raise TypeError(f"to_asyncio.{what}() needs an async function (it runs as an asyncio task), "
                        f"got {kind}: {fn!r}")


def _name(fn) -> str:
    while hasattr(fn, "func"):  # a partial
        fn = fn.func
    return getattr(fn, "__qualname__", None) or repr(fn)


class LinkedTaskChannel(trio.abc.Channel[Any]):
    """The channel between a trio task and the asyncio task it started with
    :func:`open_channel_from` (the same object on both sides).

    trio side: ``await send(v)`` (never waits: the asyncio side's queue has
    no bound), ``await receive()`` (``async for`` too), ``subscribe()``,
    ``wait_for_result()``, ``cancel_asyncio_task()``, ``aclose()``.
    asyncio side: ``started_nowait(v)`` (the ``first`` value the trio side
    gets; once), ``send_nowait(v)`` (``trio.WouldBlock`` when
    :data:`CHANNEL_BUFFER` values are waiting), ``await get()``.
    What each side sees when the other ends: see :mod:`subactor._aio`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, buffer: int = CHANNEL_BUFFER, suppress_graceful_exits: bool = True):
        self._loop = loop
        self._send_trio, self._recv_trio = trio.open_memory_channel(buffer)  # asyncio -> trio
        self._buffer = buffer
        self._recv_closed = False             # this side stopped receiving (aclose)
        self._to_aio: collections.deque = collections.deque()                 # trio -> asyncio
        self._aio_waiters: list = []          # asyncio futures of get()s waiting for a value
        self._suppress = suppress_graceful_exits
        self._trio_cs = trio.CancelScope()    # the trio side's block, cancelled when the asyncio side ends badly
        self._aio_task = None                 # the asyncio.Task
        self._aio_done = trio.Event()         # the asyncio task has ended
        self._aio_result: Any = None          # its value, once it returned
        self._aio_error: BaseException | None = None  # what the trio side raises for its end (error, cancel)
        self._cancelled_by_trio = False       # the trio side cancelled it (so its CancelledError is ours)
        self._trio_end: type | None = None    # TrioTaskExited / TrioCancelled once the trio side is over
        self._started = False                 # started_nowait() was called
        self._first = trio.Event()            # ... or the asyncio task ended before it
        self._first_value: Any = None
        self._broadcaster = None

    # -- starting and ending (trio side) --------------------------------------
    def _start(self, fn, kwargs: dict) -> None:
        coro = fn(**kwargs)
        self._aio_task = self._loop.create_task(coro, name=f"to_asyncio:{_name(fn)}")
        self._aio_task.add_done_callback(self._on_aio_done)

    def _on_aio_done(self, task) -> None:
        """The asyncio task ended (a callback of the asyncio loop; trio's run
        is between ticks, so trio's sync calls work here)."""
        import asyncio

        err = None
        if task.cancelled():
            if not self._cancelled_by_trio:
                try:
                    task.result()
                except asyncio.CancelledError as exc:
                    why = f" ({exc.args[0]})" if exc.args and exc.args[0] else ""
                err = AsyncioCancelled(f"asyncio task {task.get_name()!r} was cancelled{why}, not by its trio task")
        else:
            err = task.exception()
            if err is None:
                self._aio_result = task.result()
        self._aio_error = err
        if err is not None and self._trio_end is None:
            self._trio_cs.cancel()
        self._aio_done.set()
        self._first.set()
        self._send_trio.close()

    def _signal_aio(self, end: type) -> None:
        """The trio side is over (``end`` says how): the asyncio side's
        channel calls raise it; a running asyncio task is cancelled."""
        if self._trio_end is None:
            self._trio_end = end
        for w in self._aio_waiters:
            if not w.done():
                w.set_result(None)
        task = self._aio_task
        if task is not None and not task.done():
            self._cancelled_by_trio = True
            task.cancel(f"its trio task {'left its block' if end is TrioTaskExited else 'was cancelled or failed'}")

    async def _wait_aio(self) -> None:
        with trio.CancelScope(shield=True):
            await self._aio_done.wait()

    # -- trio side -------------------------------------------------------------
    async def send(self, item: Any) -> None:
        """Queue ``item`` for the asyncio task's ``get()``."""
        await trio.lowlevel.checkpoint()
        if self._aio_done.is_set():
            raise trio.BrokenResourceError(f"the asyncio task {self._aio_task.get_name()!r} has ended")
        self._to_aio.append(item)
        for w in self._aio_waiters:
            if not w.done():
                w.set_result(None)

    async def receive(self) -> Any:
        """The next value of the asyncio task's ``send_nowait()``; then
        ``trio.EndOfChannel`` once it returned (:class:`AsyncioTaskExited`
        with ``suppress_graceful_exits=False``)."""
        b = self._broadcaster
        if b is not None:
            return await b.receive()
        return await self._receive()

    async def _receive(self) -> Any:
        try:
            return await self._recv_trio.receive()
        except trio.EndOfChannel:
            if self._aio_error is not None:
                raise self._aio_error from None
            if not self._suppress:
                raise AsyncioTaskExited(f"the asyncio task {self._aio_task.get_name()!r} returned") from None
            raise

    async def wait_for_result(self) -> Any:
        """The asyncio task's return value, once it ended (its error, or
        :class:`AsyncioCancelled`, if it did not return)."""
        await self._aio_done.wait()
        if self._aio_error is not None:
            raise self._aio_error
        if self._cancelled_by_trio:
            raise TrioCancelled("the asyncio task was cancelled by its trio task: it has no result")
        return self._aio_result

    def cancel_asyncio_task(self, msg: str = "") -> None:
        """Cancel the asyncio task; its trio side then sees
        :class:`AsyncioCancelled`, as for any cancel that is not its own end."""
        if self._aio_task is not None:
            self._aio_task.cancel(msg or None)

    async def aclose(self) -> None:
        """Stop receiving (the asyncio side's ``send_nowait()`` then raises
        ``trio.BrokenResourceError``)."""
        self._recv_closed = True
        await self._recv_trio.aclose()

    def closed(self) -> bool:
        """True once this side stopped receiving, or the asyncio task ended."""
        return self._aio_done.is_set() or self._recv_closed

    @asynccontextmanager
    async def subscribe(self):
        """A receiver of its own for this task: every subscriber (and
        ``receive()``) gets every value (see
        :func:`subactor.trionics.broadcast_receiver`)."""
        from subactor.trionics import broadcast_receiver

        if self._broadcaster is None:
            self._broadcaster = broadcast_receiver(self, self._buffer, receive_afunc=self._receive)
        async with self._broadcaster.subscribe() as view:
            yield view

    # -- asyncio side ------------------------------------------------------------
    def started_nowait(self, value: Any = None) -> None:
        """Give the trio side its ``first`` value (once)."""
        if self._started:
            raise RuntimeError("started_nowait() was called already")
        self._raise_if_trio_over()
        self._started = True
        self._first_value = value
        self._first.set()

    def send_nowait(self, item: Any) -> None:
        """Send ``item`` to the trio side (``trio.WouldBlock`` if its buffer
        is full)."""
        self._raise_if_trio_over()
        self._send_trio.send_nowait(item)

    async def get(self) -> Any:
        """The next value the trio side sent; :class:`TrioTaskExited` or
        :class:`TrioCancelled` once it is over and all was got."""
        while not self._to_aio:
            self._raise_if_trio_over()
            w = self._loop.create_future()
            self._aio_waiters.append(w)
            try:
                await w
            finally:
                self._aio_waiters.remove(w)
        return self._to_aio.popleft()

    def _raise_if_trio_over(self) -> None:
        if self._trio_end is TrioTaskExited:
            raise TrioTaskExited("the trio task left its open_channel_from block")
        if self._trio_end is TrioCancelled:
            raise TrioCancelled("the trio task was cancelled or failed")

    def __repr__(self) -> str:
        return f"<LinkedTaskChannel {self._aio_task!r}>"


def _ends_of(exc: BaseException | None) -> type:
    return TrioTaskExited if exc is None else TrioCancelled


async def run_task(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run ``fn(**kwargs)`` (an async function of asyncio) as an asyncio
    task and return its value. Cancelling this trio task cancels it (and
    waits for it to end); its error is raised here; a cancel that is not
    this task's own is :class:`AsyncioCancelled`. Only where trio is the
    guest of an asyncio loop (``infect_asyncio=True``)."""
    loop = _loop_for("run_task")
    _check_async(fn, "run_task")
    chan = LinkedTaskChannel(loop)
    chan._start(fn, kwargs)
    try:
        await chan._aio_done.wait()
    except BaseException as exc:
        chan._signal_aio(_ends_of(exc))
        await chan._wait_aio()
        raise
    if chan._aio_error is not None:
        raise chan._aio_error
    return chan._aio_result


def _check_takes_chan(target) -> None:
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if "chan" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise TypeError(f"to_asyncio.open_channel_from() passes the channel to its target as chan=, and "
                        f"{_name(target)} takes no chan argument")


@asynccontextmanager
async def open_channel_from(target: Callable[..., Any], suppress_graceful_exits: bool = True,
                            **kwargs: Any) -> AsyncIterator[tuple[LinkedTaskChannel, Any]]:
    """Start ``target(chan=..., **kwargs)`` (an async function of asyncio) as
    an asyncio task linked to this trio task, and yield ``(chan, first)``:
    the :class:`LinkedTaskChannel` and the value the task gave
    ``chan.started_nowait()``. What each side sees when the other ends: see
    :mod:`subactor._aio`. The block waits for the asyncio task to end."""
    loop = _loop_for("open_channel_from")
    _check_async(target, "open_channel_from")
    _check_takes_chan(target)
    chan = LinkedTaskChannel(loop, suppress_graceful_exits=suppress_graceful_exits)
    chan._start(target, dict(kwargs, chan=chan))
    try:
        with chan._trio_cs:
            await chan._first.wait()
            if not chan._started:
                # It ended before started_nowait(): its error, or this.
                if chan._aio_error is None:
                    raise AsyncioTaskExited(f"the asyncio task {chan._aio_task.get_name()!r} returned before "
                                            f"calling chan.started_nowait()")
                await trio.sleep_forever()  # its error cancelled this scope: raised below
            yield chan, chan._first_value
    except BaseException as exc:
        # This side's own error, or a cancel from outside the block.
        chan._signal_aio(TrioCancelled)
        await chan._wait_aio()
        raise
    running = not chan._aio_done.is_set()
    chan._signal_aio(TrioTaskExited)
    await chan._wait_aio()
    if chan._aio_error is not None:
        raise chan._aio_error
    if running and not suppress_graceful_exits:
        raise TrioTaskExited(f"the trio task left its block while its asyncio task "
                             f"{chan._aio_task.get_name()!r} was running")

