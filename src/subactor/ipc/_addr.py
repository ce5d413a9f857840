"""Transport addresses: parsing, the URL and tuple forms, where UDS sockets live.

Two kinds, each a small frozen dataclass:

- :class:`TCPAddress` ``(host, port)``: ``tcp://HOST:PORT`` (``tcp://[::1]:PORT``
  for IPv6), tractor's tuple ``("127.0.0.1", 1616)``. The host defaults to
  127.0.0.1 (an empty host in a URL means it too, never "all interfaces":
  binding elsewhere is asked for by name, ``0.0.0.0`` or ``::``); port 0
  means "pick a free one" and the listener reports the port it got.
- :class:`UDSAddress` ``(path)``: ``uds:///abs/path.sock``, tractor's tuple
  ``("/dir", "name.sock")``.

UDS sockets live in a directory that only their owner can enter:
:func:`runtime_dir` (``$XDG_RUNTIME_DIR/subactor``, else
``/tmp/subactor-<uid>``) is created with mode 0700, and an existing one is
used only if it is a real directory owned by this user with no access for
group or other (:func:`check_private_dir`). A listener checks the directory
of any socket path it binds the same way.
"""
from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from typing import Any, ClassVar

# sun_path holds 108 bytes on Linux, one of them the terminating NUL.
_SUN_PATH_MAX = 107


@dataclass(frozen=True)
class TCPAddress:
    """A TCP address; see the module docstring."""

    host: str = "127.0.0.1"
    port: int = 0
    proto: ClassVar[str] = "tcp"

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"a TCP host must be a non-empty string, got {self.host!r}")
        if type(self.port) is not int or not 0 <= self.port <= 65535:
            raise ValueError(f"a TCP port must be an int from 0 to 65535, got {self.port!r}")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    def unwrap(self) -> tuple[str, int]:
        """tractor's tuple form, ``(host, port)``."""
        return (self.host, self.port)

    @property
    def bindspace(self) -> str:
        """Where addresses of this kind live (tractor's name): the host."""
        return self.host

    proto_key = proto

    @classmethod
    def get_random(cls, bindspace: str | None = None) -> "TCPAddress":
        """An address the kernel picks a free port for (port 0), on host
        ``bindspace`` (loopback by default)."""
        return cls(bindspace or "127.0.0.1", 0)

    @property
    def is_loopback(self) -> bool:
        """True if the host is a loopback address or ``localhost`` (a host
        name is not resolved here: any other name counts as not loopback)."""
        return _is_loopback(self.host)


@dataclass(frozen=True)
class UDSAddress:
    """A Unix-domain socket address (an absolute path); see the module docstring."""

    path: str
    proto: ClassVar[str] = "uds"

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError(f"a UDS address must be an absolute path, got {self.path!r}")
        if "\0" in self.path:
            raise ValueError(f"a UDS path cannot contain a NUL byte: {self.path!r}")
        n = len(os.fsencode(self.path))
        if n > _SUN_PATH_MAX:
            raise ValueError(f"a UDS path can hold at most {_SUN_PATH_MAX} bytes, {self.path!r} has {n}")
        if self.path.endswith("/"):
            raise ValueError(f"a UDS path must name a socket file, not a directory: {self.path!r}")

    def __str__(self) -> str:
        return f"uds://{self.path}"

    def unwrap(self) -> tuple[str, str]:
        """tractor's tuple form, ``(directory, file name)``."""
        return os.path.split(self.path)

    @property
    def bindspace(self) -> str:
        """Where addresses of this kind live (tractor's name): the directory."""
        return os.path.dirname(self.path)

    proto_key = proto

    @classmethod
    def get_random(cls, bindspace: str | None = None) -> "UDSAddress":
        """A fresh socket path in directory ``bindspace`` (the private
        runtime directory by default)."""
        import secrets

        return cls(os.path.join(bindspace or runtime_dir(), f"subactor-{os.getpid()}-{secrets.token_hex(4)}.sock"))


@dataclass(frozen=True)
class InprocAddress:
    """Where an actor of this process is: no socket, a C channel (what
    ``TrioChannel.raddr`` names for one)."""

    uuid: str
    proto: ClassVar[str] = "inproc"
    proto_key = proto

    def __str__(self) -> str:
        return f"inproc://{self.uuid}"

    def unwrap(self) -> tuple[str, str]:
        return ("inproc", self.uuid)

    @property
    def bindspace(self) -> str:
        return "inproc"


Address = TCPAddress | UDSAddress


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wrap_address(addr: Any) -> Address:
    """An address object from any accepted form: a :class:`TCPAddress` or
    :class:`UDSAddress` (returned as is), ``"tcp://HOST:PORT"``,
    ``"uds:///path"``, ``(host, port)`` or ``(directory, name)`` (a tuple or a
    two-item list). ValueError naming what is wrong with anything else."""
    if isinstance(addr, (TCPAddress, UDSAddress)):
        return addr
    if isinstance(addr, str):
        return _parse_url(addr)
    if isinstance(addr, (tuple, list)) and len(addr) == 2:
        a, b = addr
        if isinstance(a, str) and type(b) is int:
            return TCPAddress(a or "127.0.0.1", b)
        if isinstance(a, str) and isinstance(b, str):
            if not b or "/" in b:
                raise ValueError(f"the second item of a UDS address tuple must be a file name, got {b!r}")
            return UDSAddress(os.path.join(a, b))
        raise ValueError(f"an address tuple must be (host: str, port: int) or (directory: str, name: str), "
                         f"got ({type(a).__name__}, {type(b).__name__}): {addr!r}")
    raise ValueError(f"not an address: {addr!r} (expected 'tcp://HOST:PORT', 'uds:///path', "
                     f"(host, port), (directory, name) or an address object)")


def _parse_url(url: str) -> Address:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"an address URL must start with tcp:// or uds://, got {url!r}")
    if scheme == "uds":
        if not rest.startswith("/"):
            raise ValueError(f"a uds:// address needs an absolute path (uds:///dir/name.sock), got {url!r}")
        return UDSAddress(rest)
    if scheme != "tcp":
        raise ValueError(f"unknown transport {scheme!r} in {url!r} (expected tcp or uds)")
    if "/" in rest:
        raise ValueError(f"a tcp:// address is tcp://HOST:PORT, without a path: {url!r}")
    if rest.startswith("["):
        host, bracket, port_s = rest[1:].partition("]")
        if not bracket or not port_s.startswith(":"):
            raise ValueError(f"an IPv6 address is written tcp://[HOST]:PORT, got {url!r}")
        port_s = port_s[1:]
    else:
        host, colon, port_s = rest.rpartition(":")
        if not colon:
            raise ValueError(f"a tcp:// address needs a port (tcp://HOST:PORT, 0 for any free port), got {url!r}")
        if ":" in host:
            raise ValueError(f"an IPv6 host must be in brackets (tcp://[{host}]:{port_s}), got {url!r}")
    if not port_s.isdigit():
        raise ValueError(f"the port of {url!r} is not a number: {port_s!r}")
    return TCPAddress(host or "127.0.0.1", int(port_s))


def runtime_dir() -> str:
    """The directory for this user's UDS sockets, created (mode 0700) if it
    does not exist and checked with :func:`check_private_dir` if it does:
    ``$XDG_RUNTIME_DIR/subactor`` when that variable names a directory,
    else ``/tmp/subactor-<uid>``. PermissionError if it is not private."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = os.path.join(base, "subactor")
    else:
        path = f"/tmp/subactor-{os.getuid()}"
    ensure_private_dir(path)
    return path


def uds_address(name: str) -> UDSAddress:
    """The address of a socket named ``name`` in :func:`runtime_dir`."""
    if not name or "/" in name:
        raise ValueError(f"a socket name must be a non-empty file name, got {name!r}")
    return UDSAddress(os.path.join(runtime_dir(), name))


def ensure_private_dir(path: str) -> None:
    """Create directory ``path`` with mode 0700 if it is missing (its parent
    must exist), then :func:`check_private_dir` it."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # whatever the umask
    check_private_dir(path)


def check_private_dir(path: str) -> None:
    """PermissionError naming ``path``, its owner and mode unless it is a
    directory (not a symbolic link) owned by this user that group and other
    cannot enter, read or write; FileNotFoundError if it does not exist."""
    st = os.lstat(path)
    uid = os.getuid()
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"UDS socket directory {path} is not a directory "
                              f"(mode {stat.filemode(st.st_mode)}); refusing to use it")
    if st.st_uid != uid or st.st_mode & 0o077:
        raise PermissionError(f"UDS socket directory {path} must be owned by uid {uid} with mode 0700; it is owned "
                              f"by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}: refusing to use it "
                              f"(chmod 700 {path}, or choose another directory)")
