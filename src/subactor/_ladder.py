"""The cancellation ladder: the one way an actor is ended.

Every actor that has to end before its work is done (an actor nursery's
actor, a pool's worker, a one-shot actor, any actor still alive at program
exit) goes down the same three rungs, with one set of defaults and one
meaning of the two deadlines, both counted from the start of the ladder:

1. **cancel** (cooperative): ``handle.cancel()`` sets the actor's cancel
   flag and wakes it, out of band, so it works over a broken or full
   channel; a caller may add an in-band step (the nursery sends
   ``cancel_actor`` and waits for the actor's ``bye``). An actor that
   checkpoints ends here.
2. **interrupt**, at ``grace`` seconds: ``ActorInterrupted`` is raised in
   the actor's code, for code that never yields to its event loop.
   ``handle.interrupt()`` returns at once: a subinterpreter actor's
   interrupt is delivered by a helper thread in C (an actor inside one long
   C call holds its GIL until the call returns, and whoever delivers waits
   that long), a process actor's by SIGINT.
3. **abandon**, at ``kill_after`` seconds: the actor is given up on, with an
   ``AbandonedActorWarning`` naming it. A subinterpreter actor's thread is
   left to run (its channels are broken, so no peer waits for it; at exit
   the process leaves with ``_exit()``); a process actor is killed.

An actor that acknowledged the cancel (its calls are over, it is leaving)
is not interrupted: what is left is its interpreter's own teardown, which
an interrupt cannot hurry. Nor is it abandoned: if its teardown is still
going on at ``kill_after`` (two hundred actors ending at once on two cores
take seconds of CPU to end their interpreters), the ladder stops waiting
for it and it finishes on its own (*released*; the exit ladder waits for
it, with its deadlines, if the program ends first). A process that
acknowledged and is still there at ``kill_after`` is killed.

The parent's event loop is never blocked: every wait is on a descriptor
(trio's ``wait_readable``) with a deadline, and nothing here takes an
actor's GIL. A *hurry* (a second Ctrl-C, see :mod:`subactor._sigint`) cuts
every running ladder short: straight to the interrupt, and abandon
:data:`HURRY_WAIT` seconds later.

The rules are in one place, :class:`Ladder`, whose steps never wait; its
drivers wait in between: :meth:`Ladder.run` in trio (one ladder per actor,
each with its own deadlines, all running at once), :func:`stop_all` for
code without an event loop (program exit), and the worker pool, which
advances the ladders of its leaving workers when it looks at them. No trio
at module level: the exit hook imports this module in programs that never
used trio.
"""
from __future__ import annotations

import math
import time

DEFAULT_GRACE = 1.0
DEFAULT_KILL_AFTER = 3.0
# After a hurry, how long an interrupted actor gets before it is abandoned.
HURRY_WAIT = 0.1
# At program exit the program has already ended whatever it meant to end:
# what is left gets a short ladder, so that the process exits within about
# a second of the end of main even with an actor stuck in C.
EXIT_GRACE = 0.5
EXIT_KILL_AFTER = 1.0
# How long the ladder waits for a killed process to be reaped.
REAP_WAIT = 1.0

# Ladders running now (trio driver), for a hurry.
_active: set["Ladder"] = set()
# True from a hurry until no ladder runs: ladders that start meanwhile
# start hurried.
_hurrying = False
# Bumped each time the last running ladder ends: tells one teardown from
# the next (see subactor._sigint).
_epoch = 0


def check_deadlines(grace: float, kill_after: float) -> tuple[float, float]:
    """``(grace, kill_after)`` as floats, or a clear error: both must be
    finite numbers of seconds, ``0 <= grace <= kill_after``."""
    for label, v in (("grace", grace), ("kill_after", kill_after)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{label} must be a number of seconds, not {type(v).__name__} ({v!r})")
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{label} must be a finite number of seconds >= 0, got {v!r}")
    if kill_after < grace:
        raise ValueError(f"kill_after ({kill_after!r}) must not be less than grace ({grace!r}): both count "
                         f"from the start of the ladder")
    return float(grace), float(kill_after)


def teardown_in_progress() -> bool:
    """True while some ladder runs (trio driver)."""
    return bool(_active)


def epoch() -> int:
    """How many times the running ladders have all ended so far."""
    return _epoch


def hurry_all() -> None:
    """Cut every running ladder short (interrupt now, abandon soon after),
    and those that start until none runs any more."""
    global _hurrying
    _hurrying = bool(_active)
    for ladder in list(_active):
        ladder.hurry()


def _kills(handle) -> bool:
    """True if the handle's abandon() ends the actor (a process), so that
    waiting a moment for it to be reaped is worth it."""
    return bool(getattr(handle, "abandon_kills", False))


class Ladder:
    """One actor's way down. The rules live in :meth:`start`, :meth:`hurry`
    and :meth:`advance`, which never wait; the drivers wait in between:
    :meth:`run` in trio (``clock`` is trio's then), :func:`stop_all`
    blocking, and a worker pool calls :meth:`advance` when it looks at its
    ending workers. ``rung`` is the highest rung reached so far."""

    __slots__ = ("handle", "grace", "kill_after", "clock", "started", "rung", "hurried", "acked",
                 "interrupt_at", "abandon_at", "finished", "released", "_scope")

    def __init__(self, handle, *, grace: float = DEFAULT_GRACE, kill_after: float = DEFAULT_KILL_AFTER,
                 clock=time.monotonic):
        self.handle = handle
        self.grace = grace
        self.kill_after = kill_after
        self.clock = clock                       # the time base of every field below
        self.started: float | None = None        # when the ladder began
        self.rung = 1                            # highest rung reached
        self.hurried = False                     # a hurry cut it short
        self.acked = False                       # the actor said it is leaving: no interrupt
        self.interrupt_at: float | None = None   # when rung 2 is due (None: never)
        self.abandon_at: float | None = None     # when rung 3 is due
        self.finished = False                    # done, abandoned or released
        self.released = False                    # acked, and left to end its teardown alone
        self._scope = None                       # trio driver: the current wait's scope

    # -- the rules -------------------------------------------------------------
    def start(self) -> None:
        """Rung 1: ask the actor to end, out of band; set the deadlines."""
        now = self.started = self.clock()
        # (An ack may come before the start: the message was already there.)
        self.interrupt_at = None if self.acked else now + self.grace
        self.abandon_at = now + self.kill_after
        if not self.handle.done:
            self.handle.cancel()
        if self.hurried or _hurrying:
            self.hurry()

    def ack(self) -> None:
        """The actor acknowledged the cancel: its calls are over and it is
        leaving. Its interpreter's own teardown is what is left, which an
        interrupt cannot hurry: no interrupt, abandon still at kill_after."""
        self.acked = True
        if self.rung == 1 and not self.hurried:
            self.interrupt_at = None

    def hurry(self) -> None:
        """Interrupt now, abandon within HURRY_WAIT (a second Ctrl-C)."""
        self.hurried = True
        if self.started is None or self.finished:
            return
        now = self.clock()
        self.interrupt_at = now
        self.abandon_at = min(self.abandon_at, now + HURRY_WAIT)
        if self._scope is not None:
            self._scope.cancel()

    def advance(self) -> bool:
        """Take the rungs that are due now; True once the ladder is over."""
        if self.finished:
            return True
        h = self.handle
        if h.done:
            # Its thread wrote the done descriptor as its last act (or the
            # process was reaped): this join does not block.
            h.join(0, abandon=False)
            self.finished = True
            return True
        now = self.clock()
        if self.rung == 1 and self.interrupt_at is not None and now >= self.interrupt_at:
            self.rung = 2
            try:
                h.interrupt()
            except OSError:
                pass  # no helper thread could be made: the hard deadline still holds
        if now >= self.abandon_at:
            if self.acked and not _kills(h):
                self.released = True  # healthy, ending its interpreter: not abandoned
            else:
                self.rung = 3
                h.abandon()
            self.finished = True
        return self.finished

    @property
    def next_deadline(self) -> float:
        """When :meth:`advance` has something to do next (if the actor is
        not done before)."""
        if self.rung == 1 and self.interrupt_at is not None:
            return min(self.interrupt_at, self.abandon_at)
        return self.abandon_at

    # -- trio driver -------------------------------------------------------------
    async def run(self, cooperate=None) -> int:
        """Take the actor down in trio; returns the rung it ended on (3:
        abandoned). Shielded from the caller's cancellation and bounded by
        ``kill_after`` (plus REAP_WAIT for a killed process).

        ``cooperate``, if given, is an async callable run during rung 1,
        until the interrupt is due: the caller's in-band part of the
        cooperative cancel. It returns True if the actor acknowledged."""
        import trio

        from subactor import _sigint

        global _hurrying, _epoch
        h = self.handle
        self.clock = trio.current_time
        _sigint.install()  # a Ctrl-C during the ladder hurries it
        _active.add(self)
        try:
            with trio.CancelScope(shield=True):
                self.start()
                if cooperate is not None and not h.done and self.interrupt_at is not None:
                    with trio.move_on_at(self.interrupt_at) as scope:
                        self._scope = scope
                        if await cooperate():
                            self.ack()
                    self._scope = None
                while not self.advance():
                    with trio.move_on_at(self.next_deadline) as scope:
                        self._scope = scope
                        await trio.lowlevel.wait_readable(h.fileno())
                    self._scope = None
                if self.rung == 3 and _kills(h):
                    with trio.move_on_after(REAP_WAIT):
                        await trio.lowlevel.wait_readable(h.fileno())
                    if h.done:
                        h.join(0, abandon=False)
            return self.rung
        finally:
            _active.discard(self)
            if not _active:
                _hurrying = False
                _epoch += 1


# -- without an event loop ---------------------------------------------------------

def _wait_any(handles, deadline: float) -> None:
    """Block (in poll, the GIL released) until one of the handles is done
    or the time.monotonic() deadline passes."""
    import select

    left = deadline - time.monotonic()
    if left <= 0:
        return
    p = select.poll()
    for h in handles:
        p.register(h.fileno(), select.POLLIN)
    p.poll(max(1, math.ceil(left * 1000)))


def stop_all(handles, *, grace: float = DEFAULT_GRACE, kill_after: float = DEFAULT_KILL_AFTER) -> list:
    """The ladder for several actors at once, blocking (for code without an
    event loop): every actor gets its own ladder, all started now. Returns
    the handles that had to be abandoned."""
    ladders = [Ladder(h, grace=grace, kill_after=kill_after) for h in handles if not h.done]
    for ladder in ladders:
        ladder.start()
    pending = ladders
    while True:
        pending = [ladder for ladder in pending if not ladder.advance()]
        if not pending:
            break
        _wait_any([ladder.handle for ladder in pending],
                  time.monotonic() + min(ladder.next_deadline - ladder.clock() for ladder in pending))
    abandoned = [ladder.handle for ladder in ladders if ladder.rung == 3]
    killed = [h for h in abandoned if _kills(h)]
    deadline = time.monotonic() + REAP_WAIT
    while killed and time.monotonic() < deadline:
        _wait_any(killed, deadline)
        killed = [h for h in killed if not h.done]
    for h in abandoned:
        if h.done:
            h.join(0, abandon=False)
    return abandoned


def at_exit(grace: float = EXIT_GRACE, kill_after: float = EXIT_KILL_AFTER) -> None:
    """Called by the C exit hook (``_ext._shutdown_at_exit``): every actor
    still live goes down the ladder with the exit deadlines. Subinterpreter
    actors are found in the C registry (also those whose handles were
    dropped), process actors in the process backend's list of live children.
    What must be abandoned is warned about; the C hook then decides whether
    the process must leave with ``_exit()``."""
    import sys
    import warnings

    from subactor import _ext

    handles = list(_ext._live_handles())
    process = sys.modules.get("subactor._spawn._process")
    if process is not None:
        handles += process.live_processes()
    if not handles:
        return
    with warnings.catch_warnings():
        # A program that turned warnings into errors still exits cleanly:
        # the warning is printed, not raised out of the exit hook.
        warnings.simplefilter("default", _ext.AbandonedActorWarning)
        stop_all(handles, grace=grace, kill_after=kill_after)
