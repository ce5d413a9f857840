"""Warm interpreters (subactor._warm, csrc/warm.c): a reserve of fresh,
preloaded interpreters that start_actor / run_in_actor take instead of
making one. A warm actor must be indistinguishable from a cold one to its
code, the reserve must refill, follow sys.path and the environment, be off
at size 0, end with the root, and its actors must go down the ladder as
cold ones do. Tests that abandon an actor or test process exit run in a
child process."""
import os
import sys
import sysconfig
import time

import pytest
import trio

import subactor
from subactor import _ext, _warm

from . import remote_warm
from .conftest import run_bounded, run_child

MOD = remote_warm.__name__
PKG_DIR = os.path.dirname(os.path.abspath(subactor.__file__))


async def wait_parked(n=1, limit=60.0):
    """Until the reserve has n parked interpreters (bounded: a preload of
    trio takes a few hundred ms on a busy 2-core machine)."""
    with trio.fail_after(limit):
        while _ext.warm_info()["parked"] < n:
            await trio.sleep(0.01)


async def probe_actor(an, name, **kw):
    p = await an.start_actor(name, enable_modules=[MOD])
    got = await p.run(remote_warm.probe, **kw)
    await p.cancel_actor()
    return got


def _is_library(path):
    """A file of the standard library, of site-packages or of subactor."""
    if path is None:
        return True   # built-in and frozen modules
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(os.path.abspath(path).startswith(r + os.sep) for r in roots | {PKG_DIR})


def test_warm_actor_sees_what_a_cold_one_sees():
    out = {}

    async def main():
        async with subactor.open_nursery(warm_interpreters=0) as an:
            out["cold"] = await probe_actor(an, "cold")
        async with subactor.open_nursery(warm_interpreters=1) as an:
            await wait_parked()
            takes = _ext.warm_info()["takes"]
            out["warm"] = await probe_actor(an, "warm")
            out["took"] = _ext.warm_info()["takes"] - takes

    run_bounded(main)
    cold, warm = out["cold"], out["warm"]
    assert out["took"] == 1     # it was served from the reserve
    assert warm["sys_path"] == cold["sys_path"]
    assert warm["main_keys"] == cold["main_keys"]
    assert warm["cwd"] == cold["cwd"]
    # What the warm one has in addition is its preload: libraries only,
    # never a module of the program (this test's own modules are loaded by
    # both, because the actor serves them).
    extra = {m: f for m, f in warm["modules"].items() if m not in cold["modules"]}
    assert "trio" in extra
    assert all(_is_library(f) for f in extra.values()), {m: f for m, f in extra.items() if not _is_library(f)}


def test_preload_leaves_nothing_in_main_and_no_user_module():
    """At the C level: code given to a warm interpreter runs in a __main__
    that holds exactly what a cold one's holds, and none of the program's
    modules were imported before it."""
    sp = [p or os.getcwd() for p in sys.path]
    code = ("import sys, subactor._ext as e\n"
            "e.set_result(repr((sorted(globals()), sorted(m for m in sys.modules if m.startswith('tests')))).encode())\n")
    _ext.warm_configure(1, sys_path=sp, preload=list(_warm.PRELOAD))
    try:
        deadline = time.monotonic() + 60
        while _ext.warm_info()["parked"] < 1:
            assert time.monotonic() < deadline, _ext.warm_info()
            time.sleep(0.01)
        takes = _ext.warm_info()["takes"]
        warm = _ext.spawn(code, name="w", sys_path=sp, warm=True)
        cold = _ext.spawn(code, name="c", sys_path=sp)
        assert warm.join(30) and cold.join(30)
        assert _ext.warm_info()["takes"] == takes + 1
        assert warm.outcome() == cold.outcome()
        assert warm.outcome()[1].endswith(b", [])")
    finally:
        assert _ext.warm_drain(30)


def test_reserve_refills_after_each_take_and_hides_from_listings():
    seen = {}

    async def main():
        async with subactor.open_nursery(warm_interpreters=2) as an:
            await wait_parked(2)
            seen["listed"] = _ext.list_actors()
            seen["handles"] = len(_ext._live_handles())
            before = _ext.warm_info()
            for i in range(3):
                await wait_parked(2)
                await probe_actor(an, f"a{i}")
            await wait_parked(2)
            seen["after"] = _ext.warm_info()
            seen["before"] = before

    run_bounded(main, 120)
    assert seen["listed"] == [] and seen["handles"] == 0   # parked interpreters are not actors
    b, a = seen["before"], seen["after"]
    assert a["takes"] - b["takes"] == 3
    assert a["made"] - b["made"] == 3      # one refill per take
    assert a["parked"] == 2 and a["error"] is None


def test_size_zero_turns_the_reserve_off():
    seen = {}

    async def main():
        before = _ext.warm_info()
        async with subactor.open_nursery(warm_interpreters=0) as an:
            got = await probe_actor(an, "cold")
            seen["trio"] = "trio" in got["modules"]
            seen["info"] = _ext.warm_info()
        seen["before"] = before

    run_bounded(main)
    assert seen["info"]["alive"] == 0 and seen["info"]["size"] == 0
    assert seen["info"]["takes"] == seen["before"]["takes"]
    assert seen["trio"] is False      # a cold sync actor never imports trio


def test_a_changed_sys_path_is_not_served_stale(tmp_path, monkeypatch):
    (tmp_path / "warm_fresh_mod.py").write_text("def f():\n    return 'found'\n")
    seen = {}

    async def main():
        async with subactor.open_nursery(warm_interpreters=1) as an:
            await wait_parked()
            misses = _ext.warm_info()["misses"]
            monkeypatch.syspath_prepend(str(tmp_path))
            p = await an.start_actor("moved", enable_modules=[MOD])
            seen["path"] = (await p.run(remote_warm.probe))["sys_path"]
            seen["call"] = await p.run(remote_warm.import_and_call, name="warm_fresh_mod")
            await p.cancel_actor()
            seen["missed"] = _ext.warm_info()["misses"] - misses
            # The reserve follows the new sys.path: the next actor is warm again.
            await wait_parked()
            takes = _ext.warm_info()["takes"]
            seen["again"] = (await probe_actor(an, "again"))["sys_path"]
            seen["took"] = _ext.warm_info()["takes"] - takes

    run_bounded(main, 120)
    assert seen["path"][0] == str(tmp_path)
    assert seen["path"] == [p or os.getcwd() for p in sys.path]
    assert seen["call"] == "found"
    assert seen["missed"] == 1
    assert seen["again"] == seen["path"] and seen["took"] == 1


def test_a_changed_environment_is_not_served_stale(monkeypatch):
    seen = {}

    async def main():
        async with subactor.open_nursery(warm_interpreters=1) as an:
            await wait_parked()
            takes = _ext.warm_info()["takes"]
            monkeypatch.setenv("SUBACTOR_WARM_TEST", "changed")
            seen["env"] = (await probe_actor(an, "env"))["env"]
            seen["took"] = _ext.warm_info()["takes"] - takes

    run_bounded(main)
    assert seen["env"] == "changed"
    assert seen["took"] == 0


def test_the_reserve_ends_with_the_root():
    seen = {}

    async def main():
        async with subactor.open_root_actor(warm_interpreters=2):
            await wait_parked(2)
            seen["inside"] = _ext.warm_info()["alive"]
        seen["closed"] = _ext.warm_info()["size"]
        with trio.fail_after(30):   # they end on their own threads
            while _ext.warm_info()["alive"]:
                await trio.sleep(0.01)

    run_bounded(main)
    assert seen["inside"] == 2 and seen["closed"] == 0
    counts = _ext.live_counts()
    assert counts["warm"] == 0 and counts["threads"] == 0 and counts["interpreters"] == 0


def test_the_process_exits_cleanly_with_a_reserve_still_warming():
    """The exit hook retires a reserve nobody switched off (one still
    importing its preload, one parked) and waits for it, by its deadline:
    an exit hook registered before _ext's runs after it and finds none."""
    t0 = time.monotonic()
    proc = run_child("""
        import atexit, os, sys, time

        def after_subactors_hook():
            print("alive at exit", sys.modules["subactor._ext"].warm_info()["alive"], flush=True)

        atexit.register(after_subactors_hook)
        from subactor import _ext, _warm
        sp = [p or os.getcwd() for p in sys.path]
        _ext.warm_configure(2, sys_path=sp, preload=list(_warm.PRELOAD))
        while _ext.warm_info()["parked"] < 1:
            time.sleep(0.01)
        print("parked", _ext.warm_info()["parked"], flush=True)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parked 1" in proc.stdout and "alive at exit 0" in proc.stdout, proc.stdout
    assert proc.stderr == "", proc.stderr[-3000:]
    assert time.monotonic() - t0 < 60


LADDER = """
import os, sys, warnings
import trio, subactor
from subactor import _ext
from tests import remote_ladder

kind, mark = sys.argv[1], sys.argv[2]

async def main():
    async with subactor.open_nursery(grace=0.2, kill_after=0.6, warm_interpreters=1) as an:
        with trio.fail_after(60):
            while _ext.warm_info()["parked"] < 1:
                await trio.sleep(0.01)
        takes = _ext.warm_info()["takes"]
        p = await an.start_actor("stuck", enable_modules=["tests.remote_ladder"])
        print("warm", _ext.warm_info()["takes"] - takes, flush=True)
        fn = {"spin": remote_ladder.spin_marked, "sleep": remote_ladder.sleep_marked,
              "trio": remote_ladder.checkpointing_marked}[kind]
        async def call():
            try:
                await p.run(fn, path=mark)
            except (subactor.ActorNotAvailable, subactor.ContextCancelled):
                pass
        async with trio.open_nursery() as tn:
            tn.start_soon(call)
            with trio.fail_after(30):
                while not os.path.exists(mark):
                    await trio.sleep(0.01)
            await trio.sleep(0.1)
            t0 = trio.current_time()
            ended = await p.cancel_actor()
            took = trio.current_time() - t0
            tn.cancel_scope.cancel()
        print("ended", ended, "rung", p.rung, "took %.3f" % took, flush=True)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    trio.run(main)
"""


@pytest.mark.parametrize("kind,rung", [("trio", 1), ("spin", 2), ("sleep", 3)])
def test_the_ladder_on_a_warm_actor(kind, rung, tmp_path):
    """A warm actor in each kind of stuck state ends at the rung a cold one
    does, by the same deadlines (grace 0.2 s, kill_after 0.6 s)."""
    proc = run_child(LADDER, timeout=90, args=(kind, tmp_path / "mark"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    words = proc.stdout.split()
    assert words[words.index("warm") + 1] == "1", proc.stdout
    assert words[words.index("rung") + 1] == str(rung), proc.stdout
    assert float(words[words.index("took") + 1]) < 0.6 + 1.5, proc.stdout
    if rung == 3:
        assert "ended False" in proc.stdout


@pytest.mark.parametrize("value,error", [(-1, ValueError), (65, ValueError), ("2", TypeError),
                                         (True, TypeError), (1.0, TypeError)])
def test_bad_sizes_are_refused(value, error):
    async def root():
        async with subactor.open_root_actor(warm_interpreters=value):
            pass

    async def nursery():
        async with subactor.open_nursery(warm_interpreters=value):
            pass

    for main in (root, nursery):
        with pytest.raises(error, match="warm_interpreters"):
            trio.run(main)
    with pytest.raises(error, match="size"):
        _ext.warm_configure(value)
    assert _ext.warm_info()["size"] == 0


@pytest.mark.parametrize("raw", ["abc", "-1", "1.5", "999"])
def test_a_bad_environment_variable_is_refused(raw, monkeypatch):
    monkeypatch.setenv(_warm.ENV, raw)

    async def main():
        async with subactor.open_nursery():
            pass

    with pytest.raises(ValueError, match=_warm.ENV):
        trio.run(main)


def test_the_environment_variable_turns_it_on(monkeypatch):
    monkeypatch.setenv(_warm.ENV, "1")
    seen = {}

    async def main():
        async with subactor.open_nursery():
            seen["size"] = _ext.warm_info()["size"]
            await wait_parked()

    run_bounded(main)
    assert seen["size"] == 1


def test_run_in_actor_takes_a_warm_interpreter_too():
    seen = {}

    async def main():
        async with subactor.open_nursery(warm_interpreters=1) as an:
            await wait_parked()
            takes = _ext.warm_info()["takes"]
            p = await an.run_in_actor(remote_warm.probe)
            seen["got"] = await p.wait_for_result()
            seen["took"] = _ext.warm_info()["takes"] - takes

    run_bounded(main)
    assert seen["took"] == 1
    assert seen["got"]["sys_path"] == [p or os.getcwd() for p in sys.path]


def test_a_preload_that_fails_stops_the_reserve_and_says_why():
    sp = [p or os.getcwd() for p in sys.path]
    _ext.warm_configure(1, sys_path=sp, preload=["subactor_no_such_module_for_warm"])
    try:
        deadline = time.monotonic() + 60
        while _ext.warm_info()["error"] is None or _ext.warm_info()["alive"]:
            assert time.monotonic() < deadline, _ext.warm_info()
            time.sleep(0.01)
        info = _ext.warm_info()
        assert "subactor_no_such_module_for_warm" in info["error"] and "ModuleNotFoundError" in info["error"]
        assert info["parked"] == 0 and info["warming"] == 0      # no refill loop
        h = _ext.spawn("pass", name="cold", sys_path=sp, warm=True)   # served cold
        assert h.join(30) and h.outcome() == ("ok", None)
        assert _ext.warm_info()["takes"] == info["takes"]
    finally:
        assert _ext.warm_drain(30)


SIGINT_WARM = """
import sys, time, trio
import subactor
from subactor import _ext
from tests import remote

scenario = sys.argv[1]
took = []

async def main():
    async with subactor.open_nursery(grace=0.5, kill_after=5, warm_interpreters=1) as an:
        with trio.fail_after(60):
            while _ext.warm_info()["parked"] < 1:
                await trio.sleep(0.01)
        if scenario == "spawn":
            print("ready", flush=True)
            for i in range(100000):   # SIGINT lands while actors are taken and the reserve refills
                s = await an.start_actor(f"s{i}", enable_modules=["tests.remote"])
                await s.run(remote.add, a=i, b=1)
        p = await an.start_actor("victim", enable_modules=["tests.remote"])
        took.append(_ext.warm_info()["takes"])
        print("ready", flush=True)
        await p.run(remote.sleep_forever_async)

t0 = time.monotonic()
try:
    trio.run(main)
except KeyboardInterrupt:
    deadline = time.monotonic() + 10
    while True:
        _ext.reap()
        c = _ext.live_counts()
        if (c["threads"] == 0 and c["warm"] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    print("KeyboardInterrupt after %.2f s; threads=%d warm=%d abandoned=%d; took %s" % (
        time.monotonic() - t0, c["threads"], c["warm"], c["abandoned"], took), flush=True)
    raise
"""


@pytest.mark.parametrize("scenario", ["run", "spawn"])
def test_ctrl_c_with_a_reserve_ends_everything(scenario):
    """Ctrl-C cancels a tree whose actors came from the reserve, or while
    actors are being taken from it: one clean KeyboardInterrupt, every actor
    and every warm interpreter gone."""
    from .conftest import sigint_child

    rc, out, err, _, elapsed = sigint_child(SIGINT_WARM, signals=[0.0], bound=60.0, args=(scenario,), settle=0.3)
    assert rc == -__import__("signal").SIGINT, (rc, out, err[-3000:])
    if scenario == "run":
        assert "took [1]" in out, out     # the victim came from the reserve
    assert "threads=0 warm=0 abandoned=0" in out, out
    # One traceback, ending in the KeyboardInterrupt (nothing printed after it).
    assert err.count("Traceback (most recent call last)") == 1, err[-3000:]
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err[-3000:]
