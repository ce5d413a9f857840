"""Ctrl-C: real SIGINTs sent to child programs. Every wait is bounded from
before the first signal."""
import signal

import pytest

from .conftest import sigint_child as _run


def test_root_code_gets_keyboard_interrupt_as_promptly_as_plain_trio():
    # The root's own CPU loop inside open_nursery, with an actor alive: the
    # KeyboardInterrupt lands in that loop, not when it is over (8 s).
    code = """
        import time, trio, subactor
        from tests import remote
        async def main():
            async with subactor.open_nursery() as an:
                await an.start_actor("idle", enable_modules=["tests.remote"])
                print("ready", flush=True)
                t0 = time.monotonic()
                try:
                    # Not `while time.monotonic() - t0 < 8: pass`: on 3.13 a
                    # KeyboardInterrupt landing in such a tight loop's
                    # condition skips its except and finally blocks
                    # (CPython gh-130279), which trio cannot survive.
                    while True:
                        if time.monotonic() - t0 > 8:
                            break
                except KeyboardInterrupt:
                    print("KI %.6f" % time.time(), flush=True)
                    raise
        trio.run(main)
    """
    rc, out, err, wall0, _ = _run(code)
    assert rc == -signal.SIGINT, (rc, err)
    assert "KI " in out, (out, err)
    assert float(out.split("KI ")[1].split()[0]) - wall0 < 2.0, out


@pytest.mark.parametrize("with_nursery", [True, False])
def test_ctrl_c_does_not_wait_for_a_shielded_pool_call(with_nursery):
    """A default (shielded) run_sync call whose worker is stuck in C for
    20 s: the first Ctrl-C takes that worker down the pool's ladder (grace
    0.3, abandoned at 1.0) instead of waiting for the call."""
    code = """
        import sys, trio, subactor, warnings
        from contextlib import AsyncExitStack
        from tests import remote_ladder
        warnings.simplefilter("ignore")
        async def main():
            async with AsyncExitStack() as stack:
                if sys.argv[1] == "True":
                    await stack.enter_async_context(subactor.open_nursery())
                pool = await stack.enter_async_context(subactor.open_worker_pool(1, grace=0.3, kill_after=1.0))
                await pool.run_sync(remote_ladder.pool_sleep, 0)
                async with trio.open_nursery() as n:
                    n.start_soon(pool.run_sync, remote_ladder.pool_sleep, 20)
                    await trio.sleep(0.2)
                    print("ready", flush=True)
                    await trio.sleep_forever()
        trio.run(main)
    """
    rc, out, err, _, elapsed = _run(code, bound=15, args=(with_nursery,))
    # Without an actor nursery the KeyboardInterrupt comes out of the
    # program's own trio nursery, in its group, as plain trio raises it.
    assert rc == (-signal.SIGINT if with_nursery else 1), (rc, err)
    assert "KeyboardInterrupt" in err and "Error" not in err, err
    assert elapsed < 8, elapsed  # 20 s before: the call ran to its end


def test_second_ctrl_c_hurries_a_shielded_pool_call():
    code = """
        import trio, subactor, warnings
        from tests import remote_ladder
        warnings.simplefilter("ignore")
        async def main():
            async with subactor.open_worker_pool(1, grace=20, kill_after=40) as pool:
                async with trio.open_nursery() as n:
                    n.start_soon(pool.run_sync, remote_ladder.pool_sleep, 60)
                    await trio.sleep(0.2)
                    print("ready", flush=True)
                    await trio.sleep_forever()
        trio.run(main)
    """
    rc, out, err, _, elapsed = _run(code, signals=(0.0, 0.5), bound=15)
    assert rc == 1 and "KeyboardInterrupt" in err and "Error" not in err, (rc, err)  # in the program's trio group
    assert elapsed < 10, elapsed  # one Ctrl-C alone: 20 s of grace


def test_ctrl_c_in_an_empty_nursery_is_a_plain_keyboard_interrupt():
    code = """
        import trio, subactor
        async def main():
            async with subactor.open_nursery():
                print("ready", flush=True)
                await trio.sleep(30)
        trio.run(main)
    """
    rc, out, err, _, elapsed = _run(code, bound=15)
    assert rc == -signal.SIGINT, (rc, err)
    assert elapsed < 5
    assert err.count("Traceback") == 1 and err.rstrip().endswith("KeyboardInterrupt"), err


def test_suite_started_with_sigint_ignored_still_sends_real_ctrl_c():
    # As when the suite runs as a background job (`make test &`, nohup):
    # pytest inherits SIGINT ignored. The conftest puts Python's handler back,
    # so the programs it starts get the default disposition and the SIGINT
    # test above still passes.
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    here = "tests/test_sigint.py::test_ctrl_c_in_an_empty_nursery_is_a_plain_keyboard_interrupt"
    code = ("import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "sys.exit(subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:randomly', "
            f"{here!r}]).returncode)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90,
                          cwd=str(ROOT), env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]
