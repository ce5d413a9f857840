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

from . import remote_discovery as rd
from .conftest import ROOT, child_argv

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


def run(main, limit=60):
    async def bounded():
        with trio.fail_after(limit):
            await main()

    trio.run(bounded)


def test_a_root_finds_and_calls_an_actor_of_another_program(programs):
    port = free_port()
    programs.daemon(port)
    other = programs.program(port, "alice")

    async def main():
        async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]) as root:
            assert not root.is_registrar
            assert root.accept_addrs and root.accept_addrs[0] != ("127.0.0.1", port)
            async with subactor.find_actor("alice") as portal:
                assert portal is not None
                assert await portal.run(rd.pid) == other.pid
                assert portal.actor is root   # tractor's Portal.actor: the actor using it
                assert portal.chan.raddr[0] == "127.0.0.1" and portal.chan.raddr[1] != port
                assert portal.chan.laddr[0] == "127.0.0.1"
                with pytest.raises(subactor.RemoteActorError, match="far away"):
                    await portal.run(rd.boom, msg="far away")
            async with subactor.find_actor("nobody") as portal:
                assert portal is None

    run(main)


def test_an_actor_calls_an_actor_of_another_program(programs):
    # The root connects for its actor and hands it the socket.
    port = free_port()
    programs.daemon(port)
    other = programs.program(port, "alice")

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
    port = free_port()
    programs.daemon(port)
    other = programs.program(port, "alice")

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
