"""Remote spawn: ``an.start_actor(name, enable_modules=[...], host=ADDR)``
starts the actor on the daemon (a networked root) listening at ADDR.

The parent connects (authenticated, as every subactor.ipc connection)
with hello ``{"t": "spawn", name, uid, mods, backend, loglevel, aid}``.
The daemon spawns the actor there, as a subinterpreter or a process, and
answers ``ok {pid}`` (or ``err``). From then on the connection carries the
actor's own protocol: the daemon relays each message between it and the
actor's channel unchanged, except two of its own from the parent:
``__cancel`` (rung 1's out-of-band cancel request) and ``__interrupt``
(rung 2), which it applies to the actor's handle. When the actor is gone
the daemon says ``gone {how}`` and closes the connection.

The parent's side is an ordinary portal over that connection, supervised
by the nursery's ladder through a :class:`RemoteHandle`; abandoning it
(rung 3) closes the connection. The daemon takes a parent's broken
connection for a cancel: it ends that actor through its own ladder
(cancel, interrupt, abandon, by the same deadlines), so no actor outlives
its remote parent by more than them.

Spawns are refused on a TCP listener without authentication: choosing
``enable_modules`` for a new actor is running code on that host.
"""
from __future__ import annotations

import os
import uuid as _uuid

import trio

from subactor import _ext, _state

# -- the daemon's side ---------------------------------------------------------------------


async def _recv_raw(end):
    while True:
        try:
            return end.recv_nowait()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(end.recv_fileno())


async def _send_raw(end, data) -> None:
    while True:
        try:
            end.send_nowait(data)
            return
        except BlockingIOError:
            await trio.lowlevel.wait_readable(end.send_fileno())


_ENDED = (_ext.EndOfChannel, _ext.BrokenError, _ext.ClosedError, trio.ClosedResourceError, trio.EndOfChannel,
          trio.BrokenResourceError)


def _parent_io(conn):
    """(receive, send) of encoded messages on the parent's connection: its
    socket's frames, or over TLS its StreamChannel's messages re-encoded."""
    if conn.tls:
        chan = conn.channel()

        async def recv():
            return _ext.dumps(await chan.recv())

        async def send(data):
            await chan.send(_ext.loads(data))
        return recv, send

    async def recv():
        m = await _recv_raw(conn.end)
        data = bytes(m)
        m.release()
        return data

    async def send(data):
        await _send_raw(conn.end, data)
    return recv, send


def _refuse(conn, why: str) -> None:
    from subactor.discovery._net import _send_now

    _send_now(conn, {"t": "err", "err": why})


async def serve_spawn(node, conn, hello: dict) -> None:
    """A remote parent's spawn request (see the module docstring)."""
    from subactor import _ladder, _spawn
    from subactor._nursery import _check_modules, _how_it_ended
    from subactor.ipc import UDSAddress
    from subactor.discovery._net import _send_now

    if not (conn.authenticated or conn.tls or isinstance(conn.local_addr, UDSAddress)):   # (TLS: mutual)
        _refuse(conn, "this daemon starts actors only for authenticated parents: set SUBACTOR_AUTHKEY "
                      "(or SUBACTOR_AUTHKEY_FILE, or the SUBACTOR_TLS_* files) on both sides")
        return
    try:
        name = hello["name"]
        uid = hello["uid"]
        if not isinstance(name, str) or not name or not isinstance(uid, str) or not uid:
            raise TypeError(f"a bad actor name or uid: {name!r}, {uid!r}")
        mods = _check_modules(hello.get("mods"))
        backend = _spawn.check_backend(hello.get("backend") or "subint")
        grace, kill_after = _ladder.check_deadlines(hello.get("grace", _ladder.DEFAULT_GRACE),
                                                    hello.get("kill_after", _ladder.DEFAULT_KILL_AFTER))
        pname, puuid, _ppid = hello["aid"]
    except (KeyError, TypeError, ValueError) as exc:
        _refuse(conn, f"a malformed spawn request: {exc}")
        return
    cfg = {"name": name, "uid": uid, "mods": mods, "parent": pname, "parent_uid": [pname, puuid], "main": None,
           "sleep_wakes": bool(hello.get("sleep_wakes")), "loglevel": hello.get("loglevel")}
    if hello.get("aio"):
        cfg["aio"] = True   # infect_asyncio=True: its trio runs as the guest of an asyncio loop
    hub = node.hub
    hub_id = None
    if backend != "process":
        cfg["hub"] = hub_id = _ext.channel()   # it is registered here, findable as any actor of this tree
    try:
        handle, end = _spawn.spawn(backend, cfg)
    except Exception as exc:
        if hub_id is not None:
            _ext.channel_destroy(hub_id)
        _refuse(conn, f"could not start actor {name!r}: {exc}")
        return
    if hub_id is not None:
        hub.adopt(hub_id, name, uid, os.getpid())
    pid = getattr(handle, "pid", None) or os.getpid()
    _log().info("started actor %r (%s, pid %s) for %s at %s", name, backend, pid, pname, conn.peer_addr)
    if not _send_now(conn, {"t": "ok", "pid": pid}):
        conn.close()
    parent_gone = trio.Event()
    actor_gone = trio.Event()
    bye = trio.Event()
    parent_recv, parent_send = _parent_io(conn)

    async def down():   # parent -> actor
        try:
            while True:
                data = await parent_recv()
                if len(data) < 48:
                    try:
                        t = _ext.loads(data).get("t")
                    except Exception:
                        t = None
                    if t == "__cancel":
                        if not handle.done:
                            handle.cancel()
                        continue
                    if t == "__interrupt":
                        if not handle.done:
                            handle.interrupt()
                        continue
                await _send_raw(end, data)
        except _ENDED:
            pass
        finally:
            parent_gone.set()

    async def up():     # actor -> parent
        try:
            while True:
                m = await _recv_raw(end)
                data = bytes(m)
                m.release()
                if parent_gone.is_set():
                    # Its parent is gone: only its bye matters now (the ladder's ack).
                    try:
                        if _ext.loads(data).get("t") == "bye":
                            bye.set()
                    except Exception:
                        pass
                    continue
                try:
                    await parent_send(data)
                except _ENDED:
                    parent_gone.set()
        except _ENDED:
            pass
        finally:
            actor_gone.set()

    try:
        async with trio.open_nursery() as n:
            n.start_soon(down)
            n.start_soon(up)
            async with trio.open_nursery() as first:
                async def wait(ev):
                    await ev.wait()
                    first.cancel_scope.cancel()
                first.start_soon(wait, parent_gone)
                first.start_soon(wait, actor_gone)
            if parent_gone.is_set() and not actor_gone.is_set():
                # The remote parent's connection broke (or it closed it: an
                # abandon): the actor is ended here, through the ladder.
                _log().warning("the parent of actor %r (%s) is gone: ending it", name, pname)

                async def cooperate() -> bool:
                    try:
                        with trio.move_on_after(1.0):
                            await _send_raw(end, _ext.dumps({"t": "cancel_actor", "by": [pname, puuid]}))
                    except _ENDED:
                        return False
                    await bye.wait()
                    return True

                await _ladder.Ladder(handle, grace=grace, kill_after=kill_after).run(cooperate)
            else:
                # The actor is gone (it left, or was told to): wait for its
                # end (bounded), say how it ended, close.
                with trio.move_on_after(kill_after):
                    while not handle.done:
                        await trio.lowlevel.wait_readable(handle.fileno())
                if not handle.done:
                    await _ladder.Ladder(handle, grace=grace, kill_after=kill_after).run()
                else:
                    handle.join(0, abandon=False)
                _send_now(conn, {"t": "gone", "how": _how_it_ended(handle)})
            n.cancel_scope.cancel()
    finally:
        if not handle.done:
            with trio.CancelScope(shield=True):
                await _ladder.Ladder(handle, grace=grace, kill_after=kill_after).run()
        end.close()
        hub.gone((name, uid))
        conn.close()


def _log():
    from subactor import log

    return log.get_logger("subactor.discovery")


# -- the parent's side ------------------------------------------------------------------------


class RemoteHandle:
    """What the nursery's ladder drives for an actor on a daemon: the
    connection stands for the actor (see the module docstring)."""

    abandon_kills = False

    def __init__(self, conn, pid: int, where):
        self.conn = conn
        self.pid = pid
        self.where = where
        self._r, self._w = os.pipe()   # readable once the actor is gone
        self.done = False
        self.state = "running"
        self._how = ""

    def fileno(self) -> int:
        return self._r

    def _send(self, t: str) -> None:
        if not self.done:
            try:
                self.conn.channel().send_control({"t": t})
            except Exception:
                pass

    def cancel(self) -> None:
        self._send("__cancel")

    def interrupt(self) -> None:
        self._send("__interrupt")

    def abandon(self) -> None:
        """Rung 3: let go of the connection; the daemon ends the actor by
        its own ladder."""
        self.state = "abandoned"
        self.conn.close()

    def gone(self, how: str = "") -> None:
        """The daemon said how it ended, or the connection ended."""
        if how and not self._how:
            self._how = how
        if not self.done:
            self.done = True
            if self.state == "running":
                self.state = "done"
            try:
                os.write(self._w, b"x")
            except OSError:
                pass

    def join(self, timeout=None, abandon: bool = True) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._r = self._w = -1

    def outcome(self):
        if not self._how:
            return ("ok",)
        return ("failed", f"on {self.where}", self._how.strip(" ()"))

    def __del__(self):
        if self._r != -1:
            self.join()


async def start_actor(nursery, name: str, host, *, mods: list, backend: str, loglevel, grace: float,
                      kill_after: float, sleep_wakes: bool, aio: bool = False):
    """The parent's side of a remote spawn; returns the actor's portal."""
    from subactor import ipc
    from subactor._nursery import _Child
    from subactor._portal import Portal
    from subactor.discovery._net import first_answer, open_conn

    addr = ipc.wrap_address(host)
    uid = _uuid.uuid4().hex
    me = _state.current_actor()
    conn = await open_conn(addr, {"t": "spawn", "name": name, "uid": uid, "mods": mods, "backend": backend,
                                  "loglevel": loglevel, "sleep_wakes": sleep_wakes, "grace": grace,
                                  "kill_after": kill_after, "aio": aio,
                                  "aid": [me.name, me.aid.uuid, os.getpid()]})
    first = await first_answer(conn, 60)
    if first.get("t") != "ok":
        raise RuntimeError(f"the daemon at {addr} did not start actor {name!r}: {first.get('err')}")
    handle = RemoteHandle(conn, first.get("pid"), addr)
    portal = Portal(name, (name, uid), conn.channel(), backend="remote")
    portal.channel.aid = _state.Aid(name, uid, first.get("pid"))
    portal.channel.spawn = nursery._tn.start_soon
    portal._remote = handle
    child = _Child(nursery, handle, portal, grace=grace, kill_after=kill_after)
    portal._child = child
    nursery._children.add(child)
    nursery._tn.start_soon(child.supervise)
    return portal
