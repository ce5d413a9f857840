"""Backends: what runs an actor, behind one contract.

A backend starts an actor running one of the entry points of
:mod:`subactor._actor` and returns two objects to the parent:

- a :class:`Handle`, the actor's lifecycle: is it done, wait for it, and
  the three rungs of the cancellation ladder (:mod:`subactor._ladder`);
- a :class:`MessageEnd`, the parent's end of the actor's message channel:
  whole messages (bytes), non-blocking calls plus readiness descriptors
  for trio, blocking calls with deadlines for code without an event loop.

Backends (``kind``):

- ``"subint"``: an own-GIL subinterpreter on a dedicated thread
  (:mod:`._subint`; the handle is ``_ext.SubintHandle``, the end an
  ``_ext.ChannelEnd``);
- ``"subint-shared-gil"``: the same with the legacy shared GIL, for
  extension modules that refuse an own GIL but load in a subinterpreter;
- ``"process"``: a child Python process (:mod:`._process`; the handle is
  ``ProcessHandle``, the end a ``SocketEnd`` over a Unix socketpair).

Entry points (``entry``): ``"runtime"`` serves RPC calls and contexts
(actors of an actor nursery); ``"worker"`` answers pickled calls one at a
time (workers of the pool).

Nothing here imports trio: :func:`spawn` is synchronous (it starts a thread
or a process and does not wait for the actor to come up).
"""
from __future__ import annotations

import sys
from typing import Any, Protocol

BACKENDS = ("subint", "subint-shared-gil", "process")
ENTRIES = ("runtime", "worker")


class Handle(Protocol):
    """The parent's handle of one actor. No method blocks its caller,
    except :meth:`join` with a timeout (for code without an event loop)."""

    name: str

    @property
    def done(self) -> bool:
        """True once the actor has finished (its thread is past its last
        step, or its process has exited and was reaped)."""

    @property
    def state(self) -> str:
        """A word for listings: 'starting', 'running', 'ending',
        'exited-ok', 'exited-error', 'interrupted', 'abandoned', ..."""

    def fileno(self) -> int:
        """A descriptor that becomes readable once the actor is done, and
        stays readable (trio's ``wait_readable``, or ``poll``)."""

    def cancel(self) -> bool:
        """Rung 1, out of band: ask the actor to end (its cancel flag, and a
        wake-up of whatever it waits in). False if it is done already."""

    def interrupt(self) -> bool:
        """Rung 2: raise ``ActorInterrupted`` in the actor's running code.
        Returns at once: the delivery happens on a helper thread (a
        subinterpreter actor in a GIL-holding C call takes it only when
        that call returns) or by a signal (a process). False if the actor
        is ending or gone."""

    def abandon(self) -> bool:
        """Rung 3: give up on the actor, with an ``AbandonedActorWarning``
        naming it. A subinterpreter actor's thread is left to run (its
        channels are broken so no peer waits for it); a process is killed
        (SIGKILL). False if it was done already."""

    def join(self, timeout: float | None = None, abandon: bool = True) -> bool:
        """Wait until done (blocking) and release its thread or process;
        True if it ended. On timeout, abandon it if ``abandon``."""

    def outcome(self) -> tuple:
        """How it ended: ``('ok', data)`` or ``(kind, type_name, message,
        traceback)``. RuntimeError while it runs."""

    def info(self) -> dict:
        """Name, state and backend details, for listings."""


class MessageEnd(Protocol):
    """One end of an actor's message channel (whole messages of bytes)."""

    @property
    def closed(self) -> bool: ...

    def send_nowait(self, data: Any) -> None:
        """Queue one message. BlockingIOError when there is no room;
        ``_ext.BrokenError`` when the peer is gone; ``_ext.ClosedError``
        when this end is closed; ValueError when it is too large."""

    def recv_nowait(self) -> Any:
        """The next message (a buffer with ``release()``). BlockingIOError
        when none is there; ``_ext.EndOfChannel`` once the peer closed and
        all it sent was received; ``_ext.BrokenError`` once it died."""

    def send(self, data: Any, timeout: float | None = None) -> None:
        """:meth:`send_nowait`, waiting for room (blocking, with a deadline)."""

    def recv(self, timeout: float | None = None) -> Any:
        """:meth:`recv_nowait`, waiting for a message (blocking, with a deadline)."""

    def recv_fileno(self) -> int:
        """Readable when :meth:`recv_nowait` may make progress."""

    def send_fileno(self) -> int:
        """Readable when :meth:`send_nowait` may make progress."""

    def close(self) -> None:
        """Close this end (idempotent); the peer drains, then sees the end."""


def check_backend(kind: str) -> str:
    """``kind`` if it names a backend, else a ValueError listing them."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    return kind


def spawn(kind: str, cfg: dict, *, entry: str = "runtime",
          channel: tuple[int, int] | None = None, pass_fds: tuple[int, ...] = ()) -> tuple[Handle, MessageEnd]:
    """Start an actor of backend ``kind`` running ``entry`` with config
    ``cfg`` (a plain-data dict; at least ``name``). ``channel`` is
    ``(max messages, max bytes)`` per direction of its message channel
    (subinterpreter backends; None: the channel's defaults). Returns the
    actor's handle and the parent's end of its channel; on any error,
    nothing is left behind. ``pass_fds``: descriptors a process actor
    inherits (with the same numbers); the caller still owns and closes them."""
    check_backend(kind)
    if "subactor._actor._parent_main" in sys.modules:   # loaded only in actors that need it
        sys.modules["subactor._actor._parent_main"].check_not_loading()
    if entry not in ENTRIES:
        raise ValueError(f"unknown entry point {entry!r}; choose one of {', '.join(ENTRIES)}")
    if kind == "process":
        from subactor._spawn import _process

        return _process.spawn(cfg, entry, pass_fds)
    from subactor._spawn import _subint

    return _subint.spawn(cfg, entry, shared_gil=kind == "subint-shared-gil", channel=channel)
