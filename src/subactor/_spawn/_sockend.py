"""One end of a framed-message socket: a process actor's transport, and a
network connection's (``subactor.ipc``).

:class:`SocketEnd` speaks the interface of ``subactor._ext.ChannelEnd`` that
:class:`subactor._transport.TrioChannel` and ``BlockingChannel`` use, over
any connected SOCK_STREAM socket: one end of a ``socketpair(AF_UNIX)``
shared with a child process, a Unix socket connection or a TCP connection
(AF_INET or AF_INET6; TCP_NODELAY is turned on), so that the actor runtime
and the portal work unchanged on it.

Wire format: each message is a 4-byte little-endian length followed by that
many payload bytes (exactly what ``_ext.dumps`` made). A frame of length 0
is the close marker: the peer closed its end on purpose. The socket ending
without it (the peer process died, was killed, or reset the connection) is
a break, not an end:

  peer sent the marker, then EOF       -> EndOfChannel
  EOF without marker / inside a frame  -> BrokenError
  ECONNRESET / EPIPE                   -> BrokenError

Frames already received are always delivered before either error.

Frame size limit (``max_frame``, 64 MiB by default): a received length
prefix above it breaks the connection at once (BrokenError naming the size
and the limit; the frame is never allocated, the socket is shut down), and
a message above it is refused by ``send_nowait`` with ValueError. A peer
with a smaller limit than ours breaks the connection when we send it
something above its limit: agreeing on limits is the peers' business.

Readiness, without a helper thread. The end never blocks in its
non-blocking calls; what the socket cannot take at once is kept in a
bounded user-space queue (``limit`` bytes, 64 MiB by default; a single
message larger than the limit is accepted when the queue is empty), and
``send_nowait`` raises BlockingIOError only when that queue is over its
bound. The queue is flushed by every ``send_nowait`` and ``recv_nowait``
call, and the receiving task is what guarantees it drains:

* ``recv_fileno()`` is an epoll descriptor holding the socket for EPOLLIN,
  and, while the queue is not empty, also for EPOLLOUT. It is readable
  when a message may have arrived *or* when queued bytes can be written,
  so the task waiting to receive (the portal's pump, the actor's loop) wakes
  up and flushes. Queued output never waits for a later send.
* ``send_fileno()`` is an epoll descriptor holding the socket for EPOLLOUT:
  readable when the socket can take bytes, which is when a ``send_nowait``
  that raised BlockingIOError can make progress.

Both descriptors are level-triggered and also readable once the peer is
gone (EPOLLHUP/EPOLLERR), so no waiter sleeps through a break.

Not thread-safe: one end belongs to one thread (the trio loop or the
blocking runtime of its actor), like the C channel ends.
"""
from __future__ import annotations

import select
import time
from _collections import deque  # not `collections`: 1.5 ms less at actor start

import _socket

from subactor._ext import BrokenError, ClosedError, EndOfChannel

_HDR = 4                       # length prefix, little-endian unsigned
_MAX_MSG = (1 << 32) - 1       # the largest payload a 4-byte prefix can describe
_MARKER = b"\0\0\0\0"          # a zero-length frame: "closed on purpose"
_RBUF = 256 * 1024             # scratch for small frames
_BIG = 64 * 1024               # frames above this are read straight into their own buffer
_SMALL_WRITE = 64 * 1024       # below this, header and payload are joined into one write
_IOV = 64                      # buffers per sendmsg() call
_SNDBUF = 1 << 20
_FLAGS = _socket.MSG_NOSIGNAL  # EPIPE instead of SIGPIPE, whatever the signal setup

DEFAULT_LIMIT = 64 * 1024 * 1024
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_INET = (_socket.AF_INET, _socket.AF_INET6)


class Message(bytearray):
    """A received message: bytes the receiver owns. ``release()`` frees them
    at once (as ``_ext.Message.release`` does); it is a no-op while a
    memoryview of the message is still alive."""

    __slots__ = ()

    def release(self) -> None:
        try:
            self.clear()
        except BufferError:
            pass


class SocketEnd:
    """One end of a framed-message socket; see the module docstring.

    ``fd``: a connected SOCK_STREAM socket descriptor (AF_UNIX, AF_INET or
    AF_INET6), owned from now on (closed by :meth:`close`, or handed back
    by :meth:`detach`). ``side``: a label for messages ("parent", "child",
    a peer's address). ``limit``: bytes the send queue may hold before
    ``send_nowait`` pushes back. ``linger``: seconds :meth:`close` may wait
    (blocking) to hand queued bytes and the close marker to the kernel.
    ``max_frame``: the largest message sent or accepted (1 to 4 GiB - 1).
    ``family``: the socket's address family; by default asked of the socket
    (SO_DOMAIN). ValueError for a descriptor that is not a stream socket of
    one of those families (the descriptor is then not taken).
    """

    def __init__(self, fd: int, *, side: str = "?", limit: int = DEFAULT_LIMIT, linger: float = 0.0,
                 max_frame: int = DEFAULT_MAX_FRAME, family: int | None = None):
        if type(max_frame) is not int or not 1 <= max_frame <= _MAX_MSG:
            raise ValueError(f"max_frame must be an int from 1 to {_MAX_MSG}, got {max_frame!r}")
        if family is None:
            family = _sock_family(fd)
        if family not in (_socket.AF_UNIX, *_INET):
            raise ValueError(f"SocketEnd needs an AF_UNIX, AF_INET or AF_INET6 socket, got family {family}")
        self.side = side
        self._sock = _socket.socket(family, _socket.SOCK_STREAM, 0, fd)
        self._sock.setblocking(False)
        if family in _INET:
            # Small messages go out at once: a round trip must not wait for
            # Nagle's timer. (TCP keeps its send-buffer autotuning.)
            self._sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        else:
            try:
                self._sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, _SNDBUF)
            except OSError:
                pass
        self.family = family
        self._fd = fd
        self._limit = limit
        self._max_frame = max_frame
        self._error: BrokenError | None = None  # why the connection was broken by this end
        self._linger = linger
        self._closed = False
        # Receive state. Bytes rbuf[rlo:rhi] are received and not yet
        # delivered; a frame larger than _BIG is read into _big directly.
        self._rbuf = bytearray(_RBUF)
        self._rmv = memoryview(self._rbuf)
        self._rlo = 0
        self._rhi = 0
        self._big: Message | None = None   # the large frame being received
        self._big_got = 0                   # bytes of it received so far
        self._reof = False                  # the socket reported EOF or a reset
        self._reset = False                 # ... and it was a reset
        self._peer_closed = False           # the close marker was received
        # Send state: bytes accepted but not yet taken by the kernel, in order.
        self._out: deque = deque()
        self._out_bytes = 0
        self._wbroken = False               # a write failed: the peer is gone
        # Readiness descriptors (see the module docstring).
        self._rep = select.epoll()
        self._rep.register(fd, select.EPOLLIN)
        self._armed = False                 # _rep also watches EPOLLOUT
        self._wep = select.epoll()
        self._wep.register(fd, select.EPOLLOUT)

    # -- introspection -------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def fileno(self) -> int:
        """The socket descriptor (for diagnostics; use the *_fileno() to wait)."""
        return self._fd

    def recv_fileno(self) -> int:
        """Readable when ``recv_nowait`` may make progress (or queued output
        can be flushed, which ``recv_nowait`` does)."""
        self._check_open()
        return self._rep.fileno()

    def send_fileno(self) -> int:
        """Readable when the socket can take bytes (or the peer is gone)."""
        self._check_open()
        return self._wep.fileno()

    def pending(self) -> int:
        """Bytes accepted by send_nowait() that the kernel has not taken yet."""
        return self._out_bytes

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("broken" if self._wbroken or self._reof else "open")
        return f"<SocketEnd {self.side} fd={self._fd} {state} pending={self._out_bytes}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"this end ({self.side}) of the process channel is closed")

    # -- sending -------------------------------------------------------------
    def send_nowait(self, data) -> None:
        """Send one message without waiting. BlockingIOError if the send
        queue is over its bound (wait on send_fileno()); BrokenError if the
        peer is gone; ClosedError if this end is closed; ValueError if the
        message is larger than 4 GiB - 1."""
        self._check_open()
        if self._wbroken:
            raise self._error or BrokenError(f"the peer of this end ({self.side}) has gone")
        n = len(data) if type(data) is bytes else memoryview(data).nbytes
        if n > self._max_frame or n == 0:
            raise ValueError(f"a message must hold 1 to {self._max_frame} bytes (this end's max_frame), got {n}")
        out = self._out
        if out:
            self._flush()
            if out and self._out_bytes + _HDR + n > self._limit:
                raise BlockingIOError(f"send queue full ({self._out_bytes} bytes waiting)")
        hdr = n.to_bytes(_HDR, "little")
        if type(data) is not bytes:
            data = bytes(data)  # the caller may reuse its buffer
        if out:
            self._queue(hdr, data)
            return
        # Nothing queued: hand it to the kernel directly.
        try:
            if n <= _SMALL_WRITE:
                frame = hdr + data
                sent = self._sock.send(frame, _FLAGS)
                if sent < len(frame):
                    self._queue(memoryview(frame)[sent:])
            else:
                sent = self._sock.sendmsg([hdr, data], (), _FLAGS)
                if sent < _HDR:
                    self._queue(hdr[sent:], data)
                elif sent < _HDR + n:
                    self._queue(memoryview(data)[sent - _HDR:])
        except BlockingIOError:
            self._queue(hdr, data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._write_failed()
            raise BrokenError(f"the peer of this end ({self.side}) has gone: {exc}") from None

    def send(self, data, timeout: float | None = None) -> None:
        """Send one message, waiting (in poll, the GIL released) while the
        send queue is over its bound. TimeoutError after ``timeout`` seconds
        (the message was then not sent)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self.send_nowait(data)
                return
            except BlockingIOError:
                pass
            self._wait(select.POLLOUT, deadline)

    def _queue(self, *bufs) -> None:
        for b in bufs:
            self._out.append(b)
            self._out_bytes += len(b)
        if not self._armed:
            self._arm(True)

    def _arm(self, on: bool) -> None:
        self._rep.modify(self._fd, select.EPOLLIN | select.EPOLLOUT if on else select.EPOLLIN)
        self._armed = on

    def _flush(self) -> None:
        """Write queued bytes until the queue is empty or the socket is full.
        BrokenError if the peer is gone (the queue is dropped)."""
        out = self._out
        sock = self._sock
        while out:
            bufs = [out[i] for i in range(min(len(out), _IOV))]
            try:
                sent = sock.sendmsg(bufs, (), _FLAGS)
            except BlockingIOError:
                break
            except (BrokenPipeError, ConnectionResetError) as exc:
                self._write_failed()
                raise BrokenError(f"the peer of this end ({self.side}) has gone: {exc}") from None
            self._out_bytes -= sent
            while sent:
                head = out[0]
                size = len(head)
                if sent >= size:
                    out.popleft()
                    sent -= size
                else:
                    out[0] = memoryview(head)[sent:]
                    sent = 0
        if not out and self._armed:
            self._arm(False)

    def _write_failed(self) -> None:
        self._wbroken = True
        self._out.clear()
        self._out_bytes = 0
        if self._armed:
            self._arm(False)

    # -- receiving -----------------------------------------------------------
    def recv_nowait(self) -> Message:
        """The next message without waiting. BlockingIOError if no whole
        message has arrived (wait on recv_fileno()); EndOfChannel once the
        peer closed its end and everything it sent was received; BrokenError
        (after the same draining) if the peer died or sent a frame larger
        than ``max_frame``; ClosedError if this end is closed."""
        self._check_open()
        if self._out:
            try:
                self._flush()
            except BrokenError:
                pass  # what the peer sent before it went is still delivered
        while True:
            msg = self._parse()
            if msg is not None:
                return msg
            if self._peer_closed:
                raise EndOfChannel(f"the peer of this end ({self.side}) closed its end")
            if self._reof:
                raise self._eof_error()
            self._fill()

    def recv(self, timeout: float | None = None) -> Message:
        """recv_nowait(), waiting (in poll, the GIL released) while nothing
        has arrived; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self.recv_nowait()
            except BlockingIOError:
                pass
            self._wait(select.POLLIN | (select.POLLOUT if self._out else 0), deadline)

    def _parse(self) -> Message | None:
        """A whole frame from what was received, or None."""
        big = self._big
        if big is not None:
            if self._big_got < len(big):
                return None
            self._big = None
            return big
        lo, hi = self._rlo, self._rhi
        if hi - lo < _HDR:
            return None
        rbuf = self._rbuf
        n = rbuf[lo] | rbuf[lo + 1] << 8 | rbuf[lo + 2] << 16 | rbuf[lo + 3] << 24
        if n == 0:
            # The close marker: whatever follows it is not ours to read.
            self._peer_closed = True
            self._rlo = self._rhi = 0
            return None
        if n > self._max_frame:
            self._break(BrokenError(f"the peer of this end ({self.side}) sent a frame of {n} bytes, "
                                    f"above the limit of {self._max_frame} (max_frame)"))
            return None
        end = lo + _HDR + n
        if end <= hi:
            msg = Message(self._rmv[lo + _HDR:end])
            if end == hi:
                self._rlo = self._rhi = 0
            else:
                self._rlo = end
            return msg
        if n > _BIG:
            # Read the rest of it straight into its own buffer.
            big = Message(n)
            have = hi - lo - _HDR
            big[:have] = self._rmv[lo + _HDR:hi]
            self._big = big
            self._big_got = have
            self._rlo = self._rhi = 0
        return None

    def _fill(self) -> None:
        """Read what the socket has (at least one byte, or EOF noted).
        BlockingIOError when it has nothing."""
        try:
            big = self._big
            if big is not None:
                got = self._big_got
                with memoryview(big) as mv:
                    k = self._sock.recv_into(mv[got:], len(big) - got)
                self._big_got = got + k
            else:
                lo, hi = self._rlo, self._rhi
                if lo:
                    # Move the partial frame to the front to make room.
                    self._rbuf[:hi - lo] = bytes(self._rmv[lo:hi])  # regions may overlap
                    self._rlo, self._rhi = 0, hi - lo
                    hi -= lo
                k = self._sock.recv_into(self._rmv[hi:], _RBUF - hi)
                self._rhi = hi + k
        except ConnectionResetError:
            self._reof = self._reset = True
            return
        if k == 0:
            self._reof = True

    def _break(self, error: BrokenError) -> None:
        """Break the connection from this end: nothing more is read or sent
        (the peer sees it go), and every later call raises `error`."""
        self._error = error
        self._reof = True
        self._rlo = self._rhi = 0
        self._big = None
        self._write_failed()
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def _eof_error(self) -> BrokenError:
        if self._error is not None:
            return self._error
        if self._big is not None or self._rhi > self._rlo:
            return BrokenError(f"the peer of this end ({self.side}) ended in the middle of a message")
        if self._reset:
            return BrokenError(f"the peer of this end ({self.side}) reset the connection")
        return BrokenError(f"the peer of this end ({self.side}) ended without closing it (its process died?)")

    # -- waiting and closing -------------------------------------------------
    def _wait(self, events: int, deadline: float | None) -> None:
        """poll() the socket for `events`, or raise TimeoutError at deadline."""
        timeout_ms = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out on the process channel ({self.side})")
            timeout_ms = max(1, int(left * 1000))
        p = select.poll()
        p.register(self._fd, events)
        p.poll(timeout_ms)

    def close(self) -> None:
        """Close this end (idempotent). Queued messages and the close marker
        are handed to the kernel first, waiting at most ``linger`` seconds
        (the peer then receives them, then EndOfChannel); what cannot be sent
        by then is dropped, and the peer sees a break. Waiters on the
        readiness descriptors must have been told (trio.lowlevel.notify_closing)."""
        if self._closed:
            return
        try:
            if not self._wbroken:
                self._queue(_MARKER)
                deadline = time.monotonic() + self._linger
                while True:
                    self._flush()
                    if not self._out:
                        break
                    self._wait(select.POLLOUT, deadline)
        except (BrokenError, TimeoutError):
            pass
        finally:
            self._closed = True
            self._out.clear()
            self._out_bytes = 0
            self._rep.close()
            self._wep.close()
            try:
                # Ends the stream for the peer even if a copy of this
                # descriptor lives on in some forked process.
                self._sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._rbuf = self._rmv = None

    def detach(self) -> int:
        """Give up the socket descriptor without closing it and return it
        (to be wrapped by another ``SocketEnd``, perhaps in another
        interpreter); this end is closed. ValueError if bytes were received
        and not delivered, or accepted for sending and not yet sent: they
        would be lost with this end."""
        self._check_open()
        if self._rhi > self._rlo or self._big is not None or self._out:
            raise ValueError(f"this end ({self.side}) has bytes in flight: {self._rhi - self._rlo} received, "
                             f"{self._out_bytes} to send; it cannot be detached")
        self._closed = True
        self._rep.close()
        self._wep.close()
        self._rbuf = self._rmv = None
        return self._sock.detach()

    def abort(self) -> None:
        """Close this end without the close marker: queued messages are
        dropped and the peer sees a break (BrokenError), as when this
        process dies. Idempotent."""
        if self._closed:
            return
        self._write_failed()
        self.close()

    def __del__(self):
        # An end dropped without close() was not closed on purpose: break it.
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:
                pass


def _sock_family(fd: int) -> int:
    """The address family of a socket descriptor (SO_DOMAIN); ValueError if
    it is not a stream socket."""
    try:
        probe = _socket.socket(fileno=fd)
    except OSError as exc:
        raise ValueError(f"descriptor {fd} is not a socket: {exc}") from None
    try:
        if probe.type != _socket.SOCK_STREAM:
            raise ValueError(f"descriptor {fd} is not a SOCK_STREAM socket (type {probe.type})")
        return probe.family
    finally:
        probe.detach()
