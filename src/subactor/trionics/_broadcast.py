"""Fan one receive channel out to many local tasks (tokio's broadcast
channel, as tractor has it).

The first receiver wraps the channel; ``.subscribe()`` makes more. All of
them share one bounded ring buffer of the latest values (newest first) and a
read position per receiver: -1 when it has read everything, else the index
of the next value it has not read. Only one task at a time waits on the
underlying channel; when it gets a value, the value goes into the buffer,
every other receiver's position moves back by one, and the tasks waiting on
other receivers are woken to read it from the buffer (a lone receiver
buffers nothing, so a broadcast that nobody subscribed to costs little). A receiver whose
position falls off the end of the buffer has lost values: its next receive
raises :class:`Lagged` (or, with ``raise_on_lag=False``, logs a warning) and
continues from the oldest value kept. The end of the underlying channel
(``trio.EndOfChannel``) reaches every receiver once it has read what is
buffered for it.
"""
from __future__ import annotations

from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol, TypeVar, runtime_checkable

import trio

T = TypeVar("T", covariant=True)


@runtime_checkable
class AsyncReceiver(Protocol[T]):
    """What a broadcast receiver can wrap: anything with ``async receive()``
    that raises ``trio.EndOfChannel`` at the end."""

    async def receive(self) -> T: ...


class Lagged(trio.TooSlowError):
    """A receiver fell more than the buffer behind the fastest one: the
    values in between are lost to it. Its next receive gets the oldest value
    still buffered."""


class BroadcastState:
    """What all receivers of one broadcast share."""

    __slots__ = ("queue", "maxlen", "subs", "recv_ready", "eoc", "waiters", "cancelled")

    def __init__(self, maxlen: int):
        self.queue: deque[Any] = deque(maxlen=maxlen)   # newest value first
        self.maxlen: int = maxlen
        self.subs: dict[int, int] = {}             # receiver key -> next index to read (-1: none)
        self.recv_ready: tuple[int, trio.Event] | None = None  # (key, set when done) while a task
                                                               # waits on the underlying channel
        self.eoc: bool = False                            # the underlying channel ended
        self.waiters: set[trio.Event] = set()       # tasks waiting for that task's value
        self.cancelled: int = 0                          # underlying receives that were cancelled

    def statistics(self) -> dict[str, Any]:
        return {
            "open_consumers": len(self.subs),
            "queued_len_by_task": {k: i + 1 for k, i in self.subs.items()},
            "max_buffer_size": self.maxlen,
            "tasks_waiting": len(self.waiters),
            "cancelled_receives": self.cancelled,
            "next_value_receiver_id": self.recv_ready[0] if self.recv_ready else None,
        }


class BroadcastReceiver(trio.abc.ReceiveChannel[Any]):
    """One receiver of a broadcast (made by :func:`broadcast_receiver` or
    :meth:`subscribe`); a trio ReceiveChannel (``async for``, ``aclose``)."""

    def __init__(self, rx_chan: Any, state: BroadcastState,
                 receive_afunc: Callable[[], Awaitable[Any]] | None = None, raise_on_lag: bool = True):
        self.key: int = id(self)
        self._state = state
        self._rx = rx_chan
        self._recv = receive_afunc or rx_chan.receive
        self._raise_on_lag = raise_on_lag
        self._closed = False
        self._wake: trio.Event | None = None
        state.subs[self.key] = -1

    def __repr__(self) -> str:
        return (f"<BroadcastReceiver key={self.key:#x} of {self._rx!r}, "
                f"{len(self._state.subs)} receivers{', closed' if self._closed else ''}>")

    def receive_nowait(self) -> Any:
        """The next buffered value for this receiver; ``trio.WouldBlock`` if
        there is none (it never waits on the underlying channel)."""
        state = self._state
        try:
            index = state.subs[self.key]
        except KeyError:
            raise trio.ClosedResourceError("this broadcast receiver is closed") from None
        if index < 0:
            if state.eoc:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        if index >= len(state.queue):
            lost = index - len(state.queue) + 1
            state.subs[self.key] = len(state.queue) - 1
            msg = (f"task {trio.lowlevel.current_task().name!r} fell {lost} values behind its broadcast "
                   f"(buffer of {state.maxlen}): they are lost to it")
            if self._raise_on_lag:
                raise Lagged(msg)
            from subactor.log import get_logger

            get_logger("trionics").warning(msg)
            return self.receive_nowait()
        state.subs[self.key] = index - 1
        return state.queue[index]

    async def receive(self) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        state = self._state
        while True:
            try:
                value = self.receive_nowait()
            except trio.WouldBlock:
                pass
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return value
            if state.recv_ready is None:
                return await self._receive_underlying()
            # Another task is receiving: wait for its value (or its end).
            wake = self._wake = trio.Event()
            state.waiters.add(wake)
            try:
                await wake.wait()
            finally:
                state.waiters.discard(wake)
                self._wake = None

    async def _receive_underlying(self) -> Any:
        state = self._state
        done = trio.Event()
        state.recv_ready = (self.key, done)
        try:
            value = await self._recv()
        except trio.EndOfChannel:
            state.eoc = True
            raise
        except trio.Cancelled:
            state.cancelled += 1  # nothing was taken: a waiting task takes over
            raise
        else:
            subs = state.subs
            if len(subs) > 1:
                # Alone, there is nobody to keep it for: a broadcast with
                # one receiver buffers nothing.
                state.queue.appendleft(value)
                for key in subs:
                    if key != self.key:
                        subs[key] += 1
            return value
        finally:
            state.recv_ready = None
            done.set()
            for wake in state.waiters:
                wake.set()

    @asynccontextmanager
    async def subscribe(self, raise_on_lag: bool = True) -> AsyncIterator["BroadcastReceiver"]:
        """A new receiver of the same broadcast, for the block: it gets every
        value received from now on, whichever receiver's task receives it."""
        if self._closed:
            raise trio.ClosedResourceError("this broadcast receiver is closed: subscribe from an open one")
        br = BroadcastReceiver(self._rx, self._state, self._recv, raise_on_lag=raise_on_lag)
        try:
            yield br
        finally:
            await br.aclose()

    async def aclose(self) -> None:
        """Close this receiver; the others go on. A task waiting in its
        receive gets ClosedResourceError."""
        if not self._closed:
            self._closed = True
            self._state.subs.pop(self.key, None)
            if self._wake is not None:
                self._wake.set()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> dict[str, Any]:
        return self._state.statistics()


def broadcast_receiver(recv_chan: Any, max_buffer_size: int,
                       receive_afunc: Callable[[], Awaitable[Any]] | None = None,
                       raise_on_lag: bool = True) -> BroadcastReceiver:
    """The first receiver of a broadcast of ``recv_chan`` (anything with
    ``async receive()``, or give ``receive_afunc``), buffering the last
    ``max_buffer_size`` values for receivers that are behind."""
    if isinstance(max_buffer_size, bool) or not isinstance(max_buffer_size, int) or max_buffer_size < 1:
        raise ValueError(f"max_buffer_size must be an int >= 1, got {max_buffer_size!r}")
    if receive_afunc is None:
        if not callable(getattr(recv_chan, "receive", None)):
            raise TypeError(f"broadcast_receiver() needs a channel with an async receive() method, or "
                            f"receive_afunc=; got {type(recv_chan).__name__}")
    elif not callable(receive_afunc):
        raise TypeError(f"receive_afunc must be an async function, got {receive_afunc!r}")
    return BroadcastReceiver(recv_chan, BroadcastState(max_buffer_size), receive_afunc, raise_on_lag)
