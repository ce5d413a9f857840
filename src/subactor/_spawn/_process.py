"""The process backend: the same actors, each in a child Python process.

For code that cannot load in an own-GIL subinterpreter (NumPy, readline,
any single-phase-init extension). ``start_actor(..., backend="process")``
(and ``run_in_actor``, ``open_nursery(backend="process")``, and the pool's
``backend="process"``) come here through :func:`subactor._spawn.spawn`,
which returns what every backend returns: a handle of the contract's
``Handle`` and the parent's end of the transport (a ``MessageEnd``).
Portals, contexts, streams and the cancel ladder then work as for
subinterpreter actors.

What a child is:

* ``python -m subactor._actor._process_main SOCK WAKE PPID``, started with
  ``subprocess.Popen`` (vfork + exec, about a millisecond, synchronous; the
  start of the child is not waited for). It runs the ordinary actor runtime
  (``_actor._runtime.actor_main``), or for entry ``"worker"`` a worker
  pool's loop (``_actor._pool_worker.main``), over a
  :class:`~subactor._spawn._sockend.SocketEnd` on its end of a Unix
  socketpair. Its config (the ``cfg`` dict of ``ActorNursery.start_actor``
  plus the parent's ``sys.path``) is the first
  message on that socket. The parent's ``sys.path`` also goes to the child
  as PYTHONPATH so that ``subactor`` itself imports there; the child then
  sets ``sys.path`` to the parent's list and restores PYTHONPATH.
* It runs in its own process group, so a Ctrl-C at the terminal reaches
  only the parent, which turns it into a cancel of the actor tree (as for
  subinterpreter actors). Its stdin is /dev/null (a background process
  group reading the terminal would be stopped); stdout and stderr are the
  parent's.
* It dies with the thread that spawned it (PR_SET_PDEATHSIG = SIGKILL, set
  by the child): a parent killed with SIGKILL leaves no orphan actors.

The cancel ladder (:mod:`subactor._ladder`) for a process actor:

1. ``cancel()``: out of band, closes the write end of a pipe whose read end
   the child uses as its wake descriptor (``_ext.wake_fileno()`` /
   ``_ext.cancel_requested()`` in the child, see ``_actor._process_main``): the
   runtime cancels its calls and leaves, exactly as a subinterpreter actor
   does when its cancel flag is set. It works when the socket is full or
   broken. The in-band ``cancel_actor`` message follows as usual.
2. ``interrupt()``: SIGINT. The child's handler raises ``ActorInterrupted``
   in its main thread, as ``interrupt()`` does in a subinterpreter actor,
   but also inside blocking calls such as ``time.sleep`` (the signal
   interrupts them), which a subinterpreter actor cannot interrupt; the
   child exits with code 130.
3. ``abandon()``: SIGKILL and reap. For a process the hard kill really
   ends it and frees everything, so nothing is left behind; the method
   keeps its name, and warns (``AbandonedActorWarning``) naming the actor,
   because its cleanup code did not run.

No zombie is left: ``done`` reaps as soon as the child has exited, ``join``
and ``abandon`` always reap, and a handle dropped while its child runs
kills and reaps it (``weakref.finalize``, also at interpreter exit). The
parent waits for a child with ``trio.lowlevel.wait_readable`` on a pidfd,
never blocking its event loop; signals go through the pidfd, so a recycled
pid is never hit.

The hint that names ``backend="process"`` when an import fails because a
module refuses subinterpreters is ``subactor._exceptions.box_error``'s.
"""
from __future__ import annotations

import os
import sys
import weakref

# Imported for the exit hook: _ext's hook calls subactor._ladder.at_exit()
# when the module is loaded, and at_exit ends the live children below.
from subactor import _ladder

__all__ = ["spawn", "ProcessHandle", "live_processes"]

# Interpreter flags that would make the child ignore PYTHONPATH or change
# its sys.path: not passed on with the parent's other flags (the child needs
# the parent's sys.path to import subactor, and sets it itself).
_DROP_FLAGS = {"-I", "-E", "-s", "-S", "-P"}

# Handles of live child processes (weak): for diagnostics and tests.
_live: "weakref.WeakSet[ProcessHandle]" = weakref.WeakSet()


def live_processes() -> list["ProcessHandle"]:
    """Handles of process actors started here whose process has not been
    reaped yet."""
    return [h for h in list(_live) if h._popen.returncode is None]


# -- spawning -------------------------------------------------------------------

def _interpreter_flags() -> list[str]:
    """The parent's -X/-W/-O/... flags, for the child (as multiprocessing does)."""
    import subprocess

    return [a for a in subprocess._args_from_interpreter_flags() if a not in _DROP_FLAGS]


def spawn(cfg: dict, entry: str, pass_fds: tuple[int, ...] = ()):
    """Start ``python -m subactor._actor._process_main`` running ``entry``
    ("runtime" or "worker") for ``cfg``. Returns ``(handle, end)``: a
    :class:`ProcessHandle` and the parent's
    :class:`~subactor._spawn._sockend.SocketEnd`. Does not wait for the child
    to start: messages sent meanwhile wait in the socket."""
    import subprocess

    import _socket

    from subactor import _ext
    from subactor._spawn._sockend import SocketEnd

    # "" (the current directory) is pinned to the directory it means now.
    paths = [p or os.getcwd() for p in sys.path]
    full = dict(cfg, entry=entry, sys_path=paths, pythonpath=os.environ.get("PYTHONPATH"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths)

    psock, csock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    end = SocketEnd(psock.detach(), side="parent", linger=0.0)
    wake_r, wake_w = os.pipe()
    try:
        cfd = csock.fileno()
        # The config waits in the socket for the child to read it.
        end.send_nowait(_ext.dumps(full))
        argv = [sys.executable, *_interpreter_flags(), "-m", "subactor._actor._process_main",
                str(cfd), str(wake_r), str(os.getpid())]
        try:
            popen = subprocess.Popen(argv, pass_fds=(cfd, wake_r, *pass_fds), close_fds=True,
                                     stdin=None if cfg.get("debug") else subprocess.DEVNULL,
                                     env=env, process_group=0)
        except OSError as exc:
            raise RuntimeError(f"could not start a process for actor {cfg['name']!r} "
                               f"({sys.executable}): {exc}") from exc
    except BaseException:
        end.close()
        os.close(wake_w)
        raise
    finally:
        csock.close()
        os.close(wake_r)
    # No checkpoint from here on: the child must get an owner at once. If
    # the handle cannot be made, its finalizer kills and reaps the child.
    try:
        handle = ProcessHandle(popen, cfg["name"], wake_w)
    except BaseException:
        end.close()
        raise
    return handle, end


# -- the handle -----------------------------------------------------------------

def _close_fds(fds: dict) -> None:
    for k, fd in list(fds.items()):
        if fd >= 0:
            fds[k] = -1
            os.close(fd)


def _finalize(popen, fds: dict) -> None:
    """The handle was dropped with its child possibly still running (an
    error path: actors of a nursery or a pool are always ended first): kill
    it and reap it (a killed process goes in milliseconds; the wait is
    bounded anyway), then release the fds."""
    try:
        if popen.returncode is None and popen.poll() is None:
            try:
                popen.kill()
            except OSError:
                pass
            try:
                popen.wait(timeout=5.0)
            except Exception:
                pass
    finally:
        _close_fds(fds)


class ProcessHandle:
    """Parent-side handle of a process actor: the backend contract's
    :class:`subactor._spawn.Handle` (see the module docstring for what each
    rung does to a process)."""

    backend = "process"
    interp_id = -1       # no interpreter of this process runs it
    abandon_kills = True  # abandon() ends the actor (SIGKILL), unlike a subinterpreter's

    def __init__(self, popen, name: str, cancel_fd: int):
        import time

        self._popen = popen
        self.pid = popen.pid
        self.name = name
        self._t0 = time.monotonic()
        self._killed = False      # we sent SIGKILL (abandon)
        self.interrupts = 0       # SIGINTs sent
        # Descriptors owned by the handle; -1 once closed. The pidfd lives as
        # long as the handle, as _ext.SubintHandle's done-eventfd does: fileno()
        # stays valid (and readable) after the child was reaped.
        self._fds = {"cancel": cancel_fd, "pid": -1}
        self._finalizer = weakref.finalize(self, _finalize, popen, self._fds)
        # At exit, a child still running goes down the ladder instead
        # (subactor._ladder.at_exit, called by _ext's exit hook), with its
        # cooperative and interrupt rungs, not straight to SIGKILL.
        self._finalizer.atexit = False
        # The child stays a zombie until we reap it, so this cannot miss it.
        self._fds["pid"] = os.pidfd_open(self.pid)
        _live.add(self)

    # -- state ---------------------------------------------------------------
    def _poll(self) -> int | None:
        """The exit code once the child has exited (reaping it), else None."""
        rc = self._popen.returncode
        if rc is None:
            rc = self._popen.poll()
        return rc

    @property
    def done(self) -> bool:
        """True once the child process has exited (it is reaped then)."""
        return self._poll() is not None

    @property
    def killed(self) -> bool:
        """True if the child was killed at its hard deadline (abandon())."""
        return self._killed

    @property
    def returncode(self) -> int | None:
        return self._poll()

    @property
    def state(self) -> str:
        """'running', 'exited-ok', 'exited-error', 'interrupted' or 'killed'."""
        rc = self._poll()
        if self._killed:
            return "killed"
        if rc is None:
            return "running"
        if rc == 0:
            return "exited-ok"
        if rc == 130 or rc == -2:
            return "interrupted"
        return "exited-error"

    def fileno(self) -> int:
        """A pidfd: readable (and staying so) once the child has exited."""
        return self._fds["pid"]

    def info(self) -> dict:
        import time

        return {"name": self.name, "backend": "process", "pid": self.pid, "state": self.state,
                "returncode": self._popen.returncode, "interrupts": self.interrupts,
                "age": time.monotonic() - self._t0}

    def outcome(self) -> tuple:
        """Best effort, from the exit status: ``('ok', None)``, or
        ``(kind, type_name, message, '')`` with kind 'interrupted' (SIGINT),
        'killed' (our SIGKILL) or 'error' (another exit code or signal).
        Errors of calls travel as messages, not here. RuntimeError while the
        child runs."""
        rc = self._poll()
        if rc is None:
            raise RuntimeError(f"actor {self.name!r} (pid {self.pid}) is still running")
        if self._killed:
            return ("killed", "SIGKILL", f"actor {self.name!r} was killed at its hard deadline", "")
        if rc == 0:
            return ("ok", None)
        if rc == 130 or rc == -2:
            return ("interrupted", "ActorInterrupted", f"actor {self.name!r} was interrupted (SIGINT)", "")
        if rc < 0:
            import signal

            try:
                sig = signal.Signals(-rc).name
            except ValueError:
                sig = f"signal {-rc}"
            return ("error", "signal", f"actor {self.name!r} (pid {self.pid}) was killed by {sig}", "")
        return ("error", "SystemExit", f"actor {self.name!r} (pid {self.pid}) exited with code {rc}", "")

    # -- the ladder ----------------------------------------------------------
    def cancel(self) -> bool:
        """Cooperative cancel, out of band: close the child's cancel pipe.
        False if the child has already exited."""
        fd = self._fds["cancel"]
        if fd >= 0:
            self._fds["cancel"] = -1
            os.close(fd)
        return not self.done

    def _signal(self, sig: int) -> bool:
        import signal

        if self.done:
            return False
        try:
            signal.pidfd_send_signal(self._fds["pid"], sig)
        except ProcessLookupError:
            return False
        return True

    def interrupt(self) -> bool:
        """SIGINT to the child (KeyboardInterrupt in its code). False if it
        has exited already."""
        import signal

        sent = self._signal(signal.SIGINT)
        if sent:
            self.interrupts += 1
        return sent

    def abandon(self) -> bool:
        """The hard deadline: SIGKILL the child, then warn naming it. Returns
        at once (the kill is asynchronous: ``done`` turns true, and reaps,
        a moment later). False (and nothing done) if it had exited already."""
        import signal

        if not self._signal(signal.SIGKILL):
            return False
        self._killed = True
        self._close_cancel()
        import warnings

        from subactor._ext import AbandonedActorWarning

        # Warned last: with warnings as errors, the kill is done.
        warnings.warn(AbandonedActorWarning(
            f"actor {self.name!r} (process {self.pid}) did not end by its hard deadline after a "
            f"cancel request and an interrupt (SIGINT): killed with SIGKILL; its cleanup code did not run"),
            stacklevel=2)
        return True

    def _wait_exit(self, timeout: float | None) -> bool:
        """Block (in poll, GIL released) until the child exits, at most
        ``timeout`` seconds. True if it has exited."""
        import select

        if self._popen.returncode is not None:
            return True
        p = select.poll()
        p.register(self._fds["pid"], select.POLLIN)
        p.poll(None if timeout is None else max(0, int(timeout * 1000)))
        return self.done

    def _reap(self, timeout: float | None) -> bool:
        if self._wait_exit(timeout):
            self._popen.wait()  # already exited: returns at once
            return True
        return False

    def _close_cancel(self) -> None:
        fd = self._fds["cancel"]
        if fd >= 0:
            self._fds["cancel"] = -1
            os.close(fd)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the child has exited (reaping it) or ``timeout``
        passes. True if it has exited."""
        return self._reap(timeout)

    def join(self, timeout: float | None = None, abandon: bool = True) -> bool:
        """Wait until the child has exited and reap it. When ``timeout``
        passes first and ``abandon`` is true, kill it (see :meth:`abandon`).
        True if it exited on its own."""
        if self._reap(timeout):
            self._close_cancel()
            return True
        if abandon and self.abandon():
            self._reap(_ladder.REAP_WAIT)
        return False

    def __repr__(self) -> str:
        return f"<ProcessHandle {self.name!r} pid={self.pid} {self.state}>"
