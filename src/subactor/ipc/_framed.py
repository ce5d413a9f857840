"""Framed messages over a trio stream: the channel of a TLS connection.

A :class:`SocketEnd` needs the socket itself (it reads and writes it
without an event loop); a TLS connection is a ``trio.SSLStream``, which
only trio can drive. :class:`StreamChannel` speaks the same frames as
``SocketEnd`` (a 4-byte little-endian length, then the payload; a
zero-length frame is the close marker) over any ``trio.abc.Stream``, and
offers the methods of :class:`subactor._transport.TrioChannel` that the
portal and the actor runtime use: ``send``, ``recv``, ``recv_some``,
``send_control``, ``send_cleanup``, ``connected``, ``close``, the
``spawn`` and ``aid`` attributes, and ``end`` (itself, with ``closed``).
It is used in place of a ``TrioChannel``, never wrapped in one, and it
cannot be used by blocking code or handed to another interpreter.

Errors as ``TrioChannel``'s: trio.EndOfChannel once the peer closed its end
(close marker, then end of stream) and everything it sent was delivered;
trio.BrokenResourceError if it ended without the marker, in the middle of
a frame, or sent a frame above ``max_frame`` (that breaks the connection at
once); trio.ClosedResourceError after our own close. ``send`` of a message
above ``max_frame`` raises ValueError.

``close()`` is synchronous and abrupt (the socket is closed under the TLS
layer: the peer sees a break); ``await aclose()`` sends the close marker
and closes TLS properly, waiting at most ``CLEANUP_WAIT`` seconds.
"""
from __future__ import annotations

import collections

from typing import Any

import trio

from subactor import _ext
from subactor._spawn._sockend import _MAX_MSG, DEFAULT_MAX_FRAME
from subactor._transport import CLEANUP_WAIT, shielded_send

_HDR = 4
_MARKER = b"\0\0\0\0"
_CHUNK = 256 * 1024          # bytes asked of the stream per read, at least
_SMALL_WRITE = 64 * 1024     # below this, header and payload are joined into one write
_COMPACT = 1 << 20           # delivered bytes kept at the front of the buffer before it is compacted


class StreamChannel:
    """Framed messages over a trio stream; see the module docstring.

    ``stream``: a connected ``trio.abc.Stream`` (owned from now on).
    ``initial``: bytes already read from it that belong to the frames.
    ``transport``: the trio socket under it, closed by :meth:`close`.
    """

    def __init__(self, stream: trio.abc.Stream, *, side: str = "?", initial: bytes = b"",
                 max_frame: int = DEFAULT_MAX_FRAME, transport: Any = None):
        if type(max_frame) is not int or not 1 <= max_frame <= _MAX_MSG:
            raise ValueError(f"max_frame must be an int from 1 to {_MAX_MSG}, got {max_frame!r}")
        self.side = side
        self.end = self                      # what TrioChannel users look at (`.end.closed`)
        self.spawn: Any = None                    # starts the control-message flusher (a nursery's start_soon)
        self.aid: Any = None                      # the peer's identity, set by the owner
        self._cancel_called = False          # portal.cancel_actor() was called over it
        self._stream = stream
        self._transport = transport
        self._max_frame = max_frame
        # Received, not yet delivered: _buf[_pos:], or a frame larger than
        # _CHUNK being read into its own buffer (_big, _big_got bytes so far).
        self._buf = bytearray(initial)
        self._pos = 0
        self._big: bytearray | None = None
        self._big_got = 0
        self._closed = False                 # close()/aclose() was called
        self._peer_closed = False            # the close marker arrived
        self._error: BaseException | None = None  # the end of the stream as the receiver will see it
        self._send_lock = trio.Lock()        # one writer at a time on the stream
        self._pending: BaseException | None = None  # recv_some: an error met after its first message
        self._ctl: collections.deque[bytes] = collections.deque()
        self._flushing = False

    @property
    def closed(self) -> bool:
        return self._closed

    def connected(self) -> bool:
        return not self._closed

    def __repr__(self) -> str:
        return f"<StreamChannel {self.side} {'closed' if self._closed else 'open'}>"

    # -- sending -----------------------------------------------------------------------
    def _frame(self, msg: dict) -> tuple[bytes, ...]:
        """The frame of a message, as one or two buffers (a large payload
        is not copied to put its header in front)."""
        data = _ext.dumps(msg)
        n = len(data)
        if n > self._max_frame:
            raise ValueError(f"a message must hold 1 to {self._max_frame} bytes (this channel's max_frame), "
                             f"got {n}")
        hdr = n.to_bytes(_HDR, "little")
        return (hdr + data,) if n <= _SMALL_WRITE else (hdr, data)

    async def _write(self, frame: tuple[bytes, ...]) -> None:
        if self._closed:
            raise trio.ClosedResourceError(f"this end ({self.side}) of the channel is closed")
        async with self._send_lock:
            try:
                # Control messages queued before this one go first: order is kept.
                while self._ctl:
                    for part in self._ctl.popleft():
                        await self._stream.send_all(part)
                for part in frame:
                    await self._stream.send_all(part)
            except trio.BrokenResourceError as exc:
                raise trio.BrokenResourceError(f"the peer of this end ({self.side}) has gone: {exc}") from exc

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one message (a checkpoint)."""
        await self._write(self._frame(msg))

    def send_control(self, msg: dict[str, Any]) -> None:
        """Queue a small message for the flusher task (started with
        ``spawn``) or the next ``send``, whichever comes first; never waits.
        A peer that is gone is ignored."""
        if self._closed:
            return
        self._ctl.append(self._frame(msg))
        if not self._flushing and self.spawn is not None:
            self._flushing = True
            self.spawn(self._flush)

    async def _flush(self) -> None:
        try:
            if self._ctl and not self._closed:
                async with self._send_lock:
                    while self._ctl:
                        for part in self._ctl.popleft():
                            await self._stream.send_all(part)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ctl.clear()
        finally:
            self._flushing = False

    async def send_cleanup(self, msg: dict[str, Any]) -> None:
        """Send a message that must try to get out even while its sender is
        being cancelled: shielded, at most CLEANUP_WAIT seconds; a peer that
        is gone is ignored."""
        await shielded_send(self.send, msg)

    # -- receiving -----------------------------------------------------------------------
    def _parse(self):
        """The next whole payload received (a bytearray), or None."""
        big = self._big
        if big is not None:
            if self._big_got < len(big):
                return None
            self._big = None
            return big
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if have < _HDR:
            return None
        n = int.from_bytes(buf[pos:pos + _HDR], "little")
        if n == 0:
            # The close marker: whatever follows it is not ours to read.
            self._peer_closed = True
            self._drop()
            return None
        if n > self._max_frame:
            self._error = trio.BrokenResourceError(
                f"the peer of this end ({self.side}) sent a frame of {n} bytes, above the limit of "
                f"{self._max_frame} (max_frame)")
            self._drop()
            self._kill_transport()
            return None
        end = pos + _HDR + n
        if end <= len(buf):
            payload = buf[pos + _HDR:end]
            if end == len(buf):
                self._drop()
            elif end > _COMPACT:
                del buf[:end]
                self._pos = 0
            else:
                self._pos = end
            return payload
        if n > _CHUNK:
            # Read the rest of it straight into its own buffer.
            big = bytearray(n)
            got = have - _HDR
            big[:got] = buf[pos + _HDR:]
            self._big, self._big_got = big, got
            self._drop()
        return None

    def _drop(self) -> None:
        self._buf.clear()
        self._pos = 0

    def _feed(self, data: bytes) -> None:
        big = self._big
        if big is not None:
            got = self._big_got
            take = min(len(data), len(big) - got)
            big[got:got + take] = data if take == len(data) else memoryview(data)[:take]
            self._big_got = got + take
            if take == len(data):
                return
            data = memoryview(data)[take:]
        self._buf += data

    def _want(self) -> int:
        """How much to ask of the stream: the rest of a large frame, else _CHUNK."""
        if self._big is not None:
            return max(1, min(16 * _CHUNK, len(self._big) - self._big_got))
        return _CHUNK

    def _next_nowait(self):
        """A decoded message if one is buffered; raises the stream's end if
        it is over; None if more bytes are needed."""
        payload = self._parse()
        if payload is not None:
            return _ext.loads(payload)
        if self._peer_closed:
            raise trio.EndOfChannel(f"the peer of this end ({self.side}) closed its end")
        if self._error is not None:
            raise self._error
        return None

    async def recv(self) -> dict[str, Any]:
        """The next message; see the module docstring for the errors."""
        if self._closed:
            raise trio.ClosedResourceError(f"this end ({self.side}) of the channel is closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            msg = self._next_nowait()
            if msg is not None:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return msg
            try:
                data = await self._stream.receive_some(self._want())
            except trio.BrokenResourceError as exc:
                data = None
                self._error = trio.BrokenResourceError(f"the peer of this end ({self.side}) has gone: {exc}")
            except trio.ClosedResourceError:
                raise trio.ClosedResourceError(f"this end ({self.side}) of the channel is closed") from None
            if data is None:
                continue
            if not data:
                if self._error is None:
                    middle = len(self._buf) > self._pos or self._big is not None
                    self._error = trio.BrokenResourceError(
                        f"the peer of this end ({self.side}) ended in the middle of a message" if middle else
                        f"the peer of this end ({self.side}) ended without closing it")
                    self._drop()
                    self._big = None
                continue
            self._feed(data)

    async def recv_some(self, limit: int = 64) -> list[dict[str, Any]]:
        """The next message and up to ``limit - 1`` more already received;
        an error after the first is raised by the next call."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            raise pending
        out = [await self.recv()]
        while len(out) < limit:
            try:
                msg = self._next_nowait()
            except (trio.EndOfChannel, trio.BrokenResourceError, _ext.DecodeError) as exc:
                self._pending = exc
                break
            if msg is None:
                break
            out.append(msg)
        return out

    # -- closing ---------------------------------------------------------------------------
    def _kill_transport(self) -> None:
        sock = self._transport
        if sock is not None:
            sock.close()  # trio's socket close tells its waiters (notify_closing)

    def close(self) -> None:
        """Close at once, without the close marker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._ctl.clear()
        self._kill_transport()

    async def aclose(self) -> None:
        """Send the close marker and close the stream (TLS close_notify),
        waiting at most CLEANUP_WAIT seconds (shielded); idempotent."""
        if self._closed:
            return
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + CLEANUP_WAIT
                try:
                    await self._write((_MARKER,))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                self._closed = True
                try:
                    # Cancelled at the deadline, it still closes (abruptly).
                    await self._stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        finally:
            self._closed = True
            self._ctl.clear()
            self._kill_transport()
