"""An actor's link to its process's hub (see :mod:`subactor.discovery._hub`).

Every subinterpreter actor of a tree has one channel straight to the root's
hub, made when it is spawned (by whichever actor spawned it). Over it the
actor asks (``find``, ``wait``, ``connect``, ``registry``, ``adopt``,
``delete``) and the hub answers (``ans`` with the request's ``rid``) or
hands it a peer's channel (``peer``): a peer that called ``find_actor``
for this actor and wants to call it.

Hub messages (``t``):
  find     {rid, name}            -> ans {v: [entry, ...]}
  wait     {rid, name}            -> ans {v: entry}, once one is registered
  connect  {rid, uid, entry}      -> ans {v: {chan, aid}} (this side attaches side 0), or
                                     {v: {fd, aid}}: an actor of another program (``entry``
                                     says where), the root's authenticated connection to it
  registry {rid}                  -> ans {v: {"name.uuid": addrs}}
  delete   {rid, uid}             -> ans {v: True/False}
  adopt    {chan, name, uuid, pid}   a child this actor spawned (no answer)
  gone     {uid}                     a child this actor spawned has ended (no answer)
  dbg_lock {rid}                  -> ans {v: True}, once this actor holds the terminal (subactor.devx)
  dbg_unlock {}                      done with the terminal, or no longer waiting for it
  stack    {}                     <- write this actor's Python stack to stderr (enable_stack_on_sig)
  peer     {chan, aid}            <- a peer's channel; this side attaches side 1 and serves it
  peer     {fd, aid}              <- a peer of another program: the socket of its connection
  ans      {rid, v | err}         <- an answer

An entry is a dict {name, uuid, pid, addrs}.
"""
from __future__ import annotations

import collections
import itertools
import os

from subactor import _ext

_rids = itertools.count(1)


class HubGone(RuntimeError):
    """The hub (the root's registry) is gone: the root has ended."""


class HubLink:
    """The actor's end of its hub channel, in trio mode (in sync mode the
    runtime only notices that something came: Runtime.hub_pending)."""

    def __init__(self, end, uid: tuple[str, str], stash=()):
        self.end = end
        self.uid = uid
        self.dead = False
        self._stash: collections.deque = collections.deque(stash)   # what came before trio mode
        self._chan = None            # a TrioChannel, in trio mode
        self._waiting: dict = {}     # rid -> _Answer
        self._on_peer = None

    # -- trio mode ----------------------------------------------------------
    def start(self, spawn, on_peer) -> None:
        """Read the hub channel in a task (``spawn``: a nursery's
        start_soon); ``on_peer(chan, aid)`` serves each peer channel."""
        from subactor._transport import TrioChannel

        self._chan = TrioChannel(self.end)
        self._chan.spawn = spawn
        self._on_peer = on_peer
        spawn(self._read)

    async def _read(self) -> None:
        import trio

        try:
            while self._stash:
                self._route(self._stash.popleft())
            while True:
                try:
                    msg = await self._chan.recv()
                except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                except _ext.DecodeError:
                    return
                self._route(msg)
        finally:
            self.dead = True
            for ans in list(self._waiting.values()):
                ans.fail(HubGone("the root's hub is gone (the root actor has ended)"))
            self._waiting.clear()

    def _route(self, msg) -> None:
        if not isinstance(msg, dict):
            return
        t = msg.get("t")
        if t == "ans":
            ans = self._waiting.pop(msg.get("rid"), None)
            if ans is not None:
                ans.set(msg)
        elif t == "stack":   # the root's enable_stack_on_sig: this actor writes its own stack
            from subactor.devx._stack import actor_dump

            actor_dump()
        elif t == "peer" and self._on_peer is not None:
            from subactor._state import Aid
            from subactor._transport import TrioChannel

            name, uuid, pid = msg["aid"]
            if "fd" in msg:   # a peer in another program: its connection's socket, handed over by the root
                end = _socket_end(msg["fd"], name)
                if end is None:
                    return
            else:
                try:
                    end = _ext.ChannelEnd(msg["chan"], 1)
                except _ext.ClosedError:
                    return   # the peer left (closed its side) before this side attached: nothing to serve
            self._on_peer(TrioChannel(end), Aid(name, uuid, pid))

    def _check(self) -> None:
        if self._chan is None:
            raise RuntimeError("discovery from an actor needs its trio mode: call it from an async function")
        if self.dead:
            raise HubGone("the root's hub is gone (the root actor has ended)")

    async def request(self, msg: dict):
        """Send a request and wait for its answer's value."""
        self._check()
        rid = next(_rids)
        ans = self._waiting[rid] = _Answer()
        try:
            await self._chan.send(dict(msg, rid=rid))
            await ans.ev.wait()
        finally:
            self._waiting.pop(rid, None)
        if ans.exc is not None:
            raise ans.exc
        if "err" in ans.msg:
            raise LookupError(ans.msg["err"])
        return ans.msg.get("v")

    def tell(self, msg: dict) -> None:
        """A message that needs no answer (adopt, gone)."""
        if self._chan is not None:
            self._chan.send_control(msg)
            return
        try:
            self.end.send_nowait(_ext.dumps(msg))
        except (BlockingIOError, _ext.BrokenError, _ext.ClosedError):
            pass

    # -- the interface of a hub (the root's Hub has the same) --------------------
    async def find(self, name: str) -> list[dict]:
        return await self.request({"t": "find", "name": name})

    async def wait(self, name: str) -> dict:
        return await self.request({"t": "wait", "name": name})

    async def registry(self) -> dict:
        return await self.request({"t": "registry"})

    async def delete(self, uid) -> bool:
        return await self.request({"t": "delete", "uid": list(uid)})

    async def connect(self, uid, entry: dict | None = None):
        """(a TrioChannel to the actor ``uid``, its Aid); ``entry`` says
        where an actor of another program is reached."""
        from subactor._state import Aid
        from subactor._transport import TrioChannel

        v = await self.request({"t": "connect", "uid": list(uid), "entry": entry})
        if "entry" in v:   # this is a process actor: it connects itself
            from subactor.discovery._net import connect_peer

            e = v["entry"]
            a = self.uid
            conn = await connect_peer(e, (a[0], a[1], os.getpid()))
            return conn.channel(), Aid(e["name"], e["uuid"], e["pid"])
        name, uuid, pid = v["aid"]
        if "fd" in v:
            end = _socket_end(v["fd"], name)
            if end is None:
                raise LookupError(f"the connection to actor {name!r} was lost while it was handed over")
            return TrioChannel(end), Aid(name, uuid, pid)
        return TrioChannel(_ext.ChannelEnd(v["chan"], 0)), Aid(name, uuid, pid)

    async def serve_processes(self) -> None:
        await self.request({"t": "listen"})

    def adopt_process(self, fd: int, name: str, uuid: str, pid: int, addr) -> None:
        self.tell({"t": "adopt", "fd": fd, "name": name, "uuid": uuid, "pid": pid, "addr": list(addr)})

    def adopt(self, chan_id: int, name: str, uuid: str, pid: int) -> None:
        self.tell({"t": "adopt", "chan": chan_id, "name": name, "uuid": uuid, "pid": pid})

    def gone(self, uid) -> None:
        self.tell({"t": "gone", "uid": list(uid)})


def _socket_end(fd, name: str):
    """A SocketEnd over a connection's descriptor the root handed over, or
    None if it is not one (the descriptor is then closed)."""
    import os

    from subactor._spawn._sockend import SocketEnd

    try:
        return SocketEnd(int(fd), side=f"peer {name}")
    except (ValueError, OSError, TypeError):
        try:
            os.close(int(fd))
        except (OSError, ValueError, TypeError):
            pass
        return None


class _Answer:
    __slots__ = ("ev", "msg", "exc")

    def __init__(self):
        import trio

        self.ev = trio.Event()
        self.msg: dict | None = None
        self.exc: BaseException | None = None

    def set(self, msg: dict) -> None:
        self.msg = msg
        self.ev.set()

    def fail(self, exc: BaseException) -> None:
        self.exc = exc
        self.ev.set()
