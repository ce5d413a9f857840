"""Authentication of a connection: a shared key, and a mutual challenge-response.

Where the key comes from (:func:`get_authkey`):

- ``SUBACTOR_AUTHKEY``: the key itself, as text (UTF-8);
- ``SUBACTOR_AUTHKEY_FILE``: a file holding it (surrounding whitespace
  stripped). The file must be a regular file owned by this user that group
  and other cannot read or write, else PermissionError naming the file and
  its mode. :func:`new_authkey_file` makes one (mode 0600, 32 random bytes
  as hex).

Setting both is an error, and so is a key shorter than 16 bytes: with a
short key, an eavesdropper who saw one handshake could guess the key
offline.

The handshake (protocol version 1), on a fresh connection, before any
message reaches the runtime. ``Ns`` and ``Nc`` are 32 random bytes each::

  server -> client  GREETING  "SUBACTOR" | version | mode | Ns     (42 bytes)
  client -> server  ANSWER    "SUBACTOR" | version | mode           (10 bytes)
                              [ | Nc | HMAC(K, "subactor auth v1: client" | Ns | Nc) ]   (+64 if mode 1)
  server -> client  PROOF     HMAC(K, "subactor auth v1: server" | Ns | Nc)              (32, mode 1 only)

``mode`` is 1 when the server has a key (HMAC-SHA256 over it), 0 when it
has none. The client proves the key first, over the server's fresh
challenge; the server proves it in turn (over the client's nonce too, so a
recorded proof is never valid again), and only to a client that proved it:
a server never computes anything with its key for a peer that has not. The
labels keep a client's proof from ever serving as a server's. Digests are
compared with :func:`hmac.compare_digest`.

What each side accepts: a server with a key accepts only clients that
prove it; a client with a key accepts only servers that prove it (a server
without a key, mode 0, is refused: otherwise anyone could pose as the
server); without keys on either side the handshake is only the greeting
and the answer.

A server sends nothing but its greeting (a constant and a random nonce)
to a peer that has not proved the key: a wrong key, bytes that are not an
answer, a truncated answer or a peer too slow are all met by closing the
connection, with no error text.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat

AUTHKEY_ENV = "SUBACTOR_AUTHKEY"
AUTHKEY_FILE_ENV = "SUBACTOR_AUTHKEY_FILE"
MIN_KEY = 16

MAGIC = b"SUBACTOR"
VERSION = 1
NONCE = 32
DIGEST = 32  # SHA-256
GREETING_SIZE = len(MAGIC) + 2 + NONCE
ANSWER_HEAD = len(MAGIC) + 2
_CLIENT_LABEL = b"subactor auth v1: client"
_SERVER_LABEL = b"subactor auth v1: server"


class AuthenticationError(PermissionError):
    """A connection's peer did not prove the shared key, or could not be
    asked to (one side has a key and the other none)."""


class HandshakeFailed(Exception):
    """Internal: why a handshake failed, in words for the log or an error.
    ``auth`` tells an authentication failure from a protocol one."""

    def __init__(self, reason: str, auth: bool = False):
        super().__init__(reason)
        self.auth = auth


# -- keys --------------------------------------------------------------------------------

def _check_key(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY:
        raise ValueError(f"the authentication key from {where} is {len(key)} bytes long; it must have at least "
                         f"{MIN_KEY} (subactor.ipc.new_authkey_file makes a good one)")
    return key


def get_authkey() -> bytes | None:
    """The key configured in the environment (see the module docstring), or
    None if there is none. ValueError if both variables are set or the key
    is too short; PermissionError if the key file is not private; OSError
    if it cannot be read."""
    text = os.environ.get(AUTHKEY_ENV)
    path = os.environ.get(AUTHKEY_FILE_ENV)
    if text is not None and path is not None:
        raise ValueError(f"both {AUTHKEY_ENV} and {AUTHKEY_FILE_ENV} are set; set one of them")
    if text is not None:
        return _check_key(text.encode(), AUTHKEY_ENV)
    if path is not None:
        if not path:
            raise ValueError(f"{AUTHKEY_FILE_ENV} is set but empty")
        return read_authkey_file(path)
    return None


def read_authkey_file(path: str | os.PathLike[str]) -> bytes:
    """The key held in ``path`` (surrounding whitespace stripped).
    PermissionError naming the file, its owner and its mode unless it is a
    regular file owned by this user with no access for group or other."""
    path = os.fspath(path)
    # O_NONBLOCK: a FIFO planted there must not block the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)  # of what was opened, not of what the name points at later
        uid = os.getuid()
        if not stat.S_ISREG(st.st_mode):
            raise PermissionError(f"the key file {path} is not a regular file (mode {stat.filemode(st.st_mode)})")
        if st.st_uid != uid or st.st_mode & 0o077:
            raise PermissionError(f"the key file {path} must be owned by uid {uid} and readable by its owner only; "
                                  f"it is owned by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o} "
                                  f"(chmod 600 {path})")
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return _check_key(b"".join(chunks).strip(), f"the key file {path}")


def new_authkey_file(path: str | os.PathLike[str]) -> bytes:
    """Create ``path`` (it must not exist) with mode 0600 holding a new
    random key (32 bytes, written as 64 hex digits and a newline); returns
    the key as :func:`get_authkey` will read it."""
    key = secrets.token_hex(32).encode()
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, key + b"\n")
    finally:
        os.close(fd)
    return key


# -- the handshake ---------------------------------------------------------------------------
# Both sides run over an object with `async read_exactly(n) -> bytes` (raising
# EOFError when the peer ends first) and `async write(data)`: a plain socket read
# without read-ahead, or a TLS stream.

def _mac(key: bytes, label: bytes, ns: bytes, nc: bytes) -> bytes:
    return hmac.new(key, label + ns + nc, hashlib.sha256).digest()


async def server_handshake(io, key: bytes | None) -> bool:
    """Run the server's side; True if the client proved the key (False when
    there is no key). HandshakeFailed (the caller closes the connection
    without a word) if it did not, or did not speak the protocol."""
    mode = 0 if key is None else 1
    ns = secrets.token_bytes(NONCE)
    await io.write(MAGIC + bytes((VERSION, mode)) + ns)
    head = await _read(io, ANSWER_HEAD, "its answer")
    if head[:len(MAGIC)] != MAGIC:
        raise HandshakeFailed("it does not speak subactor's protocol (bad magic)")
    if head[len(MAGIC)] != VERSION:
        raise HandshakeFailed(f"it speaks protocol version {head[len(MAGIC)]}, not {VERSION}")
    if head[len(MAGIC) + 1] != mode:
        raise HandshakeFailed(f"it answered for authentication mode {head[len(MAGIC) + 1]}, not {mode}",
                              auth=True)
    if key is None:
        return False
    rest = await _read(io, NONCE + DIGEST, "its proof of the key")
    nc, proof = rest[:NONCE], rest[NONCE:]
    if not hmac.compare_digest(proof, _mac(key, _CLIENT_LABEL, ns, nc)):
        raise HandshakeFailed("it did not prove the key (wrong key)", auth=True)
    await io.write(_mac(key, _SERVER_LABEL, ns, nc))
    return True


async def client_handshake(io, key: bytes | None) -> bool:
    """Run the client's side; True if the server proved the key. Raises
    AuthenticationError when the server did not prove it or when exactly
    one side has a key, HandshakeFailed when the server did not speak the
    protocol (or closed the connection: a server refuses a wrong key so)."""
    greeting = await _read(io, GREETING_SIZE, "its greeting")
    if greeting[:len(MAGIC)] != MAGIC:
        raise HandshakeFailed("it does not speak subactor's protocol (bad magic)")
    version, mode = greeting[len(MAGIC)], greeting[len(MAGIC) + 1]
    if version != VERSION:
        raise HandshakeFailed(f"it speaks protocol version {version}, not {VERSION}")
    if mode not in (0, 1):
        raise HandshakeFailed(f"it asked for an unknown authentication mode {mode}")
    if mode == 1 and key is None:
        raise AuthenticationError("it requires an authentication key and none is configured here "
                                  f"(set {AUTHKEY_ENV} or {AUTHKEY_FILE_ENV}, or pass authkey=)")
    if mode == 0 and key is not None:
        raise AuthenticationError("it does not authenticate (it has no key) and a key is configured here; "
                                  "refusing a server that cannot prove it")
    head = MAGIC + bytes((VERSION, mode))
    if key is None:
        await io.write(head)
        return False
    ns = greeting[len(MAGIC) + 2:]
    nc = secrets.token_bytes(NONCE)
    await io.write(head + nc + _mac(key, _CLIENT_LABEL, ns, nc))
    try:
        proof = await _read(io, DIGEST, "its proof of the key")
    except HandshakeFailed:
        raise AuthenticationError("it closed the connection after our proof of the key: "
                                  "the keys differ (or it refused us for another reason)") from None
    if not hmac.compare_digest(proof, _mac(key, _SERVER_LABEL, ns, nc)):
        raise AuthenticationError("it did not prove the key (the keys differ, or it is not who it seems)")
    return True


async def _read(io, n: int, what: str) -> bytes:
    try:
        return await io.read_exactly(n)
    except EOFError as exc:
        raise HandshakeFailed(f"it closed the connection before {what} ({exc})") from None
