"""The terminal lock: one REPL on the root's terminal at a time.

It lives in the root, in the hub (:mod:`subactor.discovery._hub`), and is
reached by every actor of the tree through its hub channel (a C channel for
a subinterpreter actor, a socket for a process actor):

  dbg_lock   {rid}   -> ans {v: True} once this actor holds the terminal
  dbg_unlock {}         it is done (also: it gave up waiting, it was cancelled)

Requests are served first come, first served. The holder loses the lock
when it says so, and when its hub channel ends however it ends (it
returned, failed, was interrupted or abandoned): the hub then removes the
member and calls :meth:`TermLock.drop`, which also forgets its queued
request. The root itself takes the lock directly (:meth:`acquire`).

No PyObject of an actor is held here; everything runs in the root's trio
run. ``holder`` is read by the root's SIGINT handler (subactor._sigint):
while someone holds the terminal, Ctrl-C is the REPL's, not the tree's.
"""
from __future__ import annotations

import collections
import os
import sys


class TermLock:
    def __init__(self):
        self.holder: tuple | None = None     # uid holding the terminal now
        self.holder_pgrp: int | None = None  # the foreground group to restore when it ends
        self._queue: collections.deque = collections.deque()   # (uid, grant callable)

    def request(self, uid: tuple, grant) -> None:
        """``grant()`` is called once ``uid`` holds the lock (now, or when
        the ones before it are done)."""
        uid = tuple(uid)
        if self.holder == uid:
            grant()
            return
        self._queue.append((uid, grant))
        self._next()

    def release(self, uid: tuple) -> None:
        """``uid`` is done with the terminal, or gives up waiting for it."""
        uid = tuple(uid)
        self._queue = collections.deque(q for q in self._queue if q[0] != uid)
        if self.holder == uid:
            self.holder = None
            _restore_foreground()
            self._next()

    drop = release   # its actor is gone: the same, whether it held or waited

    def _next(self) -> None:
        while self.holder is None and self._queue:
            uid, grant = self._queue.popleft()
            self.holder = uid
            try:
                grant()
            except Exception:
                self.holder = None   # its channel is gone: the next one

    async def acquire(self, uid: tuple) -> None:
        """The root's own wait (cancellable: a cancelled wait is dropped)."""
        import trio

        ev = trio.Event()
        self.request(uid, ev.set)
        try:
            await ev.wait()
        except BaseException:
            self.release(uid)
            raise

    def try_acquire(self, uid: tuple) -> bool:
        """Take it now if nobody holds it (the root's sync REPLs, which
        cannot wait: the lock is served by the very loop they block)."""
        if self.holder is None or self.holder == tuple(uid):
            self.holder = tuple(uid)
            return True
        return False


def _restore_foreground() -> None:
    """A process actor makes itself the terminal's foreground group while
    it holds the lock (so it can read it, and Ctrl-C goes to its REPL);
    when it is done, or dies doing it, the root takes the terminal back."""
    make_foreground()


def make_foreground() -> None:
    """Make this process the foreground group of the terminal on stdin (if
    stdin is one and it is not already); SIGTTOU is ignored meanwhile, as
    a background group must for tcsetpgrp()."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) == os.getpgrp():
            return
        import signal

        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(fd, os.getpgrp())
        finally:
            signal.signal(signal.SIGTTOU, old)
    except (OSError, ValueError, AttributeError):
        pass


def note_sigint() -> None:
    """The root's SIGINT handler, while a REPL holds the terminal: say
    that Ctrl-C went to the REPL and show its prompt again."""
    from subactor.devx._debug import _ctlc_ignore_header, prompt_for

    who = _lock.holder if _lock is not None else None
    if who is None:
        return
    try:
        sys.stdout.write(f"\n{_ctlc_ignore_header}: 'c' continues, 'q' quits\n{prompt_for(who[0])}")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


_lock: TermLock | None = None


def term_lock() -> TermLock:
    global _lock
    if _lock is None:
        _lock = TermLock()
    return _lock


def holder() -> tuple | None:
    """Who holds the terminal now (in the root), else None."""
    return _lock.holder if _lock is not None else None
