"""Entry point of a process actor: ``python -m subactor._actor._process_main SOCK WAKE PPID``.

SOCK is the child's end of the socketpair to its parent, WAKE the read end
of the parent's cancel pipe, PPID the pid of the parent process (see
:mod:`subactor._spawn._process`). The first message on SOCK is the actor's
config; then the ordinary actor runtime serves calls over SOCK.

The runtime waits on ``_ext.wake_fileno()`` and asks
``_ext.cancel_requested()`` for the out-of-band cancel of a subinterpreter
actor. In a process there is no such flag in the C extension (both say
"none" in a main interpreter), so this module points them at the cancel
pipe: the pipe becomes readable (end-of-file) when the parent closes its
write end, which is the parent's ``cancel()``, or its death.

SIGINT (the parent's interrupt rung) raises ``_ext.ActorInterrupted`` in
the running code, as ``interrupt()`` does in a subinterpreter actor.

Exit codes: 0 after a normal end; 130 after an interrupt (ActorInterrupted,
or a KeyboardInterrupt of the actor's own SIGINT handling); the code given
to ``sys.exit()`` by the actor's code, in sync and in trio mode; 1 if the
runtime itself failed (its traceback is on stderr); 2 if the parent was
gone before the actor started; 3 if it went while the actor was sending.
"""
from __future__ import annotations

import os
import select
import sys

from subactor import _ext


def _die_with_parent(ppid: int) -> None:
    """SIGKILL this process when the thread that spawned it ends, so that a
    parent killed outright leaves no orphan actor running."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != ppid:
        # The parent died before the death signal was armed.
        os._exit(2)


def _use_cancel_pipe(fd: int) -> None:
    """Make the runtime's out-of-band cancel check read the cancel pipe."""
    os.set_blocking(fd, False)  # the runtime drains the wake fd without waiting
    poller = select.poll()
    poller.register(fd, select.POLLIN)

    def wake_fileno() -> int:
        return fd

    def cancel_requested() -> bool:
        # Readable only at end-of-file (nothing is ever written): the parent
        # closed its end. Level-triggered, so it stays true.
        return bool(poller.poll(0))

    _ext.wake_fileno = wake_fileno
    _ext.cancel_requested = cancel_requested


def _worker_main(cfg: dict, end) -> None:
    """A worker of a process pool (subactor._pool). Its loop closes its end
    itself when it leaves holding no call (the pool sees EndOfChannel: the
    call it may have just sent never ran); any other way out breaks the end
    (BrokenError: the call may have run), as a subinterpreter host does."""
    from subactor._actor._pool_worker import main as worker_main

    try:
        worker_main(cfg, end)
    except BaseException:
        end.abort()
        raise
    end.abort()  # no-op after the loop's own close()


def _interrupt_handler(signum, frame):
    raise _ext.ActorInterrupted("interrupted by the parent (SIGINT)")


def main(argv: list[str]) -> int:
    import signal

    # The parent's interrupt rung is SIGINT: raise what interrupt() raises in
    # a subinterpreter actor, so that the runtime (and a pool worker, which
    # must never catch it) treats both backends alike. trio leaves a handler
    # that is not the default one alone, so this holds in trio mode too.
    signal.signal(signal.SIGINT, _interrupt_handler)
    from subactor import _state

    _state.mark_child_process()  # no code here is the root's, also before the actor record exists
    sock_fd, wake_fd, ppid = (int(a) for a in argv[:3])
    _die_with_parent(ppid)
    # Not inherited by whatever this actor's code spawns: the parent must see
    # EOF when this process ends, and the cancel pipe is ours alone.
    os.set_inheritable(sock_fd, False)
    os.set_inheritable(wake_fd, False)

    from subactor._spawn._sockend import SocketEnd

    end = SocketEnd(sock_fd, side="child", linger=1.0)
    try:
        first = end.recv()
    except (_ext.EndOfChannel, _ext.BrokenError):
        end.close()
        return 2
    try:
        cfg = _ext.loads(first)
    finally:
        first.release()

    if cfg.get("hub_fd") is not None:
        os.set_inheritable(cfg["hub_fd"], False)   # its link to the root's hub
    sys.path[:] = cfg.pop("sys_path")
    pythonpath = cfg.pop("pythonpath")
    if pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath
    _use_cancel_pipe(wake_fd)

    if cfg.pop("entry", "runtime") == "worker":
        actor_main = _worker_main
    else:
        from subactor._actor._runtime import actor_main

    interrupts = (KeyboardInterrupt, _ext.ActorInterrupted)
    try:
        actor_main(cfg, end)
    except interrupts:
        # ActorInterrupted: the parent's interrupt rung (SIGINT), or a cancel
        # request that ended a cancellable time.sleep (sleep_wakes_on_cancel).
        # KeyboardInterrupt: the actor's code handled SIGINT its own way
        # (e.g. a nursery of its own turns it into a cancel, then raises it).
        # Either way the actor ends now, without a traceback.
        return 130
    except BaseExceptionGroup as eg:
        # trio mode: the interrupt may come out of a task's nursery. (A lone
        # SystemExit of the actor's code does not: the runtime raises the
        # lone error of its serve loop bare, so it exits with its code.)
        if eg.split(interrupts)[1] is None:
            return 130
        raise
    except (_ext.BrokenError, _ext.EndOfChannel):
        # A reply could not be sent: the parent is gone. Nothing to report to.
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
