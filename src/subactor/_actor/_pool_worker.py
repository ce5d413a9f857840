"""The loop a pool worker runs, inside its own interpreter.

A worker is a long-lived actor that answers calls, one at a time, on one
channel (it attaches side 1; the pool holds side 0). It stays free of trio
and of anything slow to import: a warm worker costs an interpreter, this
module, :mod:`pickle` and whatever the called functions import.

Wire (every message is one pickle, protocol 5):

  pool -> worker   ``(fn, args)``               run ``fn(*args)``; ``fn`` is
                                                the function's own pickle
                                                (bytes) for one that goes by
                                                name, unpickled once here
  worker -> pool   ``(OK, result, retiring)``   it returned
                   ``(ERR, box, retiring)``     it raised; ``box`` is the plain
                                                dict of :func:`subactor._exceptions.box_error`

``retiring`` is true when the worker leaves after this answer (its memory
ceiling was passed). There is no other message: the pool retires a worker
by closing its end of the channel, and ends a running call by interrupting
the worker (``Actor.interrupt()`` raises ``ActorInterrupted`` here).

How the worker leaves tells the pool whether a call it sent was taken:

- it closes its end itself only while it holds no call: when its idle
  timeout passes, when the pool closed its end, or after a ``retiring``
  answer. A call the pool sent just before such a close is dropped unread,
  and the pool sees end-of-channel without an answer: the call never ran,
  so it is safe to send it to another worker;
- any other way out (``ActorInterrupted``, a failure of this loop, being
  abandoned) leaves its end to the host, which *breaks* it: the pool sees
  ``BrokenError``, and knows the call may have run.

Pickling is plain :mod:`pickle` rather than the ``_ext`` codec with its
pickle fallback: measured here (bench/bench_pool.py), the codec saves about
0.4 us on encoding and decoding a small call and its result (the function
is pickled either way), 1-2% of a round trip, while it returns subclasses
of its native types (``IntEnum``, ``OrderedDict``, ``bytearray``) as their
base types. A pool call must return what ``fn`` returned, as
:mod:`trio_parallel`'s does.
"""
import os
import pickle
import sys
import time

from subactor import _ext


# After an answer, a worker whose last call came back within SPIN seconds
# spins that long (poll() with a zero timeout, not the channel lock) for the
# next one before it sleeps: a caller that sends call after call then finds
# it awake. Workers called now and then never spin.
SPIN = 100e-6
OK = 0
ERR = 1
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def main(cfg=None, end=None):
    """Answer calls until the pool closes the channel, the worker has been
    idle for ``cfg["idle"]`` seconds, or its memory ceiling is passed.

    In a subinterpreter the config comes from the actor's input and the end
    is attached here; another backend (a process) passes both in, with an
    end that speaks ChannelEnd's recv/send/close and raises its errors.
    """
    if cfg is None:
        cfg = _ext.loads(_ext.actor_input())
    if end is None:
        end = _ext.ChannelEnd(cfg["chan"], 1)
    from subactor._actor import refuse_os_exit
    from subactor._actor._parent_main import install

    install(cfg.get("main"))
    name = cfg.get("name", "worker")
    refuse_os_exit(name)
    idle = cfg.get("idle")            # seconds, or None: wait forever
    max_blocks = cfg.get("max_blocks")  # None: no memory ceiling

    wait = _Waiter(end)
    while True:
        try:
            msg = wait.next(idle)
        except (_ext.EndOfChannel, _ext.BrokenError):
            break  # the pool closed its end: shut down or retired
        if msg is None:
            break  # idle too long, or a cancel request (see the module docstring)
        try:
            status, value = _run(msg, name)
        finally:
            msg.release()
        retiring = max_blocks is not None and _over_ceiling(max_blocks)
        reply = _encode_reply(status, value, retiring, name)
        try:
            end.send(reply)
        except (_ext.BrokenError, _ext.ClosedError):
            break  # the pool let go of this worker while it ran the call
        except ValueError as exc:
            # Larger than the channel's byte bound (ClosedError, also a
            # ValueError, was handled above).
            reply = _encode_reply(ERR, _box(ValueError(
                f"the result ({len(reply)} bytes pickled) is too large for the pool's channel: {exc}"), name),
                retiring, name)
            try:
                end.send(reply)
            except (_ext.BrokenError, _ext.ClosedError):
                break
        if retiring:
            break
    end.close()


class _Waiter:
    """Waits for the next call: first a short spin (see SPIN), then poll(),
    with the GIL released, on the channel's readiness eventfd and on the
    actor's wake eventfd (which the parent writes on interrupt() and
    cancel()), so an interrupt wakes an idle worker at once. Measured here,
    poll() answers a call in about half the time of the end's own blocking
    recv(), whose condition-variable wait is cut into slices (to deliver
    interrupts) after a spin on the channel lock."""

    def __init__(self, end):
        import select

        self.end = end
        self.wake = _ext.wake_fileno()
        self.poller = select.poll()
        self.poller.register(end.recv_fileno(), select.POLLIN)
        self.spinpoll = select.poll()  # the channel only: what the spin watches
        self.spinpoll.register(end.recv_fileno(), select.POLLIN)
        self.last_wait = 1.0  # seconds the last call took to come
        self.calm_after = 0.0  # perf_counter() time before which it does not spin (machine busy)
        try:   # allowed one CPU only: never spin (see _transport.ONE_CPU)
            if len(os.sched_getaffinity(0)) < 2:
                self.calm_after = float("inf")
        except (AttributeError, OSError):
            pass
        if self.wake is not None:
            self.poller.register(self.wake, select.POLLIN)

    def next(self, idle):
        """The next message; None after `idle` seconds without one (idle
        None: no limit) or once the parent asked for a cancel. Raises
        EndOfChannel / BrokenError as the end does."""
        recv_nowait = self.end.recv_nowait
        t0 = time.perf_counter()
        if self.last_wait < SPIN and t0 >= self.calm_after:
            spin_until = t0 + SPIN
            cpu0 = time.thread_time()
            poll = self.spinpoll.poll
            clock = time.perf_counter
            while not poll(0):
                if clock() >= spin_until:
                    # Preempted during the spin (it ran < 80% of the time):
                    # the machine is busy, and spinning delays the answer it
                    # waits for; the next waits sleep at once for a while
                    # (see _transport.BUSY_BACKOFF).
                    if time.thread_time() - cpu0 < 0.8 * (clock() - t0):
                        self.calm_after = clock() + 0.5
                    break
        deadline = None
        while True:
            try:
                msg = recv_nowait()
            except BlockingIOError:
                pass
            else:
                self.last_wait = time.perf_counter() - t0
                return msg
            if _ext.cancel_requested():
                return None
            timeout_ms = None
            if idle is not None:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + idle
                left = deadline - now
                if left <= 0:
                    return None
                timeout_ms = int(left * 1000) + 1
            for fd, _ in self.poller.poll(timeout_ms):
                if fd == self.wake:
                    _drain(self.wake)


def _drain(fd):
    try:
        os.read(fd, 8)
    except BlockingIOError:
        pass


_FNS = {}   # a function's pickle (see the wire above) -> the function, bounded


def _run(msg, name):
    """(OK, result) or (ERR, box). ActorInterrupted is never caught: it
    ends the worker, as the pool asked."""
    try:
        fn, args = pickle.loads(msg)
        if type(fn) is bytes:
            ref, fn = fn, _FNS.get(fn)
            if fn is None:
                fn = pickle.loads(ref)
                if len(_FNS) >= 256:
                    _FNS.clear()
                _FNS[ref] = fn
    except _ext.ActorInterrupted:
        raise
    except BaseException as exc:
        box = _box(exc, name)
        # (box_error names backend="process" if a module refused to load here.)
        box["msg"] = f"the call could not be loaded in the worker: {box['msg']}"
        return ERR, box
    try:
        result = fn(*args)
    except _ext.ActorInterrupted:
        raise
    except BaseException as exc:
        # The remote traceback starts at the called function, not here.
        if exc.__traceback__ is not None:
            exc.__traceback__ = exc.__traceback__.tb_next
        return ERR, _box(exc, name)
    if type(result).__name__ == "coroutine" and hasattr(result, "close"):
        result.close()
        return ERR, _box(TypeError(
            f"{getattr(fn, '__qualname__', fn)!r} returned a coroutine: run_sync runs sync "
            f"functions only (an async function needs an actor, see open_nursery)"), name)
    return OK, result


def _encode_reply(status, value, retiring, name):
    try:
        return pickle.dumps((status, value, retiring), protocol=_PROTOCOL)
    except _ext.ActorInterrupted:
        raise
    except BaseException as exc:
        err = TypeError(f"the result ({type(value).__name__}) cannot be pickled to send it back: {exc}")
        err.__cause__ = exc  # the remote traceback shows where pickling failed
        return pickle.dumps((ERR, _box(err, name), retiring), protocol=_PROTOCOL)


def _box(exc, name):
    from subactor._exceptions import box_error  # no trio in there

    try:
        return box_error(exc, name)
    except Exception:
        # A str() or a traceback formatter that itself raises.
        return {"type": type(exc).__name__, "msg": "<unprintable>", "tb": "", "src": name}


def _over_ceiling(max_blocks):
    """True if this interpreter holds more than `max_blocks` allocated
    pymalloc blocks after a collection. Every own-GIL subinterpreter has
    its own obmalloc state, so sys.getallocatedblocks() here counts this
    worker's live small objects (<= 512 bytes) only; it does not see large
    buffers, which go to the system allocator. With pymalloc off
    (PYTHONMALLOC=malloc) the count is 0 and the ceiling never applies."""
    if sys.getallocatedblocks() <= max_blocks:
        return False
    import gc

    gc.collect()
    return sys.getallocatedblocks() > max_blocks
