"""Ctrl-C for the actor tree.

Signals reach only the main thread of the main interpreter (actor threads
block them), so the root turns Ctrl-C into the tree's cancellation:

- **The first SIGINT** is trio's: subactor's handler passes it to the
  handler it replaced (trio's own), so the root's code gets
  ``KeyboardInterrupt`` exactly as promptly as under plain trio: raised
  right where unprotected code runs, or delivered to the main task when
  the signal lands in protected code (subactor's runtime is KI-protected,
  like trio's). The ``KeyboardInterrupt`` unwinds through the actor
  nurseries, and each takes its actors down the ladder (cancel, interrupt,
  abandon; :mod:`subactor._ladder`) before it goes on. Calls that are
  shielded from cancellation while they wait for an actor (a worker pool's
  default ``run_sync``) are told too, see :func:`watch`: each takes its
  worker down the ladder with its own deadlines.
- **A second SIGINT, while the ladders the first one started run**,
  hurries: every running ladder skips to the interrupt and abandons soon
  after (:func:`subactor._ladder.hurry_all`). No second
  ``KeyboardInterrupt`` is raised into the teardown. A SIGINT during a
  teardown that no SIGINT started (a timeout's, say) is a first one.
- **While a debugger REPL holds the terminal** (subactor.devx, under
  ``debug_mode``), SIGINT is the REPL's: the handler says so, shows the
  prompt again and passes nothing on; the tree is not cancelled. Once the
  REPL is left, the rules above hold again.

The handler is installed once per ``trio.run`` (in its main thread, by the
first root actor nursery or shielded pool call), before anything it
serves can start, and the previous handler is put back when the run ends
(a system task's last act). It is not installed when SIGINT is ignored or
has its default disposition, or outside the main thread.
"""
from __future__ import annotations

import signal
import threading

import trio

from subactor import _ext, _ladder
from subactor.devx import _lock   # the debugger's terminal lock: while a REPL holds it, Ctrl-C is the REPL's

_handler_var: trio.lowlevel.RunVar = trio.lowlevel.RunVar("subactor.sigint_handler")
# Cancel scopes of shielded waits to cancel on the first SIGINT (see watch()).
_watched: set[trio.CancelScope] = set()


class _Handler:
    """The SIGINT handler of one trio run; chains to the one it replaced."""

    __slots__ = ("prev", "token", "raised_in")

    def __init__(self, prev, token: trio.lowlevel.TrioToken):
        self.prev = prev        # the handler before ours (trio's, normally)
        self.token = token      # the run we serve
        self.raised_in = None   # the ladder epoch in which we passed a SIGINT on

    def __call__(self, signum, frame):
        global _count
        _count += 1
        if _lock.holder() is not None:
            # A REPL has the terminal (subactor.devx): Ctrl-C is its, as in
            # pdb, not the tree's. The usual handling is back once it ends.
            _lock.note_sigint()
            return
        try:
            if _ladder.teardown_in_progress() and self.raised_in == _ladder.epoch():
                self.token.run_sync_soon(_ladder.hurry_all)
                return
            self.raised_in = _ladder.epoch()
            self.token.run_sync_soon(_release_watched)
        except trio.RunFinishedError:
            pass
        self.prev(signum, frame)  # install() only chains to a callable


_count = 0   # SIGINTs our handler has seen in this process


def sigints() -> int:
    """How many SIGINTs subactor's handler has seen: a caller that compares
    it before and after a stretch without a :func:`watch` learns whether
    Ctrl-C came in between."""
    return _count


def _release_watched() -> None:
    for scope in list(_watched):
        scope.cancel()


def install() -> None:
    """Install the handler for the current trio run if it can serve here
    (main thread of the main interpreter, SIGINT handled by a callable);
    cheap after the first call of a run. Synchronous, so nothing the caller
    starts next can race it."""
    try:
        _handler_var.get()
        return
    except LookupError:
        pass
    # Inside an actor first: there, threading.current_thread() would make a
    # dummy Thread (a subinterpreter's threading module takes the process's
    # main thread for its own), which complains when the actor ends.
    prev = None
    if _ext.current_actor() is None and threading.current_thread() is threading.main_thread():
        prev = signal.getsignal(signal.SIGINT)
    if not callable(prev):
        _handler_var.set(None)
        return
    handler = _Handler(prev, trio.lowlevel.current_trio_token())
    signal.signal(signal.SIGINT, handler)
    _handler_var.set(handler)
    trio.lowlevel.spawn_system_task(_restore_at_end, handler, name="subactor.sigint")


async def _restore_at_end(handler: _Handler) -> None:
    try:
        await trio.sleep_forever()
    finally:
        # System tasks are cancelled when the run's main task is done,
        # before trio puts its own handler away.
        if signal.getsignal(signal.SIGINT) is handler:
            signal.signal(signal.SIGINT, handler.prev)


class watch:
    """``with watch() as scope:`` around a wait that is shielded from
    cancellation but must still answer Ctrl-C: the first SIGINT cancels
    ``scope`` (a plain cancel scope inside the caller's shield), so the
    caller can take its actor down the ladder instead of waiting for it."""

    __slots__ = ("scope",)

    def __enter__(self) -> trio.CancelScope:
        install()
        self.scope = trio.CancelScope()
        _watched.add(self.scope)
        return self.scope.__enter__()

    def __exit__(self, *exc) -> bool:
        _watched.discard(self.scope)
        return self.scope.__exit__(*exc)
