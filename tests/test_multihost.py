"""Two hosts: Linux network namespaces joined by a veth pair, made here
with ``ip netns`` (as root) and removed at the end. A daemon runs in one,
programs in the other; they reach each other only through the namespace
addresses, authenticated with a shared key (a non-loopback listener
refuses to start without one). Every step is bounded."""
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from .conftest import CHILD_PRELUDE, ROOT

MOD = "tests.remote_discovery"
KEY = "multi-host-test-key-" + uuid.uuid4().hex


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


@pytest.fixture
def hosts():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns) to make network namespaces")
    tag = uuid.uuid4().hex[:6]
    a, b = f"sa-a-{tag}", f"sa-b-{tag}"
    net = f"10.{200 + os.getpid() % 50}.{int(tag[:2], 16)}"
    addr_a, addr_b = f"{net}.1", f"{net}.2"
    made = []
    try:
        for ns in (a, b):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", f"va-{tag}", "type", "veth", "peer", "name", f"vb-{tag}")
        _ip("link", "set", f"va-{tag}", "netns", a)
        _ip("link", "set", f"vb-{tag}", "netns", b)
        for ns, dev, addr in ((a, f"va-{tag}", addr_a), (b, f"vb-{tag}", addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield {"a": (a, addr_a), "b": (b, addr_b)}
    finally:
        for ns in made:
            _ip("netns", "del", ns, check=False)   # takes its end of the veth pair with it


def _in_ns(ns: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(ROOT), env={**os.environ, "SUBACTOR_AUTHKEY": KEY, **(env or {})})


def _code(src: str) -> list[str]:
    return [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(src)]


def _wait_for(proc, want: str, timeout: float = 30.0) -> None:
    import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stderr, proc.stdout], [], [], 0.5)[0]:
            for stream in (proc.stderr, proc.stdout):
                if select.select([stream], [], [], 0)[0]:
                    line = stream.readline()
                    if want in line:
                        return
                    if not line and proc.poll() is not None:
                        raise AssertionError(f"it ended (exit {proc.returncode}) before {want!r}")
    raise AssertionError(f"no {want!r} within {timeout}s")


def _end(*procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(2)
    for p in procs:
        try:
            p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


def test_a_program_on_one_host_calls_actors_on_another(hosts):
    (ns_a, addr_a), (ns_b, addr_b) = hosts["a"], hosts["b"]
    port = 47000 + os.getpid() % 1000
    daemon = _in_ns(ns_a, [sys.executable, "-m", "subactor", "daemon", "--listen", f"tcp://{addr_a}:{port}",
                           "--enable-modules", MOD, "--name", "keeper"])
    program = None
    try:
        _wait_for(daemon, "serving")
        # A program on host A with an actor, registered with the daemon.
        program = _in_ns(ns_a, _code(f"""
            import trio, subactor
            async def main():
                async with subactor.open_root_actor(registry_addrs=[({addr_a!r}, {port})],
                                                    tpt_bind_addrs=[({addr_a!r}, 0)]):
                    async with subactor.open_nursery() as an:
                        await an.start_actor("alice", enable_modules=[{MOD!r}])
                        print("ready", flush=True)
                        await trio.sleep_forever()
            try:
                trio.run(main)
            except KeyboardInterrupt:
                pass
        """))
        _wait_for(program, "ready")
        # Host B: find both, call them; each answers with its own netns.
        out = subprocess.run(["ip", "netns", "exec", ns_b, *_code(f"""
            import os, trio, subactor
            from tests import remote_discovery as rd
            async def main():
                with trio.fail_after(30):
                    async with subactor.open_root_actor(registry_addrs=[({addr_a!r}, {port})],
                                                        tpt_bind_addrs=[({addr_b!r}, 0)]) as root:
                        assert not root.is_registrar
                        assert root.accept_addrs[0][0] == {addr_b!r}
                        async with subactor.find_actor("alice") as p:
                            print("alice", await p.run(rd.netns))
                        async with subactor.find_actor("keeper") as p:
                            print("keeper", await p.run(rd.netns))
                        async with subactor.open_nursery() as an:
                            bob = await an.start_actor("bob", enable_modules=[rd.__name__])
                            print("bob->alice", await bob.run(rd.call_peer, name="alice", fn_name="netns"))
                            await an.cancel()
                print("here", rd.netns())
            trio.run(main)
        """)], capture_output=True, text=True, timeout=90, cwd=str(ROOT),
            env={**os.environ, "SUBACTOR_AUTHKEY": KEY})
        assert out.returncode == 0, out.stderr
        got = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        assert got["alice"] == got["keeper"] == got["bob->alice"] != got["here"], got
        # A program on host B with the wrong key is refused.
        bad = subprocess.run(["ip", "netns", "exec", ns_b, *_code(f"""
            import trio, subactor
            async def main():
                with trio.fail_after(30):
                    async with subactor.open_root_actor(registry_addrs=[({addr_a!r}, {port})],
                                                        tpt_bind_addrs=[({addr_b!r}, 0)]):
                        pass
            try:
                trio.run(main)
            except PermissionError as exc:
                print("refused:", exc)
        """)], capture_output=True, text=True, timeout=60, cwd=str(ROOT),
            env={**os.environ, "SUBACTOR_AUTHKEY": "a-wrong-key-" + uuid.uuid4().hex})
        assert bad.returncode == 0 and "refused:" in bad.stdout, (bad.stdout, bad.stderr)
    finally:
        _end(*(p for p in (program, daemon) if p is not None))
