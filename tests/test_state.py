"""Runtime state (src/subactor/_state.py, _root.py): where a runtime is,
open_root_actor, the actor record's attributes, its lifetime stack, and the
actor-configuring keywords of the nursery."""
import os
import subprocess
import sys
import textwrap

import pytest
import trio

import subactor
import subactor.runtime
from subactor import NoRuntime, RemoteActorError

from . import remote, remote_nursery
from .conftest import ROOT

MOD = remote.__name__
NMOD = remote_nursery.__name__
BACKENDS = ["subint", "process"]


# --- where a runtime is ---------------------------------------------------------


def test_no_runtime_outside_a_root_block():
    with pytest.raises(NoRuntime, match="open_root_actor"):
        subactor.current_actor()
    assert subactor.current_actor(err_on_no_runtime=False) is None
    assert isinstance(NoRuntime("x"), RuntimeError)

    async def main():
        # Inside trio.run but before any root block: still no runtime.
        assert subactor.current_actor(err_on_no_runtime=False) is None
        async with subactor.open_nursery():
            implicit = subactor.current_actor()
            assert implicit.is_root and implicit.name == "root"
        with pytest.raises(NoRuntime, match="has ended"):
            subactor.current_actor()
        async with subactor.open_root_actor() as root:
            assert subactor.current_actor() is root and root is not implicit
            async with subactor.open_nursery():
                assert subactor.current_actor() is root  # the nursery reuses the open root
        assert subactor.current_actor(err_on_no_runtime=False) is None

    trio.run(main)


def test_open_root_actor_keywords():
    async def main():
        async with subactor.open_root_actor(name="boss", registry_addrs=[("127.0.0.1", 1616)],
                                            enable_modules=[MOD], start_method="trio", hide_tb=False) as root:
            assert root.name == "boss" and root.uid[0] == "boss"
            assert root.enable_modules == [MOD]
            assert subactor.get_runtime_vars()["_registry_addrs"] == [("127.0.0.1", 1616)]
            with pytest.raises(subactor._exceptions.RuntimeFailure, match="already open"):
                async with subactor.open_root_actor():
                    pass
        with pytest.raises(TypeError, match="'registy_addrs'.*did you mean 'registry_addrs'"):
            async with subactor.open_root_actor(registy_addrs=[]):
                pass
        with pytest.raises(TypeError, match="debug_mode=.*must be a bool"):
            async with subactor.open_root_actor(debug_mode="yes"):
                pass
        async with subactor.open_root_actor(debug_mode=True):
            assert subactor.debug_mode() is True
            assert subactor.get_runtime_vars()["_debug_mode"] is True
        assert subactor.debug_mode() is False
        with pytest.raises(ValueError, match="loglevel"):
            async with subactor.open_root_actor(loglevel="no-such-level"):
                pass
        with pytest.raises(TypeError, match="name"):
            async with subactor.open_root_actor(name=""):
                pass
        assert subactor.current_actor(err_on_no_runtime=False) is None

    trio.run(main)


def test_a_second_root_is_a_runtime_failure_in_the_root_and_in_an_actor():
    from subactor._exceptions import RuntimeFailure

    async def in_root():
        async with subactor.open_nursery():
            with pytest.raises(RuntimeFailure, match="already open"):
                async with subactor.open_root_actor():
                    pass

    async def in_actor():
        async with subactor.open_nursery() as an:
            p = await an.start_actor("rooty", enable_modules=[NMOD])
            with pytest.raises(RemoteActorError) as info:
                async with p.open_context(remote_nursery.open_a_root_here):
                    pass
            assert info.value.boxed_type is RuntimeFailure
            assert "in an actor" in str(info.value)
            await p.cancel_actor()

    trio.run(in_root)
    trio.run(in_actor)


def test_the_nursery_says_whether_it_started_the_runtime():
    async def main():
        async with subactor.open_nursery() as an:
            assert an._implicit_runtime_started is True
            async with subactor.open_nursery() as inner:
                assert inner._implicit_runtime_started is False
        async with subactor.open_root_actor():
            async with subactor.open_nursery() as an:
                assert an._implicit_runtime_started is False

    trio.run(main)


def test_ipc_server_has_peers_while_an_actor_is_connected():
    async def main():
        async with subactor.open_root_actor() as root:
            assert not root.ipc_server.has_peers()
            async with subactor.open_nursery() as an:
                p = await an.start_actor("peer", enable_modules=[MOD])
                assert root.ipc_server.has_peers()
                await p.cancel_actor()
            with trio.fail_after(30):
                while root.ipc_server.has_peers():
                    await trio.sleep(0.01)
            assert root.ipc_server.accept_addrs == []

    trio.run(main)


def test_runtime_vars_under_tractors_private_path():
    assert subactor.runtime._state._runtime_vars["_is_root"] is True
    assert subactor.runtime._state._runtime_vars["_debug_mode"] is False


def test_load_module_from_path_loads_a_package_its_submodules_import_from(tmp_path, monkeypatch):
    from subactor._code_load import load_module_from_path

    pkg = tmp_path / "pathpkg_x"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "sub.py").write_text("from pathpkg_x import VALUE\nDOUBLE = VALUE * 2\n")
    monkeypatch.delitem(sys.modules, "pathpkg_x", raising=False)
    monkeypatch.delitem(sys.modules, "pathpkg_x.sub", raising=False)
    mod = load_module_from_path(pkg / "__init__.py", module_name="pathpkg_x")
    assert mod.VALUE == 1 and sys.modules["pathpkg_x"] is mod
    from pathpkg_x import sub  # noqa: E402

    assert sub.DOUBLE == 2
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_module_from_path(tmp_path / "missing.py")


def test_root_lifetime_stack_is_closed_at_the_end_also_after_an_error():
    closed = []

    async def main():
        async with subactor.open_root_actor() as root:
            root.lifetime_stack.callback(closed.append, "clean")
        with pytest.raises(KeyError):
            async with subactor.open_nursery():
                subactor.current_actor().lifetime_stack.callback(closed.append, "error")
                raise KeyError("x")

    trio.run(main)
    assert closed == ["clean", "error"]


def test_runtime_module_re_exports_the_state_functions():
    for name in ["current_actor", "is_root_process", "open_root_actor", "get_runtime_vars", "debug_mode"]:
        assert getattr(subactor.runtime, name) is getattr(subactor, name)
    assert subactor.debug_mode() is False
    assert subactor.is_root_process() is True


def test_no_runtime_in_a_pool_worker():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_worker_pool(1) as pool:
                with pytest.raises(Exception, match="worker of the pool"):
                    await pool.run_sync(subactor.current_actor)
                assert await pool.run_sync(subactor.is_root_process) is False

    trio.run(main)


# --- the actor record ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_actor_record_in_the_root_and_in_an_actor(backend):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(backend=backend) as an:
                root = subactor.current_actor()
                assert root.is_registrar and root.aid.uid == root.uid and root.aid.pid == os.getpid()
                assert subactor.Actor.msg_buffer_size == 2**6 and root.loglevel is None
                assert subactor.get_runtime_vars()["_is_root"] is True
                p = await an.start_actor("who", enable_modules=[NMOD])
                me = await p.run(remote_nursery.identity)
                await p.cancel_actor()
        assert me["name"] == "who" and tuple(me["uid"]) == p.uid
        name, uuid, uid, pid = me["aid"]
        assert (name, uuid) == p.uid and tuple(uid) == p.uid
        assert pid == me["pid"] and (pid != os.getpid()) == (backend == "process")
        assert me["is_root"] is False and me["is_registrar"] is False and me["is_root_process"] is False
        assert me["loglevel"] is None and me["msg_buffer_size"] == 64
        assert me["vars"]["_is_root"] is False and me["vars"]["_debug_mode"] is False

    trio.run(main)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fail", [True, False], ids=["failing", "cancelled"])
def test_actor_lifetime_stack_is_closed_when_it_ends(tmp_path, backend, fail):
    path = tmp_path / "child.txt"
    path.touch()

    async def main():
        with trio.fail_after(60):
            with trio.move_on_after(1.0 if not fail else 30) as scope:
                async with subactor.open_nursery(backend=backend) as an:
                    await an.run_in_actor(remote_nursery.clean_up_at_the_end, path=str(path), fail=fail)
        assert scope.cancelled_caught is not fail

    if fail:
        with pytest.raises(RemoteActorError, match="failing on purpose"):
            trio.run(main)
    else:
        trio.run(main)
    assert not path.exists()


def test_sync_only_actor_lifetime_stack_is_closed_when_cancelled(tmp_path):
    path = tmp_path / "child.txt"
    path.touch()

    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                p = await an.start_actor("sync", enable_modules=[NMOD])
                assert await p.run(remote_nursery.sync_clean_up_at_the_end, path=str(path)) is True
                assert path.exists()
                await p.cancel_actor()
            assert not path.exists()

    trio.run(main)


# --- actor-configuring keywords ------------------------------------------------


def test_actor_configuring_keywords_are_not_passed_to_the_function():
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery(name="root", registry_addrs=[]) as an:
                p = await an.run_in_actor(remote.add, a=1, b=2, loglevel="debug", infect_asyncio=False,
                                          bind_addrs=[("127.0.0.1", 0)], inherit_parent_main=True,
                                          proc_kwargs={}, rpc_module_paths=[MOD])
                s = await an.start_actor("s", enable_modules=[MOD], loglevel="info", debug_mode=False,
                                         enable_transports=["tcp"], bind_addrs=[], infect_asyncio=False)
                assert await s.run(remote.add, a=2, b=2) == 4
                await s.cancel_actor()
            assert await p.wait_for_result() == 3

    trio.run(main)


@pytest.mark.parametrize("kwargs, err, match", [
    ({"debug_mode": "on"}, TypeError, "debug_mode=.*must be a bool"),
    ({"infect_asyncio": "yes"}, TypeError, "infect_asyncio=.*must be a bool"),
    ({"proc_kwargs": {"env": {}}}, NotImplementedError, "proc_kwargs"),
    ({"proc_kwargs": []}, TypeError, "proc_kwargs"),
    ({"inherit_parent_main": "no"}, TypeError, "inherit_parent_main"),
    ({"enable_transports": "tcp"}, TypeError, "enable_transports"),
    ({"bind_addrs": "127.0.0.1:0"}, TypeError, "bind_addrs"),
])
def test_start_actor_refuses_what_it_cannot_do(kwargs, err, match):
    async def main():
        with trio.fail_after(60):
            async with subactor.open_nursery() as an:
                with pytest.raises(err, match=match):
                    await an.start_actor("x", enable_modules=[MOD], **kwargs)
                assert not an._children

    trio.run(main)


def test_misspelled_and_unsupported_keywords_are_named():
    async def main():
        with trio.fail_after(60):
            with pytest.raises(TypeError, match="'lgolevel'.*did you mean 'loglevel'"):
                async with subactor.open_nursery(lgolevel="info"):
                    pass
            with pytest.raises(TypeError, match="debug_mode"):
                async with subactor.open_nursery(debug_mode=1):
                    pass
            async with subactor.open_nursery() as an:
                with pytest.raises(TypeError, match="infect_asyncio"):
                    await an.run_in_actor(remote.add, a=1, b=2, infect_asyncio=1)
                with pytest.raises(TypeError, match="lgolevel"):
                    await an.start_actor("x", enable_modules=[MOD], lgolevel="info")
                assert not an._children

    trio.run(main)


_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import trio, subactor
from tests import remote_nursery

def double(x):
    return 2 * x

async def main():
    async with subactor.open_nursery() as an:
        p = await an.run_in_actor(double, x=21)
        print("inherited", await p.wait_for_result())
        q = await an.start_actor("isolated", enable_modules=["__main__", "tests.remote_nursery"],
                                 inherit_parent_main=False)
        print("data", (await q.run(remote_nursery.identity))["parent_main"])
        try:
            await q.run(double, x=1)
        except subactor.RemoteActorError as exc:
            print("refused", exc.boxed_type.__name__, "inherit_parent_main=False" in str(exc))
        await q.cancel_actor()

if __name__ == "__main__":
    trio.run(main)
"""


def test_inherit_parent_main_false_keeps_the_parents_main_out(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(root=str(ROOT))))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == ["inherited 42", "data {}", "refused ModuleNotFoundError True"], (lines, out.stderr)
