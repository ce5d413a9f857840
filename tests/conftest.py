"""Shared fixtures. Every test is checked for leftovers: actor records,
actor threads, actor interpreters, channels, buffers, Python threads and
live subinterpreters must all be back to what they were before it."""
import gc
import os
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

if os.environ.get("SUBACTOR_EXPECT_ASAN") == "1":
    # `make asan` must test the instrumented build, not the in-place one.
    assert "asan-lib" in _ext.__file__, f"expected the ASan build, got {_ext.__file__}"


def _snapshot():
    # Handles kept alive only by reference cycles (a traceback that holds
    # a frame that holds the handle) are let go first.
    gc.collect()
    _ext.reap()
    return (
        _ext.live_counts(),
        len(_interpreters.list_all()),
        {t.ident for t in threading.enumerate()},
    )


@pytest.fixture(autouse=True)
def no_leftovers(request):
    before = _snapshot()
    yield
    # Actors that were asked to end get a moment to finish their last steps.
    deadline = time.monotonic() + 10
    after = _snapshot()
    while after[:2] != before[:2] and time.monotonic() < deadline:
        time.sleep(0.01)
        after = _snapshot()
    assert after[0] == before[0], f"live counters changed: {before[0]} -> {after[0]}; actors: {_ext.list_actors()}"
    assert after[1] == before[1], f"subinterpreters: {before[1]} -> {after[1]}"
    new_threads = after[2] - before[2]
    assert not new_threads, f"threads left behind: {[t for t in threading.enumerate() if t.ident in new_threads]}"


def run_child(code: str, timeout: float = 60.0, args=()) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python process (for tests that abandon actors,
    abort on failure or test process exit), bounded by `timeout`."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
    )
