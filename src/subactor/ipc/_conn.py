"""Listening and connecting: a connection is authenticated and introduced
before anything else sees it.

The steps of every connection, each side, all under one deadline (the
server's ``handshake_timeout``, the client's ``timeout``):

1. TLS, if an ``ssl_context`` was given (trio's SSLStream);
2. authentication (:mod:`._auth`): the greeting, the client's answer and,
   with a key, the proofs both ways;
3. the hellos: each side sends one frame (4-byte little-endian length,
   then a MessagePack map of at most ``HELLO_MAX`` bytes) saying what its
   caller passed, and reads the peer's;
4. the connection is handed over: a :class:`Connection` whose ``end`` is a
   :class:`SocketEnd` owning the socket (plain connections), or a
   :class:`StreamChannel` over the TLS stream.

Without TLS, steps 2 and 3 read exactly the bytes they need from the
socket (no read-ahead), so whatever the peer sends after its hello is left
in the socket for the ``SocketEnd``, and :meth:`Connection.detach_fd` can
hand a fresh connection's descriptor to another interpreter.

A server meets any failure of steps 1 to 3 by closing the connection
without a word (and a line in the log at level info); each connection is
its own task, so one that fails or trickles bytes (a slowloris) costs that
connection only, for at most ``handshake_timeout`` seconds. A handler
that raises costs its connection only (the error is logged).

File system calls (the UDS directory and socket file) are made directly,
not in a thread: they are on local directories and take microseconds.
"""
from __future__ import annotations

import errno
import math
import os
import socket as _pysocket
import ssl
import struct

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from subactor import _ext
from subactor._spawn._sockend import DEFAULT_MAX_FRAME, SocketEnd
from subactor.ipc._addr import Address, TCPAddress, UDSAddress, ensure_private_dir, wrap_address
from subactor.ipc._auth import (MIN_KEY, AuthenticationError, HandshakeFailed, _read, client_handshake,
                                get_authkey, server_handshake)
from subactor.ipc._framed import StreamChannel

if TYPE_CHECKING:
    from subactor._transport import TrioChannel

HELLO_MAX = 64 * 1024
HANDSHAKE_TIMEOUT = 5.0
BACKLOG = 128
_FLAGS = _pysocket.MSG_NOSIGNAL
# accept() errors that mean "out of resources for now": wait and try again.
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
# accept() errors that concern only the connection being accepted.
_ACCEPT_SKIP = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ETIMEDOUT, errno.EHOSTUNREACH,
                errno.ENETUNREACH, errno.ENETDOWN, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.ENONET}


class _FromEnv:
    def __repr__(self) -> str:
        return "KEY_FROM_ENV"


KEY_FROM_ENV = _FromEnv()
"""``authkey=`` default: the key of :func:`get_authkey` (the environment), or none."""


def _log():
    from subactor.log import get_logger

    return get_logger("ipc")


def _resolve_key(authkey) -> bytes | None:
    if authkey is KEY_FROM_ENV:
        return get_authkey()
    if authkey is None:
        return None
    if isinstance(authkey, str):
        authkey = authkey.encode()
    if not isinstance(authkey, (bytes, bytearray)):
        raise TypeError(f"authkey must be bytes, str, None or KEY_FROM_ENV, got {type(authkey).__name__}")
    if len(authkey) < MIN_KEY:
        raise ValueError(f"authkey is {len(authkey)} bytes long; it must have at least {MIN_KEY}")
    return bytes(authkey)


def _hello_frame(hello) -> bytes:
    if not isinstance(hello, dict):
        raise TypeError(f"a hello must be a dict, got {type(hello).__name__}")
    data = _ext.dumps(hello)
    if len(data) > HELLO_MAX:
        raise ValueError(f"a hello may take at most {HELLO_MAX} bytes encoded, this one takes {len(data)}")
    return len(data).to_bytes(4, "little") + data


async def _read_hello(io) -> dict:
    n = int.from_bytes(await _read(io, 4, "its hello"), "little")
    if not 0 < n <= HELLO_MAX:
        raise HandshakeFailed(f"its hello would be {n} bytes (at most {HELLO_MAX})")
    data = await _read(io, n, "the end of its hello")
    try:
        hello = _ext.loads(data)
    except _ext.DecodeError as exc:
        raise HandshakeFailed(f"its hello is not MessagePack: {exc}") from None
    if not isinstance(hello, dict):
        raise HandshakeFailed(f"its hello is a {type(hello).__name__}, not a map")
    return hello


class _SockIO:
    """Exact reads and whole writes on a trio socket, never reading ahead."""

    def __init__(self, sock):
        self.sock = sock

    async def read_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                b = await self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError):
                raise EOFError("the connection was reset") from None
            if not b:
                raise EOFError(f"{len(buf)} of {n} bytes came")
            buf += b
        return bytes(buf)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                k = await self.sock.send(view, _FLAGS)
            except (ConnectionResetError, BrokenPipeError):
                raise HandshakeFailed("it closed the connection") from None
            view = view[k:]


class _StreamIO:
    """Exact reads and whole writes on a trio stream (TLS); what was read
    beyond the handshake stays in ``buf`` for the channel."""

    def __init__(self, stream):
        self.stream = stream
        self.buf = bytearray()

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                b = await self.stream.receive_some()
            except trio.BrokenResourceError as exc:
                raise EOFError(str(exc) or "the connection broke") from None
            if not b:
                raise EOFError(f"{len(self.buf)} of {n} bytes came")
            self.buf += b
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def write(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError:
            raise HandshakeFailed("it closed the connection") from None


class Connection:
    """An authenticated, introduced connection.

    ``end``: a :class:`SocketEnd` owning the socket, or (TLS) a
    :class:`StreamChannel`. ``hello``: the peer's hello. ``peer_addr``: the
    peer's TCP address, or for UDS the socket path the connection was made
    on. ``local_addr``: this side's address (on the server side, the
    listener's; for a UDS client, the socket path). ``authenticated``: the peer proved the shared key. ``tls``: the
    connection runs over TLS. ``peer_cred``: for UDS, the peer's
    ``(pid, uid, gid)`` from the kernel; else None.
    """

    def __init__(self, end: Any, hello: dict[str, Any], peer_addr: Address, local_addr: Address, *,
                 authenticated: bool, tls: bool, peer_cred: tuple[int, int, int] | None = None):
        self.end: Any = end
        self.hello: dict[str, Any] = hello
        self.peer_addr = peer_addr
        self.local_addr = local_addr
        self.authenticated = authenticated
        self.tls = tls
        self.peer_cred = peer_cred
        self._channel = end if tls else None

    def channel(self) -> TrioChannel | StreamChannel:
        """The trio-facing channel over this connection (made once): a
        ``TrioChannel`` over the SocketEnd, or the StreamChannel itself."""
        if self._channel is None:
            from subactor._transport import TrioChannel

            self._channel = TrioChannel(self.end)
        return self._channel

    def detach_fd(self) -> int:
        """Give up the socket descriptor of a plain connection and return
        it (wrap it again with ``SocketEnd(fd)``, in this interpreter or
        another); this connection is closed. ValueError for a TLS
        connection (its state lives in this process's TLS object), after
        :meth:`channel` (its users wait on this end), or with bytes in
        flight."""
        if self.tls:
            raise ValueError("a TLS connection cannot be detached from its TLS stream")
        if self._channel is not None:
            raise ValueError("the connection's channel is in use; detach before calling channel()")
        return self.end.detach()

    @property
    def closed(self) -> bool:
        return self.end.closed

    def close(self) -> None:
        """Close (idempotent): the peer sees the end of the channel (plain)
        or a break (TLS; see :meth:`aclose`)."""
        if self._channel is not None:
            self._channel.close()
        else:
            self.end.close()

    async def aclose(self) -> None:
        """Close; over TLS, with the close marker and TLS's own close."""
        if self.tls:
            await self.end.aclose()
        else:
            self.close()
            await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        how = "tls" if self.tls else "plain"
        return f"<Connection {self.peer_addr} {how}{' auth' if self.authenticated else ''} {self.end!r}>"


# -- common steps --------------------------------------------------------------------------

def _sockaddr_of(addr: Address, sockaddr) -> Address:
    if isinstance(addr, UDSAddress):
        return addr
    return TCPAddress(sockaddr[0], sockaddr[1])


def _peer_cred(sock) -> tuple[int, int, int]:
    raw = sock.getsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


async def _introduce(sock, ssl_context, server_side: bool, server_hostname, key, hello_frame: bytes, max_frame,
                     side: str, stage: list):
    """Steps 1-3 on a connected trio socket; returns (end, peer hello,
    authenticated, tls). Raises HandshakeFailed / AuthenticationError; the
    caller closes the socket on any error."""
    if ssl_context is not None:
        stage[0] = "the TLS handshake"
        stream = trio.SSLStream(trio.SocketStream(sock), ssl_context, server_side=server_side,
                                server_hostname=None if server_side else server_hostname)
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise AuthenticationError(f"its TLS certificate did not verify: {cause.verify_message}") from None
            raise HandshakeFailed(f"the TLS handshake failed: {cause or exc}") from None
        io = _StreamIO(stream)
    else:
        io = _SockIO(sock)
    stage[0] = "authentication"
    if server_side:
        authed = await server_handshake(io, key)
        stage[0] = "the hellos"
        await io.write(hello_frame)
        peer_hello = await _read_hello(io)
    else:
        authed = await client_handshake(io, key)
        stage[0] = "the hellos"
        await io.write(hello_frame)
        peer_hello = await _read_hello(io)
    if ssl_context is not None:
        return StreamChannel(stream, side=side, initial=bytes(io.buf), max_frame=max_frame,
                             transport=sock), peer_hello, authed, True
    family = sock.family
    fd = sock.detach()
    try:
        end = SocketEnd(fd, side=side, max_frame=max_frame, family=family)
    except BaseException:
        os.close(fd)
        raise
    return end, peer_hello, authed, False


async def _resolve_tcp(addr: TCPAddress, passive: bool):
    """(family, sockaddr) for a TCP address. 'localhost' is 127.0.0.1, and
    numeric hosts are never sent to a resolver."""
    host = "127.0.0.1" if addr.host == "localhost" else addr.host
    flags = _pysocket.AI_PASSIVE if passive else 0
    try:
        infos = await trio.socket.getaddrinfo(host, addr.port, type=_pysocket.SOCK_STREAM, flags=flags)
    except _pysocket.gaierror as exc:
        raise OSError(exc.errno, f"cannot resolve the host of {addr}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr, infos


# -- the server -------------------------------------------------------------------------------

async def serve(addr: Any, handler: Callable[[Connection], Awaitable[object]], *, hello: dict[str, Any] | None = None,
                authkey: bytes | None | _FromEnv = KEY_FROM_ENV, ssl_context: ssl.SSLContext | None = None,
                handshake_timeout: float = HANDSHAKE_TIMEOUT, max_frame: int = DEFAULT_MAX_FRAME,
                backlog: int = BACKLOG, handler_nursery: trio.Nursery | None = None,
                task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen at ``addr`` and serve connections until cancelled; use with
    ``await nursery.start(serve, addr, handler)``, which returns the bound
    address (a TCP port 0 is replaced by the port the kernel chose).

    Each connection that passes TLS (if ``ssl_context``), authentication
    and the hellos is given to ``await handler(conn)`` (a
    :class:`Connection`) in a task of its own (in ``handler_nursery`` if
    given, else the listener's); the connection is closed when the
    handler returns, unless the handler detached it.

    ``authkey``: KEY_FROM_ENV (the default: the environment's key, if any),
    None (no key) or the key. With a key, every client must prove it. A
    TCP listener on a non-loopback address without a key refuses to start
    (PermissionError) unless ``ssl_context`` requires client certificates
    (``verify_mode == CERT_REQUIRED``). ``hello``: what this side says to
    each client (a dict, at most HELLO_MAX bytes encoded).

    Cancelling it closes the listening socket and, for UDS, removes the
    socket file; connections in the listener's own nursery are cancelled
    with it.
    """
    addr = wrap_address(addr)
    key = _resolve_key(authkey)
    hello_frame = _hello_frame({} if hello is None else hello)
    if not (isinstance(handshake_timeout, (int, float)) and handshake_timeout > 0):
        raise ValueError(f"handshake_timeout must be a number of seconds > 0, got {handshake_timeout!r}")
    if isinstance(addr, TCPAddress):
        family, sockaddr, _ = await _resolve_tcp(addr, passive=True)
        bound_ip = TCPAddress(sockaddr[0], addr.port)
        mtls = ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED
        if key is None and not bound_ip.is_loopback and not mtls:
            raise PermissionError(
                f"refusing to listen on {addr} without an authentication key: it is not a loopback address, "
                f"so anyone who can reach it could run code here. Set SUBACTOR_AUTHKEY or SUBACTOR_AUTHKEY_FILE, "
                f"pass authkey=, or listen on 127.0.0.1")
        lsock = trio.socket.socket(family, _pysocket.SOCK_STREAM)
        try:
            lsock.setsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_REUSEADDR, 1)
            if family == _pysocket.AF_INET6:
                lsock.setsockopt(_pysocket.IPPROTO_IPV6, _pysocket.IPV6_V6ONLY, 1)
            try:
                await lsock.bind(sockaddr)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {addr}: {exc.strerror}") from None
            lsock.listen(backlog)
            name = lsock.getsockname()
            bound: Address = TCPAddress(name[0], name[1])
        except BaseException:
            lsock.close()
            raise
        ino = None
    else:
        lsock, ino = await _bind_uds(addr, backlog)
        bound = addr
    try:
        await _accept_loop(lsock, bound, handler, key, ssl_context, hello_frame, handshake_timeout, max_frame,
                           handler_nursery, task_status)
    finally:
        lsock.close()
        if ino is not None:
            _unlink_if_ours(addr.path, ino)


async def serve_socket(sock: _pysocket.socket, handler: Callable[[Connection], Awaitable[object]], *,
                       hello: dict[str, Any] | None = None, authkey: bytes | None | _FromEnv = KEY_FROM_ENV,
                       handshake_timeout: float = HANDSHAKE_TIMEOUT, max_frame: int = DEFAULT_MAX_FRAME,
                       handler_nursery: trio.Nursery | None = None,
                       task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED) -> None:
    """:func:`serve` on a listening Unix socket made elsewhere (a stdlib
    ``socket.socket``, bound and listening; owned from now on and closed
    when this ends): a process actor's listener, bound by its runtime
    before it needs trio. Its socket file is left to whoever made it."""
    key = _resolve_key(authkey)
    hello_frame = _hello_frame({} if hello is None else hello)
    if sock.family != _pysocket.AF_UNIX:
        raise ValueError(f"serve_socket() takes a Unix socket, got family {sock.family}")
    bound = UDSAddress(sock.getsockname())
    lsock = trio.socket.from_stdlib_socket(sock)
    try:
        await _accept_loop(lsock, bound, handler, key, None, hello_frame, handshake_timeout, max_frame,
                           handler_nursery, task_status)
    finally:
        lsock.close()


async def _accept_loop(lsock, bound, handler, key, ssl_context, hello_frame, handshake_timeout, max_frame,
                       handler_nursery, task_status) -> None:
    log = _log()
    async with trio.open_nursery() as nursery:
        target = nursery if handler_nursery is None else handler_nursery
        task_status.started(bound)
        while True:
            try:
                sock, peer = await lsock.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY:
                    log.error(f"listener {bound}: cannot accept a connection ({exc}); trying again in 0.1 s")
                    await trio.sleep(0.1)
                    continue
                if exc.errno in _ACCEPT_SKIP:
                    continue
                raise
            target.start_soon(_serve_one, sock, peer, bound, handler, key, ssl_context, hello_frame,
                              handshake_timeout, max_frame)


async def _serve_one(sock, peer, bound: Address, handler, key, ssl_context, hello_frame, timeout, max_frame):
    log = _log()
    peer_addr = _sockaddr_of(bound, peer)
    cred = _peer_cred(sock) if isinstance(bound, UDSAddress) else None
    who = f"{peer_addr}" if cred is None else f"{peer_addr} (pid {cred[0]}, uid {cred[1]})"
    conn = None
    stage = ["the TLS handshake" if ssl_context is not None else "authentication"]
    try:
        with trio.move_on_after(timeout):
            end, peer_hello, authed, tls = await _introduce(sock, ssl_context, True, None, key, hello_frame,
                                                            max_frame, str(peer_addr), stage)
            conn = Connection(end, peer_hello, peer_addr, bound, authenticated=authed, tls=tls, peer_cred=cred)
        if conn is None:
            log.info(f"listener {bound}: refused {who}: {stage[0]} took longer than {timeout} s")
            return
    except (HandshakeFailed, AuthenticationError) as exc:
        log.info(f"listener {bound}: refused {who} during {stage[0]}: {exc}")
        return
    except Exception:
        log.exception(f"listener {bound}: error while introducing {who}")
        return
    finally:
        if conn is None:
            sock.close()
    try:
        await handler(conn)
    except Exception:
        log.exception(f"listener {bound}: the handler of {who} failed; that connection is closed")
    finally:
        if not conn.closed:
            if conn.tls:
                with trio.CancelScope(shield=True):
                    await conn.aclose()
            else:
                conn.close()


async def _bind_uds(addr: UDSAddress, backlog: int):
    """A listening socket at addr.path, in a private directory (mode 0700,
    created if missing), the socket file mode 0600. A stale socket file (no
    one listens) is replaced; a live one is an error."""
    path = addr.path
    ensure_private_dir(os.path.dirname(path))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        import stat as _stat

        if not _stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(errno.EEXIST, f"cannot listen on {addr}: the path exists and is not a socket")
        probe = trio.socket.socket(_pysocket.AF_UNIX, _pysocket.SOCK_STREAM)
        try:
            await probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: its listener is gone
        else:
            raise OSError(errno.EADDRINUSE, f"cannot listen on {addr}: another listener is there")
        finally:
            probe.close()
    # Bound here, not with trio's bind (which walks the path in a thread).
    raw = _pysocket.socket(_pysocket.AF_UNIX, _pysocket.SOCK_STREAM)
    try:
        raw.bind(path)
        os.chmod(path, 0o600)
        ino = os.lstat(path).st_ino
        raw.listen(backlog)
    except BaseException:
        raw.close()
        raise
    return trio.socket.from_stdlib_socket(raw), ino


def _unlink_if_ours(path: str, ino: int) -> None:
    try:
        if os.lstat(path).st_ino == ino:
            os.unlink(path)
    except FileNotFoundError:
        pass


# -- the client ----------------------------------------------------------------------------------

async def connect(addr: Any, hello: dict[str, Any], *, authkey: bytes | None | _FromEnv = KEY_FROM_ENV,
                  ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None,
                  timeout: float | None = HANDSHAKE_TIMEOUT, max_frame: int = DEFAULT_MAX_FRAME) -> Connection:
    """Connect to a listener at ``addr``, authenticate, exchange hellos
    (``hello`` is what this side says) and return the :class:`Connection`.

    ``authkey`` as for :func:`serve`: with a key the server must prove it,
    without one the server must not ask for one. ``ssl_context``: TLS
    (``server_hostname`` defaults to the TCP host). The whole of it is
    bounded by ``timeout`` seconds (None: no bound).

    Errors, each naming the address: ConnectionRefusedError (nothing
    listens there), TimeoutError, AuthenticationError (a PermissionError:
    the server did not prove the key, refused ours, or one side has a key
    and the other none, or its TLS certificate did not verify),
    ConnectionError (it does not speak this protocol, or closed the
    connection in the middle).
    """
    addr = wrap_address(addr)
    key = _resolve_key(authkey)
    hello_frame = _hello_frame(hello)
    if ssl_context is not None and server_hostname is None and isinstance(addr, TCPAddress):
        server_hostname = addr.host
    if timeout is None:
        timeout = math.inf
    elif not (isinstance(timeout, (int, float)) and timeout >= 0):
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    stage = ["connecting"]
    sock = None
    with trio.move_on_after(timeout):
        sock = await _open_socket(addr)
        try:
            if isinstance(addr, UDSAddress):
                local, cred = addr, _peer_cred(sock)
            else:
                name = sock.getsockname()
                local, cred = TCPAddress(name[0], name[1]), None
            end, peer_hello, authed, tls = await _introduce(sock, ssl_context, False, server_hostname, key,
                                                            hello_frame, max_frame, str(addr), stage)
        except AuthenticationError as exc:
            sock.close()
            raise AuthenticationError(f"connecting to {addr}: {exc}") from None
        except HandshakeFailed as exc:
            sock.close()
            raise ConnectionError(f"connecting to {addr}, during {stage[0]}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        return Connection(end, peer_hello, addr, local, authenticated=authed, tls=tls, peer_cred=cred)
    if sock is not None:
        sock.close()
    raise TimeoutError(f"connecting to {addr} timed out after {timeout} s (during {stage[0]})")


async def _open_socket(addr: Address):
    """A connected trio socket. ConnectionRefusedError naming the address
    when nothing listens there."""
    if isinstance(addr, UDSAddress):
        sock = trio.socket.socket(_pysocket.AF_UNIX, _pysocket.SOCK_STREAM)
        try:
            await sock.connect(addr.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"nothing listens at {addr}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return sock
    family, sockaddr, infos = await _resolve_tcp(addr, passive=False)
    last = None
    for family, _, _, _, sockaddr in infos:
        sock = trio.socket.socket(family, _pysocket.SOCK_STREAM)
        try:
            sock.setsockopt(_pysocket.IPPROTO_TCP, _pysocket.TCP_NODELAY, 1)
            await sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    if isinstance(last, ConnectionRefusedError):
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"connection to {addr} refused (nothing listens there?)")
    raise OSError(getattr(last, "errno", None), f"cannot connect to {addr}: {last}")
