"""Shared fixtures. Every test is checked for leftovers: actor records,
actor threads, interrupt helper threads, actor interpreters, channels,
buffers, Python threads, live subinterpreters and open file descriptors
must all be back to what they were before it."""
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

try:
    import _interpreters
except ImportError:  # Python 3.12 names it so
    import _xxsubinterpreters as _interpreters
import pytest

from subactor import _ext

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

# A suite started in the background (`cmd &` from a script, nohup, some CI
# runners) inherits SIGINT ignored, and an ignored disposition survives
# exec: every child program the tests start, and every process actor, would
# ignore the Ctrl-C the SIGINT tests send. Python's own handler is put back
# here, so children start with the default disposition (a handler is reset
# to SIG_DFL at exec) and the suite passes however it is started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

if os.environ.get("SUBACTOR_EXPECT_ASAN") == "1":
    # `make asan` must test the instrumented build, not the in-place one.
    assert "asan-lib" in _ext.__file__, f"expected the ASan build, got {_ext.__file__}"


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _snapshot():
    # Handles kept alive only by reference cycles (a traceback that holds
    # a frame that holds the handle) are let go first.
    gc.collect()
    _ext.reap()
    return (
        _ext.live_counts(),
        len(_interpreters.list_all()),
        len(_open_fds()),
        {t.ident for t in threading.enumerate()},
    )


@pytest.fixture(autouse=True)
def no_leftovers(request):
    before = _snapshot()
    yield
    # Actors that were asked to end get a moment to finish their last steps.
    deadline = time.monotonic() + 10
    after = _snapshot()
    while after[:3] != before[:3] and time.monotonic() < deadline:
        time.sleep(0.01)
        after = _snapshot()
    assert after[0] == before[0], f"live counters changed: {before[0]} -> {after[0]}; actors: {_ext.list_actors()}"
    assert after[1] == before[1], f"subinterpreters: {before[1]} -> {after[1]}"
    assert after[2] <= before[2], f"file descriptors left open: {before[2]} -> {after[2]}"
    new_threads = after[3] - before[3]
    assert not new_threads, f"threads left behind: {[t for t in threading.enumerate() if t.ident in new_threads]}"


# First lines of every child program: SIGINT gets Python's usual handler
# even when this test run inherited SIGINT ignored (a suite started with
# `&` from a script, or under nohup), so the Ctrl-C tests mean the same
# however the suite is started.
CHILD_PRELUDE = "import signal as _signal; _signal.signal(_signal.SIGINT, _signal.default_int_handler)\n"


def run_bounded(main, limit: float = 60) -> None:
    """``trio.run(main)``, the whole of it bounded by ``limit`` seconds."""
    import trio

    async def bounded():
        with trio.fail_after(limit):
            await main()

    trio.run(bounded)


def child_argv(code: str, args=()) -> list[str]:
    """argv of a fresh Python running `code` (dedented, after the prelude)."""
    return [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *map(str, args)]


# Under `make asan` everything runs several times slower: tests that do a
# fixed amount of work scale it by this (never skipped).
UNDER_ASAN = os.environ.get("SUBACTOR_EXPECT_ASAN") == "1"


def run_child(code: str, timeout: float = 60.0, args=(), env=None) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python process (for tests that abandon actors,
    abort on failure or test process exit), bounded by `timeout`; `env`
    adds to (or overrides) this process's environment."""
    return subprocess.run(
        child_argv(code, args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=None if env is None else {**os.environ, **env},
    )


def popen_child(code: str, args=()) -> subprocess.Popen:
    """Start `code` in a fresh Python process with pipes (for tests that
    signal it); the caller bounds every wait and kills it in the end."""
    return subprocess.Popen(child_argv(code, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT))


def sigint_child(code: str, signals=(0.0,), bound: float = 30.0, args=(), settle: float = 0.2):
    """Start `code`, wait for its "ready" line and `settle` seconds more,
    send SIGINTs at the given offsets (seconds after the first), and wait
    for its exit at most `bound` seconds counted from before the first
    signal. Returns (returncode, stdout, stderr, wall time of the first
    signal, seconds from it to the exit); the child is killed if it
    outlives the bound."""
    import signal

    proc = popen_child(code, args=args)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read())
        time.sleep(settle)
        t0 = time.monotonic()  # the bound starts before the first signal
        wall0 = time.time()
        for at in signals:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=max(0.1, bound - (time.monotonic() - t0)))
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err, wall0, elapsed
