"""subactor.log: tractor's levels and names over the stdlib's logging, the
console handler, and an actor's log level (loglevel=, SUBACTOR_LOGLEVEL)."""
import io
import logging
import os

import pytest
import trio

import subactor
from subactor import log

from . import remote_trionics
from .conftest import run_child

MOD = remote_trionics.__name__


@pytest.fixture
def records():
    """Records reaching the ``subactor`` logger tree, at every level; the
    tree's level and handlers are put back afterwards."""
    root = logging.getLogger("subactor")
    saved = root.level, list(root.handlers), root.propagate
    got = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append(record)

    keep = Keep()
    root.addHandler(keep)
    root.setLevel(1)
    yield got
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    root.propagate = saved[2]


def test_extra_levels_are_registered_with_methods():
    expected = {"TRANSPORT": 5, "RUNTIME": 15, "DEVX": 17, "IO": 21, "CANCEL": 22, "PDB": 500}
    for name, value in expected.items():
        assert log.CUSTOM_LEVELS[name] == value
        assert logging.getLevelName(value) == name
        assert callable(getattr(log.StackLevelAdapter, name.lower()))
        assert log.STD_PALETTE[name] and log.BOLD_PALETTE["bold"][name].startswith("bold_")


def test_each_level_method_emits_at_its_level_naming_the_callers_line(records):
    lg = log.get_logger("levels")
    for name, value in [("transport", 5), ("runtime", 15), ("devx", 17), ("io", 21), ("cancel", 22),
                        ("pdb", 500), ("debug", 10), ("info", 20), ("warning", 30), ("error", 40),
                        ("critical", 50)]:
        records.clear()
        getattr(lg, name)(f"at {name}")
        assert [r.levelno for r in records] == [value], name
        assert records[0].filename == "test_log.py" and records[0].funcName.startswith("test_each"), name
    records.clear()
    lg.log(22, "numeric %s", "arg")
    lg.log("cancel", "by name")
    assert [(r.levelno, r.getMessage(), r.filename) for r in records] == [
        (22, "numeric arg", "test_log.py"), (22, "by name", "test_log.py")]
    records.clear()
    try:
        raise KeyError("k")
    except KeyError:
        lg.exception("failed")
    assert records[0].exc_info[0] is KeyError and records[0].filename == "test_log.py"


def test_add_log_level_adds_a_method_and_a_name(records):
    try:
        log.add_log_level("XTEST", 19, "blue")
        assert logging.getLevelName(19) == "XTEST" and log.STD_PALETTE["XTEST"] == "blue"
        log.get_logger("x").xtest("plugged")
        assert [r.levelno for r in records] == [19]
        with pytest.raises(ValueError, match="colour"):
            log.add_log_level("YTEST", 18, "mauve")
        with pytest.raises(ValueError, match="positive int"):
            log.add_log_level("YTEST", 0)
    finally:
        log.CUSTOM_LEVELS.pop("XTEST", None)
        log.STD_PALETTE.pop("XTEST", None)
        log.BOLD_PALETTE["bold"].pop("XTEST", None)
        if hasattr(log.StackLevelAdapter, "xtest"):
            delattr(log.StackLevelAdapter, "xtest")


def test_records_carry_the_actors_name_uid_and_task(records):
    lg = log.get_logger("fields")
    lg.info("sync")  # no runtime open: the main interpreter is "root", without a uid yet
    assert (records[0].actor_name, records[0].actor_uid) == ("root", "-")

    async def main():
        async with subactor.open_root_actor() as me:
            lg.info("in trio")
        return me

    me = trio.run(main)
    assert (records[1].actor_name, records[1].actor_uid) == me.uid
    assert records[1].task == "__main__.main" or records[1].task.endswith("main")
    # Records of plain loggers get them from the console handler's filter.
    rec = logging.LogRecord("subactor.plain", 20, __file__, 1, "plain", None, None)
    log.ActorFilter().filter(rec)
    assert (rec.actor_name, rec.actor_uid) == ("root", "-")  # after the runtime's end


def test_logger_names():
    assert log.get_logger().logger.name == "subactor.tests"  # the caller's package
    assert log.get_logger(mk_sublog=False).logger.name == "subactor"
    assert log.get_logger("transport").logger.name == "subactor.transport"
    assert log.get_logger("subactor.a.b").logger.name == "subactor.a.b"
    assert log.get_logger("tractor.a").logger.name == "subactor.a"
    assert log.get_logger("tractor").logger.name == "subactor"
    # get_logger(__name__) in a module: its package's logger
    assert log.get_logger(__name__).logger.name == "subactor.tests"
    assert log.get_logger(pkg_name="pylib", mk_sublog=False).logger.name == "pylib"
    assert log.get_logger(pkg_name="pylib", name="pylib.sub.mod").logger.name == "pylib.sub.mod"
    ns = {"__name__": "dynpkg.plugin", "__package__": "dynpkg", "log": log}
    exec("lg = log.get_logger(pkg_name='dynpkg')", ns)   # a module that is not in sys.modules
    assert ns["lg"].logger.name == "dynpkg"
    ns = {"__name__": "dynpkg.sub", "__package__": "dynpkg.sub", "log": log}
    exec("lg = log.get_logger(pkg_name='dynpkg')", ns)   # a sub-package's __init__
    assert ns["lg"].logger.name == "dynpkg.sub"
    own = logging.getLogger("elsewhere")
    assert log.get_logger(logger=own).logger is own
    with pytest.raises(TypeError, match="name must be a str"):
        log.get_logger(3)


def test_get_console_log_sets_the_level_and_one_handler():
    root = logging.getLogger("subactor")
    saved = root.level, list(root.handlers)
    try:
        assert log.get_console_log() .logger is root  # no level: nothing changes
        assert root.handlers == saved[1]
        lg = log.get_console_log("cancel")
        assert lg.logger is root and root.level == 22 and lg.level == "cancel"
        log.get_console_log("INFO")
        ours = [h for h in root.handlers if getattr(h, "_subactor_console", False)]
        assert len(ours) == 1 and root.level == 20
        assert lg.at_least_level("info") and not lg.at_least_level("runtime")
        with pytest.raises(ValueError, match="unknown log level 'loud'"):
            log.get_console_log("loud")
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("env, stream, colour", [
    ({}, _Tty(), True),
    ({}, io.StringIO(), False),
    ({"NO_COLOR": "1"}, _Tty(), False),
    ({"TERM": "dumb"}, _Tty(), False),
    ({"FORCE_COLOR": "1"}, io.StringIO(), True),
])
def test_colour_only_on_a_terminal_that_wants_it(monkeypatch, env, stream, colour):
    for var in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert log._wants_colour(stream) is colour
    rec = logging.LogRecord("subactor", 40, __file__, 7, "msg", None, None)
    log.ActorFilter().filter(rec)
    text = log._Formatter(colour).format(rec)
    assert ("\x1b[" in text) is colour
    assert "ERROR" in text and "msg" in text and rec.actor_name in text


def test_the_console_handler_writes_to_the_current_stderr(monkeypatch):
    handler = log._console_handler()
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    rec = logging.LogRecord("subactor", 50, __file__, 1, "to stderr", None, None)
    assert handler.filter(rec)
    handler.handle(rec)
    assert "to stderr" in buf.getvalue()


def test_get_loglevel_and_check_loglevel(monkeypatch):
    monkeypatch.delenv("SUBACTOR_LOGLEVEL", raising=False)
    assert log.get_loglevel() == "ERROR"  # no runtime open here: no actor's level
    monkeypatch.setenv("SUBACTOR_LOGLEVEL", "devx")
    assert log.get_loglevel() == "devx"
    assert log.check_loglevel("Cancel") == "Cancel" and log.check_loglevel(7) == 7
    assert log.check_loglevel(None) is None
    with pytest.raises(TypeError, match="loglevel"):
        log.check_loglevel(True)
    with pytest.raises(ValueError, match="loglevel: unknown log level"):
        log.check_loglevel("verbose")


def test_parse_logspec():
    assert log.parse_logspec(False) == {}
    assert log.parse_logspec(True) == {None: "cancel"}
    assert log.parse_logspec("info") == {None: "info"}
    assert log.parse_logspec("a:info, b.c:debug") == {"a": "info", "b.c": "debug"}
    with pytest.raises(ValueError, match="not <sub-logger>:<level>"):
        log.parse_logspec("a:info,debug")
    with pytest.raises(ValueError, match="without it"):
        log.parse_logspec("subactor.a:info")
    with pytest.raises(ValueError, match="unknown log level"):
        log.parse_logspec("a:chatty")


# --- an actor's level ---------------------------------------------------------


def run(fn):
    async def bounded():
        with trio.fail_after(60):
            await fn()

    trio.run(bounded)


@pytest.mark.parametrize("backend", ["subint", "process"])
def test_loglevel_reaches_the_actor(backend):
    async def main():
        async with subactor.open_nursery(backend=backend) as an:
            # The level is the actor's from its start; it takes effect when
            # the actor's code first imports subactor.log, and an actor that
            # never logs imports no logging.
            p = await an.start_actor("leveled", enable_modules=[MOD], loglevel="cancel")
            assert await p.run(remote_trionics.loglevel_info) == ["cancel", False, None]
            assert await p.run(remote_trionics.loglevel_info, use_log=True) == ["cancel", False, "CANCEL"]
            await p.cancel_actor()
            p = await an.run_in_actor(remote_trionics.loglevel_info, use_log=True, loglevel="cancel")
            assert await p.wait_for_result() == ["cancel", False, "CANCEL"]
            p = await an.start_actor("quiet", enable_modules=[MOD])
            # No level asked for: importing subactor.log sets none (logging's default).
            assert await p.run(remote_trionics.loglevel_info) == [None, False, None]
            assert await p.run(remote_trionics.loglevel_info, use_log=True) == [None, False, "WARNING"]
            await p.cancel_actor()

    run(main)


def test_the_nurserys_level_is_the_default_and_children_inherit_it():
    # In a child process: the root's own level is set too.
    r = run_child(f"""
        import trio, subactor
        from tests import remote_trionics as rt

        async def main():
            with trio.fail_after(60):
                async with subactor.open_nursery(loglevel="runtime") as an:
                    assert subactor.current_actor().loglevel == "runtime"
                    p = await an.run_in_actor(rt.loglevel_info, use_log=True)
                    print(await p.wait_for_result())
                    p = await an.run_in_actor(rt.loglevel_info, use_log=True, loglevel="debug")
                    print(await p.wait_for_result())

        trio.run(main)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["['runtime', False, 'RUNTIME']", "['debug', False, 'DEBUG']"]


def test_the_environment_overrides_the_level():
    r = run_child("""
        import trio, subactor
        from tests import remote_trionics as rt

        async def main():
            with trio.fail_after(60):
                async with subactor.open_nursery() as an:
                    p = await an.run_in_actor(rt.loglevel_info, use_log=True, loglevel="debug")
                    print(await p.wait_for_result())
                    p = await an.run_in_actor(rt.loglevel_info, use_log=True, backend="process")
                    print(await p.wait_for_result())
                    print(subactor.current_actor().loglevel)

        trio.run(main)
    """, env={"SUBACTOR_LOGLEVEL": "warning"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["['warning', False, 'WARNING']"] * 2 + ["warning"]


def test_a_bad_level_is_refused_before_the_actor_starts():
    async def main():
        async with subactor.open_nursery() as an:
            with pytest.raises(ValueError, match="loglevel: unknown log level 'chatty'"):
                await an.start_actor("bad", enable_modules=[MOD], loglevel="chatty")
            with pytest.raises(TypeError, match="loglevel"):
                await an.run_in_actor(remote_trionics.loglevel_info, loglevel=["info"])
        with pytest.raises(ValueError, match="loglevel"):
            async with subactor.open_nursery(loglevel="nope"):
                pass

    run(main)
    r = run_child("""
        import trio, subactor
        from tests import remote_trionics as rt

        async def main():
            with trio.fail_after(60):
                async with subactor.open_nursery() as an:
                    await an.run_in_actor(rt.loglevel_info)

        trio.run(main)
    """, env={"SUBACTOR_LOGLEVEL": "loudest"})
    assert r.returncode != 0 and "SUBACTOR_LOGLEVEL: unknown log level 'loudest'" in r.stderr


def test_an_actors_records_on_stderr_name_it():
    r = run_child("""
        import trio, subactor
        from tests import remote_trionics as rt

        async def main():
            with trio.fail_after(60):
                async with subactor.open_nursery() as an:
                    for backend in ("subint", "process"):
                        p = await an.run_in_actor(rt.log_at, level="cancel", msg="hello-" + backend,
                                                  loglevel="cancel", name="talker-" + backend, backend=backend)
                        print(*await p.wait_for_result())

        trio.run(main)
    """, env={"NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        name, uid = line.split()
        backend = name.split("-")[1]
        ours = [ln for ln in r.stderr.splitlines() if f"hello-{backend}" in ln]
        assert len(ours) == 1, r.stderr
        assert f"({name}[{uid[:8]}]" in ours[0] and "[CANCEL]" in ours[0] and "remote_trionics.py" in ours[0]
    assert "Exception ignored" not in r.stderr  # no dummy thread left by logging in a subinterpreter


def test_import_subactor_does_not_import_logging():
    r = run_child("import sys, subactor; print('logging' in sys.modules)")
    assert r.returncode == 0 and r.stdout.strip() == "False", (r.stdout, r.stderr)
    assert not os.environ.get("SUBACTOR_LOGLEVEL")


def test_public_submodules_load_on_first_use():
    r = run_child("""
        import sys, subactor
        assert 'subactor.log' not in sys.modules and 'subactor.trionics' not in sys.modules
        print(subactor.log.get_logger().logger.name, subactor.trionics.collapse_eg.__module__)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["subactor.__main__", "subactor.trionics._eg"]


def test_the_nursery_logs_each_actors_life_and_its_ladder():
    # Spawn and end at runtime, each rung with its timing at cancel, an
    # abandon at warning naming what the actor was stuck in.
    out = run_child("""
        import trio, subactor
        from subactor import log
        log.get_console_log("runtime")
        async def main():
            with trio.fail_after(30):
                async with subactor.open_nursery(grace=0.3, kill_after=0.8) as an:
                    await an.start_actor("idle", enable_modules=["tests.helpers"])
                    spinner = await an.start_actor("spinner", enable_modules=["tests.helpers"])
                    blocked = await an.start_actor("blocked", enable_modules=["tests.remote"])
                    async def call(p, fn):
                        try:
                            await p.run_from_ns(p.name == "blocked" and "tests.remote" or "tests.helpers", fn)
                        except subactor.ActorNotAvailable:
                            pass
                    async with trio.open_nursery() as n:
                        n.start_soon(call, spinner, "spin")
                        n.start_soon(call, blocked, "sleep_forever")
                        await trio.sleep(0.3)
                        await an.cancel()
        trio.run(main)
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    err = out.stderr
    for want in ("[RUNTIME]", "spawned actor 'idle' (subint", "actor 'idle' ended at rung 1 (cooperative cancel) in",
                 "actor 'spinner' interrupted at rung 2 after its 0.3 s grace",
                 "[WARNING]", "actor 'blocked' abandoned at rung 3", "stuck in tests.remote.sleep_forever"):
        assert want in err, (want, err)


def test_without_logging_the_nursery_imports_and_prints_nothing_for_it():
    out = run_child("""
        import sys, trio, subactor
        async def main():
            async with subactor.open_nursery() as an:
                p = await an.start_actor("quiet", enable_modules=["tests.helpers"])
                await p.run_from_ns("tests.helpers", "add", a=1, b=2)
                await an.cancel()
        trio.run(main)
        print("subactor.log" in sys.modules)
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert out.stderr == ""


def test_transport_events_are_logged_at_the_transport_level():
    # A root on the network logs the connections it accepts at `transport`
    # (5); at `runtime` (15) they are left out.
    script = """
        import socket, trio, subactor
        from subactor import log
        from subactor.discovery import _net
        log.get_console_log("{level}")
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        async def main():
            with trio.fail_after(30):
                async with subactor.open_root_actor(registry_addrs=[("127.0.0.1", port)]):
                    conn = await _net.open_conn(("127.0.0.1", port), {{"t": "bogus"}})
                    first = await _net.first_answer(conn, 10)
                    assert first["t"] == "err" and "bogus" in first["err"], first
        trio.run(main)
    """
    out = run_child(script.format(level="transport"), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[TRANSPORT]" in out.stderr and "accepted a 'bogus' connection from" in out.stderr, out.stderr
    out = run_child(script.format(level="runtime"), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "accepted a 'bogus' connection" not in out.stderr, out.stderr
