"""Channels of subactor._ext: ordering, bounds, close/break, readiness fds.

Every test is bounded (pytest-timeout, and explicit timeouts on every
blocking call) and ends with the live counters of channels and message
buffers back where they started (the `no_leaks` fixture).
"""
import array
import gc
import os
import select
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import trio

from subactor import _ext

from .conftest import ROOT


# ---------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def no_leaks():
    """Channels, buffers, actor threads and interpreters are back to their
    starting counts after each test (records die when the last handle does,
    so garbage is collected first and actors get a moment to finish)."""
    gc.collect()
    keys = ("channels", "buffers", "threads", "interpreters")
    before = {k: _ext.live_counts()[k] for k in keys}
    yield
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        _ext.reap()
        now = {k: _ext.live_counts()[k] for k in keys}
        if now == before or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert now == before, f"live counts changed: {before} -> {now}"


def pair(**kw):
    cid = _ext.channel(**kw)
    return cid, _ext.ChannelEnd(cid, 0), _ext.ChannelEnd(cid, 1)


def readable(fd):
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


def spawn(code, input=b"", **kw):
    return _ext.spawn(textwrap.dedent(code), input=input, **kw)


def check_ok(actor, timeout=30):
    """Join the actor and return its result; fail with its traceback."""
    assert actor.join(timeout), f"{actor!r} did not finish in {timeout} s"
    out = actor.outcome()
    if out[0] != "ok":
        pytest.fail(f"actor ended with {out[0]}: {out[1]}: {out[2]}\n{out[3]}")
    return out[1]


async def arecv(end):
    """The trio way to receive: try, and wait on the fd only when empty."""
    while True:
        try:
            return end.recv_nowait()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(end.recv_fileno())


# ---------------------------------------------------------------------------
# messages


def test_roundtrip_both_directions_and_message_buffer():
    cid, a, b = pair()
    with a, b:
        a.send(b"ping")
        b.send(bytearray(b"pong"))
        m = b.recv(timeout=5)
        assert m == b"ping" and bytes(m) == b"ping" and len(m) == 4
        assert a.recv(timeout=5) == b"pong"
        assert isinstance(m, _ext.Message) and repr(m) == "<Message 4 bytes>"
        view = memoryview(m)
        assert view.readonly and view.tobytes() == b"ping"
        with pytest.raises(TypeError):
            view[0] = 1
        with pytest.raises(BufferError):
            m.release()  # a view is still alive
        view.release()
        m.release()
        m.release()  # idempotent
        assert m.released
        with pytest.raises(ValueError):
            memoryview(m)
        with pytest.raises(ValueError):
            len(m)
        with pytest.raises(TypeError):
            hash(m)
        with pytest.raises(TypeError):
            _ext.Message()


def test_send_accepts_any_bytes_like_and_empty_messages():
    cid, a, b = pair()
    with a, b:
        payloads = [b"", b"x", bytearray(b"abc"), memoryview(b"0123456789")[2:5], array.array("i", [1, 2])]
        for p in payloads:
            a.send(p)
        for p in payloads:
            assert bytes(b.recv(timeout=5)) == bytes(p)
        a.send(b"forward me")
        b.send(b.recv(timeout=5))  # a Message is bytes-like too
        assert a.recv(timeout=5) == b"forward me"
        with pytest.raises(TypeError):
            a.send("str is not bytes")
        with pytest.raises(TypeError):
            a.send_nowait(12)


def test_message_outlives_its_channel():
    cid, a, b = pair()
    a.send(b"x" * 1000)
    m = b.recv(timeout=5)
    a.close()
    b.close()
    assert _ext._chan_info(cid) is None
    assert bytes(m) == b"x" * 1000
    n = _ext.live_counts()["buffers"]
    del m
    assert _ext.live_counts()["buffers"] == n - 1


def test_send_many_and_recv_many():
    cid, a, b = pair(maxmsgs=4)
    with a, b:
        assert a.send_many([b"1", b"2", b"3"]) == 3
        assert a.send_many([]) == 0
        assert a.send_many_nowait([b"4", b"5", b"6"]) == 1  # the prefix that fits
        with pytest.raises(BlockingIOError):
            a.send_many_nowait([b"7"])
        with pytest.raises(TimeoutError) as info:
            a.send_many([b"7"], timeout=0.01)
        assert info.value.sent == 0
        assert [bytes(m) for m in b.recv_many(10, timeout=5)] == [b"1", b"2", b"3", b"4"]
        with pytest.raises(BlockingIOError):
            b.recv_many_nowait(10)
        # a blocking batch larger than the channel goes through in pieces
        got = []

        def drain():
            while len(got) < 10:
                got.extend(bytes(m) for m in b.recv_many(2, timeout=5))  # 1 or 2 a call

        t = threading.Thread(target=drain)
        t.start()
        assert a.send_many([b"%d" % i for i in range(10)], timeout=5) == 10
        t.join(10)
        assert got == [b"%d" % i for i in range(10)]
        with pytest.raises(ValueError):
            b.recv_many(0)
        with pytest.raises(TypeError):
            a.send_many([b"ok", "bad"])
        assert _ext._chan_info(cid)["queued"] == (0, 0)  # nothing queued from a failed batch


def run_child_checked(code, timeout=60.0):
    """Run `code` in a fresh Python process, as conftest.run_child() does,
    with Python's debug allocator unless the caller chose one (the ASan run
    chooses malloc, which ASan checks itself): it overwrites freed memory
    with 0xDD bytes, so a read through a dangling pointer crashes the child
    (and fails the test) instead of finding stale but plausible data."""
    env = dict(os.environ)
    env.setdefault("PYTHONMALLOC", "debug")
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT), env=env)


def assert_child_ok(r):
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), (
        f"child exited with {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-4000:]}")


def test_send_many_survives_an_item_whose_buffer_method_clears_the_list():
    """send_many() calls each item's __buffer__ (Python code); one that
    empties the list being sent must not leave send_many reading the list's
    freed items array. What is sent is the list as it was at the call."""
    r = run_child_checked("""
        from subactor import _ext

        class Clearing:
            def __init__(self, lst):
                self.lst = lst

            def __buffer__(self, flags):
                self.lst.clear()  # frees the items array and every item only the list held
                return memoryview(b"clearing")

        cid = _ext.channel()
        a, b = _ext.ChannelEnd(cid, 0), _ext.ChannelEnd(cid, 1)
        msgs = []
        msgs.append(Clearing(msgs))
        msgs.extend(bytes([65 + i]) * (20 + i) for i in range(63))
        expected = [b"clearing"] + [bytes([65 + i]) * (20 + i) for i in range(63)]
        assert a.send_many(msgs, timeout=5) == 64
        got = [bytes(m) for m in b.recv_many(100, timeout=5)]
        assert got == expected, got[:4]
        a.close()
        b.close()
        assert _ext.live_counts()["channels"] == 0 and _ext.live_counts()["buffers"] == 0
        print("OK")
    """)
    assert_child_ok(r)


@pytest.mark.parametrize("change", ["grow", "clear"])
def test_send_many_blocked_on_a_full_channel_survives_another_thread_changing_the_list(change):
    """While send_many() waits for room (GIL released), another thread may
    grow the list (its items array moves) or clear it (the array is freed);
    the rest of the batch must still come from the list as it was at the
    call. The first chunk (256 messages) is copied before the wait, so the
    list is long enough that a second chunk is read after it."""
    r = run_child_checked(f"""
        import threading, time
        from subactor import _ext

        cid = _ext.channel(maxmsgs=4)
        a, b = _ext.ChannelEnd(cid, 0), _ext.ChannelEnd(cid, 1)
        msgs = [bytes([i % 251]) * (1 + i % 40) for i in range(600)]
        expected = list(msgs)
        result = []
        t = threading.Thread(target=lambda: result.append(a.send_many(msgs, timeout=60)))
        t.start()
        deadline = time.monotonic() + 30
        while _ext._chan_info(cid)["queued"][0] < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert _ext._chan_info(cid)["queued"][0] == 4, "the sender never filled the channel"
        if {change!r} == "grow":
            # Many appends of new objects: the array is reallocated (moved)
            # several times and the memory it left is reused.
            for i in range(200000):
                msgs.append(b"late" * (i % 300))
        else:
            msgs.clear()
        got = []
        while len(got) < len(expected):
            got.extend(bytes(m) for m in b.recv_many(64, timeout=30))
        t.join(60)
        assert result == [len(expected)], result
        assert got == expected
        try:
            b.recv_nowait()
        except BlockingIOError:
            pass
        else:
            raise AssertionError("more was sent than the list held at the call")
        a.close()
        b.close()
        print("OK")
    """)
    assert_child_ok(r)


# ---------------------------------------------------------------------------
# ordering and no loss under a full channel


def test_fifo_no_loss_with_concurrent_sender_threads_on_a_full_channel():
    cid, a, b = pair(maxmsgs=4, maxbytes=256)
    senders, per = 4, 2000

    def send(k):
        for i in range(per):
            a.send(b"%d:%d:" % (k, i) + b"." * (i % 50), timeout=30)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    last = [-1] * senders
    for _ in range(senders * per):
        k, i, _pad = bytes(b.recv(timeout=30)).split(b":")
        k, i = int(k), int(i)
        assert i == last[k] + 1, f"sender {k}: got {i} after {last[k]}"
        last[k] = i
    for t in threads:
        t.join(30)
    assert last == [per - 1] * senders
    with pytest.raises(BlockingIOError):
        b.recv_nowait()
    a.close()
    b.close()


def test_fifo_no_loss_between_actors_and_the_main_interpreter_both_ways():
    """Three actors, each with two threads sending into one full channel to
    the parent, and receiving a stream from the parent that they check."""
    code = """
        import threading
        from subactor import _ext
        cid, per = map(int, _ext.actor_input().split())
        end = _ext.ChannelEnd(cid, 1)
        def send(k):
            for i in range(per):
                end.send(b"%d:%d" % (k, i), timeout=30)
        threads = [threading.Thread(target=send, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for i in range(per):
            m = end.recv(timeout=30)
            assert m == b"down:%d" % i, (bytes(m), i)
        for t in threads:
            t.join()
        end.close()
    """
    per = 1500
    chans = []
    for _ in range(3):
        cid = _ext.channel(maxmsgs=8)
        chans.append((cid, _ext.ChannelEnd(cid, 0)))  # side 1 is the actor's
    actors = [spawn(code, input=b"%d %d" % (cid, per)) for cid, _ in chans]

    def down(end):
        for i in range(per):
            end.send(b"down:%d" % i, timeout=30)

    def up(end, last):
        for _ in range(2 * per):
            k, i = map(int, bytes(end.recv(timeout=30)).split(b":"))
            assert i == last[k] + 1
            last[k] = i

    lasts = [[-1, -1] for _ in chans]
    threads = [threading.Thread(target=down, args=(end,)) for _, end in chans]
    threads += [threading.Thread(target=up, args=(end, last)) for (_, end), last in zip(chans, lasts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for act in actors:
        check_ok(act)
    assert lasts == [[per - 1, per - 1]] * 3
    for _, end in chans:
        with pytest.raises(_ext.EndOfChannel):
            end.recv(timeout=5)
        end.close()


# ---------------------------------------------------------------------------
# bounds, timeouts, nowait


def test_message_larger_than_the_byte_bound_is_refused():
    cid, a, b = pair(maxbytes=100)
    with a, b:
        a.send(b"x" * 100)  # exactly the bound fits (in an empty queue)
        for call in (lambda: a.send(b"x" * 101), lambda: a.send_nowait(b"x" * 101),
                     lambda: a.send_many([b"ok", b"x" * 101])):
            with pytest.raises(ValueError, match="larger than the channel's byte bound"):
                call()
        assert _ext._chan_info(cid)["queued"] == (1, 0)
        with pytest.raises(BlockingIOError):
            a.send_nowait(b"y")  # full by bytes
        assert b.recv_nowait() == b"x" * 100
        a.send_nowait(b"y")
    with pytest.raises(ValueError):
        _ext.channel(maxmsgs=0)
    with pytest.raises(ValueError):
        _ext.channel(maxbytes=0)


def test_timeouts_on_empty_and_full():
    cid, a, b = pair(maxmsgs=2)
    with a, b:
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            b.recv(timeout=0.05)
        assert 0.05 <= time.monotonic() - t < 2
        with pytest.raises(TimeoutError):
            b.recv(timeout=0)
        with pytest.raises(TimeoutError):
            b.recv_many(4, timeout=0.01)
        a.send(b"1")
        a.send(b"2", timeout=0)
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            a.send(b"3", timeout=0.05)
        assert 0.05 <= time.monotonic() - t < 2
        with pytest.raises(TimeoutError):
            a.send(b"3", timeout=-1)  # negative is 0
        with pytest.raises(ValueError):
            a.send(b"3", timeout=float("nan"))
        with pytest.raises(TypeError):
            a.send(b"3", timeout="soon")
        assert [bytes(b.recv(timeout=1)) for _ in range(2)] == [b"1", b"2"]


def test_nowait_errors():
    cid, a, b = pair(maxmsgs=1)
    with a, b:
        with pytest.raises(BlockingIOError):
            b.recv_nowait()
        a.send_nowait(b"1")
        with pytest.raises(BlockingIOError):
            a.send_nowait(b"2")
        # a large message that can't go now is refused before it is copied
        big = b"z" * (1 << 20)
        with pytest.raises(BlockingIOError):
            a.send_nowait(big)
        assert b.recv_nowait() == b"1"
        a.send_nowait(big)
        assert b.recv_nowait() == big


def test_blocked_sender_wakes_when_room_appears():
    cid, a, b = pair(maxmsgs=1)
    with a, b:
        a.send(b"1")
        timer = threading.Timer(0.05, lambda: b.recv(timeout=5))
        timer.start()
        t = time.monotonic()
        a.send(b"2", timeout=10)
        assert time.monotonic() - t < 5
        timer.join(5)
        assert b.recv(timeout=5) == b"2"


# ---------------------------------------------------------------------------
# close, drain, use after close, attach rules


def test_close_then_peer_drains_then_end_of_channel():
    cid, a, b = pair()
    for i in range(5):
        a.send(b"%d" % i)
    b.send(b"never read")
    a.close()
    assert _ext.live_counts()["buffers"] >= 5
    assert [bytes(b.recv(timeout=1)) for _ in range(5)] == [b"%d" % i for i in range(5)]
    for call in (lambda: b.recv(timeout=1), b.recv_nowait, lambda: b.recv_many(3)):
        with pytest.raises(_ext.EndOfChannel, match=f"channel {cid} side 1: end of channel"):
            call()
    with pytest.raises(EOFError):
        b.recv_nowait()
    with pytest.raises(_ext.BrokenError, match="peer closed its end"):
        b.send(b"x")
    assert not b.closed
    b.close()
    assert _ext._chan_info(cid) is None


def test_handles_used_after_close_raise_closed_error():
    cid, a, b = pair()
    assert not a.closed and a.id == cid and a.side == 0
    assert repr(a) == f"<ChannelEnd channel={cid} side=0 open>"
    a.close()
    a.close()  # idempotent
    assert a.closed and repr(a) == f"<ChannelEnd channel={cid} side=0 closed>"
    calls = [lambda: a.send(b"x"), lambda: a.send_nowait(b"x"), lambda: a.send_many([b"x"]),
             lambda: a.send_many_nowait([b"x"]), a.recv, a.recv_nowait, lambda: a.recv_many(1),
             lambda: a.recv_many_nowait(1), a.recv_fileno, a.send_fileno]
    for call in calls:
        with pytest.raises(_ext.ClosedError, match=f"channel {cid} side 0"):
            call()
    assert issubclass(_ext.ClosedError, ValueError)
    with b:
        pass
    assert b.closed
    with pytest.raises(_ext.ClosedError):
        b.recv()


def test_dealloc_closes_the_end():
    cid, a, b = pair()
    a.send(b"last words")
    del a
    assert b.recv(timeout=1) == b"last words"
    with pytest.raises(_ext.EndOfChannel):
        b.recv(timeout=1)
    del b
    assert _ext._chan_info(cid) is None


def test_attach_rules():
    with pytest.raises(_ext.ClosedError, match="no such channel"):
        _ext.ChannelEnd(2**63, 0)
    cid = _ext.channel()
    with pytest.raises(ValueError, match="side must be 0 or 1"):
        _ext.ChannelEnd(cid, 2)
    a = _ext.ChannelEnd(cid, 0)
    with pytest.raises(ValueError, match="already attached"):
        _ext.ChannelEnd(cid, 0)
    a.close()
    # Side 1 was never attached and nothing was queued toward it: closed too,
    # and the channel is gone.
    assert _ext._chan_info(cid) is None
    with pytest.raises(_ext.ClosedError):
        _ext.ChannelEnd(cid, 1)

    # With messages queued toward a never-attached side, it stays attachable
    # (a slow actor still gets what its parent sent before closing).
    cid = _ext.channel()
    a = _ext.ChannelEnd(cid, 0)
    a.send(b"for later")
    a.close()
    assert _ext._chan_info(cid)["state"] == ("closed", "unattached")
    with pytest.raises(_ext.ClosedError, match="closed"):
        _ext.ChannelEnd(cid, 0)  # an end is attached once
    b = _ext.ChannelEnd(cid, 1)
    assert b.recv(timeout=1) == b"for later"
    with pytest.raises(_ext.EndOfChannel):
        b.recv(timeout=1)
    b.close()
    assert _ext._chan_info(cid) is None

    # Never attached at all: channel_destroy() is the creator's way out.
    cid = _ext.channel()
    assert _ext._chan_info(cid)["state"] == ("unattached", "unattached")
    assert _ext.channel_destroy(cid) is True
    assert _ext.channel_destroy(cid) is False
    with pytest.raises(_ext.ClosedError):
        _ext.ChannelEnd(cid, 0)


def test_close_unattached_lets_go_of_a_channel_with_messages_for_a_side_never_attached():
    """An actor interrupted while starting never attaches side 1; what its
    parent queued toward it kept the channel attachable, hence alive, after
    the parent closed side 0. Closing the unattached side frees it all."""
    base = _ext.live_counts()
    cid = _ext.channel()
    a = _ext.ChannelEnd(cid, 0)
    a.send(b"never read" * 100)
    a.close()
    assert _ext._chan_info(cid)["state"] == ("closed", "unattached")
    assert _ext.live_counts()["channels"] == base["channels"] + 1
    assert _ext.live_counts()["buffers"] == base["buffers"] + 1
    assert _ext._chan_close_unattached(cid, 1) is True
    assert _ext._chan_info(cid) is None
    assert _ext.live_counts()["channels"] == base["channels"]
    assert _ext.live_counts()["buffers"] == base["buffers"]
    with pytest.raises(_ext.ClosedError):
        _ext.ChannelEnd(cid, 1)
    assert _ext._chan_close_unattached(cid, 1) is False  # the channel is gone


def test_close_unattached_leaves_attached_sides_alone():
    cid, a, b = pair()
    assert _ext._chan_close_unattached(cid, 0) is False  # open
    a.send(b"still works")
    assert b.recv(timeout=5) == b"still works"
    b.close()
    assert _ext._chan_close_unattached(cid, 1) is False  # attached and closed
    assert _ext._chan_info(cid)["state"] == ("open", "closed")
    with pytest.raises(ValueError, match="side must be 0 or 1"):
        _ext._chan_close_unattached(cid, 2)
    a.close()
    assert _ext._chan_info(cid) is None


def test_close_unattached_while_the_peer_is_open_acts_as_a_closed_end():
    """The open peer sees what it would see had an end been attached and
    closed: its queued messages are dropped, sends fail, receives end, a
    waiter wakes, and the channel goes when the peer closes."""
    cid = _ext.channel()
    a = _ext.ChannelEnd(cid, 0)
    a.send(b"dropped")
    fd = a.recv_fileno()
    assert not readable(fd)
    assert _ext._chan_close_unattached(cid, 1) is True
    assert _ext._chan_info(cid)["queued"] == (0, 0)
    assert readable(fd)
    with pytest.raises(_ext.BrokenError):
        a.send(b"x")
    with pytest.raises(_ext.EndOfChannel):
        a.recv(timeout=5)
    with pytest.raises(_ext.ClosedError):
        _ext.ChannelEnd(cid, 1)
    a.close()
    assert _ext._chan_info(cid) is None

    # Neither side attached: closing one closes both, as attaching one end
    # and closing it would.
    cid = _ext.channel()
    assert _ext._chan_close_unattached(cid, 0) is True
    assert _ext._chan_info(cid) is None


def test_channel_destroy_closes_attached_ends():
    cid, a, b = pair()
    a.send(b"dropped")
    assert _ext.channel_destroy(cid)
    assert a.closed and b.closed
    with pytest.raises(_ext.ClosedError):
        b.recv(timeout=1)
    with pytest.raises(_ext.ClosedError):
        a.send(b"x")
    a.close()
    b.close()


def test_close_wakes_blocked_callers():
    cid, a, b = pair(maxmsgs=1)
    errors = []

    def blocked(call):
        try:
            call()
        except Exception as e:
            errors.append(type(e))

    # own end closed by another thread while blocked in recv
    t = threading.Thread(target=blocked, args=(lambda: b.recv(timeout=30),))
    t.start()
    time.sleep(0.05)
    b.close()
    t.join(5)
    assert errors == [_ext.ClosedError]
    # peer closed while blocked in send on a full channel
    cid, a, b = pair(maxmsgs=1)
    a.send(b"1")
    t = threading.Thread(target=blocked, args=(lambda: a.send(b"2", timeout=30),))
    t.start()
    time.sleep(0.05)
    b.close()
    t.join(5)
    assert errors == [_ext.ClosedError, _ext.BrokenError]
    a.close()


# ---------------------------------------------------------------------------
# broken peers


BLOCK_AFTER_SENDING = """
    import time
    from subactor import _ext
    cid, how = _ext.actor_input().split()
    end = _ext.ChannelEnd(int(cid), 1)
    for i in range(3):
        end.send(b"%d" % i)
    if how == b"recv":
        try:
            end.recv(timeout=30)   # blocks until its end is closed under it
        except _ext.ClosedError:
            _ext.set_result(b"closed under me")
    else:
        deadline = time.monotonic() + 30   # receives nothing, so what is sent here stays queued
        while not end.closed and time.monotonic() < deadline:
            time.sleep(0.002)
        _ext.set_result(b"closed under me" if end.closed else b"timed out")
"""


def wait_queued(cid, direction, n):
    deadline = time.monotonic() + 30
    while _ext._chan_info(cid)["queued"][direction] < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.parametrize("how", ["break", "close"])
def test_peer_of_a_broken_or_closed_actor_drains_then_errs(how):
    cid = _ext.channel()
    a = _ext.ChannelEnd(cid, 0)
    act = spawn(BLOCK_AFTER_SENDING, input=b"%d poll" % cid)
    wait_queued(cid, 1, 3)
    a.send(b"to the dead")
    cid2, x, y = pair()
    _ext._chan_break_owned_by(0)  # owner 0 (no actor) is never broken
    assert not x.closed and not y.closed and not a.closed
    fd = a.recv_fileno()
    assert readable(fd)  # 3 queued
    (_ext._chan_break_owned_by if how == "break" else _ext._chan_close_owned_by)(act.id)
    assert check_ok(act) == b"closed under me"
    info = _ext._chan_info(cid)
    assert info["state"] == ("open", "closed") and info["broken"][1] == (how == "break")
    assert info["queued"] == (0, 3)  # what was sent to the dead side is dropped
    assert [bytes(a.recv_nowait()) for _ in range(3)] == [b"0", b"1", b"2"]
    assert readable(fd) and readable(a.send_fileno())  # never a hang: both fds wake
    exc = _ext.BrokenError if how == "break" else _ext.EndOfChannel
    with pytest.raises(exc):
        a.recv(timeout=1)
    with pytest.raises(exc):
        a.recv_nowait()
    with pytest.raises(_ext.BrokenError):
        a.send(b"x", timeout=1)
    a.close()
    x.close()
    y.close()


def test_break_wakes_a_blocked_receiver_at_once():
    cid = _ext.channel()
    a = _ext.ChannelEnd(cid, 0)
    act = spawn(BLOCK_AFTER_SENDING, input=b"%d recv" % cid)
    wait_queued(cid, 1, 3)
    for _ in range(3):
        a.recv(timeout=5)
    result = []

    def waiter():
        t = time.monotonic()
        try:
            a.recv(timeout=30)
        except _ext.BrokenError:
            result.append(time.monotonic() - t)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    _ext._chan_break_owned_by(act.id)
    t.join(5)
    assert result and result[0] < 2
    assert check_ok(act) == b"closed under me"  # the dead side's blocked recv woke too
    a.close()


def test_interrupt_reaches_an_actor_blocked_in_send():
    cid = _ext.channel(maxmsgs=1)
    a = _ext.ChannelEnd(cid, 0)
    act = spawn("""
        from subactor import _ext
        end = _ext.ChannelEnd(int(_ext.actor_input()), 1)
        end.send(b"fills it")
        end.send(b"blocks")
    """, input=b"%d" % cid)
    wait_queued(cid, 1, 1)
    time.sleep(0.05)
    assert act.interrupt()
    assert act.join(5)
    assert act.outcome()[0] == "interrupted"
    assert a.recv(timeout=1) == b"fills it"
    with pytest.raises((_ext.EndOfChannel, _ext.BrokenError)):
        a.recv(timeout=5)
    a.close()


# ---------------------------------------------------------------------------
# readiness file descriptors


def test_readiness_fds_are_level_correct():
    cid, a, b = pair(maxmsgs=3, maxbytes=100)
    r, s = b.recv_fileno(), a.send_fileno()
    assert b.recv_fileno() == r  # made once
    assert not readable(r) and readable(s)
    a.send(b"1")
    assert readable(r) and readable(r)  # level, not edge: reading poll doesn't consume it
    a.send(b"2")
    b.recv_nowait()
    assert readable(r)
    b.recv_nowait()
    assert not readable(r)
    for i in range(3):
        a.send(b"%d" % i)
    assert not readable(s)  # full by count
    b.recv_nowait()
    assert readable(s)
    b.recv_many_nowait(10)
    assert not readable(r) and readable(s)
    # full by bytes: the fd follows the message that found no room
    a.send(b"x" * 60)
    assert readable(s)  # a small message would fit
    with pytest.raises(BlockingIOError):
        a.send_nowait(b"y" * 60)
    assert not readable(s)  # ...but that 60-byte one does not
    a.send_nowait(b"z" * 10)  # a smaller one still goes, and a success resets it
    assert readable(s)
    with pytest.raises(BlockingIOError):
        a.send_nowait(b"y" * 60)
    assert not readable(s)
    b.recv_nowait()
    assert readable(s)  # now the 60 bytes fit
    a.send_nowait(b"y" * 60)
    assert readable(s)
    b.recv_many_nowait(10)
    # peer closing makes both fds of the other end readable, for good
    rs, ss = a.recv_fileno(), b.send_fileno()
    assert not readable(rs) and readable(ss)
    b.close()
    assert readable(rs) and readable(s)
    with pytest.raises(_ext.EndOfChannel):
        a.recv_nowait()
    assert readable(rs)
    a.close()


def test_trio_task_receives_from_an_actor_without_spinning():
    n = 3000
    cid = _ext.channel(maxmsgs=16)
    end = _ext.ChannelEnd(cid, 0)
    act = spawn("""
        from subactor import _ext
        cid, n = map(int, _ext.actor_input().split())
        with _ext.ChannelEnd(cid, 1) as end:
            for i in range(n):
                end.send(i.to_bytes(4, "little") * (1 + i % 100), timeout=30)
    """, input=b"%d %d" % (cid, n))

    async def main():
        got, spurious = 0, 0
        fd = end.recv_fileno()
        with trio.fail_after(60):
            while True:
                try:
                    m = end.recv_nowait()
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        m = end.recv_nowait()
                    except BlockingIOError:
                        spurious += 1  # woken while nothing was there: a spin
                        continue
                    except _ext.EndOfChannel:
                        break
                except _ext.EndOfChannel:
                    break
                assert bytes(m) == got.to_bytes(4, "little") * (1 + got % 100)
                got += 1
        return got, spurious

    got, spurious = trio.run(main)
    assert (got, spurious) == (n, 0)
    check_ok(act)
    end.close()


def test_trio_task_sends_to_an_actor_through_a_full_channel():
    n = 2000
    cid = _ext.channel(maxmsgs=8)
    end = _ext.ChannelEnd(cid, 0)
    act = spawn("""
        from subactor import _ext
        cid, n = map(int, _ext.actor_input().split())
        end = _ext.ChannelEnd(cid, 1)
        for i in range(n):
            m = end.recv(timeout=30)
            assert m == b"%d" % i, (bytes(m), i)
        end.send(b"all %d" % n)
        try:
            end.recv(timeout=30)
        except _ext.EndOfChannel:
            pass
    """, input=b"%d %d" % (cid, n))

    async def main():
        fd, spurious = end.send_fileno(), 0
        with trio.fail_after(60):
            for i in range(n):
                while True:
                    try:
                        end.send_nowait(b"%d" % i)
                        break
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(fd)
                        try:
                            end.send_nowait(b"%d" % i)
                            break
                        except BlockingIOError:
                            spurious += 1
            reply = await arecv(end)
        return bytes(reply), spurious

    assert trio.run(main) == (b"all %d" % n, 0)
    end.close()
    check_ok(act)


# ---------------------------------------------------------------------------
# churn: many short actors, some interrupted or cut off mid-stream


CHURN_ACTOR = """
    from subactor import _ext
    cid, n, k = map(int, _ext.actor_input().split())
    end = _ext.ChannelEnd(cid, 1)
    acked = 0
    how = "done"
    try:
        for i in range(n):
            end.send(k.to_bytes(4, "little") + i.to_bytes(4, "little") + bytes(i % 61), timeout=30)
            acked += 1   # send() returned: the channel has it
    except BaseException as e:   # ActorInterrupted, or BrokenError when the parent hangs up
        how = type(e).__name__
    _ext.set_result(("%s %d" % (how, acked)).encode())
"""


def test_churn_10000_messages_across_short_actors_nothing_acknowledged_is_lost():
    """40 actors each try to send 250 messages (10,000 in all) through a
    channel of 8 slots to a trio task, at most 4 actors alive at once. Every
    third actor is interrupted mid-stream, every fifth is cut off by its
    parent closing its end. Each actor reports how many sends returned
    (acked). The honest check, per actor: what the parent received is exactly
    0, 1, ..., r-1 in order, and
      - finished normally: r == acked == 250;
      - interrupted: acked <= r <= acked + 1 (the interrupt may land between
        a send() returning and `acked += 1`; nothing acked is ever lost);
      - cut off by the parent after receiving c: r == c <= acked (the rest was
        dropped by the parent's own close, which is its choice).
    """
    n_actors, per, slots = 40, 250, 8
    report = {}

    async def one(k, limiter):
        async with limiter:
            cid = _ext.channel(maxmsgs=slots)
            end = _ext.ChannelEnd(cid, 0)
            act = _ext.spawn(textwrap.dedent(CHURN_ACTOR), input=b"%d %d %d" % (cid, per, k))
            mode = "interrupt" if k % 3 == 1 else "cut" if k % 5 == 2 else "normal"
            stop_at = 40 + (k * 37) % (per - slots - 60)  # always mid-stream
            seqs = []
            try:
                while True:
                    try:
                        m = await arecv(end)
                    except (_ext.EndOfChannel, _ext.BrokenError):
                        break
                    v = memoryview(m)
                    kk, i = int.from_bytes(v[:4], "little"), int.from_bytes(v[4:8], "little")
                    assert kk == k and len(m) == 8 + i % 61
                    seqs.append(i)
                    if len(seqs) == stop_at and mode == "interrupt":
                        assert act.interrupt()
                        # interrupt() returns at once and a helper thread
                        # delivers it; stop reading until it has landed, so
                        # that it lands mid-stream (the actor blocks on the
                        # full channel meanwhile).
                        while act.interrupts == 0:
                            await trio.sleep(0.001)
                    if len(seqs) == stop_at and mode == "cut":
                        break
            finally:
                end.close()  # also unblocks the actor if this task fails
            await trio.lowlevel.wait_readable(act.fileno())
            assert act.join(10)
            report[k] = (mode, seqs, act.outcome())

    async def main():
        limiter = trio.CapacityLimiter(4)
        with trio.fail_after(100):
            async with trio.open_nursery() as nursery:
                for k in range(n_actors):
                    nursery.start_soon(one, k, limiter)

    trio.run(main)
    total = 0
    for k, (mode, seqs, outcome) in sorted(report.items()):
        assert outcome[0] == "ok", outcome[3]
        how, acked = outcome[1].decode().split()
        acked, r = int(acked), len(seqs)
        assert seqs == list(range(r)), f"actor {k}: out of order or lost"
        if mode == "normal":
            assert (how, acked, r) == ("done", per, per)
        elif mode == "interrupt":
            assert how == "ActorInterrupted" and acked <= r <= acked + 1, (k, how, acked, r)
        else:
            assert how == "BrokenError" and r <= acked, (k, how, acked, r)
        total += r
    assert len(report) == n_actors
    modes = [mode for mode, _, _ in report.values()]
    assert modes.count("interrupt") >= 10 and modes.count("cut") >= 5 and modes.count("normal") >= 10
    assert total > 5000
    print(f"churn: {total} of {n_actors * per} messages received; modes {sorted(set(modes))}")


# ---------------------------------------------------------------------------
# large messages


def test_large_messages_through_an_actor_echo():
    import hashlib
    import os

    cid = _ext.channel(maxmsgs=4, maxbytes=64 << 20)
    end = _ext.ChannelEnd(cid, 0)
    act = spawn("""
        from subactor import _ext
        with _ext.ChannelEnd(int(_ext.actor_input()), 1) as end:
            while True:
                try:
                    m = end.recv(timeout=30)
                except _ext.EndOfChannel:
                    break
                end.send(m, timeout=30)
                m.release()
    """, input=b"%d" % cid)
    blobs = [os.urandom(n) for n in (1, 1 << 20, 8 << 20, 3 << 20)]
    for blob in blobs:
        end.send(blob, timeout=30)
        m = end.recv(timeout=30)
        assert hashlib.sha256(m).digest() == hashlib.sha256(blob).digest()
    end.close()
    check_ok(act)


def test_send_many_of_large_messages_goes_in_chunks_through_a_small_channel():
    cid, a, b = pair(maxmsgs=64, maxbytes=3 << 20)
    blobs = [bytes([i]) * (1 << 20) for i in range(12)]  # 12 MiB through 3 MiB of room
    got = []
    t = threading.Thread(target=lambda: got.extend(bytes(b.recv(timeout=30)) for _ in blobs))
    t.start()
    assert a.send_many(blobs, timeout=30) == len(blobs)
    t.join(30)
    assert got == blobs
    assert a.send_many_nowait(blobs) == 3  # what fits now
    with pytest.raises(BlockingIOError):
        a.send_many_nowait(blobs)
    a.close()
    b.close()


def test_blocking_calls_without_spinning():
    """The condition-variable path alone (the spin is a latency optimisation)."""
    old = _ext._chan_spin(0)
    try:
        assert _ext._chan_spin() == 0
        cid, a, b = pair(maxmsgs=2)
        n = 2000
        t = threading.Thread(target=lambda: [a.send(b"%d" % i, timeout=30) for i in range(n)])
        t.start()
        assert [bytes(b.recv(timeout=30)) for _ in range(n)] == [b"%d" % i for i in range(n)]
        t.join(30)
        with pytest.raises(TimeoutError):
            b.recv(timeout=0.02)
        a.close()
        b.close()
    finally:
        _ext._chan_spin(old)


def test_ends_attached_by_threads_of_an_actor_belong_to_the_actor():
    cid = _ext.channel()
    a = _ext.ChannelEnd(cid, 0)
    act = spawn("""
        import threading, time
        from subactor import _ext
        ends, cid = [], int(_ext.actor_input())   # actor_input() works on the actor's own thread only
        t = threading.Thread(target=lambda: ends.append(_ext.ChannelEnd(cid, 1)))
        t.start()
        t.join()
        ends[0].send(b"attached")
        deadline = time.monotonic() + 30
        while not ends[0].closed and time.monotonic() < deadline:
            time.sleep(0.002)
        _ext.set_result(b"broken under me" if ends[0].closed else b"timed out")
    """, input=b"%d" % cid)
    assert a.recv(timeout=30) == b"attached"
    _ext._chan_break_owned_by(act.id)
    assert check_ok(act) == b"broken under me"
    with pytest.raises(_ext.BrokenError):
        a.recv(timeout=5)
    a.close()


def test_a_trio_channel_closes_after_its_trio_run_ended():
    # Its descriptors were watched in a run that is over: close() still
    # frees the end (a portal dropped after trio.run, a Ctrl-C during
    # teardown), without trio's "must be called from async context".
    import trio

    from subactor._transport import TrioChannel

    cid = _ext.channel()
    peer = _ext.ChannelEnd(cid, 1)
    chan = TrioChannel(_ext.ChannelEnd(cid, 0))

    async def main():
        chan.end.recv_fileno()
        chan.end.send_fileno()

    trio.run(main)
    chan.close()
    assert chan.end.closed
    peer.close()


# ---------------------------------------------------------------------------
# the lock-free empty check and the eventfd levels applied after the lock


def test_nowait_receive_polling_under_a_concurrent_sender_loses_nothing():
    """An actor sends as fast as it can while the main interpreter polls
    recv_nowait() (which answers "empty" without the channel lock): every
    message comes, in order, and the peer's close is seen through the same
    fast path (EndOfChannel, not BlockingIOError for ever)."""
    code = """
        from subactor import _ext
        cid, n = map(int, _ext.actor_input().split())
        end = _ext.ChannelEnd(cid, 1)
        for i in range(n):
            end.send(b"%d" % i, timeout=30)
        end.close()
    """
    n = 20000
    cid = _ext.channel(maxmsgs=4)
    end = _ext.ChannelEnd(cid, 0)
    act = spawn(code, input=b"%d %d" % (cid, n))
    deadline = time.monotonic() + 60
    got = empties = 0
    try:
        while True:
            assert time.monotonic() < deadline, f"only {got} of {n} messages in 60 s"
            try:
                m = end.recv_nowait()
            except BlockingIOError:
                empties += 1
                continue
            except _ext.EndOfChannel:
                break
            assert bytes(m) == b"%d" % got
            got += 1
        assert got == n
        check_ok(act)
    finally:
        end.close()


def test_recv_fd_level_matches_the_queue_after_a_concurrent_storm():
    """The readiness fds are written after the lock is let go, newest state
    wins: after an actor's burst of sends met the parent's receives (each
    changing the level), the recv fd is readable iff a message is queued,
    and the sender's send fd readable once there is room."""
    code = """
        from subactor import _ext
        cid, n = map(int, _ext.actor_input().split())
        end = _ext.ChannelEnd(cid, 1)
        end.send_fileno()   # made, so its level is kept too
        for i in range(n):
            end.send(b"x", timeout=30)
        assert end.recv(timeout=30) == b"done"
        end.close()
    """
    n = 5000
    cid = _ext.channel(maxmsgs=2)
    end = _ext.ChannelEnd(cid, 0)
    fd = end.recv_fileno()
    act = spawn(code, input=b"%d %d" % (cid, n))
    got = 0
    deadline = time.monotonic() + 60
    try:
        while got < n:
            assert time.monotonic() < deadline
            try:
                end.recv_nowait()
                got += 1
            except BlockingIOError:
                select.select([fd], [], [], 1.0)
        # Everything received: nothing queued, so the fd must not be readable.
        assert not readable(fd), "recv fd readable with an empty queue"
        end.send(b"done")
        check_ok(act)
        assert readable(fd)   # the peer closed: a recv would not block
    finally:
        end.close()


def test_pool_counts_misses_and_drops_and_its_max_is_settable():
    # _chan_pool(): misses (a large buffer the pool had nothing for) and
    # drops (a freed large buffer the pool had no room for) are counted,
    # and max= bounds what it keeps (0: nothing) until set back.
    cid, a, b = pair()
    size = 1 << 20
    before = _ext._chan_pool(True)    # empty pool: the next large buffer is a miss
    old_max = 32 << 20
    try:
        _ext._chan_pool(False, 0)
        a.send(b"x" * size)
        b.recv(timeout=5).release()   # freed with max 0: dropped
        mid = _ext._chan_pool()
        assert mid["misses"] == before["misses"] + 1
        assert mid["drops"] == before["drops"] + 1
        assert mid["buffers"] == 0
        _ext._chan_pool(False, old_max)
        a.send(b"x" * size)           # a miss again (nothing kept), then kept on release
        b.recv(timeout=5).release()
        a.send(b"x" * size)           # taken from the pool: no miss, no drop
        b.recv(timeout=5).release()
        after = _ext._chan_pool()
        assert after["misses"] == mid["misses"] + 1
        assert after["drops"] == mid["drops"]
        assert after["buffers"] == 1
    finally:
        _ext._chan_pool(True, old_max)
        a.close()
        b.close()
    with pytest.raises(ValueError, match="max"):
        _ext._chan_pool(False, 1 << 41)


def test_pool_serves_a_request_from_a_kept_buffer_up_to_twice_its_size():
    # A pool that keeps buffers of one size class only (a stream's 1 MiB
    # items plus their header) still serves other large sizes up to twice
    # smaller from them, instead of fresh memory each time; a buffer so
    # taken goes back to its own class.
    cid, a, b = pair()
    _ext._chan_pool(True)
    try:
        a.send(b"x" * ((1 << 20) + 100))   # a miss; kept on release (the 1.25 MiB class)
        b.recv(timeout=5).release()
        start = _ext._chan_pool()
        assert start["buffers"] == 1
        for _ in range(3):
            a.send(b"y" * (1 << 20))       # the 1 MiB class: served by the kept buffer
            m = b.recv(timeout=5)
            assert bytes(m) == b"y" * (1 << 20)
            m.release()
        mid = _ext._chan_pool()
        assert mid["misses"] == start["misses"]
        assert mid["buffers"] == 1 and mid["bytes"] == start["bytes"]
        a.send(b"z" * (4 << 20))           # far larger: not served by it
        b.recv(timeout=5).release()
        assert _ext._chan_pool()["misses"] == start["misses"] + 1
    finally:
        _ext._chan_pool(True)
        a.close()
        b.close()
