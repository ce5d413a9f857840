"""Messages over a C channel end, for trio tasks and for blocking code.

Every message is one MessagePack-encoded dict (``subactor._ext`` codec).
The trio side never blocks its event loop: it tries the non-blocking call
and, when the channel is empty or full, awaits the end's readiness file
descriptor with :func:`trio.lowlevel.wait_readable`.

Wire messages (``t`` is the kind; ``cid`` names the call they belong to):
  run    {t, cid, ns, fn, kw}     call a function, answer with return/error
  ctx    {t, cid, ns, fn, kw}     open a context, answer started ... return/error
  started{t, cid, v}              the context's first value
  yield  {t, cid, v}              one stream item (either direction)
  stop   {t, cid}                 the sender closed its side of the stream
  cancel {t, cid, by}             cancel that call / context (by: the asking actor's uid)
  return {t, cid, v}              the call's result
  error  {t, cid, e[, ovr]}       the call raised; e is a box (see _exceptions). With
                                  ovr (either direction): the sender's inbox overran
                                  (StreamOverrun); the context fails, the sender goes on
  hold / go {t, cid}              flow control of a stream that allows overruns
                                  (either direction): the sender's inbox is full /
                                  has room again (see _context)
  cancel_actor {t, by}            end the actor; it answers bye and leaves
  bye    {t}
"""
from __future__ import annotations

import os
import time

from subactor import _ext

dumps = _ext.dumps
loads = _ext.loads
dumps_msg = _ext.dumps_msg
VIEW_MIN = 64 << 10  # bins this long decode as views for a zero-copy stream (codec.h)


# How a stream item whose payload is one bin (bytes) begins on the wire:
# a 3-key map {"t": "yield", "v": <bin 16/32>, "cid": ...} in the order
# MsgStream.send builds it (bin 8 is too short to reach VIEW_MIN).
_BIN_ITEM = b"\x83\xa1t\xa5yield\xa1v"
_BIN_MARKS = (0xc5, 0xc6)


def decode(m, zc) -> dict:
    """Decode a received Message. For a message of a context in ``zc``
    (the cids whose stream was opened with ``zero_copy=True``), large bins
    become read-only memoryviews of the message, which they keep alive: its
    (pooled) buffer goes back only when the last view is released.

    A large stream item whose payload is one bin, for any other context,
    is decoded the same way but marked ``lazy``: its payload becomes bytes
    (one copy, see :func:`unlazy`) when the stream's reader takes it, not
    here. So a backlog of large items waits in the channel's pooled
    buffers, and the only large bytes objects alive are the ones the
    reader holds: the allocator reuses the same memory for each, where a
    backlog decoded at once (up to 64 MiB of fresh bytes) took a page
    fault for every page of every item. Every other message is decoded to
    plain objects and its buffer freed now."""
    n = len(m)
    if n >= VIEW_MIN:
        head = memoryview(m)[:12]
        lazy = head[:11] == _BIN_ITEM and head[11] in _BIN_MARKS
        head.release()
        if zc or lazy:
            try:
                msg = loads(m, zero_copy=True)
            except BaseException:
                m.release()  # no view was kept: the buffer goes back now
                raise
            if msg.__class__ is dict:
                if zc and msg.get("cid") in zc:
                    return msg
                if lazy and msg.get("v").__class__ is memoryview:
                    msg["lazy"] = True
                    return msg
            del msg  # not a zero-copy stream's: drop the views, decode plainly
    try:
        return loads(m)
    finally:
        m.release()


def unlazy(view) -> bytes:
    """The payload of a ``lazy`` stream item (see decode) as bytes; its view
    is released, so the message's buffer goes back now."""
    try:
        return bytes(view)
    finally:
        view.release()

# The kinds each side sends, and whether a kind belongs to a call (has a cid).
FROM_PARENT = {"run": True, "ctx": True, "yield": True, "stop": True, "cancel": True, "error": True,
               "hold": True, "go": True, "cancel_actor": False}
FROM_ACTOR = {"started": True, "yield": True, "stop": True, "return": True, "error": True,
              "hold": True, "go": True, "bye": False, "gone": False}   # gone: a daemon's (remote spawn)


def malformed(msg, kinds: dict) -> str | None:
    """What is wrong with a decoded message that should be one of ``kinds``
    (FROM_PARENT or FROM_ACTOR), in words for an error; None if nothing is."""
    if not isinstance(msg, dict):
        return f"a {type(msg).__name__} where a message map belongs"
    t = msg.get("t")
    if t not in kinds:
        return f"a message of unknown kind {str(t)[:40]!r}"
    if kinds[t] and type(msg.get("cid")) is not int:
        return f"a {t!r} message without a call id"
    if t == "error" and not isinstance(msg.get("e"), dict):
        return "an 'error' message without an error description"
    if t in ("run", "ctx") and not (isinstance(msg.get("ns"), str) and isinstance(msg.get("fn"), str)
                                    and isinstance(msg.get("kw", {}), dict)):
        return f"a {t!r} message without a module, a function name and keyword arguments"
    return None


# How many non-blocking tries a blocking receive makes before it sleeps in
# poll(): about 100 us of spinning (each try is ~0.2 us), because waking a
# thread from poll() costs 30-100 us on a small VM and the next request of
# a back-to-back caller usually comes within that. Measured (bench_api):
# portal.run of a sync function went from ~65 to ~41 us p50.
SPIN_TRIES = 500
# ... and for at most this long (seconds): a spin that is preempted must
# not go on once it is back (see BUSY_BACKOFF).
SPIN_WALL = 150e-6
# How many scheduler passes a trio receive lets go by before it sleeps in
# epoll (each pass is a few microseconds when the loop is otherwise idle):
# stream round trips went from ~98 to ~22 us p50, async calls ~147 to ~60.
TRIO_PASSES = 16
# Seconds a shielded cleanup send (a call's or a context's cancel, a
# stream's stop, the cancel_actor request) may wait for room in the
# channel: the message should get out even while its sender is being
# cancelled, but a full channel must not hold a cancelled task hostage.
CLEANUP_WAIT = 0.5


# Spinning pays only while the thread waited for has a core of its own. On
# a busy machine (both cores loaded by other processes) a spin that burns
# its slice delays the very answer it waits for: measured unpinned, calls
# locked into 290-440 us. So every spin phase (a blocking actor's tries, a
# trio receive's passes, a caller looking for its reply) is timed: one that
# ran less than 80% of its wall time on the CPU was preempted, and for the
# next BUSY_BACKOFF seconds this interpreter waits without spinning (a
# sleeping thread that is woken gets the CPU at once from the kernel's
# scheduler, which a spinning one does not). Spins do not sched_yield()
# either: with other processes' loops on the run queue, a yield hands the
# core to one of them for its whole slice (milliseconds).
BUSY_BACKOFF = 0.5
_calm_after = 0.0   # perf_counter() time before which spins are skipped


def _one_cpu() -> bool:
    try:
        return len(os.sched_getaffinity(0)) < 2
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) < 2


# A process allowed one CPU only (taskset, a cgroup cpuset) never spins:
# the thread it waits for can only run once it stops. Measured pinned to
# one CPU: portal.run of a sync function 155-172 us p50 with spins that
# are not preempted (they run their whole budget, then sleep) against
# ~30 us for the raw channel, which does not spin there.
ONE_CPU = _one_cpu()


def may_spin() -> bool:
    """False while the machine was lately seen too busy to spin (see
    BUSY_BACKOFF), and always in a process allowed one CPU."""
    if ONE_CPU:
        return False
    return _calm_after == 0.0 or time.perf_counter() >= _calm_after


def spin_start() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def spin_end(start: tuple[float, float]) -> None:
    """After a spin phase begun at ``start`` (spin_start()) that found
    nothing: note if the thread was preempted during it."""
    global _calm_after
    now = time.perf_counter()
    wall = now - start[0]
    if wall > 50e-6 and time.thread_time() - start[1] < 0.8 * wall:
        _calm_after = now + BUSY_BACKOFF

# The fast paths' schedule-point budget (a stream's send and receive, see
# _context.MsgStream; a call whose reply the caller's spin found, see
# _portal): such an operation is a cancel point but not a schedule point,
# except that every FAST_OPS-th one, or the first one FAST_WALL seconds
# after the last schedule point, is a full checkpoint. A trio scheduler
# pass costs 4-8 us on this VM, several times what a small item costs; one
# pass in 64 keeps the other tasks running (and deadlines firing) within
# about half a millisecond.
FAST_OPS = 64
FAST_WALL = 0.0005


class FastBudget:
    """Fast operations left before the next full checkpoint is due (see
    FAST_OPS), and the time it is due at the latest."""

    __slots__ = ("left", "until")

    def __init__(self, left: int | None = None):
        self.reset()
        if left is not None:
            self.left = left

    def reset(self) -> None:
        """A schedule point was made: the budget starts over."""
        self.left = FAST_OPS
        self.until = time.perf_counter() + FAST_WALL

    def take(self) -> bool:
        """True if this operation may skip its schedule point; False when a
        full checkpoint is due, which the caller then makes (and the budget
        starts over)."""
        self.left -= 1
        if self.left > 0 and time.perf_counter() < self.until:
            return True
        self.reset()
        return False


def drain(fd: int) -> bool:
    """Empty a wake descriptor (non-blocking). True if it is at end of file:
    a process actor's cancel pipe, closed by its parent, stays readable for
    good, so whoever watches it must stop once it has seen that."""
    import os

    try:
        return os.read(fd, 8) == b""
    except BlockingIOError:
        return False


OTHER = {"t": "other"}  # BlockingChannel.recv: the other descriptor became readable


class BlockingChannel:
    """A channel end used from a thread without an event loop (an actor that
    only runs sync functions). Blocking calls release the GIL."""

    def __init__(self, end):
        self.end = end

    def send(self, msg: dict) -> None:
        self.end.send(dumps(msg))

    def recv(self, other_fd: int | None = None) -> dict | None:
        """The next message, or None at end-of-channel (peer closed or gone)
        or when the actor's parent asked for a cancel; ``OTHER`` when,
        with nothing to receive, ``other_fd`` became readable.

        Waits in poll() with the GIL released, on the channel and on the
        actor's wake descriptor, so that a cancel request or an interrupt
        wakes it at once (an interrupt is raised as soon as poll returns)."""
        import select

        end = self.end
        wake = _ext.wake_fileno()
        poller = None
        spins = SPIN_TRIES if may_spin() else 0
        t = spin_start() if spins else None
        while True:
            try:
                m = end.recv_nowait()
            except BlockingIOError:
                if spins:
                    # A reply to what we just answered often comes within
                    # microseconds; waking from poll() costs tens of them here.
                    spins -= 1
                    if spins & 31 or time.perf_counter() - t[0] < SPIN_WALL:
                        continue
                    spins = 0
            except (_ext.EndOfChannel, _ext.BrokenError):
                return None
            else:
                try:
                    return loads(m)
                finally:
                    m.release()
            if t is not None:
                spin_end(t)
                t = None
            if _ext.cancel_requested():
                return None
            if poller is None:
                poller = select.poll()
                poller.register(end.recv_fileno(), select.POLLIN)
                if wake is not None:
                    poller.register(wake, select.POLLIN)
                if other_fd is not None:
                    poller.register(other_fd, select.POLLIN)
            ready = poller.poll()
            if wake is not None and any(fd == wake for fd, _ in ready):
                drain(wake)   # (only when it woke us: a read that finds nothing is a system call per message)
            if other_fd is not None and any(fd == other_fd for fd, _ in ready):
                return OTHER

    def close(self) -> None:
        self.end.close()


async def shielded_send(send, msg: dict) -> None:
    """``await send(msg)`` for a message that must try to get out even while
    its sender is being cancelled: shielded, at most CLEANUP_WAIT seconds;
    a peer that is gone is ignored (TrioChannel's and StreamChannel's
    ``send_cleanup``)."""
    import trio

    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + CLEANUP_WAIT
        try:
            await send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class TrioChannel:
    """A channel end used from trio. One task receives (the actor's or the
    portal's message pump); any number of tasks may send."""

    def __init__(self, end):
        import collections  # here, not at the top: a sync-mode actor never needs it

        import trio

        self._trio = trio
        self.end = end
        self._send_wait = trio.Lock()
        self._pending: BaseException | None = None  # recv_some: an error met after its first message
        # Control messages the message pump sends (flow control, overrun
        # errors) must never block it: what the channel cannot take at once
        # waits here, in order, for a flusher task started with `spawn`
        # (a nursery's start_soon, set by the channel's owner).
        self._ctl: "collections.deque[bytes]" = collections.deque()
        self._flushing = False
        self.spawn = None
        self._cancel_called = False   # portal.cancel_actor() was called over it
        # Another task may take messages while the receiver is parked in
        # recv() with nothing in hand (a portal's caller taking its reply:
        # see Portal._take_replies); what it cannot handle it gives back
        # here, and the receiver gets that first.
        self._parked = False          # the receiver waits in recv() holding no message
        self._given: object = None    # a message (or DecodeError) given back, for the receiver
        self._sleep = None            # the fd the receiver waits on in epoll, while it does
        self.aid = None               # the peer's identity (a subactor._state.Aid), set by the owner
        # cids of contexts whose stream was opened with zero_copy=True (see decode)
        self.zero_copy: set[int] = set()
        # A ChannelEnd takes a Message encoded straight into a channel buffer
        # (pooled when large: no page faults for a steady stream of big items).
        self._dumps = dumps_msg if isinstance(end, _ext.ChannelEnd) else dumps

    @property
    def uid(self) -> tuple[str, str] | None:
        """The peer's ``(name, uuid)`` (tractor's ``Channel.uid``); None
        before the owner learnt who the peer is."""
        return self.aid.uid if self.aid is not None else None

    @property
    def raddr(self):
        """The far side's address, as tractor's (``.unwrap()`` gives its
        tuple): a ``subactor.ipc.TCPAddress`` / ``UDSAddress`` for a
        connection, an ``InprocAddress`` (``("inproc", uuid)``) for a
        channel inside this process or a socket pair to a process actor."""
        return self._addr("getpeername")

    @property
    def laddr(self):
        """This side's address (see :attr:`raddr`)."""
        return self._addr("getsockname")

    def _addr(self, which: str):
        from subactor.ipc import _addr

        sock = getattr(self.end, "_sock", None)
        if sock is not None:
            try:
                a = getattr(sock, which)()
            except OSError:
                a = None
            if isinstance(a, tuple) and len(a) >= 2:
                return _addr.TCPAddress(a[0], a[1])
            if isinstance(a, str) and a:
                return _addr.UDSAddress(a)
        return _addr.InprocAddress(self.aid.uuid if self.aid is not None else "")

    async def send(self, msg: dict) -> None:
        """Send one message; a full checkpoint (a cancel point before, a
        schedule point after), also when the channel takes it at once."""
        await self.send_bytes(self._dumps(msg))

    async def send_bytes(self, data) -> None:
        """send() of a message encoded already (by dumps)."""
        trio = self._trio
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                self.end.send_nowait(data)
                break
            except BlockingIOError:
                async with self._send_wait:
                    await trio.lowlevel.wait_readable(self.end.send_fileno())
                waited = True
            except _ext.BrokenError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            except _ext.ClosedError as exc:
                raise trio.ClosedResourceError(str(exc)) from exc
        if not waited:
            # A producer whose sends never block must still let the other
            # tasks run (and the cancel watcher see a cancel).
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_then_wait(self, msg: dict) -> None:
        """send() for a caller whose next step is a full checkpoint of its
        own (it waits for the answer): a cancel point before, but no
        schedule point after a send the channel took at once (that pass of
        the scheduler is the wait's)."""
        trio = self._trio
        data = dumps(msg)
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.end.send_nowait(data)
            return
        except BlockingIOError:
            pass
        except _ext.BrokenError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        except _ext.ClosedError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc
        await self.send_bytes(data)

    def connected(self) -> bool:
        """True while the channel is open at this end and the peer has not
        been seen to close or break it."""
        return not self.end.closed

    def send_control(self, msg: dict) -> None:
        """Send a small message without waiting (for the message pump): at
        once if the channel has room, else after what is already queued,
        by a flusher task. A peer that is gone is ignored."""
        data = dumps(msg)
        if not self._ctl:
            try:
                self.end.send_nowait(data)
                return
            except BlockingIOError:
                pass
            except (_ext.BrokenError, _ext.ClosedError):
                return
        self._ctl.append(data)
        if not self._flushing and self.spawn is not None:
            self._flushing = True
            self.spawn(self._flush)

    async def _flush(self) -> None:
        trio = self._trio
        try:
            while self._ctl:
                try:
                    self.end.send_nowait(self._ctl[0])
                except BlockingIOError:
                    async with self._send_wait:
                        await trio.lowlevel.wait_readable(self.end.send_fileno())
                    continue
                except (_ext.BrokenError, _ext.ClosedError):
                    self._ctl.clear()
                    return
                self._ctl.popleft()
        except (OSError, ValueError, _ext.ClosedError, trio.ClosedResourceError, trio.BrokenResourceError):
            self._ctl.clear()
        finally:
            self._flushing = False

    async def send_cleanup(self, msg: dict) -> None:
        """Send a message that must try to get out even while its sender is
        being cancelled (a cancel, a stream's stop): shielded, but waiting
        at most CLEANUP_WAIT seconds for room; a peer that is gone is
        ignored."""
        await shielded_send(self.send, msg)

    async def recv(self) -> dict:
        """The next message. Raises trio.EndOfChannel when the peer closed
        its end, trio.BrokenResourceError when it is gone. A full
        checkpoint, also when a message is there at once."""
        trio = self._trio
        await trio.lowlevel.checkpoint_if_cancelled()
        passes = TRIO_PASSES if may_spin() else 0
        t = None
        waited = False
        while True:
            given = self._given
            if given is not None:
                self._given = None
                if isinstance(given, BaseException):
                    raise given
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return given
            try:
                m = self.end.recv_nowait()
            except BlockingIOError:
                self._parked = True
                try:
                    if passes:
                        # Let the other tasks run a few scheduler passes first:
                        # an answer often lands meanwhile, and a pass is much
                        # cheaper than a sleep in epoll and a wake-up.
                        if t is None:
                            t = spin_start()
                        passes -= 1
                        await trio.lowlevel.checkpoint()
                    else:
                        if t is not None:
                            spin_end(t)
                            t = None
                        # No cancel scope around the wait (entering and
                        # leaving one costs about two scheduler passes, on
                        # every message's critical path): give_back wakes it
                        # with notify_closing, which the fd survives.
                        fd = self._sleep = self.end.recv_fileno()
                        try:
                            await trio.lowlevel.wait_readable(fd)
                        except trio.ClosedResourceError:
                            if self._given is None:   # not give_back's wake: a real close
                                raise
                finally:
                    self._parked = False
                    self._sleep = None
                waited = True
                continue
            except _ext.EndOfChannel as exc:
                raise trio.EndOfChannel(str(exc)) from None
            except _ext.BrokenError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            except _ext.ClosedError as exc:
                raise trio.ClosedResourceError(str(exc)) from exc
            msg = decode(m, self.zero_copy)
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return msg

    def take_nowait(self) -> dict | None:
        """For a task that takes messages itself while the pump is parked
        (:meth:`can_take`): the next one, decoded as the pump decodes it,
        or None when none is there or the channel has ended (the pump meets
        that end itself). An undecodable message is given back to the pump
        (None then), which raises it where it always has."""
        try:
            m = self.end.recv_nowait()
        except (BlockingIOError, _ext.EndOfChannel, _ext.BrokenError, _ext.ClosedError):
            return None
        try:
            return decode(m, self.zero_copy)
        except _ext.DecodeError as exc:
            self.give_back(exc)
            return None

    def can_take(self) -> bool:
        """True if a task other than the receiver may take a message now:
        the receiver is parked in recv() with nothing in hand, and nothing
        given back waits for it."""
        return self._parked and self._given is None

    def give_back(self, item) -> None:
        """A message (or the DecodeError of one) that a task took while the
        receiver was parked and cannot handle itself: the receiver's next
        recv() returns (raises) it before anything else. Wakes the receiver
        if it sleeps in epoll."""
        assert self._given is None
        self._given = item
        if self._sleep is not None:
            # Wakes the receiver's wait_readable with ClosedResourceError,
            # which recv() takes for this wake while a message is given
            # back. The fd stays open and is waited on again as before
            # (trio only drops its epoll registration).
            self._trio.lowlevel.notify_closing(self._sleep)

    async def recv_some(self, limit: int = 64) -> list[dict]:
        """The next message and up to ``limit - 1`` more that are already
        there: one full checkpoint for a whole backlog (a message pump
        draining a thousand queued stream items would otherwise pay a
        scheduler pass for each). Errors after the first message are kept
        and raised by the next call, so nothing is lost or reordered."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            raise pending
        out = [await self.recv()]
        end = self.end
        trio = self._trio
        while len(out) < limit:
            try:
                m = end.recv_nowait()
            except BlockingIOError:
                break
            except _ext.EndOfChannel as exc:
                self._pending = trio.EndOfChannel(str(exc))
                break
            except _ext.BrokenError as exc:
                self._pending = trio.BrokenResourceError(str(exc))
                break
            except _ext.ClosedError as exc:
                self._pending = trio.ClosedResourceError(str(exc))
                break
            try:
                out.append(decode(m, self.zero_copy))
            except _ext.DecodeError as exc:
                self._pending = exc
                break
        return out

    def close(self) -> None:
        """Close this end; tasks waiting on its descriptors are woken."""
        # Also when `closed` is already true because the end was closed
        # under us (its owner broke, or the channel was destroyed): close()
        # is idempotent and frees the end's descriptors now.
        try:
            fds = (self.end.recv_fileno(), self.end.send_fileno())
        except (_ext.ClosedError, ValueError, OSError):
            fds = ()
        for fd in fds:
            try:
                self._trio.lowlevel.notify_closing(fd)
            except RuntimeError:
                break   # no trio run here (closed after its end): nobody waits on them
        self.end.close()
