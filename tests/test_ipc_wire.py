"""subactor.ipc, the network wire: addresses, keys, the handshake, listeners
that survive bad peers, framed messages over TCP, UDS and TLS."""
import hashlib
import hmac
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest
import trio

from subactor import _ext, ipc
from subactor._spawn._sockend import SocketEnd
from subactor._transport import TrioChannel
from subactor.ipc import _auth

KEY = b"k" * 32
OTHER = b"o" * 32
LIMIT = 20  # seconds: every trio.run of this file is bounded by it


def run(main, *args):
    async def bounded():
        with trio.fail_after(LIMIT):
            return await main(*args)

    return trio.run(bounded)


@pytest.fixture
def private_dir():
    d = tempfile.mkdtemp(prefix="sa-wire-")  # mode 0700
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(ipc.AUTHKEY_ENV, raising=False)
    monkeypatch.delenv(ipc.AUTHKEY_FILE_ENV, raising=False)


class Echo:
    """A handler that answers every message with {"echo": msg} until the
    end of the channel, and records what it saw."""

    def __init__(self):
        self.hellos = []
        self.ends = []

    async def __call__(self, conn):
        self.hellos.append(conn.hello)
        ch = conn.channel()
        try:
            while True:
                m = await ch.recv()
                await ch.send({"echo": m})
        except (trio.EndOfChannel, trio.BrokenResourceError) as exc:
            self.ends.append(exc)


async def start(nursery, addr, handler, **kw):
    return await nursery.start(lambda task_status: ipc.serve(addr, handler, task_status=task_status, **kw))


async def good_round_trip(addr, key=None, **kw):
    conn = await ipc.connect(addr, {"who": "good"}, authkey=key, **kw)
    ch = conn.channel()
    try:
        await ch.send({"n": 1})
        assert await ch.recv() == {"echo": {"n": 1}}
    finally:
        ch.close()
    return conn


async def raw_connect(addr):
    if isinstance(addr, ipc.UDSAddress):
        s = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await s.connect(addr.path)
    else:
        s = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        await s.connect(addr.unwrap())
    return s


async def read_exactly(s, n):
    buf = b""
    while len(buf) < n:
        b = await s.recv(n - len(buf))
        assert b, f"EOF after {len(buf)} of {n} bytes"
        buf += b
    return buf


async def read_to_eof(s):
    """Everything the peer sends until it closes (a reset counts as the end)."""
    buf = b""
    while True:
        try:
            b = await s.recv(65536)
        except ConnectionResetError:
            return buf
        if not b:
            return buf
        buf += b


def answer(greeting: bytes, key: bytes | None) -> bytes:
    """A client's answer to a greeting, made here from the protocol's text
    (not with the module's own functions)."""
    head = b"SUBACTOR" + bytes((1, 0 if key is None else 1))
    if key is None:
        return head
    ns = greeting[10:42]
    nc = os.urandom(32)
    return head + nc + hmac.new(key, b"subactor auth v1: client" + ns + nc, hashlib.sha256).digest()


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + payload


# --- addresses -----------------------------------------------------------------------


def test_addresses_parse_and_print():
    w = ipc.wrap_address
    a = w("tcp://127.0.0.1:1616")
    assert a == ipc.TCPAddress("127.0.0.1", 1616) and a.proto == "tcp"
    assert str(a) == "tcp://127.0.0.1:1616" and a.unwrap() == ("127.0.0.1", 1616)
    assert w(("127.0.0.1", 1616)) == a and w(["127.0.0.1", 1616]) == a and w(a) is a
    v6 = w("tcp://[::1]:5")
    assert v6.host == "::1" and str(v6) == "tcp://[::1]:5" and w(str(v6)) == v6
    assert w("tcp://:0") == ipc.TCPAddress() == ipc.TCPAddress("127.0.0.1", 0)
    u = w("uds:///run/x/a.sock")
    assert u == ipc.UDSAddress("/run/x/a.sock") and u.proto == "uds"
    assert str(u) == "uds:///run/x/a.sock" and u.unwrap() == ("/run/x", "a.sock")
    assert w(("/run/x", "a.sock")) == u
    with pytest.raises(AttributeError):
        a.port = 1  # frozen


@pytest.mark.parametrize("bad, words", [
    ("127.0.0.1:1616", "tcp:// or uds://"),
    ("http://x:1", "unknown transport 'http'"),
    ("tcp://host", "needs a port"),
    ("tcp://host:http", "not a number"),
    ("tcp://h:70000", "0 to 65535"),
    ("tcp://::1:5", "brackets"),
    ("tcp://h:1/path", "without a path"),
    ("uds://rel.sock", "absolute path"),
    ("uds:///" + "d" * 120, "at most 107"),
    (("/d", "a/b"), "file name"),
    (("h", 1.5), "(host: str, port: int)"),
    (1616, "not an address"),
    (("a", 1, 2), "not an address"),
])
def test_bad_addresses_name_what_is_wrong(bad, words):
    with pytest.raises(ValueError, match=None) as info:
        ipc.wrap_address(bad)
    assert words in str(info.value), str(info.value)


# --- keys ----------------------------------------------------------------------------


def test_key_from_the_environment(monkeypatch, private_dir):
    assert ipc.get_authkey() is None
    monkeypatch.setenv(ipc.AUTHKEY_ENV, "s" * 20)
    assert ipc.get_authkey() == b"s" * 20
    monkeypatch.setenv(ipc.AUTHKEY_ENV, "short")
    with pytest.raises(ValueError, match="5 bytes long; it must have at least 16"):
        ipc.get_authkey()
    path = os.path.join(private_dir, "key")
    key = ipc.new_authkey_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(key) == 64
    with pytest.raises(ValueError, match="both"):
        monkeypatch.setenv(ipc.AUTHKEY_FILE_ENV, path)
        ipc.get_authkey()
    monkeypatch.delenv(ipc.AUTHKEY_ENV)
    assert ipc.get_authkey() == key
    with pytest.raises(FileExistsError):
        ipc.new_authkey_file(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_readable_by_others_is_refused(monkeypatch, private_dir, mode):
    path = os.path.join(private_dir, "key")
    ipc.new_authkey_file(path)
    os.chmod(path, mode)
    monkeypatch.setenv(ipc.AUTHKEY_FILE_ENV, path)
    with pytest.raises(PermissionError) as info:
        ipc.get_authkey()
    assert path in str(info.value) and f"{mode:04o}" in str(info.value), str(info.value)


def test_key_file_that_is_not_a_file_is_refused(monkeypatch, private_dir):
    fifo = os.path.join(private_dir, "fifo")
    os.mkfifo(fifo, 0o600)
    monkeypatch.setenv(ipc.AUTHKEY_FILE_ENV, fifo)
    with pytest.raises(PermissionError, match="not a regular file"):
        ipc.get_authkey()  # and does not block on the FIFO


# --- connections -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, KEY], ids=["no-key", "key"])
@pytest.mark.parametrize("proto", ["tcp", "uds"])
def test_round_trip_both_ways_through_trio_channel(key, proto, private_dir):
    """Hellos both ways, then messages both ways over TrioChannel, then a
    clean end seen by the server."""
    echo = Echo()
    addr = "tcp://127.0.0.1:0" if proto == "tcp" else f"uds://{private_dir}/l.sock"

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, addr, echo, hello={"who": "server"}, authkey=key)
            if proto == "tcp":
                assert bound.port != 0 and bound.host == "127.0.0.1"
            conn = await ipc.connect(bound, {"who": "client"}, authkey=key)
            assert conn.hello == {"who": "server"} and conn.authenticated == (key is not None)
            assert isinstance(conn.end, SocketEnd)
            if proto == "tcp":
                assert conn.end.family == socket.AF_INET
                s = socket.socket(fileno=os.dup(conn.end.fileno()))
                try:
                    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                finally:
                    s.close()
            ch = conn.channel()
            for i in range(50):
                await ch.send({"i": i, "blob": b"x" * (i * 1000)})
            for i in range(50):
                assert await ch.recv() == {"echo": {"i": i, "blob": b"x" * (i * 1000)}}
            big = b"y" * (3 << 20)
            await ch.send({"big": big})
            assert (await ch.recv())["echo"]["big"] == big
            ch.close()
            while not echo.ends:
                await trio.sleep(0.01)
            assert echo.hellos == [{"who": "client"}]
            assert isinstance(echo.ends[0], trio.EndOfChannel)
            n.cancel_scope.cancel()

    run(main)


def test_wrong_key_is_closed_without_a_word():
    echo = Echo()

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", echo, authkey=KEY)
            s = await raw_connect(bound)
            try:
                greeting = await read_exactly(s, 42)
                assert greeting[:10] == b"SUBACTOR\x01\x01"
                await s.send(answer(greeting, OTHER))
                assert await read_to_eof(s) == b""  # nothing but the end
            finally:
                s.close()
            with pytest.raises(ipc.AuthenticationError) as info:
                await ipc.connect(bound, {}, authkey=OTHER)
            assert str(bound) in str(info.value)
            await good_round_trip(bound, KEY)
            assert echo.hellos == [{"who": "good"}]  # the bad ones never reached the handler
            n.cancel_scope.cancel()

    run(main)


def test_key_on_one_side_only_is_refused_both_ways():
    async def main():
        async with trio.open_nursery() as n:
            keyed = await start(n, "tcp://127.0.0.1:0", Echo(), authkey=KEY)
            open_ = await start(n, "tcp://127.0.0.1:0", Echo(), authkey=None)
            with pytest.raises(ipc.AuthenticationError, match="requires an authentication key"):
                await ipc.connect(keyed, {}, authkey=None)
            with pytest.raises(ipc.AuthenticationError, match="does not authenticate"):
                await ipc.connect(open_, {}, authkey=KEY)
            await good_round_trip(keyed, KEY)
            await good_round_trip(open_, None)
            n.cancel_scope.cancel()

    run(main)


def test_client_refuses_a_server_that_does_not_prove_the_key():
    """A fake server that asks for a key and answers with a wrong proof."""
    async def fake(listener, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        s, _ = await listener.accept()
        try:
            await s.send(b"SUBACTOR\x01\x01" + os.urandom(32))
            await read_exactly(s, 74)
            await s.send(os.urandom(32) + frame(_ext.dumps({})))
            await read_to_eof(s)
        finally:
            s.close()

    async def main():
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        addr = ipc.TCPAddress(*listener.getsockname())
        try:
            async with trio.open_nursery() as n:
                await n.start(fake, listener)
                with pytest.raises(ipc.AuthenticationError, match=f"{addr}.*did not prove the key"):
                    await ipc.connect(addr, {}, authkey=KEY)
        finally:
            listener.close()

    run(main)


def test_key_from_the_environment_is_the_default(monkeypatch):
    monkeypatch.setenv(ipc.AUTHKEY_ENV, KEY.decode())

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", Echo())
            conn = await ipc.connect(bound, {})
            assert conn.authenticated
            conn.close()
            with pytest.raises(ipc.AuthenticationError):
                await ipc.connect(bound, {}, authkey=None)
            n.cancel_scope.cancel()

    run(main)


BAD_PEERS = {
    "garbage": lambda g: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(200),
    "truncated answer": lambda g: answer(g, KEY)[:30],
    "bad version": lambda g: b"SUBACTOR\x07\x01" + os.urandom(64),
    "wrong mode": lambda g: b"SUBACTOR\x01\x00",
    "oversized hello prefix": lambda g: answer(g, KEY) + b"\xff\xff\xff\xff",
    "truncated hello": lambda g: answer(g, KEY) + frame(_ext.dumps({"who": "x" * 100}))[:50],
    "hello not a map": lambda g: answer(g, KEY) + frame(_ext.dumps([1, 2])),
    "hello not msgpack": lambda g: answer(g, KEY) + frame(b"\xc1\xc1\xc1"),
    "hello too big": lambda g: answer(g, KEY) + frame(_ext.dumps({"x": b"x" * 100_000})),
}


@pytest.mark.parametrize("what", list(BAD_PEERS))
def test_bad_peer_costs_one_connection(what):
    """Each kind of bad peer is closed, never reaches the handler, and the
    listener serves a good client right after."""
    echo = Echo()

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", echo, authkey=KEY, handshake_timeout=3.0)
            for _ in range(3):
                s = await raw_connect(bound)
                try:
                    greeting = await read_exactly(s, 42)
                    try:
                        await s.send(BAD_PEERS[what](greeting))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    try:
                        s.shutdown(socket.SHUT_WR)  # the peer ends (a truncated handshake ends here)
                    except OSError:
                        pass  # the server reset it already
                    got = await read_to_eof(s)
                    # After a good answer the server proves itself (32 bytes)
                    # and sends its hello (all or part of it may be lost to a
                    # reset); never anything about the failure.
                    hello = frame(_ext.dumps({}))
                    assert len(got) <= 32 + len(hello) and got[32:] == hello[:max(0, len(got) - 32)], got
                finally:
                    s.close()
            await good_round_trip(bound, KEY)
            assert echo.hellos == [{"who": "good"}]
            n.cancel_scope.cancel()

    run(main)


HUGE = 0xFFFFFFF0


def test_oversized_frame_after_the_hello_breaks_that_connection_only():
    """A length prefix above max_frame, once connected: the server's end
    breaks at once naming the size and the limit (nothing is allocated);
    the listener goes on."""
    seen = []

    async def handler(conn):
        ch = conn.channel()
        try:
            await ch.recv()
        except trio.BrokenResourceError as exc:
            seen.append(str(exc))

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", handler, authkey=KEY, max_frame=1 << 20)
            s = await raw_connect(bound)
            try:
                greeting = await read_exactly(s, 42)
                await s.send(answer(greeting, KEY) + frame(_ext.dumps({})) + HUGE.to_bytes(4, "little"))
                await read_to_eof(s)  # the server shut it down
            finally:
                s.close()
            while not seen:
                await trio.sleep(0.01)
            assert f"frame of {HUGE} bytes" in seen[0] and "limit of 1048576" in seen[0], seen
            n.cancel_scope.cancel()

    run(main)


def test_slowloris_costs_one_connection_for_at_most_the_handshake_timeout():
    """A peer trickling a valid answer one byte at a time is cut off at the
    handshake deadline; good clients are served meanwhile and after."""
    echo = Echo()
    timeout = 2.0

    async def slow(bound, out):
        s = await raw_connect(bound)
        try:
            greeting = await read_exactly(s, 42)
            data = answer(greeting, KEY)
            t0 = trio.current_time()
            sent = 0
            try:
                for b in data:
                    await s.send(bytes((b,)))
                    sent += 1
                    with trio.move_on_after(0.25):
                        if not await s.recv(1):
                            break
            except (BrokenPipeError, ConnectionResetError):
                pass
            out.append((sent, trio.current_time() - t0, await read_to_eof(s)))
        finally:
            s.close()

    async def main():
        out = []
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", echo, authkey=KEY, handshake_timeout=timeout)
            async with trio.open_nursery() as peers:
                for _ in range(3):
                    peers.start_soon(slow, bound, out)
                await trio.sleep(0.3)
                for _ in range(3):
                    await good_round_trip(bound, KEY)  # during
                assert not out
            await good_round_trip(bound, KEY)      # after
            n.cancel_scope.cancel()
        for sent, took, rest in out:
            # Cut off well before it could finish (74 bytes at 4 a second).
            assert sent < 40 and rest == b"", (sent, took, rest)
        assert len(echo.hellos) == 4

    run(main)


def test_handler_error_costs_its_connection_only(caplog):
    calls = []

    async def handler(conn):
        calls.append(conn.hello["n"])
        if conn.hello["n"] == 0:
            raise RuntimeError("handler bug")
        await Echo()(conn)

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", handler, authkey=None)
            conn = await ipc.connect(bound, {"n": 0}, authkey=None)
            ch = conn.channel()
            with pytest.raises((trio.EndOfChannel, trio.BrokenResourceError)):
                await ch.recv()  # the server closed it
            ch.close()
            conn = await ipc.connect(bound, {"n": 1}, authkey=None)
            ch = conn.channel()
            await ch.send({"a": 1})
            assert await ch.recv() == {"echo": {"a": 1}}
            ch.close()
            n.cancel_scope.cancel()

    with caplog.at_level("ERROR", logger="subactor"):
        run(main)
    assert calls == [0, 1]
    assert any("handler bug" in (r.exc_text or "") or "failed" in r.getMessage() for r in caplog.records)


def test_non_loopback_listener_needs_a_key():
    async def main():
        async with trio.open_nursery() as n:
            with pytest.raises(PermissionError, match="refusing to listen on tcp://0.0.0.0:0 without an authentication key"):
                await start(n, "tcp://0.0.0.0:0", Echo(), authkey=None)
            bound = await start(n, "tcp://0.0.0.0:0", Echo(), authkey=KEY)
            assert bound.host == "0.0.0.0" and bound.port
            await good_round_trip(ipc.TCPAddress("127.0.0.1", bound.port), KEY)
            n.cancel_scope.cancel()

    run(main)


def test_connect_errors_name_the_address(private_dir):
    async def main():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(ConnectionRefusedError, match=f"tcp://127.0.0.1:{port}"):
            await ipc.connect(f"tcp://127.0.0.1:{port}", {}, authkey=None)
        with pytest.raises(ConnectionRefusedError, match=f"uds://{private_dir}/none.sock"):
            await ipc.connect(f"uds://{private_dir}/none.sock", {}, authkey=None)
        # A listener that never speaks: the connect is bounded.
        mute = socket.socket()
        mute.bind(("127.0.0.1", 0))
        mute.listen(1)
        try:
            addr = ipc.TCPAddress(*mute.getsockname())
            with pytest.raises(TimeoutError, match=f"{addr}.*0.5 s.*authentication"):
                await ipc.connect(addr, {}, authkey=KEY, timeout=0.5)
        finally:
            mute.close()
        with pytest.raises(ValueError, match="at most 65536"):
            await ipc.connect(addr, {"x": b"x" * 70000}, authkey=None)

    run(main)


def test_uds_directory_is_private_and_the_socket_file_goes_at_close(monkeypatch, private_dir):
    monkeypatch.setenv("XDG_RUNTIME_DIR", private_dir)
    d = os.path.join(private_dir, "subactor")
    assert ipc.runtime_dir() == d
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    addr = ipc.uds_address("a.sock")
    assert addr.path == os.path.join(d, "a.sock")

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, addr, Echo(), authkey=None)
            assert bound == addr
            st = os.lstat(addr.path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
            conn = await good_round_trip(addr)
            assert conn.peer_cred is not None and conn.peer_cred[0] == os.getpid()
            n.cancel_scope.cancel()
        assert not os.path.exists(addr.path)

    run(main)
    # A directory others can enter is refused, naming it and its mode.
    os.chmod(d, 0o755)
    with pytest.raises(PermissionError, match=f"{d} must be owned by uid {os.getuid()} with mode 0700.*0755"):
        ipc.runtime_dir()

    async def refused():
        async with trio.open_nursery() as n:
            with pytest.raises(PermissionError, match="0755"):
                await start(n, addr, Echo(), authkey=None)

    run(refused)


def test_stale_uds_socket_is_replaced_and_a_live_one_refused(private_dir):
    path = os.path.join(private_dir, "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, no one listens

    async def main():
        async with trio.open_nursery() as n:
            await start(n, f"uds://{path}", Echo(), authkey=None)
            with pytest.raises(OSError, match="another listener is there"):
                await start(n, f"uds://{path}", Echo(), authkey=None)
            await good_round_trip(f"uds://{path}")
            n.cancel_scope.cancel()

    run(main)


def test_detached_descriptor_serves_a_new_socket_end():
    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", Echo(), authkey=KEY)
            conn = await ipc.connect(bound, {}, authkey=KEY)
            fd = conn.detach_fd()
            assert conn.closed
            ch = TrioChannel(SocketEnd(fd, side="again"))
            try:
                await ch.send({"after": "detach"})
                assert await ch.recv() == {"echo": {"after": "detach"}}
            finally:
                ch.close()
            conn = await ipc.connect(bound, {}, authkey=KEY)
            conn.channel()
            with pytest.raises(ValueError, match="channel"):
                conn.detach_fd()
            conn.close()
            n.cancel_scope.cancel()

    run(main)


def test_socket_end_frame_limits():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ea = SocketEnd(a.detach(), side="a", max_frame=1000)
    eb = SocketEnd(b.detach(), side="b", max_frame=100)
    try:
        with pytest.raises(ValueError, match="1 to 1000 bytes.*got 1001"):
            ea.send_nowait(b"x" * 1001)
        ea.send_nowait(b"x" * 50)
        ea.send_nowait(b"x" * 500)   # above the peer's limit: the peer breaks
        ea.send_nowait(b"x" * 10)
        assert bytes(eb.recv(timeout=5)) == b"x" * 50  # what came before is delivered
        with pytest.raises(_ext.BrokenError, match="frame of 500 bytes, above the limit of 100"):
            eb.recv(timeout=5)
        with pytest.raises(_ext.BrokenError, match="frame of 500 bytes"):
            eb.recv_nowait()  # and stays broken
        with pytest.raises(_ext.BrokenError):
            ea.recv(timeout=5)  # the sender sees the break
        with pytest.raises(ValueError, match="max_frame"):
            SocketEnd(-1, max_frame=0)
    finally:
        ea.close()
        eb.close()


def test_socket_end_over_tcp():
    """A TCP socket: the family is found, TCP_NODELAY is set, frames go
    both ways; a descriptor with bytes in flight cannot be detached."""
    lst = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(lst.getsockname())
    s, _ = lst.accept()
    lst.close()
    assert not s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    es = SocketEnd(s.detach(), side="server")
    ec = SocketEnd(c.detach(), side="client")
    try:
        assert es.family == socket.AF_INET
        probe = socket.socket(fileno=os.dup(es.fileno()))
        try:
            assert probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            probe.close()
        ec.send_nowait(b"ping")
        assert bytes(es.recv(timeout=5)) == b"ping"
        es.send_nowait(b"pong")
        assert bytes(ec.recv(timeout=5)) == b"pong"
        ec.send_nowait(b"a")
        ec.send_nowait(b"b")
        assert bytes(es.recv(timeout=5)) == b"a"  # and "b" is in its buffer now
        with pytest.raises(ValueError, match="in flight"):
            es.detach()
        assert bytes(es.recv(timeout=5)) == b"b"
        fd = es.detach()
        es = SocketEnd(fd, side="again")
        ec.send_nowait(b"c")
        assert bytes(es.recv(timeout=5)) == b"c"
    finally:
        es.close()
        ec.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError, match="not a SOCK_STREAM"):
            SocketEnd(u.fileno())
    finally:
        u.close()


def test_stream_channel_frames_limits_and_ends():
    """The TLS channel's framing, over an in-memory stream pair."""
    from trio.testing import memory_stream_pair

    async def main():
        a, b = memory_stream_pair()
        ca = ipc.StreamChannel(a, side="a", max_frame=1000)
        cb = ipc.StreamChannel(b, side="b", initial=frame(_ext.dumps({"early": 1})), max_frame=100)
        assert await cb.recv() == {"early": 1}  # bytes read during the handshake come first
        await ca.send({"x": 1})
        ca.send_control({"ctl": 2})
        await ca.send({"x": 3})  # after the queued control message
        assert await cb.recv_some() == [{"x": 1}, {"ctl": 2}, {"x": 3}]
        with pytest.raises(ValueError, match="1 to 1000 bytes"):
            await ca.send({"big": b"x" * 2000})
        await ca.send({"mid": b"x" * 500})  # above b's limit
        with pytest.raises(trio.BrokenResourceError, match="frame of .* bytes, above the limit of 100"):
            await cb.recv()
        with pytest.raises(trio.BrokenResourceError, match="above the limit"):
            await cb.recv()
        a, b = memory_stream_pair()
        ca, cb = ipc.StreamChannel(a, side="a"), ipc.StreamChannel(b, side="b")
        await ca.send({"last": 1})
        await ca.aclose()
        assert await cb.recv() == {"last": 1}
        with pytest.raises(trio.EndOfChannel):
            await cb.recv()
        a, b = memory_stream_pair()
        cb = ipc.StreamChannel(b, side="b")
        await a.send_all(frame(b"\x01\x02")[:4])
        await a.aclose()
        with pytest.raises(trio.BrokenResourceError, match="middle of a message"):
            await cb.recv()
        a, b = memory_stream_pair()
        cb = ipc.StreamChannel(b, side="b")
        await a.aclose()
        with pytest.raises(trio.BrokenResourceError, match="without closing"):
            await cb.recv()

    run(main)


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def tls_contexts(private_dir):
    import ssl

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = os.path.join(private_dir, "cert.pem"), os.path.join(private_dir, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=subactor-test",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    return server, client


@pytest.mark.parametrize("key", [None, KEY], ids=["no-key", "key"])
def test_tls_round_trip(tls_contexts, key):
    import ssl

    server_ctx, client_ctx = tls_contexts
    echo = Echo()

    async def main():
        async with trio.open_nursery() as n:
            bound = await start(n, "tcp://127.0.0.1:0", echo, hello={"tls": True}, authkey=key,
                                ssl_context=server_ctx)
            conn = await ipc.connect(bound, {"who": "tls-client"}, authkey=key, ssl_context=client_ctx)
            assert conn.tls and conn.hello == {"tls": True} and conn.authenticated == (key is not None)
            ch = conn.channel()
            assert ch is conn.end and isinstance(ch, ipc.StreamChannel)
            for i in range(20):
                await ch.send({"i": i})
            for i in range(20):
                assert await ch.recv() == {"echo": {"i": i}}
            big = b"z" * (2 << 20)
            await ch.send({"big": big})
            assert (await ch.recv())["echo"]["big"] == big
            with pytest.raises(ValueError, match="a TLS connection"):
                conn.detach_fd()
            await conn.aclose()
            while not echo.ends:
                await trio.sleep(0.01)
            assert isinstance(echo.ends[0], trio.EndOfChannel)
            # A client that does not trust the certificate is refused.
            with pytest.raises(ipc.AuthenticationError, match="certificate"):
                await ipc.connect(bound, {}, authkey=key, ssl_context=ssl.create_default_context())
            # A plain client costs one connection.
            with pytest.raises((ConnectionError, TimeoutError)):
                await ipc.connect(bound, {}, authkey=key, timeout=1.0)
            await good_round_trip(bound, key, ssl_context=client_ctx)
            n.cancel_scope.cancel()

    run(main)
