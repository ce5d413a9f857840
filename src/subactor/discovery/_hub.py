"""The hub: the registry of one process's actors, and its switchboard.

It lives in the root (the main interpreter, in the root runtime's trio
run) while the root runtime is open. Every actor of the tree in this
process, and every process actor the tree spawned, is a *member*: it has a
channel straight to the hub (a socket pair for a process actor), made when
it was spawned (see :mod:`subactor.discovery._client` for the messages). A member
is registered from its spawn until its channel ends, which happens when the
actor ends however it ends (returns, fails, is interrupted or abandoned: the
C host closes or breaks the ends an actor owns), and also when its parent
says it is gone; so no entry outlives its actor.

``connect`` is how a peer reaches a member: the hub makes a fresh C channel,
gives one side to the member (``peer``), which serves it, and the other to
the asker, which makes a portal of it. No socket, no copy through the root:
after the handover the two actors talk directly. The root itself is a member
too (its ``enable_modules`` can be called by peers).

The hub's tasks are trio *system* tasks: they belong to no user nursery,
so nothing they do ends up in a user's exception group; each catches its
own errors and ends with the root runtime.
"""
from __future__ import annotations

import trio

from subactor import _ext, _state
from subactor._transport import TrioChannel
from subactor.devx import _lock


def _unattached(cid: int) -> bool:
    try:
        info = _ext._chan_info(cid)
        return info is not None and info["state"][1] == "unattached"
    except Exception:   # the channel is gone
        return False


class Member:
    __slots__ = ("name", "uuid", "pid", "chan", "addrs", "parent", "handed", "proc")

    def __init__(self, name: str, uuid: str, pid: int, chan: TrioChannel | None, parent=None, addrs=None):
        self.name = name
        self.uuid = uuid
        self.pid = pid
        self.chan = chan          # its hub channel (None: the root itself)
        # A process actor's own listener (its hub channel is a socket);
        # [] for a subinterpreter actor: its root's listener reaches it.
        self.addrs: list = list(addrs or [])
        self.proc = bool(addrs)
        self.parent = parent      # the uid of the member that spawned it
        # Channels whose side 1 went to it (its hub channel, peers') and
        # that it may not have attached yet (see release()).
        self.handed: list[int] = [chan.end.id] if chan is not None and not self.proc else []

    def hand(self, cid: int) -> None:
        if len(self.handed) >= 64:   # drop those it has attached by now
            self.handed = [c for c in self.handed if _unattached(c)]
        self.handed.append(cid)

    def release(self) -> None:
        """It is gone: a channel it never attached would stay for ever once
        something is queued toward it (a peer's first call, a hub answer),
        so every such side is closed now. One it attached closes with it."""
        for cid in self.handed:
            _ext._chan_close_unattached(cid, 1)
        self.handed = []
        if self.proc:   # its socket file (it may not have removed it: killed)
            import os

            try:
                os.unlink(os.path.join(*self.addrs[0]))
            except OSError:
                pass

    @property
    def uid(self) -> tuple[str, str]:
        return (self.name, self.uuid)

    def entry(self) -> dict:
        return {"name": self.name, "uuid": self.uuid, "pid": self.pid, "addrs": list(self.addrs)}


class Hub:
    def __init__(self, root: _state.Actor):
        self.root = root
        self.members: dict[tuple[str, str], Member] = {}
        self._scopes: set[trio.CancelScope] = set()
        self._changed = trio.Event()   # set (and replaced) whenever a member registers
        self._waiters: list[tuple[Member, int, str]] = []   # (member, rid, name) of 'wait' requests
        self._root_rt = None           # the Runtime that serves peers' calls to the root
        self.closed = False
        self.node = None               # its presence on the network (discovery._net), if any
        self._add(Member(root.name, root.aid.uuid, root.aid.pid, None))

    # -- registration ---------------------------------------------------------
    def _add(self, m: Member) -> None:
        self.members[m.uid] = m
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        if self.node is not None:
            self.node.added(m)
        for w in [w for w in self._waiters if w[2] == m.name]:
            self._waiters.remove(w)
            self._answer(w[0], w[1], self._entry(m))

    def _remove(self, uid) -> bool:
        m = self.members.pop(tuple(uid), None)
        if m is None or m.chan is None:
            if m is not None:
                self.members[m.uid] = m   # the root is never removed
            return False
        self._waiters = [w for w in self._waiters if w[0] is not m]
        if _lock._lock is not None:
            _lock._lock.drop(m.uid)   # the terminal lock of the debugger (subactor.devx)
        m.chan.close()
        m.release()
        if self.node is not None:
            self.node.removed(m)
        return True

    def adopt_end(self, end, name: str, uuid: str, pid: int, parent=None, addrs=None) -> None:
        """A member spawned: ``end`` is the hub's side of its hub channel
        (a process actor's: a SocketEnd, and ``addrs`` its listener)."""
        if self.closed:
            end.close()
            return
        chan = TrioChannel(end)
        m = Member(name, uuid, pid, chan, parent, addrs)
        self._add(m)
        self._system(self._serve_member, m)

    def _system(self, fn, *args) -> None:
        scope = trio.CancelScope()
        self._scopes.add(scope)

        async def run():
            try:
                with scope:
                    await fn(*args)
            except Exception as exc:   # a hub task must never end the run
                from subactor import log

                log.get_logger("subactor.discovery").warning("hub task %s failed: %r", fn.__name__, exc)
            finally:
                self._scopes.discard(scope)

        trio.lowlevel.spawn_system_task(run, name=f"subactor hub: {fn.__name__}")

    def close(self) -> None:
        """The root runtime ends: every hub task ends, every channel closes."""
        self.closed = True
        for scope in list(self._scopes):
            scope.cancel()
        for m in list(self.members.values()):
            if m.chan is not None:
                m.chan.close()
                m.release()
        self.members = {k: v for k, v in self.members.items() if v.chan is None}
        _lock._lock = None   # nobody holds the terminal once the tree is gone
        if self.node is not None:
            self.node.close()

    # -- serving a member's requests ----------------------------------------------
    async def _serve_member(self, m: Member) -> None:
        chan = m.chan
        chan.spawn = lambda fn, *a: self._system(fn, *a)
        try:
            while True:
                try:
                    msg = await chan.recv()
                except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError,
                        _ext.DecodeError):
                    return
                if isinstance(msg, dict):
                    self._handle(m, msg)
        finally:
            if self.members.get(m.uid) is m:
                self._remove(m.uid)

    def _answer(self, m: Member, rid, value=None, err: str | None = None) -> None:
        msg = {"t": "ans", "rid": rid}
        if err is not None:
            msg["err"] = err
        else:
            msg["v"] = value
        m.chan.send_control(msg)

    def _handle(self, m: Member, msg: dict) -> None:
        t = msg.get("t")
        rid = msg.get("rid")
        try:
            if self.node is not None and t in ("find", "wait", "registry", "delete", "connect"):
                self._system(self._answer_net, m, rid, msg)   # it may ask other programs
            elif t == "find":
                self._answer(m, rid, self.find_now(msg["name"]))
            elif t == "wait":
                found = self.find_now(msg["name"])
                if found:
                    self._answer(m, rid, found[-1])
                else:
                    self._waiters.append((m, rid, msg["name"]))
            elif t == "registry":
                self._answer(m, rid, self.registry_now())
            elif t == "connect":
                cid, aid = self._connect(tuple(msg["uid"]), (m.name, m.uuid, m.pid))
                self._answer(m, rid, {"chan": cid, "aid": aid})
            elif t == "delete":
                self._answer(m, rid, self._remove(tuple(msg["uid"])))
            elif t == "adopt" and "fd" in msg:   # a process actor an actor of this process spawned
                self.adopt_process(msg["fd"], msg["name"], msg["uuid"], msg["pid"], msg["addr"], m.uid)
            elif t == "adopt":
                self.adopt_end(_ext.ChannelEnd(msg["chan"], 0), msg["name"], msg["uuid"], msg["pid"], m.uid)
            elif t == "gone":
                self.gone(msg["uid"])
            elif t == "listen":
                self._system(self._answer_listen, m, rid)
            elif t == "dbg_lock":   # the debugger's terminal lock (subactor.devx._lock)
                _lock.term_lock().request(m.uid, lambda: self._answer(m, rid, True))
            elif t == "dbg_unlock":
                _lock.term_lock().release(m.uid)
        except LookupError as exc:
            if rid is not None:
                self._answer(m, rid, err=str(exc).strip("'\""))
        except (KeyError, TypeError, ValueError) as exc:
            if rid is not None:
                self._answer(m, rid, err=f"a malformed {t!r} request: {exc!r}")

    # -- what a request does (also called directly in the root) ----------------------
    def _entry(self, m: Member) -> dict:
        return self.node.entry(m) if self.node is not None and not m.proc else m.entry()

    def find_now(self, name: str) -> list[dict]:
        return [self._entry(m) for m in self.members.values() if m.name == name]

    def registry_now(self) -> dict:
        return {f"{m.name}.{m.uuid}": self._entry(m)["addrs"] for m in self.members.values()}

    def _connect(self, uid: tuple, asker: tuple) -> tuple[int, list]:
        """A fresh channel to member ``uid``: its side 1 goes to the member,
        the id is for the asker (side 0). Returns (id, the member's aid)."""
        m = self.members.get(uid)
        if m is None:
            raise LookupError(f"no actor {uid[0]!r} with uuid {uid[1][:8]} is registered (it has ended?)")
        cid = _ext.channel()
        if m.chan is None:
            self._serve_root_peer(_ext.ChannelEnd(cid, 1), asker)
        else:
            try:
                m.chan.end.send_nowait(_ext.dumps({"t": "peer", "chan": cid, "aid": list(asker)}))
            except BlockingIOError:
                m.chan.send_control({"t": "peer", "chan": cid, "aid": list(asker)})
            except (_ext.BrokenError, _ext.ClosedError):
                _ext.channel_destroy(cid)
                self._remove(uid)
                raise LookupError(f"actor {uid[0]!r} has ended") from None
            m.hand(cid)
        return cid, [m.name, m.uuid, m.pid]

    async def _answer_net(self, m: Member, rid, msg: dict) -> None:
        """An actor's request while the root is on the network."""
        t = msg["t"]
        try:
            if t == "find":
                v = await self.find(msg["name"])
            elif t == "wait":
                v = await self.wait(msg["name"])
            elif t == "registry":
                v = await self.registry()
            elif t == "delete":
                v = await self.delete(msg["uid"])
            else:
                uid, entry = tuple(msg["uid"]), msg.get("entry")
                target = self.members.get(uid)
                if target is not None:
                    entry = self._entry(target)
                if m.proc:
                    # A process actor connects itself (a C channel or a
                    # descriptor of this process is of no use to it).
                    if not entry or not entry.get("addrs"):
                        raise LookupError(f"actor {uid[0]!r} cannot be reached from a process actor")
                    v = {"entry": entry}
                elif target is not None and not target.proc:
                    cid, aid = self._connect(uid, (m.name, m.uuid, m.pid))
                    v = {"chan": cid, "aid": aid}
                elif not entry:
                    raise LookupError(f"no actor {uid[0]!r} with uuid {uid[1][:8]} is registered (it has ended?)")
                else:
                    # The root connects (and authenticates) for the actor and
                    # hands it the socket: the actor then talks to the peer
                    # directly.
                    conn = await self.node.connect(entry, (m.name, m.uuid, m.pid))
                    aid = [entry["name"], entry["uuid"], entry["pid"]]
                    if conn.tls:   # its session stays here: relayed over a C channel
                        from subactor.discovery._net import relay

                        cid = _ext.channel()
                        self._system(relay, conn.channel(), TrioChannel(_ext.ChannelEnd(cid, 1)))
                        v = {"chan": cid, "aid": aid}
                    else:
                        v = {"fd": conn.detach_fd(), "aid": aid}
        except (LookupError, OSError, ConnectionError) as exc:
            if rid is not None:
                self._answer(m, rid, err=str(exc).strip("'\""))
            return
        self._answer(m, rid, v)

    async def _answer_listen(self, m: Member, rid) -> None:
        try:
            await self.serve_processes()
        except OSError as exc:
            self._answer(m, rid, err=f"cannot listen for process actors: {exc}")
            return
        self._answer(m, rid, True)

    def root_runtime(self):
        """The Runtime that serves peers' calls to the root's enable_modules."""
        from subactor._actor._runtime import Runtime

        if self._root_rt is None:
            root = self.root
            self._root_rt = Runtime({"name": root.name, "uid": root.aid.uuid, "mods": root.enable_modules,
                                     "parent_uid": list(root.uid)})
        return self._root_rt

    def _serve_root_peer(self, end, asker: tuple) -> None:
        from subactor._actor._trio_mode import serve_root_peer

        name, uuid, pid = asker
        self._system(serve_root_peer, self.root_runtime(), TrioChannel(end), _state.Aid(name, uuid, pid))

    def gone(self, uid) -> None:
        self._remove(tuple(uid))

    # -- the interface of a hub, for the root's own code (HubLink has the same) ---------
    # Each also reaches other programs when the root is on the network: the
    # entries of this process come last (find_actor takes the last one).
    async def find(self, name: str) -> list[dict]:
        await trio.lowlevel.checkpoint()
        remote = await self.node.find_remote(name) if self.node is not None else []
        return remote + self.find_now(name)

    async def _wait_here(self, name: str) -> dict:
        while True:
            found = self.find_now(name)
            if found:
                await trio.lowlevel.checkpoint()
                return found[-1]
            await self._changed.wait()

    async def wait(self, name: str) -> dict:
        found = self.find_now(name)
        if found or self.node is None:
            return await self._wait_here(name)
        got: list = []
        async with trio.open_nursery() as n:
            async def first(fn):
                try:
                    got.append(await fn(name))
                except ConnectionError:   # the registrar is gone: this process's own may still come
                    await trio.sleep_forever()
                n.cancel_scope.cancel()
            n.start_soon(first, self._wait_here)
            n.start_soon(first, self.node.wait_remote)
        return got[0]

    async def registry(self) -> dict:
        await trio.lowlevel.checkpoint()
        remote = await self.node.registry_remote() if self.node is not None else {}
        return dict(remote, **self.registry_now())

    async def delete(self, uid) -> bool:
        await trio.lowlevel.checkpoint()
        if self._remove(tuple(uid)):
            return True
        return await self.node.delete_remote(uid) if self.node is not None else False

    async def connect(self, uid, entry: dict | None = None, asker: tuple | None = None):
        """(a channel to the actor ``uid``, its Aid): a C channel to one of
        this process, a connection to one of another program (``entry``
        says where its root listens)."""
        root = self.root
        asker = asker or (root.name, root.aid.uuid, root.aid.pid)
        uid = tuple(uid)
        m = self.members.get(uid)
        if m is not None and m.proc:   # a process actor: over its own Unix socket
            conn = await self.node.connect(m.entry(), asker)
            return conn.channel(), _state.Aid(m.name, m.uuid, m.pid)
        if m is None and entry is not None and entry.get("addrs") and self.node is not None:
            conn = await self.node.connect(entry, asker)
            return conn.channel(), _state.Aid(entry["name"], entry["uuid"], entry["pid"])
        cid, aid = self._connect(uid, asker)
        await trio.lowlevel.checkpoint()
        name, uuid, pid = aid
        return TrioChannel(_ext.ChannelEnd(cid, 0)), _state.Aid(name, uuid, pid)

    def adopt(self, chan_id: int, name: str, uuid: str, pid: int) -> None:
        self.adopt_end(_ext.ChannelEnd(chan_id, 0), name, uuid, pid, self.root.uid)

    def adopt_process(self, fd: int, name: str, uuid: str, pid: int, addr, parent=None) -> None:
        """A process actor spawned: ``fd`` is the hub's side of its socket
        pair, ``addr`` its listener (a UDS address's tuple)."""
        from subactor._spawn._sockend import SocketEnd

        self.adopt_end(SocketEnd(int(fd), side=f"hub member {name}"), name, uuid, pid, parent or self.root.uid,
                       [tuple(addr)])

    async def serve_processes(self) -> None:
        """Process actors reach this process's actors through a listener:
        start one (a Unix socket in the private runtime directory) unless
        the root already listens."""
        if self.node is not None:
            await trio.lowlevel.checkpoint()
            return
        from subactor.discovery._net import Node

        node = Node(self, (), ["uds"], ())
        try:
            await node.start()
        except BaseException:
            node.close()
            raise
        self.node = node
        self.root._net = node


_hub: Hub | None = None


def open_hub(root: _state.Actor) -> Hub:
    global _hub
    _hub = Hub(root)
    return _hub


def close_hub() -> None:
    global _hub
    if _hub is not None:
        _hub.close()
        _hub = None


def local():
    """This interpreter's hub interface: the Hub in the root, the actor's
    HubLink in an actor; None where there is none (no root runtime, a
    pool worker, an actor spawned outside a tree)."""
    if _hub is not None and not _state.in_actor():
        return _hub
    if _state._is_actor:
        from subactor._actor import _runtime

        rt = _runtime._current
        return rt.hub if rt is not None else None
    return None
