"""Discovery across programs: separate Python processes on this machine
find each other's actors through a registrar (subactor.discovery._net).

Each other program is a child process this test starts and ends; the test
process's own root joins as a client (or the registrar). Every wait is
bounded, and each bound starts before what it bounds."""
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import trio

import subactor
from subactor import RemoteActorError

from . import remote_discovery as rd
from .conftest import ROOT, child_argv, run_bounded as run

MOD = rd.__name__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_line(proc, stream, want: str, timeout: float = 30.0) -> str:
    """Read ``stream`` until a line holding ``want`` (bounded)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([stream], [], [], 0)[0]:
            raise AssertionError(f"no {want!r} line within {timeout}s (exit {proc.poll()}): {''.join(seen)[-2000:]}")
        if select.select([stream], [], [], min(left, 0.5))[0]:
            line = stream.readline()
            if not line:   # its end: it exited
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                raise AssertionError(f"no {want!r} line (exit {proc.returncode}): {''.join(seen)[-2000:]}")
            seen.append(line)
            if want in line:
                return line


class Programs:
    """The other programs of a test, ended (and reaped) at its end."""

    def __init__(self):
        self.procs = []

    def daemon(self, port: int, *extra, env=None):
        proc = subprocess.Popen(
            [sys.executable, "-m", "subactor", "daemon", "--listen", f"tcp://127.0.0.1:{port}",
             "--enable-modules", MOD, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
            env={**os.environ, **(env or {})})
        self.procs.append(proc)
        wait_line(proc, proc.stderr, "serving")
        return proc

    def program(self, port: int, actor: str, wait: bool = True):
        """A program whose root registers at ``port`` and runs actor ``actor``."""
        code = f"""
            import sys, trio, subactor
            async def main():
                async with subactor.open_root_actor(name="prog", registry_addrs=[("127.0.0.1", {port})]):
                    async with subactor.open_nursery() as an:
                        await an.start_actor({actor!r}, enable_modules=[{MOD!r}])
                        print("ready", flush=True)
                        await trio.sleep_forever()
            try:
                trio.run(main)
            except KeyboardInterrupt:
                pass
        """
        proc = subprocess.Popen(child_argv(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=str(ROOT))
        self.procs.append(proc)
        if wait:
            wait_line(proc, proc.stdout, "ready")
        return proc

    def daemon_and_alice(self):
        """A daemon (the registrar) at a free port and a program running
        actor "alice" registered with it: (port, that program)."""
        port = free_port()
        self.daemon(port)
        return port, self.program(port, "alice")

    def end(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


@pytest.fixture
def programs():
    ps = Programs()
    try:
        yield ps
    finally:
        ps.end()




def test_a_root_finds_and_calls_an_actor_of_another_program(programs):
    port, other = programs.daemon_and_alice()

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]) as root:
            assert not root.is_registrar
            assert root.accept_addrs and root.accept_addrs[0] != ("127.0.0.1", port)
            async with subactor.find_actor("alice") as portal:
                assert portal is not None
                assert await portal.run(rd.pid) == other.pid
                assert portal.actor is root   # tractor's Portal.actor: the actor using it
                assert portal.chan.raddr.unwrap()[0] == "127.0.0.1" and portal.chan.raddr.unwrap()[1] != port
                assert portal.chan.laddr.unwrap()[0] == "127.0.0.1"
                with pytest.raises(subactor.RemoteActorError, match="far away"):
                    await portal.run(rd.boom, msg="far away")
            async with subactor.find_actor("nobody") as portal:
                assert portal is None

    run(main)


def test_an_actor_calls_an_actor_of_another_program(programs):
    # The root connects for its actor and hands it the socket.
    port, other = programs.daemon_and_alice()

    async def main():
        async with subactor.open_nursery(registry_addrs=[("127.0.0.1", port)]) as an:
            bob = await an.start_actor("bob", enable_modules=[MOD])
            assert await bob.run(rd.call_peer, name="alice", fn_name="pid") == other.pid
            await an.cancel()

    run(main)


def test_the_daemon_is_the_registrar_and_serves_its_modules(programs):
    port = free_port()
    daemon = programs.daemon(port, "--name", "keeper")

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
            async with subactor.find_actor("keeper") as portal:
                assert await portal.run(rd.pid) == daemon.pid
            async with subactor.get_registry() as reg:
                names = {k.split(".")[0] for k in await reg.run_from_ns("self", "get_registry")}
                assert reg.channel.raddr.unwrap() == ("127.0.0.1", port)   # its link to the daemon
            assert {"keeper", "root"} <= names

    run(main)


def test_the_first_root_at_the_address_is_the_registrar(programs):
    port = free_port()

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]) as root:
            assert root.is_registrar
            assert root.accept_addrs == [("127.0.0.1", port)]
            assert root.registry_addrs == [("127.0.0.1", port)]
            # It registers with us: this loop must run meanwhile.
            other = programs.program(port, "alice", wait=False)
            with trio.fail_after(30):
                while True:
                    await trio.lowlevel.wait_readable(other.stdout.fileno())
                    line = other.stdout.readline()
                    assert line, f"the program ended: {other.wait(5)} {other.stderr.read()}"
                    if "ready" in line:
                        break
            async with subactor.wait_for_actor("alice") as portal:
                assert await portal.run(rd.pid) == other.pid

    run(main)


def test_a_killed_program_fails_its_callers_and_leaves_the_registry(programs):
    port, other = programs.daemon_and_alice()

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
            async with subactor.find_actor("alice") as portal:
                async def kill_soon():
                    await trio.sleep(0.5)
                    other.send_signal(signal.SIGKILL)

                async with trio.open_nursery() as n:
                    n.start_soon(kill_soon)
                    with trio.fail_after(15):   # an error, never a hang
                        with pytest.raises(Exception) as info:
                            await portal.run(rd.sleep_forever)
                assert "alice" in str(info.value)
            # The registrar drops its entries as soon as its connection breaks.
            with trio.fail_after(15):
                while True:
                    async with subactor.find_actor("alice") as portal:
                        if portal is None:
                            break
                    await trio.sleep(0.1)

    run(main)


def test_a_root_with_the_wrong_key_is_refused(programs, monkeypatch):
    port = free_port()
    programs.daemon(port, env={"SUBACTOR_AUTHKEY": "the-right-key-0123456789"})
    monkeypatch.setenv("SUBACTOR_AUTHKEY", "a-wrong-key-0123456789abc")

    async def main():
        with pytest.raises(PermissionError):
            async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
                pass
        monkeypatch.setenv("SUBACTOR_AUTHKEY", "the-right-key-0123456789")
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]) as root:
            assert not root.is_registrar

    run(main)


def test_the_daemon_ends_quietly_on_ctrl_c(programs):
    port = free_port()
    daemon = programs.daemon(port)
    daemon.send_signal(signal.SIGINT)
    out, err = daemon.communicate(timeout=20)
    assert daemon.returncode == 130, err
    assert "Traceback" not in err
    assert "ended (Ctrl-C)" in err


def test_bad_input_to_the_daemon_and_the_root_gets_clear_errors():
    out = subprocess.run([sys.executable, "-m", "subactor", "daemon", "--listen", "ftp://x"],
                         capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert out.returncode == 2 and "ftp://x" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "subactor", "daemon", "--enable-modules", "no_such_mod_x"],
                         capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert out.returncode == 1 and "no_such_mod_x" in out.stderr and "Traceback" not in out.stderr

    async def main():
        with pytest.raises(ValueError, match="carrier-pigeon"):
            async with subactor.open_root_actor(enable_transports=["carrier-pigeon"]):
                pass
        with pytest.raises(TypeError, match="registry_addrs"):
            async with subactor.open_root_actor(registry_addrs=42):
                pass

    run(main)


def test_a_waiting_finder_finds_again_through_a_restarted_registrar(programs):
    port = free_port()
    first = programs.daemon(port)

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
            found = []

            async def finder():
                async with subactor.wait_for_actor("alice") as portal:
                    found.append(await portal.run(rd.pid))

            async with trio.open_nursery() as n:
                n.start_soon(finder)
                await trio.sleep(0.3)
                first.send_signal(signal.SIGKILL)   # the registrar dies...
                first.wait(10)
                programs.daemon(port)                # ...and another takes its address
                other = programs.program(port, "alice", wait=False)
            assert found == [other.pid]
            # This root registered again with the new registrar too.
            async with subactor.get_registry() as reg:
                names = {k.split(".")[0] for k in await reg.run_from_ns("self", "get_registry")}
            assert {"root", "alice", "daemon"} <= names, names

    run(main)


KEY = "remote-spawn-test-key-0123456789"


def test_a_remote_nursery_spawns_on_a_daemon(programs, monkeypatch):
    port = free_port()
    daemon = programs.daemon(port, env={"SUBACTOR_AUTHKEY": KEY})
    monkeypatch.setenv("SUBACTOR_AUTHKEY", KEY)
    host = f"tcp://127.0.0.1:{port}"

    async def main():
        async with subactor.open_nursery() as an:
            far = await an.start_actor("far", enable_modules=[MOD], host=host)
            proc = await an.start_actor("farproc", enable_modules=[MOD], host=host, backend="process")
            assert await far.run(rd.pid) == daemon.pid          # a subinterpreter there
            from . import remote_asyncio

            aio = await an.start_actor("faraio", enable_modules=[remote_asyncio.__name__], host=host,
                                       infect_asyncio=True)
            assert await aio.run(remote_asyncio.run_task_of, fn_name="aio_add", a=1, b=2) == 3
            ppid = await proc.run(rd.pid)
            assert ppid not in (daemon.pid, os.getpid())        # a process there
            with pytest.raises(RemoteActorError, match="over there"):
                await far.run(rd.boom, msg="over there")
            async with far.open_context(rd.ticker, n=5) as (ctx, first):
                assert first == "ready"
                async with ctx.open_stream() as stream:
                    await stream.send("a")
                    assert await stream.receive() == "far:a"
                    await stream.send("done")
                    assert [await stream.receive() for _ in range(5)] == list(range(5))
                assert await ctx.wait_for_result() == 1
            with trio.fail_after(15):
                await an.cancel()
            assert far.rung == 1 and proc.rung == 1 and aio.rung == 1   # each acknowledged its cancel
        # The daemon let them go: none is registered there any more.
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
            with trio.fail_after(15):
                while True:
                    async with subactor.get_registry() as reg:
                        names = {k.split(".")[0] for k in await reg.run_from_ns("self", "get_registry")}
                    if not {"far", "farproc", "faraio"} & names:
                        break
                    await trio.sleep(0.1)

    run(main)


def test_a_daemon_ends_the_actors_of_a_parent_that_died(programs, monkeypatch):
    port = free_port()
    programs.daemon(port, env={"SUBACTOR_AUTHKEY": KEY})
    monkeypatch.setenv("SUBACTOR_AUTHKEY", KEY)
    code = f"""
        import trio, subactor
        async def main():
            async with subactor.open_nursery() as an:
                p = await an.start_actor("orphan", enable_modules=[{MOD!r}], host="tcp://127.0.0.1:{port}")
                await p.run_from_ns({MOD!r}, "pid")
                print("ready", flush=True)
                await trio.sleep_forever()
        trio.run(main)
    """
    parent = subprocess.Popen(child_argv(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=str(ROOT), env={**os.environ, "SUBACTOR_AUTHKEY": KEY})
    programs.procs.append(parent)
    wait_line(parent, parent.stdout, "ready")

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
            async with subactor.find_actor("orphan") as p:
                assert p is not None
            parent.send_signal(signal.SIGKILL)
            # Its ladder's deadlines (1 s / 3 s by default) and some slack.
            with trio.fail_after(15):
                while True:
                    async with subactor.find_actor("orphan") as p:
                        if p is None:
                            break
                    await trio.sleep(0.1)

    run(main)


def test_a_daemon_refuses_to_spawn_for_an_unauthenticated_parent(programs):
    port = free_port()
    programs.daemon(port)

    async def main():
        async with subactor.open_nursery() as an:
            with pytest.raises(RuntimeError, match="authenticated"):
                await an.start_actor("nope", enable_modules=[MOD], host=f"tcp://127.0.0.1:{port}")

    run(main)


def test_a_program_killed_mid_stream_fails_the_stream(programs):
    port, other = programs.daemon_and_alice()

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
            async with subactor.find_actor("alice") as portal:
                with trio.fail_after(15):   # an error, never a hang
                    with pytest.raises(Exception) as info:
                        async with portal.open_context(rd.ticker, n=0) as (ctx, first):
                            async with ctx.open_stream() as stream:
                                for i in range(1000):
                                    await stream.send(i)
                                    assert await stream.receive() == f"alice:{i}"
                                    if i == 5:
                                        other.send_signal(signal.SIGKILL)
        assert "alice" in str(info.value), repr(info.value)

    run(main)


def test_run_daemon_serves_its_modules(programs):
    port = free_port()
    code = f"""
        import sys, subactor
        print("ready", flush=True)
        try:
            subactor.run_daemon([{MOD!r}], name="rd", registry_addrs=[("127.0.0.1", {port})])
        except KeyboardInterrupt:
            pass
    """
    proc = subprocess.Popen(child_argv(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT))
    programs.procs.append(proc)
    wait_line(proc, proc.stdout, "ready")

    async def main():
        with trio.fail_after(30):
            while True:   # until it listens (a bare TCP connect: no root here yet)
                try:
                    await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await trio.sleep(0.1)
            async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]) as root:
                assert not root.is_registrar
                async with subactor.wait_for_actor("rd") as portal:
                    assert await portal.run(rd.pid) == proc.pid

    run(main)
    with pytest.raises(TypeError, match="enable_moduls"):
        subactor.run_daemon([MOD], enable_moduls=[MOD])


@pytest.fixture
def tls_env(tmp_path):
    """SUBACTOR_TLS_* for a self-signed certificate that is its own CA."""
    import shutil

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=subactor-test"],
                   check=True, capture_output=True, timeout=30)
    return {"SUBACTOR_TLS_CERT": str(cert), "SUBACTOR_TLS_KEY": str(key), "SUBACTOR_TLS_CA": str(cert)}


def test_discovery_and_remote_spawn_over_mutual_tls(programs, monkeypatch, tls_env):
    port = free_port()
    daemon = programs.daemon(port, env=tls_env)
    for k, v in tls_env.items():
        monkeypatch.setenv(k, v)
    other = programs.program(port, "alice")   # inherits the TLS environment

    async def main():
        async with subactor.open_nursery(registry_addrs=[("127.0.0.1", port)]) as an:
            async with subactor.find_actor("alice") as portal:        # root -> actor: relayed
                assert type(portal.chan).__name__ == "StreamChannel"
                assert await portal.run(rd.pid) == other.pid
                with pytest.raises(RemoteActorError, match="tls"):
                    await portal.run(rd.boom, msg="tls")
            bob = await an.start_actor("bob", enable_modules=[MOD])   # actor -> actor: relayed by the root
            assert await bob.run(rd.call_peer, name="alice", fn_name="pid") == other.pid
            far = await an.start_actor("far", enable_modules=[MOD], host=f"tcp://127.0.0.1:{port}")
            assert await far.run(rd.pid) == daemon.pid                 # spawned over TLS (no HMAC key)
            with trio.fail_after(15):
                await an.cancel()

    run(main)

    # Without the certificate, the daemon does not let a root in.
    for k in tls_env:
        monkeypatch.delenv(k)

    async def refused():
        with pytest.raises((PermissionError, ConnectionError, RuntimeError)):
            async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
                pass

    run(refused)
