"""trio's wake-up socket pair spins when its writing end is gone.

The bug: ``trio._core._wakeup_socketpair.WakeupSocketpair.drain()`` reads
the wake-up socket until a read would block. Once the other end of the pair
is closed (its descriptor closed by code that closes every descriptor, or
lost across a fork), each read returns end-of-file at once instead of
blocking, so ``drain()`` loops forever at full CPU and the run never ends.

The fix: ``drain()`` also stops at end-of-file (an empty read).

``repro()``: a pair whose writing end is closed, then ``drain()``.

Remove this fix when trio's ``drain()`` stops at end-of-file by itself;
``is_needed()`` checks that on the installed trio, by running the
reproduction in a thread with a deadline.
"""
from __future__ import annotations

import threading

_applied = False
_needed: bool | None = None


def _drain_until_blocked_or_eof(self) -> None:
    try:
        while self.wakeup_sock.recv(2 ** 16):
            pass
    except BlockingIOError:
        pass


def _pair_with_closed_writer():
    from trio._core._wakeup_socketpair import WakeupSocketpair

    pair = WakeupSocketpair()
    pair.write_sock.close()
    return pair


def is_needed() -> bool:
    """True if the installed trio's ``drain()`` does not return on a pair
    whose writing end is closed. Checked once, in a daemon thread given
    0.5 s; a check left spinning is ended by closing its socket (its next
    read fails)."""
    global _needed
    if _needed is not None:
        return _needed
    from trio._core._wakeup_socketpair import WakeupSocketpair

    if WakeupSocketpair.drain is _drain_until_blocked_or_eof:
        _needed = True
        return True
    pair = _pair_with_closed_writer()
    done = threading.Event()

    def run():
        try:
            original(pair)
        except OSError:
            pass   # the socket was closed under it: the loop ends
        done.set()

    original = WakeupSocketpair.drain
    t = threading.Thread(target=run, name="subactor-patch-check", daemon=True)
    t.start()
    _needed = not done.wait(0.5)
    pair.wakeup_sock.close()
    t.join(5)
    return _needed


def apply() -> bool:
    """Install the fix if the installed trio needs it; True if installed
    by this call."""
    global _applied
    if _applied or not is_needed():
        return False
    from trio._core._wakeup_socketpair import WakeupSocketpair

    WakeupSocketpair.drain = _drain_until_blocked_or_eof
    _applied = True
    return True


def repro() -> None:
    """Drain a wake-up pair whose writing end is closed: returns at once
    with the fix, spins forever without it."""
    pair = _pair_with_closed_writer()
    try:
        pair.drain()
    finally:
        pair.wakeup_sock.close()
