"""The REPLs of the debugger: ``pause()``, ``pause_from_sync()``,
``post_mortem()``, ``open_crash_handler()`` and the crash REPL of an actor
under ``debug_mode``.

Every REPL is stdlib :class:`pdb.Pdb`, run on the thread of the actor it
debugs (subactor owns that thread, so no greenlets are needed to stop sync
code), on the one terminal of the tree, after taking the root's terminal
lock (:mod:`subactor.devx._lock`) through the actor's hub channel. The lock
is let go when the user continues (``c``) or quits (``q``), or when the
actor ends, whatever way.

- A subinterpreter actor reads the terminal on fd 0 like the root does; in
  an own-GIL subinterpreter ``readline`` does not load, so pdb runs without
  line editing, completion or history (plain cooked-terminal input).
- A process actor gets the terminal as its stdin under ``debug_mode`` and,
  while it holds the lock, is the terminal's foreground process group (so
  it may read it, and Ctrl-C goes to its REPL); readline works there.
- The prompt names the actor: ``<name> (Pdb+) `` (tractor's is ``(Pdb+)``
  with the actor named only in the banner above it).
"""
from __future__ import annotations

import pdb
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from subactor import _ext, _state

_pause_msg = "Opening a pdb REPL in paused actor"
_crash_msg = "Opening a pdb REPL in crashed actor"
_repl_fail_msg = "Failed to open a pdb REPL via pause()"
_ctlc_ignore_header = "Ignoring SIGINT while a pdb REPL is open"

_held = False   # this interpreter holds the terminal lock now


def prompt_for(name: str) -> str:
    return f"{name} (Pdb+) "


def _uid() -> tuple[str, str]:
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is None:
        return ("root" if not _state.in_actor() else "actor", "")
    return actor.uid


class PdbREPL(pdb.Pdb):
    """pdb with the actor's name in its prompt; leaving it (``c``, ``q``,
    Ctrl-D) lets the terminal lock go."""

    def __init__(self, name: str):
        # nosigint: pdb's own SIGINT handler cannot be installed in an
        # actor (signals are the main interpreter's); the root's handler
        # keeps Ctrl-C from the tree while a REPL is open (subactor._sigint).
        super().__init__(nosigint=True, skip=["subactor.devx.*"])
        self.prompt: str = prompt_for(name)

    def do_continue(self, arg: str) -> bool | None:
        out = super().do_continue(arg)
        release()
        return out

    do_c = do_continue
    do_cont = do_continue

    def do_quit(self, arg: str) -> bool | None:
        release()
        return super().do_quit(arg)

    do_q = do_quit
    do_exit = do_quit

    def do_EOF(self, arg: str) -> bool | None:
        release()
        return super().do_EOF(arg)


# -- the terminal lock, from wherever the REPL runs -----------------------------

def _runtime():
    if not _state._is_actor:
        return None
    from subactor._actor import _runtime

    return _runtime._current


def _root_lock():
    from subactor.devx import _lock

    return _lock.term_lock()


def _take_foreground() -> None:
    """A process actor: make this process the terminal's foreground group
    while it holds the lock (the root takes it back on release)."""
    if not _state.in_child_process():
        return
    from subactor.devx import _lock

    _lock.make_foreground()


def _still_held() -> bool:
    """This interpreter holds the lock now. (In the root the lock itself
    says so: a root runtime that ended took its lock with it.)"""
    global _held
    if _held and not _state.in_actor():
        from subactor.devx import _lock

        _held = _lock._lock is not None and _lock._lock.holder == _uid()
    return _held


def acquire_sync() -> bool:
    """Wait for the terminal lock, blocking this actor's thread (its REPL
    would block it anyway). The wait ends when the lock comes (True), when
    there is no tree to ask (False: the REPL opens unlocked), or when the
    actor is cancelled (ActorInterrupted, the request withdrawn): the
    parent's ladder bounds it."""
    global _held
    if _still_held():
        return True
    if not _state.in_actor():
        if _state._root is None:
            return False
        _held = _root_lock().try_acquire(_uid())
        if not _held:
            print(f"(subactor: actor {_root_lock().holder!r} holds the terminal; the root's REPL opens anyway)",
                  file=sys.stderr)
        return _held
    rt = _runtime()
    if rt is None or rt.hub_end is None:
        return False
    import itertools
    import select

    from subactor.discovery import _client

    end = rt.hub_end
    rid = next(_client._rids)
    try:
        end.send(_ext.dumps({"t": "dbg_lock", "rid": rid}), timeout=5.0)
    except Exception:
        return False
    poller = select.poll()
    poller.register(end.recv_fileno(), select.POLLIN)
    wake = _ext.wake_fileno()
    if wake is not None:
        poller.register(wake, select.POLLIN)
    for _ in itertools.count():
        if _ext.cancel_requested():
            _tell({"t": "dbg_unlock"})
            raise _ext.ActorInterrupted("cancelled while waiting for the terminal lock")
        try:
            m = end.recv_nowait()
        except BlockingIOError:
            poller.poll(500)
            continue
        except (_ext.EndOfChannel, _ext.BrokenError, _ext.ClosedError):
            return False   # the root has ended
        try:
            msg = _ext.loads(m)
        finally:
            m.release()
        if isinstance(msg, dict) and msg.get("t") == "ans" and msg.get("rid") == rid:
            _held = True
            _take_foreground()
            return True
        # Not ours: what the hub link would have routed.
        if rt.hub is not None:
            rt.hub._route(msg)
        else:
            rt.hub_stash.append(msg)
    return False


async def acquire() -> bool:
    """Wait for the terminal lock in trio mode (cancellable: a cancelled
    wait withdraws its request)."""
    global _held
    if _still_held():
        return True
    if not _state.in_actor():
        if _state._root is None:
            return False
        await _root_lock().acquire(_uid())
        _held = True
        return True
    rt = _runtime()
    if rt is None or rt.hub is None:
        return acquire_sync()
    try:
        await rt.hub.request({"t": "dbg_lock"})
    except BaseException:
        _tell({"t": "dbg_unlock"})
        raise
    _held = True
    _take_foreground()
    return True


def _tell(msg: dict) -> None:
    rt = _runtime()
    if rt is None:
        return
    if rt.hub is not None:
        rt.hub.tell(msg)
    elif rt.hub_end is not None:
        try:
            rt.hub_end.send(_ext.dumps(msg), timeout=1.0)
        except Exception:
            pass


def release() -> None:
    """Let the terminal lock go (nothing if this interpreter does not hold it)."""
    global _held
    if not _held:
        return
    _held = False
    if not _state.in_actor():
        _root_lock().release(_uid())
    else:
        sys.stdout.flush()
        _tell({"t": "dbg_unlock"})


class _ReplSigint:
    """In a process actor holding the terminal, Ctrl-C reaches this process
    (it is the foreground group): it goes to the REPL, not to the actor's
    interrupt handler."""

    def __enter__(self):
        self.old = None
        if _state.in_child_process():
            import signal

            def note(signum, frame):
                sys.stdout.write(f"\n{_ctlc_ignore_header}: 'c' continues, 'q' quits\n{prompt_for(_uid()[0])}")
                sys.stdout.flush()

            self.old = signal.signal(signal.SIGINT, note)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            import signal

            signal.signal(signal.SIGINT, self.old)


def _task() -> str:
    """`` in <Task 'name'>`` for the trio task the REPL opens in, else ""."""
    if "trio" not in sys.modules:
        return ""
    try:
        import trio

        return f" in <Task {trio.lowlevel.current_task().name!r}>"
    except RuntimeError:
        return ""


def _banner(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def _check_on(what: str) -> None:
    if not _state.debug_mode():
        from subactor._exceptions import RuntimeFailure

        raise RuntimeFailure(f"{what}: the debugger is off here; open the tree with "
                             f"open_nursery(debug_mode=True) / open_root_actor(debug_mode=True), "
                             f"or start this actor with start_actor(..., debug_mode=True)")


# -- pause --------------------------------------------------------------------------

def _trace_at(frame) -> None:
    """Stop in ``frame`` at its next line (the one after the pause)."""
    uid = _uid()
    _banner(f"{_pause_msg} {uid!r}{_task()}")
    p = PdbREPL(uid[0])
    _install_sigint_guard(p)
    p.set_trace(frame)


def _install_sigint_guard(p: PdbREPL) -> None:
    """A process actor's REPL keeps Ctrl-C while it is open (see
    _ReplSigint); it is put back when the lock goes."""
    if not _state.in_child_process():
        return
    guard = _ReplSigint().__enter__()
    orig = p.__class__

    class Guarded(orig):
        def do_continue(self, arg):
            guard.__exit__()
            return super().do_continue(arg)

        do_c = do_cont = do_continue

        def do_quit(self, arg):
            guard.__exit__()
            return super().do_quit(arg)

        do_q = do_exit = do_quit

    p.__class__ = Guarded


async def pause(*, shield: bool = False, hide_tb: bool = True, **kwargs: Any) -> None:
    """Open a pdb REPL in the calling task, on the tree's terminal, once
    this actor holds the terminal lock (another actor's REPL first, if one
    is open). ``c`` continues, ``q`` quits: ``bdb.BdbQuit`` is raised in the
    caller, which ends its call (its caller sees it, as an error of this
    actor). Only with debug_mode on (a RuntimeError otherwise)."""
    _check_on("pause()")
    frame = sys._getframe(1)
    if shield:
        import trio

        with trio.CancelScope(shield=True):
            await acquire()
    else:
        await acquire()
    _trace_at(frame)


def pause_from_sync(*, hide_tb: bool = True, **kwargs: Any) -> None:
    """The same from sync code (in an actor's sync function, or a sync
    function called from one of its tasks): it blocks this actor's thread
    until the terminal is free. No greenlets: subactor runs the actor's
    thread."""
    _check_on("pause_from_sync()")
    frame = sys._getframe(1)
    acquire_sync()
    _trace_at(frame)


def breakpoint_hook(*args, **kwargs) -> None:
    """``sys.breakpointhook`` under debug_mode: ``breakpoint()`` is a
    pause_from_sync()."""
    frame = sys._getframe(1)
    acquire_sync()
    _trace_at(frame)


# -- post-mortem -------------------------------------------------------------------

def _pm(tb, header: str) -> None:
    locked = acquire_sync()
    try:
        uid = _uid()
        _banner(header)
        p = PdbREPL(uid[0])
        p.reset()
        with _ReplSigint():
            try:
                p.interaction(None, tb)
            except OSError as exc:   # no terminal to read (stdin closed, captured)
                sys.stderr.write(f"{_repl_fail_msg}: cannot read the terminal: {exc}\n")
    finally:
        if locked:
            release()


async def post_mortem(exc: BaseException | None = None, *, tb: TracebackType | None = None, hide_tb: bool = True,
                      **kwargs: Any) -> None:
    """``await post_mortem()``: a post-mortem REPL at where ``exc`` (by
    default the exception being handled) was raised, on the tree's
    terminal under the terminal lock (tractor's is async too)."""
    if exc is None and tb is None:
        exc = sys.exception()
    await acquire()
    post_mortem_sync(exc, tb=tb)


def post_mortem_sync(exc: BaseException | None = None, *, tb: TracebackType | None = None) -> None:
    """The same from sync code (it blocks this actor's thread while it
    waits for the terminal)."""
    if exc is None and tb is None:
        exc = sys.exception()
    if tb is None:
        if exc is None:
            raise ValueError("post_mortem(): no exception is being handled and none was given")
        tb = exc.__traceback__
    uid = _uid()
    src = getattr(exc, "src_uid", None)
    origin = f", a remote error from actor {tuple(src)!r}" if src else ""
    _pm(tb, f"{_crash_msg} {uid!r}{_task()}{origin}\n{_summary(exc)}")


def _summary(exc) -> str:
    if exc is None:
        return ""
    import traceback

    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def crashed(exc: BaseException) -> None:
    """The runtime calls this when a call fails under debug_mode, before
    the error goes to the caller: a post-mortem REPL at the raise. A quit
    from this actor's own REPL (BdbQuit) opens none; a child's quit, which
    reaches here as a RemoteActorError, does (as in tractor)."""
    import bdb

    if isinstance(exc, bdb.BdbQuit):
        return
    try:
        post_mortem_sync(exc)
    except _ext.ActorInterrupted:
        raise
    except Exception as e:   # the REPL itself broke: the error goes on
        sys.stderr.write(f"{_repl_fail_msg}: {e!r}\n")


class BoxedMaybeException:
    """What ``with open_crash_handler() as box:`` yields: ``box.value`` is
    the error that left the block (None if none did), as in tractor."""

    __slots__ = ("value", "raise_on_exit")

    def __init__(self, raise_on_exit: bool | Sequence[type[BaseException]] = True):
        self.value: BaseException | None = None
        self.raise_on_exit: bool | Sequence[type[BaseException]] = raise_on_exit

    def __repr__(self) -> str:
        return f"<BoxedMaybeException value={self.value!r}>"


class open_crash_handler:
    """``with open_crash_handler() as box:`` a post-mortem REPL for an error
    that leaves the block (``catch``: which ones, ``BaseException`` by
    default; ``ignore``: which not, ``KeyboardInterrupt``, trio's
    ``Cancelled`` and BdbQuit always), then the error goes on
    (``raise_on_exit=False``: it is swallowed; a sequence of types: only
    errors of exactly those types go on). ``box.value`` is the error. Works with or without a
    runtime and debug_mode, as tractor's."""

    def __init__(self, catch: Sequence[type[BaseException]] = (BaseException,),
                 ignore: Sequence[type[BaseException]] = (),
                 raise_on_exit: bool | Sequence[type[BaseException]] = True, repl: bool = True,
                 repl_fixture: Callable[..., AbstractContextManager[bool]] | None = None, **kwargs: Any):
        import bdb

        self.catch: tuple[type[BaseException], ...] = tuple(catch)
        self.ignore: tuple[type[BaseException], ...] = (*tuple(ignore), bdb.BdbQuit, KeyboardInterrupt)
        self.raise_on_exit: bool | Sequence[type[BaseException]] = raise_on_exit
        self.repl: bool = repl
        # tractor's hook around the REPL: repl_fixture(repl=, maybe_bxerr=)
        # is a context manager whose value says whether to open the REPL.
        self.repl_fixture: Callable[..., AbstractContextManager[bool]] | None = repl_fixture
        self.box: BoxedMaybeException = BoxedMaybeException(raise_on_exit)

    def __enter__(self) -> BoxedMaybeException:
        return self.box

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, self.catch):
            return False
        self.box.value = exc
        if isinstance(exc, self.ignore) or type(exc).__name__ == "Cancelled":
            return False
        if self.repl_fixture is not None:
            with self.repl_fixture(repl=PdbREPL(_uid()[0]), maybe_bxerr=self.box) as enter:
                if enter and self.repl:
                    post_mortem_sync(exc)
        elif self.repl:
            post_mortem_sync(exc)
        roe = self.raise_on_exit
        if roe is True:
            return False
        if roe is False:
            return True
        return type(exc) not in tuple(roe)   # tractor's rule: those exact types go on


def maybe_open_crash_handler(pdb: bool | None = None, **kwargs: Any) -> open_crash_handler:
    """tractor's: an :class:`open_crash_handler` whose REPL opens only if
    ``pdb`` is true (by default: if debug_mode is on here); the box gets
    the error either way."""
    on = _state.debug_mode() if pdb is None else bool(pdb)
    return open_crash_handler(repl=on, **kwargs)
