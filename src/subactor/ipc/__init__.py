"""The network wire: addresses, listeners and connections over TCP and Unix
sockets, authenticated before any message reaches the runtime.

Addresses (:mod:`._addr`)
  ``TCPAddress(host="127.0.0.1", port=0)``, ``UDSAddress(path)``: frozen
  dataclasses with ``.proto`` ('tcp' / 'uds'), ``str()`` (the URL form,
  ``tcp://HOST:PORT`` / ``uds:///path``) and ``.unwrap()`` (tractor's tuple).
  ``wrap_address(x)`` accepts a URL, a tuple ``(host, port)`` or
  ``(directory, name)``, or an address object; ValueError otherwise.
  ``runtime_dir()`` is the private (0700) directory for UDS sockets,
  ``uds_address(name)`` a socket in it.

Keys (:mod:`._auth`)
  ``get_authkey() -> bytes | None`` reads ``SUBACTOR_AUTHKEY`` (the key as
  text) or ``SUBACTOR_AUTHKEY_FILE`` (a file private to its owner);
  ``new_authkey_file(path) -> bytes`` makes such a file (mode 0600).
  The handshake is described in :mod:`subactor.ipc._auth`.

Listening and connecting (:mod:`._conn`)
  ``await nursery.start(serve, addr, handler, *, hello=None,
  authkey=KEY_FROM_ENV, ssl_context=None, handshake_timeout=5.0,
  max_frame=DEFAULT_MAX_FRAME, backlog=128, handler_nursery=None)`` -> the
  bound address; then ``await handler(conn)`` for every connection that
  passed TLS, authentication and the hellos, each in its own task.
  Cancel it to close the listener (a UDS socket file is removed).

  ``await nursery.start(serve_socket, sock, handler, ...)``: the same on a
  Unix socket already bound and listening (a process actor's listener).

  ``await connect(addr, hello, *, authkey=KEY_FROM_ENV, ssl_context=None,
  server_hostname=None, timeout=5.0, max_frame=DEFAULT_MAX_FRAME)`` ->
  ``Connection``; ConnectionRefusedError, TimeoutError,
  ``AuthenticationError`` (a PermissionError) or ConnectionError, each
  naming the address.

  ``Connection``: ``.end`` (a ``SocketEnd`` owning the socket; with TLS a
  ``StreamChannel``), ``.hello`` (the peer's), ``.peer_addr``,
  ``.local_addr``, ``.authenticated``, ``.tls``, ``.peer_cred`` (UDS:
  pid, uid, gid), ``.channel()`` (a ``TrioChannel`` over the end, or the
  ``StreamChannel``), ``.detach_fd()`` (plain connections: the socket
  descriptor, for ``SocketEnd(fd)`` in another interpreter), ``.close()``,
  ``await .aclose()``.

Who must authenticate. ``authkey=KEY_FROM_ENV`` (the default) uses the
environment's key when one is configured, else none; pass a key or None to
decide in code. With a key, both sides must prove it, on every transport.
Without one:

- a TCP listener on a loopback address accepts clients without
  authentication (anyone on this machine can connect: set a key when that
  matters, or use UDS);
- a TCP listener on any other address refuses to start (PermissionError),
  unless its ``ssl_context`` requires client certificates;
- a UDS listener relies on the file system: its directory is mode 0700 and
  its socket file 0600, so only this user (and root) can connect.

Frames are limited to ``max_frame`` bytes (64 MiB by default) and the
hellos to ``HELLO_MAX`` (64 KiB); a peer that breaks the protocol, sends
too much or too slowly costs the server that connection only.
"""
from subactor._spawn._sockend import DEFAULT_MAX_FRAME, SocketEnd
from subactor.ipc._addr import (Address, TCPAddress, UDSAddress, check_private_dir, runtime_dir, uds_address,
                                wrap_address)
from subactor.ipc._auth import (AUTHKEY_ENV, AUTHKEY_FILE_ENV, AuthenticationError, get_authkey,
                                new_authkey_file, read_authkey_file)
from subactor.ipc._conn import HANDSHAKE_TIMEOUT, HELLO_MAX, KEY_FROM_ENV, Connection, connect, serve, serve_socket
from subactor.ipc._framed import StreamChannel

__all__ = [
    "Address", "TCPAddress", "UDSAddress", "wrap_address", "runtime_dir", "uds_address", "check_private_dir",
    "AUTHKEY_ENV", "AUTHKEY_FILE_ENV", "AuthenticationError", "get_authkey", "new_authkey_file",
    "read_authkey_file",
    "DEFAULT_MAX_FRAME", "HANDSHAKE_TIMEOUT", "HELLO_MAX", "KEY_FROM_ENV",
    "Connection", "connect", "serve", "serve_socket", "SocketEnd", "StreamChannel",
]
