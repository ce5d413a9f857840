"""Child processes for the benchmarks that abandon actors or send Ctrl-C.

A sample that abandons an actor leaves its thread running until the
process exits, so such samples run in a child process of their own. This
module starts one, reads its stdout line by line and its stderr whole,
times its exit and kills it when it overruns: every wait has a deadline.

One thread does all of it (poll on the two pipes and a pidfd), so that
``preexec_fn`` runs in a process without other threads. The exit is timed
on the pidfd, which becomes readable the moment the child exits
(``Popen.wait(timeout)`` polls with sleeps of up to 50 ms).

The child gets SIGINT's default disposition whatever the benchmark's own
is: a benchmark started as a background job of a non-interactive shell
ignores SIGINT, its children inherit that across exec, and a Python started
with SIGINT ignored never installs its KeyboardInterrupt handler.
"""
from __future__ import annotations

import ctypes
import os
import re
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None
_PR_SET_PDEATHSIG = 1


def _prepare_child() -> None:
    """Runs in the child between fork and exec: SIGINT's default
    disposition, unblocked; and SIGKILL when the benchmark dies, so that no
    child waiting for its SIGINT outlives an interrupted benchmark."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    """One child Python process running ``argv`` (after the interpreter).

    ``lines`` holds (monotonic arrival time, text) of each stdout line;
    ``stderr`` all of stderr once the child is gone. The child has a
    process group of its own, so that a Ctrl-C at the benchmark's terminal
    does not reach it: only the signals this benchmark sends do."""

    def __init__(self, argv: list[str], cwd: str = HERE):
        self.proc = subprocess.Popen(
            [sys.executable, *argv], cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_prepare_child, process_group=0,
        )
        self.started = time.monotonic()
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.lines: list[tuple[float, str]] = []
        self._out = b""
        self._err: list[bytes] = []
        self._open = {self.proc.stdout.fileno(), self.proc.stderr.fileno()}
        self.exited_at: float | None = None   # monotonic time the pidfd fired
        self.killed = False                   # SIGKILLed by kill()
        self._finished = False

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode(errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def _pump(self, timeout: float) -> None:
        """Read whatever is ready for up to ``timeout`` s; note the exit."""
        poller = select.poll()
        for fd in self._open:
            poller.register(fd, select.POLLIN)
        if self.exited_at is None:
            poller.register(self.pidfd, select.POLLIN)
        for fd, _ in poller.poll(max(0.0, timeout) * 1000):
            if fd == self.pidfd:
                self.exited_at = time.monotonic()
                continue
            data = os.read(fd, 65536)
            if not data:
                self._open.discard(fd)
            elif fd == self.proc.stdout.fileno():
                self._out += data
                now = time.monotonic()
                *done, self._out = self._out.split(b"\n")
                self.lines += [(now, d.decode(errors="replace")) for d in done]
            else:
                self._err.append(data)

    def wait_line(self, prefix: str, deadline: float) -> tuple[float, str] | None:
        """The first stdout line starting with ``prefix`` (its arrival time
        and text), waiting until the monotonic ``deadline``; None if the
        child exits or the deadline passes first."""
        seen = 0
        while True:
            for t, line in self.lines[seen:]:
                if line.startswith(prefix):
                    return t, line
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or (self.exited_at is not None and not self._open):
                return None
            self._pump(left)

    def wait_exit(self, deadline: float) -> bool:
        """Wait until the child exits or the monotonic ``deadline``; True if
        it exited (then ``exited_at`` is when)."""
        while self.exited_at is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._pump(left)
        return True

    def signal(self, sig: int) -> float:
        """Send ``sig``; the monotonic time just before it was sent."""
        t = time.monotonic()
        if self.exited_at is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        return t

    def kill(self) -> None:
        if self.exited_at is None and self.proc.poll() is None:
            self.killed = True
            self.proc.kill()

    def finish(self, timeout: float = 5.0) -> None:
        """Kill the child if it still runs, reap it, read the rest of its
        output (bounded: a grandchild holding the pipes open is not waited
        for past ``timeout``), close everything. Idempotent."""
        if self._finished:
            return
        self._finished = True
        self.kill()
        self.proc.wait()
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        deadline = time.monotonic() + timeout
        while self._open and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        if self._out:
            self.lines.append((time.monotonic(), self._out.decode(errors="replace")))
            self._out = b""
        os.close(self.pidfd)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()


def describe_exit(rc: int | None) -> str:
    """An exit code for a table: "-2/SIGINT" for death by a signal (what a
    KeyboardInterrupt at exit gives), else the number ("130", "0")."""
    if rc is None:
        return "none"
    if rc < 0:
        try:
            return f"{rc}/{signal.Signals(-rc).name}"
        except ValueError:
            return str(rc)
    return str(rc)


_EXC = re.compile(r"^([A-Za-z_][\w.]*)(:.*)?$")
_GROUP_EXC = re.compile(r"^\s*\| (?!Traceback)([A-Za-z_][\w.]*)(:.*)?$")
_WARNING = re.compile(r"\b(\w+Warning):")


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _group_name(names: list[str]) -> str:
    """"BaseExceptionGroup[Cancelled]": a group and the distinct types of
    what it holds (nested groups flattened), in order of appearance."""
    top, *leaves = names or ["ExceptionGroup"]
    return f"{top}[{', '.join(dict.fromkeys(leaves))}]"


def read_stderr(err: str) -> dict:
    """What a child printed on stderr, read:

    - ``chain``: the exceptions of its tracebacks in the order printed, a
      chained traceback giving several ("BaseExceptionGroup[Cancelled]"
      for a group of Cancelled); ["KeyboardInterrupt"] is
      the one clean outcome of a Ctrl-C;
    - ``noise``: (kind, first line) of each thing that is not a traceback
      and not expected: "Exception ignored" (an unraisable error),
      "fatal" (a crash), "warning" (any warning but AbandonedActorWarning),
      "other" (any other line);
    - ``abandoned``: how many AbandonedActorWarnings it printed (expected
      when an actor was abandoned: not noise).
    """
    chain: list[str] = []
    noise: list[tuple[str, str]] = []
    abandoned = 0
    lines = err.splitlines()
    i = 0
    in_tb = False       # inside a plain traceback, before its exception line
    group: list[str] | None = None  # leaves of the group block being read
    ignored: int | None = None  # index in noise of an "Exception ignored" awaiting its traceback
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if group is not None:
            m = _GROUP_EXC.match(line)
            if line.startswith((" ", "\t")) or not stripped:
                if m:
                    group.append(_short(m.group(1)))
                continue
            chain.append(_group_name(group))
            group = None
        if stripped.startswith("+ Exception Group Traceback"):
            group = []
            continue
        if line.startswith("Traceback (most recent call last):"):
            in_tb = True
            continue
        if in_tb:
            if line.startswith((" ", "\t")) or not stripped:
                continue
            m = _EXC.match(line)
            name = _short(m.group(1)) if m else line[:60]
            if ignored is not None:
                # The traceback of an "Exception ignored" report: noise.
                kind, text = noise[ignored]
                noise[ignored] = (kind, f"{text} -> {line.strip()[:120]}")
                ignored = None
            else:
                chain.append(name)
            in_tb = False
            continue
        if not stripped or line.startswith(("During handling of the above exception",
                                            "The above exception was the direct cause")):
            continue
        if "AbandonedActorWarning" in line:
            abandoned += 1
            # warnings.warn shows the source line after the warning.
            while i < len(lines) and lines[i].startswith("  ") and "Traceback" not in lines[i]:
                i += 1
            continue
        if line.startswith("Exception ignored"):
            noise.append(("Exception ignored", line.strip()[:200]))
            ignored = len(noise) - 1
        elif "Fatal Python error" in line or "Segmentation fault" in line or "Aborted" in line:
            noise.append(("fatal", line.strip()[:200]))
        elif _WARNING.search(line):
            noise.append(("warning", line.strip()[:200]))
        else:
            noise.append(("other", line.strip()[:200]))
    if group is not None:
        chain.append(_group_name(group))
    return {"chain": chain, "noise": noise, "abandoned": abandoned}
