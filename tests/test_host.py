"""The actor host: spawn, join, outcomes, interrupt, abandon, introspection."""
import threading
import time

try:
    import _interpreters
except ImportError:  # Python 3.12 names it so
    import _xxsubinterpreters as _interpreters
import pytest
import trio

import subactor
from subactor import _ext
from subactor._host import ActorFailed, SubinterpreterImportError, run_in_subinterpreter, spawn

from . import helpers
from .conftest import run_child


def test_spawn_join_100_one_after_another():
    for i in range(100):
        h = spawn(helpers.add, i, 1, name=f"seq-{i}")
        assert h.join(30)
        assert h.result() == i + 1


def test_spawn_join_32_at_once():
    handles = [spawn(helpers.add, i, i, name=f"par-{i}") for i in range(32)]
    assert all(h.join(60) for h in handles)
    assert [h.result() for h in handles] == [2 * i for i in range(32)]
    # Each actor had its own interpreter and its own thread.
    infos = [h.info() for h in handles]
    assert len({i["interp_id"] for i in infos}) == 32
    assert len({i["thread_id"] for i in infos}) == 32


def test_exception_comes_back_with_traceback():
    h = spawn(helpers.boom, "bad things", name="boomer")
    assert h.join(30)
    with pytest.raises(ActorFailed) as info:
        h.result()
    err = info.value
    assert err.type_name == "ValueError"
    assert err.message == "bad things"
    assert err.actor_name == "boomer"
    # The remote traceback names the functions that ran in the actor.
    assert "in boom" in err.traceback_text and "in inner" in err.traceback_text
    assert "ValueError: bad things" in err.traceback_text
    assert "bad things" in str(err)


def test_raw_outcome_of_code():
    a = _ext.spawn("import sys\nraise KeyError('k')", name="raw")
    assert a.join(30)
    kind, type_name, message, tb = a.outcome()
    assert (kind, type_name, message) == ("error", "KeyError", "'k'")
    assert 'raise KeyError' in tb or "KeyError: 'k'" in tb


def test_syntax_error_in_code_is_an_outcome():
    a = _ext.spawn("def (:", name="syntax")
    assert a.join(30)
    assert a.outcome()[:2] == ("error", "SyntaxError")


def test_result_none_and_bytes():
    a = _ext.spawn("pass")
    assert a.join(30)
    assert a.outcome() == ("ok", None)
    a = _ext.spawn("from subactor import _ext\n_ext.set_result(_ext.actor_input()[::-1])", input=b"abc")
    assert a.join(30)
    assert a.outcome() == ("ok", b"cba")


def test_interrupt_stops_a_tight_loop():
    h = spawn(helpers.spin, name="spinner")
    while h.state == "starting":
        time.sleep(0.001)
    time.sleep(0.05)
    assert h.state == "running"
    assert h.interrupt() is True
    assert h.join(30)
    assert h.state == "interrupted"
    with pytest.raises(subactor.ActorInterrupted):
        h.result()


def test_interrupt_is_not_swallowed_by_except_exception():
    code = "while True:\n    try:\n        while True: pass\n    except Exception:\n        pass\n"
    a = _ext.spawn(code, name="stubborn")
    time.sleep(0.05)
    assert a.interrupt()
    assert a.join(30)
    assert a.outcome()[0] == "interrupted"


def test_interrupt_before_start_is_delivered():
    a = _ext.spawn("while True: pass", name="early")
    # Whether it lands while STARTING (queued) or RUNNING, it is delivered.
    assert a.interrupt()
    assert a.join(30)
    assert a.outcome()[0] == "interrupted"


def test_interrupt_after_end_returns_false():
    a = _ext.spawn("pass")
    assert a.join(30)
    assert a.interrupt() is False
    assert a.outcome() == ("ok", None)


def test_interrupt_from_another_thread():
    a = _ext.spawn("while True: pass", name="cross")
    time.sleep(0.02)
    results = []
    t = threading.Thread(target=lambda: results.append(a.interrupt()))
    t.start()
    t.join(30)
    assert results == [True]
    assert a.join(30)
    assert a.outcome()[0] == "interrupted"


def test_introspection_lists_live_actors():
    a = _ext.spawn("while True: pass", name="visible", label="spin loop")
    try:
        while a.state == "starting":
            time.sleep(0.001)
        live = [i for i in _ext.list_actors() if i["id"] == a.id]
        assert len(live) == 1
        info = live[0]
        assert info["name"] == "visible"
        assert info["state"] == "running"
        assert info["running"] == "spin loop"
        assert info["interp_id"] == a.interp_id > 0
        # (id, whence) tuples on 3.13, InterpreterID objects on 3.12
        ids = [i[0] if isinstance(i, tuple) else int(i) for i in _interpreters.list_all()]
        assert info["interp_id"] in ids
        assert info["thread_id"] > 0 and info["thread_id"] != threading.get_native_id()
        assert info["age"] >= 0
        counts = _ext.live_counts()
        assert counts["actors"] >= 1 and counts["threads"] >= 1 and counts["interpreters"] >= 1
    finally:
        a.interrupt()
        assert a.join(30)
    assert all(i["id"] != a.id for i in _ext.list_actors())


def test_current_actor_inside_and_outside():
    assert _ext.current_actor() is None
    h = spawn(helpers.whoami, name="me")
    assert h.join(30)
    me = h.result()
    assert me["name"] == "me" and me["id"] == h._actor.id


def test_ext_imports_in_own_gil_subinterpreter_made_by_cpython():
    # Independent of our host: CPython's own isolated interpreter config.
    interp = _interpreters.create()
    try:
        _interpreters.exec(interp, "import subactor._ext as e; assert e.live_counts()['actors'] >= 0")
    finally:
        _interpreters.destroy(interp)


def test_module_refusing_subinterpreters_names_it_and_the_way_out():
    h = spawn(helpers.import_module, "readline", name="rl")
    assert h.join(30)
    with pytest.raises(SubinterpreterImportError) as info:
        h.result()
    assert info.value.module == "readline"
    text = str(info.value)
    assert "readline" in text and "shared_gil=True" in text and 'backend="process"' in text
    assert isinstance(info.value, ImportError)


def test_shared_gil_option_loads_single_phase_module():
    h = spawn(helpers.import_module, "readline", name="rl-shared", shared_gil=True)
    assert h.join(30)
    assert h.result() == "readline"


def test_bad_arguments_raise_type_error():
    with pytest.raises(TypeError):
        _ext.spawn(123)
    with pytest.raises(TypeError):
        _ext.spawn("pass", name=5)
    with pytest.raises(TypeError):
        _ext.spawn("pass", input="not bytes")
    with pytest.raises(TypeError):
        _ext.spawn("pass", sys_path=[1, 2])
    with pytest.raises(ValueError):
        _ext.spawn("pa\0ss")
    with pytest.raises(TypeError, match="lambda"):
        spawn(lambda: 1)
    with pytest.raises(TypeError, match="callable"):
        spawn(42)
    with pytest.raises(TypeError, match="pickled"):
        spawn(helpers.add, threading.Lock(), 1)


def test_actor_sees_parent_sys_path():
    import sys

    a = _ext.spawn(
        "import sys\nfrom subactor import _ext\n_ext.set_result('\\0'.join(sys.path).encode())", name="path"
    )
    assert a.join(30)
    assert a.outcome()[1].decode().split("\0") == [p or "." for p in sys.path]


def test_trio_run_in_subinterpreter_and_cancel():
    async def main():
        assert await run_in_subinterpreter(helpers.add, 2, 3) == 5
        with trio.move_on_after(0.2) as scope:
            await run_in_subinterpreter(helpers.spin, name="cancelled-spin")
        assert scope.cancelled_caught

    trio.run(main)


def test_completion_reaches_parent_after_its_loop_ended():
    holder = []

    async def main():
        holder.append(spawn(helpers.burn, 200_000, name="outlives-loop"))

    trio.run(main)
    h = holder[0]
    assert h.join(30)
    assert h.result() == sum(range(200_000))


def test_nothing_runs_on_a_pool_thread():
    # One thread per actor run: every actor gets a thread id of its own,
    # even when they run one after another.
    seen = set()
    for _ in range(10):
        a = _ext.spawn("pass")
        assert a.join(30)
        seen.add(a.info()["thread_id"])
    assert len(seen) >= 2  # the kernel may reuse a tid, not all ten times


# --- tests that may abort or must exit the process: in a child ---------------


def test_interrupt_versus_end_races_do_not_abort():
    code = """
        import random, sys
        from subactor import _ext
        random.seed(1234)
        n = int(sys.argv[1])
        ok = interrupted = 0
        for i in range(n):
            # work of random length; interrupts land before, during and after its end
            a = _ext.spawn("x = sum(range(%d))" % random.randrange(0, 20000), name="race")
            for _ in range(random.randrange(0, 3)):
                a.interrupt()
            assert a.join(30)
            kind = a.outcome()[0]
            assert kind in ("ok", "interrupted"), a.outcome()
            ok += kind == "ok"; interrupted += kind == "interrupted"
            a.interrupt()  # after the end: must be a no-op
        print("races", ok, interrupted)
    """
    r = run_child(code, timeout=240, args=["1000"])
    assert r.returncode == 0, r.stderr[-3000:]
    ok, interrupted = map(int, r.stdout.split()[1:3])
    assert ok + interrupted == 1000


ABANDON_SCRIPT = """
    import sys, time
    from subactor import _ext
    kind, ending = sys.argv[1], sys.argv[2]
    code = {"busy": "while True: pass", "sleep": "import time; time.sleep(1000)"}[kind]
    a = _ext.spawn(code, name="stuck-" + kind, label=kind + " loop")
    while a.state == "starting":  # a loaded machine can take a while
        time.sleep(0.005)
    time.sleep(0.05)
    if kind == "sleep":
        assert a.interrupt()  # lands, but time.sleep(1000) never sees it
    assert a.join(0.1) is False
    print("abandoned", a.state, flush=True)
    if ending == "exit3":
        sys.exit(3)
    if ending == "raise":
        raise RuntimeError("main failed")
"""


@pytest.mark.parametrize("kind", ["busy", "sleep"])
@pytest.mark.parametrize("ending", ["normal", "exit3", "raise"])
def test_abandoned_actor_does_not_hang_exit(kind, ending):
    expected = {"normal": 0, "exit3": 3, "raise": 1}[ending]
    r = run_child(ABANDON_SCRIPT, timeout=30, args=[kind, ending])
    assert r.returncode == expected, r.stderr
    assert "abandoned abandoned" in r.stdout
    assert f"actor 'stuck-{kind}' (interpreter" in r.stderr
    assert f"abandoned while running {kind} loop" in r.stderr
    if ending == "raise":
        assert "RuntimeError: main failed" in r.stderr


def test_abandoned_actor_exit_20_runs():
    for i in range(20):
        kind = ("busy", "sleep")[i % 2]
        r = run_child(ABANDON_SCRIPT, timeout=30, args=[kind, "normal"])
        assert r.returncode == 0, (i, r.stderr)
        assert "abandoned abandoned" in r.stdout


def test_running_actor_at_exit_is_interrupted_not_abandoned():
    code = """
        from subactor import _ext
        a = _ext.spawn("while True: pass", name="forgotten")
        print("bye", flush=True)
    """
    r = run_child(code, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "bye" in r.stdout
    assert "abandoned" not in r.stderr


# -- the ending gate: at most one interpreter per core ends at a time ------------

# Each actor waits for the start file, then leaves: all of them end at once.
# Importing a few stdlib packages gives each teardown some milliseconds of
# work, so that their teardowns overlap.
_END_TOGETHER = """
import os, time
import json, decimal, email.message, argparse, unittest
deadline = time.monotonic() + 60
while not os.path.exists({path!r}) and time.monotonic() < deadline:
    time.sleep(0.001)
"""


def test_many_actors_ending_at_once_take_turns(tmp_path):
    stats = _ext._ending_stats()
    assert stats["width"] == max(1, min(64, len(__import__("os").sched_getaffinity(0))))
    go = tmp_path / "go"
    n = 4 * stats["width"] + 4
    handles = [_ext.spawn(_END_TOGETHER.format(path=str(go)), name=f"together-{i}") for i in range(n)]
    # All of them are running (past their imports is not needed: they wait).
    deadline = time.monotonic() + 60
    while sum(1 for a in _ext.list_actors() if a["state"] == "running") < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # let every one reach its wait loop
    go.write_text("")
    assert all(h.join(60) for h in handles)
    assert [h.outcome()[0] for h in handles] == ["ok"] * n
    # More actors ended at once than there are turns: some had to wait.
    assert _ext._ending_stats()["waited"] > stats["waited"]


# An actor whose teardown is slow: Py_EndInterpreter joins the interpreter's
# non-daemon threads, and this one sleeps for a while first.
_SLOW_TEARDOWN = """
import threading, time
threading.Thread(target=time.sleep, args=(6,)).start()
"""


def test_a_teardown_that_hangs_does_not_hold_up_the_others():
    width = _ext._ending_stats()["width"]
    slow = [_ext.spawn(_SLOW_TEARDOWN, name=f"slow-end-{i}") for i in range(width)]
    # Every turn is taken by a teardown that will take seconds.
    deadline = time.monotonic() + 30
    while (sum(1 for a in _ext.list_actors() if a["name"].startswith("slow-end") and a["state"] == "ending") < width
           and time.monotonic() < deadline):
        time.sleep(0.01)
    t0 = time.monotonic()
    quick = _ext.spawn("pass", name="quick-end")
    assert quick.join(30)
    took = time.monotonic() - t0
    # The quick actor did not wait for the slow teardowns to end: a turn
    # held too long stops counting (after about a second).
    assert not any(h.done for h in slow), took
    assert all(h.join(30) for h in slow)


# The interrupt lands in a weakref callback, whose errors Python can only
# report ("Exception ignored in ..."): it must still end the actor.
_INTERRUPT_IN_CALLBACK = """
import os, time, weakref
from subactor import _ext
class Thing:
    pass
def callback(ref):
    open({flag!r}, "w").close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pass
thing = Thing()
ref = weakref.ref(thing, callback)
del thing  # runs the callback, which spins until interrupted
# Reached only if the interrupt was swallowed with the callback:
_ext.set_result(b"went on")
"""


def test_interrupt_in_a_weakref_callback_still_ends_the_actor(tmp_path):
    flag = tmp_path / "in-callback"
    h = _ext.spawn(_INTERRUPT_IN_CALLBACK.format(flag=str(flag)), name="in-callback")
    deadline = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.exists()
    assert h.interrupt()
    assert h.join(30)
    outcome = h.outcome()
    assert outcome[0] != "ok", outcome
    assert "ActorInterrupted" in outcome[1], outcome
