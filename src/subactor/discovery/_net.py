"""Discovery across programs: the root's listener and the registrar.

A root opened with ``registry_addrs`` (or ``enable_transports``) joins the
network: its :class:`Node` listens (``subactor.ipc``: authenticated TCP or
UDS) so that other programs reach the actors of this process, and keeps
their registrations with a registrar.

Election, as in tractor: the first root to bind a registry address *is*
the registrar there (``Actor.is_registrar``) and listens on it. A root that
finds the address taken connects to the registrar instead, listens on an
address of its own (``tpt_bind_addrs``, or a random loopback port / a UDS
socket in the private runtime directory) and registers every actor of its
tree over that one connection: the connection's life is the entries' life,
so a program that crashes (even SIGKILLed) is unregistered as soon as the
kernel closes its socket.

What a connection says first (its hello's ``t``):

  registry {aid, addrs}   a root that registers with the registrar and asks it;
                          then, both ways, dict messages:
      reg   {e}                  an actor of the client's tree (an entry)
      unreg {uid}                it ended
      find  {rid, name}       -> ans {rid, v: [entry, ...]}
      wait  {rid, name}       -> ans {rid, v: entry}, once one registers
      registry {rid}          -> ans {rid, v: {"name.uuid": addrs}}
      delete {rid, uid}       -> ans {rid, v: bool}
      cancel {rid}            -> ans {rid, v: True}; the registrar stops listening
  peer {uid, aid}         a finder wants actor ``uid`` of this process. The
                          listener answers {"t": "ok"} or {"t": "err", "err"},
                          then the connection *is* the peer's channel: the
                          root serves it itself, or hands the socket's
                          descriptor to the actor (no proxy, no copy).

An entry is {name, uuid, pid, addrs}: ``addrs`` are where its root listens.

TLS (optional): with ``SUBACTOR_TLS_CERT``, ``SUBACTOR_TLS_KEY`` (this
side's certificate chain and key, PEM files) and ``SUBACTOR_TLS_CA`` (the
CA that signs every side's certificate), every discovery TCP connection
runs over mutual TLS (trio's SSLStream): each side proves a certificate of
that CA (host names are not checked: the CA is the trust), under the HMAC
key if one is set too. A TLS connection cannot be handed to an actor (its
session lives in the root's event loop), so the root relays it, message
by message, to the actor over a C channel.
"""
from __future__ import annotations

import errno
import itertools
import os
import sys

import trio

from subactor import _ext, _state
from subactor._transport import TrioChannel

_rids = itertools.count(1)


_TLS_ENV = ("SUBACTOR_TLS_CERT", "SUBACTOR_TLS_KEY", "SUBACTOR_TLS_CA")
_tls_cache: dict = {}


def tls_contexts():
    """(server, client) ``ssl.SSLContext`` from the environment (see the
    module docstring), or (None, None) when TLS is not configured; a
    partial or unreadable configuration is a ValueError naming it."""
    paths = tuple(os.environ.get(k) for k in _TLS_ENV)
    if not any(paths):
        return None, None
    if paths in _tls_cache:
        return _tls_cache[paths]
    missing = [k for k, v in zip(_TLS_ENV, paths) if not v]
    if missing:
        raise ValueError(f"TLS for discovery needs {', '.join(_TLS_ENV)}; {', '.join(missing)} not set")
    import ssl

    cert, key, ca = paths
    try:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
        server.load_cert_chain(cert, key)
        server.verify_mode = ssl.CERT_REQUIRED
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        client.check_hostname = False   # peers are reached by address; the CA is the trust
        client.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TLS for discovery: cannot load {cert}, {key} or {ca}: {exc}") from None
    _tls_cache[paths] = (server, client)
    return server, client


def _tls_for(addr, side: int):
    """The SSL context for a TCP address (side 0: listening, 1: connecting); None for UDS."""
    from subactor import ipc

    if not isinstance(addr, ipc.TCPAddress):
        return None
    return tls_contexts()[side]


async def open_conn(addr, hello: dict):
    """``ipc.connect`` with this process's TLS configuration."""
    from subactor import ipc

    addr = ipc.wrap_address(addr)
    conn = await ipc.connect(addr, hello, ssl_context=_tls_for(addr, 1))
    if conn.tls:
        conn.channel().spawn = trio.lowlevel.spawn_system_task
    return conn


def _log():
    from subactor import log

    return log.get_logger("subactor.discovery")


def _tlog(msg: str, *args) -> None:
    """A transport event, at the ``transport`` level, when logging is in
    use (``subactor.log`` imported); nothing is imported for it otherwise."""
    if "subactor.log" in sys.modules:
        lg = _log()
        if lg.isEnabledFor(5):
            lg.transport(msg, *args)


def _system(scopes: set, fn, *args, name: str) -> None:
    """``fn(*args)`` as a trio system task, cancelled by closing the node;
    an error is logged, never raised into the run."""
    scope = trio.CancelScope()
    scopes.add(scope)

    async def run():
        try:
            with scope:
                await fn(*args)
        except Exception as exc:
            _log().warning("%s failed: %r", name, exc)
        finally:
            scopes.discard(scope)

    trio.lowlevel.spawn_system_task(run, name=f"subactor {name}")


class RegistrarGone(ConnectionError):
    """The connection to the registrar ended."""


class _Link:
    """A request/answer connection (to the registrar)."""

    def __init__(self, conn, addr):
        self.conn = conn
        self.addr = addr
        self.chan = conn.channel()
        self.waiting: dict = {}
        self.dead = False

    async def read(self) -> None:
        try:
            while True:
                try:
                    msg = await self.chan.recv()
                except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError, _ext.DecodeError):
                    return
                if isinstance(msg, dict) and msg.get("t") == "ans":
                    box = self.waiting.pop(msg.get("rid"), None)
                    if box is not None:
                        box[1] = msg
                        box[0].set()
        finally:
            self.dead = True
            for box in list(self.waiting.values()):
                box[0].set()
            self.waiting.clear()
            self.chan.close()

    async def request(self, msg: dict):
        if self.dead:
            raise RegistrarGone(f"the registrar at {self.addr} is gone")
        rid = next(_rids)
        box = self.waiting[rid] = [trio.Event(), None]
        try:
            await self.chan.send(dict(msg, rid=rid))
            await box[0].wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise RegistrarGone(f"the registrar at {self.addr} is gone") from None
        finally:
            self.waiting.pop(rid, None)
        ans = box[1]
        if ans is None:
            raise RegistrarGone(f"the registrar at {self.addr} is gone")
        if "err" in ans:
            raise LookupError(ans["err"])
        return ans.get("v")

    def tell(self, msg: dict) -> None:
        if not self.dead:
            self.chan.send_control(msg)


class _Client:
    """The registrar's record of one registered root (one connection)."""

    def __init__(self, chan, aid):
        self.chan = chan
        self.aid = aid
        self.entries: dict[tuple, dict] = {}


class Node:
    """The root's presence on the network (see the module docstring)."""

    def __init__(self, hub, registry_addrs, transports, bind_addrs):
        self.hub = hub
        self.registry_addrs = list(registry_addrs)
        self.transports = list(transports)
        self.bind_addrs = list(bind_addrs)
        self.accept_addrs: list = []      # Address objects this root listens on
        self.is_registrar = False
        self.links: list[_Link] = []       # to the registrars we registered with
        self.clients: dict[int, _Client] = {}   # registrar: the roots registered here
        self._client_ids = itertools.count(1)
        self._changed = trio.Event()
        self._scopes: set[trio.CancelScope] = set()
        self._listeners: dict = {}          # address -> the scope of its listener
        self._relinked = trio.Event()       # set (and replaced) when a broken registrar link is made again
        self.closed = False

    # -- start and stop ---------------------------------------------------------
    async def start(self) -> None:
        from subactor import ipc

        regs = [ipc.wrap_address(raw) for raw in self.registry_addrs]
        for addr in regs:
            try:
                bound = await self._listen(addr)
            except PermissionError as exc:
                # It may not listen there (no key for a non-loopback
                # address), but a registrar may: ask it.
                try:
                    await self._register_with(addr)
                except ConnectionRefusedError:
                    raise exc from None
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) and not isinstance(exc, FileExistsError):
                    raise
                await self._register_with(addr)
            else:
                self.is_registrar = True
                self.accept_addrs.append(bound)
        # What else it listens on: the bind addresses it was given (a
        # registrar adds them to its registry addresses), else a random
        # address of each transport next to the registry's.
        if self.bind_addrs:
            wanted = [ipc.wrap_address(raw) for raw in self.bind_addrs]
        elif self.is_registrar:
            wanted = []
        else:
            wanted = [self._default_addr(t, regs) for t in self.transports]
        for addr in wanted:
            if addr not in self.accept_addrs:
                self.accept_addrs.append(await self._listen(addr))
        for link in self.links:
            for m in list(self.hub.members.values()):
                link.tell({"t": "reg", "e": self.entry(m)})

    def _default_addr(self, proto: str, regs: list):
        """A random address of ``proto``, in the bindspace of the first
        registry address of that transport (loopback / the runtime directory
        when there is none)."""
        from subactor import ipc

        near = next((a.bindspace for a in regs if a.proto == proto), None)
        if proto == "uds":
            return ipc.UDSAddress.get_random(near)
        return ipc.TCPAddress.get_random(near)

    async def _listen(self, addr):
        """Listen at ``addr`` (a system task); returns the bound address."""
        from subactor import ipc

        root = self.hub.root
        got: dict = {}
        ready = trio.Event()
        scope = trio.CancelScope()

        async def run():
            try:
                with scope:
                    async with trio.open_nursery() as n:
                        try:
                            got["addr"] = await n.start(
                                lambda task_status: ipc.serve(addr, self._on_conn, task_status=task_status,
                                                              ssl_context=_tls_for(addr, 0),
                                                              hello={"aid": [root.name, root.aid.uuid, root.aid.pid]}))
                        except Exception as exc:   # it could not listen: the caller raises it
                            got["exc"] = exc
                            return
                        ready.set()
            except Exception as exc:
                _log().warning("the listener at %s failed: %r", got.get("addr", addr), exc)
            finally:
                ready.set()

        trio.lowlevel.spawn_system_task(run, name=f"subactor listener {addr}")
        await ready.wait()
        if "exc" in got:
            raise got["exc"]
        self._listeners[got["addr"]] = scope
        self._scopes.add(scope)
        return got["addr"]

    async def _register_with(self, addr) -> None:
        from subactor import ipc

        root = self.hub.root
        try:
            conn = await open_conn(addr, {"t": "registry", "aid": [root.name, root.aid.uuid, root.aid.pid]})
        except (PermissionError, ConnectionRefusedError):
            raise   # the key was refused (AuthenticationError); nothing listens there
        except (ConnectionError, TimeoutError) as exc:
            raise RuntimeError(f"the registry address {addr} is occupied but did not answer as a subactor "
                               f"registrar: {exc}") from None
        link = _Link(conn, addr)
        self.links.append(link)
        _tlog("registered this tree with the registrar at %s", addr)
        _system(self._scopes, self._keep_link, link, name=f"registrar link {addr}")

    async def _keep_link(self, link: _Link) -> None:
        """Serve the link to a registrar; when it breaks (the registrar
        ended or restarts), connect again until it answers, and register
        this tree again (waiting finders then get their answer from it)."""
        while True:
            await link.read()
            self._bump()
            if self.closed:
                return
            _tlog("the link to the registrar at %s broke: connecting again", link.addr)
            delay = 0.05
            while True:
                await trio.sleep(delay)
                delay = min(delay * 2, 2.0)
                try:
                    await self._reconnect(link)
                    break
                except (OSError, ConnectionError, RuntimeError, TimeoutError):
                    continue
            _tlog("linked to the registrar at %s again; this tree registered anew", link.addr)
            self._relinked.set()
            self._relinked = trio.Event()

    async def _reconnect(self, link: _Link) -> None:
        from subactor import ipc

        root = self.hub.root
        conn = await open_conn(link.addr, {"t": "registry", "aid": [root.name, root.aid.uuid, root.aid.pid]})
        link.__init__(conn, link.addr)
        for m in list(self.hub.members.values()):
            link.tell({"t": "reg", "e": self.entry(m)})

    def close(self) -> None:
        self.closed = True
        for scope in list(self._scopes):
            scope.cancel()
        for link in self.links:
            link.chan.close()
        for c in self.clients.values():
            c.chan.close()
        self.clients.clear()

    # -- what the hub tells it -----------------------------------------------------
    def addrs(self) -> list:
        return [a.unwrap() for a in self.accept_addrs]

    def entry(self, m) -> dict:
        """A member's entry: where it is reached (its root's listener; a
        process actor's own)."""
        return m.entry() if m.proc else dict(m.entry(), addrs=self.addrs())

    def added(self, m) -> None:
        for link in self.links:
            link.tell({"t": "reg", "e": self.entry(m)})
        self._bump()

    def removed(self, m) -> None:
        for link in self.links:
            link.tell({"t": "unreg", "uid": [m.name, m.uuid]})
        self._bump()

    def _bump(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    # -- finding ------------------------------------------------------------------
    def _registered_now(self, name: str | None = None) -> list[dict]:
        """Registrar: the entries of other programs."""
        return [e for c in self.clients.values() for e in c.entries.values() if name is None or e["name"] == name]

    async def find_remote(self, name: str) -> list[dict]:
        """Entries of ``name`` in other programs."""
        local = {m.uuid for m in self.hub.members.values()}
        if self.is_registrar:
            await trio.lowlevel.checkpoint()
            found = self._registered_now(name)
        else:
            found = []
            for link in self.links:
                try:
                    found += await link.request({"t": "find", "name": name})
                except RegistrarGone:
                    continue
        return [e for e in found if e["uuid"] not in local]

    async def wait_remote(self, name: str) -> dict:
        if self.is_registrar:
            while True:
                found = self._registered_now(name)
                if found:
                    return found[-1]
                await self._changed.wait()
        while True:
            links = [link for link in self.links if not link.dead]
            if not links:
                await self._relinked.wait()
                continue
            try:
                return await links[0].request({"t": "wait", "name": name})
            except RegistrarGone:
                await trio.sleep(0.01)
                continue   # it restarts: ask it again once it is back

    async def registry_remote(self) -> dict:
        if self.is_registrar:
            await trio.lowlevel.checkpoint()
            return {f"{e['name']}.{e['uuid']}": e["addrs"] for e in self._registered_now()}
        out: dict = {}
        for link in self.links:
            try:
                out.update(await link.request({"t": "registry"}))
            except RegistrarGone:
                continue
        return out

    async def delete_remote(self, uid) -> bool:
        uid = tuple(uid)
        if self.is_registrar:
            await trio.lowlevel.checkpoint()
            for c in self.clients.values():
                if c.entries.pop(uid, None) is not None:
                    return True
            return False
        for link in self.links:
            try:
                if await link.request({"t": "delete", "uid": list(uid)}):
                    return True
            except RegistrarGone:
                continue
        return False

    async def connect(self, entry: dict, asker: tuple):
        return await connect_peer(entry, asker)

    # -- serving connections ---------------------------------------------------------
    async def _on_conn(self, conn) -> None:
        hello = conn.hello
        if conn.tls:
            conn.channel().spawn = trio.lowlevel.spawn_system_task
        _tlog("accepted a %r connection from %s%s", hello.get("t"), conn.peer_addr, " (TLS)" if conn.tls else "")
        try:
            t = hello.get("t")
            if t == "peer":
                await self._serve_peer(conn, hello)
            elif t == "registry" and self.is_registrar:
                await self._serve_client(conn, hello)
            elif t == "spawn":
                from subactor.discovery._remote import serve_spawn

                await serve_spawn(self, conn, hello)
            else:
                _send_now(conn, {"t": "err", "err": f"this root does not serve {t!r} connections"})
        except Exception as exc:   # one connection's failure is only its own
            _log().info("connection from %s ended with %r", conn.peer_addr, exc)

    async def _serve_peer(self, conn, hello: dict) -> None:
        from subactor._state import Aid

        uid = tuple(hello["uid"])
        name, uuid, pid = hello["aid"]
        m = self.hub.members.get(uid)
        if m is None:
            _send_now(conn, {"t": "err", "err": f"no actor {uid[0]!r} with uuid {uid[1][:8]} is registered here "
                                                f"(it has ended?)"})
            return
        if m.proc:
            _send_now(conn, {"t": "err", "err": f"actor {uid[0]!r} is a process actor: reach it at {m.addrs}"})
            return
        if not _send_now(conn, {"t": "ok"}):
            return
        if m.chan is None:
            from subactor._actor._trio_mode import serve_root_peer

            await serve_root_peer(self.hub.root_runtime(), conn.channel(), Aid(name, uuid, pid))
            return
        if conn.tls:
            # Its TLS session lives here: relay it to the actor over a C channel.
            cid = _ext.channel()
            m.chan.send_control({"t": "peer", "chan": cid, "aid": [name, uuid, pid]})
            m.hand(cid)
            await relay(conn.channel(), TrioChannel(_ext.ChannelEnd(cid, 0)))
            return
        fd = conn.detach_fd()
        _tlog("handed the connection of peer %r from %s to actor %r", name, conn.peer_addr, uid[0])
        try:
            m.chan.send_control({"t": "peer", "fd": fd, "aid": [name, uuid, pid]})
        except Exception:
            os.close(fd)
            raise

    async def _serve_client(self, conn, hello: dict) -> None:
        cid = next(self._client_ids)
        chan = conn.channel()
        c = self.clients[cid] = _Client(chan, tuple(hello.get("aid") or ()))
        try:
            async with trio.open_nursery() as n:
                while True:
                    try:
                        msg = await chan.recv()
                    except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError,
                            _ext.DecodeError):
                        break
                    if isinstance(msg, dict):
                        self._client_msg(c, msg, n)
                n.cancel_scope.cancel()
        finally:
            _tlog("registry client %r from %s left", c.aid[0] if c.aid else "?", conn.peer_addr)
            self.clients.pop(cid, None)
            self._bump()
            chan.close()

    def _client_msg(self, c: _Client, msg: dict, nursery) -> None:
        t = msg.get("t")
        rid = msg.get("rid")

        def answer(v=None, err=None):
            c.chan.send_control({"t": "ans", "rid": rid, **({"err": err} if err else {"v": v})})

        try:
            if t == "reg":
                e = msg["e"]
                c.entries[(e["name"], e["uuid"])] = {"name": e["name"], "uuid": e["uuid"], "pid": e["pid"],
                                                    "addrs": [tuple(a) for a in e["addrs"]]}
                self._bump()
            elif t == "unreg":
                c.entries.pop(tuple(msg["uid"]), None)
                self._bump()
            elif t == "find":
                answer(self.hub.find_now(msg["name"]) + self._registered_now(msg["name"]))
            elif t == "registry":
                answer(dict(self.hub.registry_now(), **{f"{e['name']}.{e['uuid']}": e["addrs"]
                                                         for e in self._registered_now()}))
            elif t == "wait":
                nursery.start_soon(self._answer_wait, c, rid, msg["name"])
            elif t == "delete":
                uid = tuple(msg["uid"])
                gone = any(x.entries.pop(uid, None) is not None for x in self.clients.values())
                answer(gone or self.hub._remove(uid))
            elif t == "cancel":
                answer(True)
                self.stop_listening()
        except (KeyError, TypeError, ValueError) as exc:
            if rid is not None:
                answer(err=f"a malformed {t!r} request: {exc!r}")

    async def _answer_wait(self, c: _Client, rid, name: str) -> None:
        while True:
            found = self.hub.find_now(name) + self._registered_now(name)
            if found:
                c.chan.send_control({"t": "ans", "rid": rid, "v": found[-1]})
                return
            await self._changed.wait()

    def stop_listening(self) -> None:
        """A peer's cancel_actor() on the registrar: it stops listening
        (and drops its registered roots); the program goes on."""
        for scope in self._listeners.values():
            scope.cancel()
        self._listeners.clear()
        for c in list(self.clients.values()):
            c.chan.close()


def _send_now(conn, msg: dict) -> bool:
    """Send a short message on a fresh connection without waiting."""
    if conn.tls:
        conn.channel().send_control(msg)
        return True
    try:
        conn.end.send_nowait(_ext.dumps(msg))
    except (BlockingIOError, _ext.BrokenError, _ext.ClosedError, OSError):
        return False
    return True


async def first_answer(conn, timeout: float) -> dict:
    """The far side's first message on a fresh connection, ``ok`` or
    ``err`` (bounded by ``timeout``); the connection is closed unless it
    is ``ok``."""
    try:
        with trio.fail_after(timeout):
            first = await _first_message(conn)
    except BaseException:
        conn.close()
        raise
    if first.get("t") != "ok":
        conn.close()
    return first


async def relay(a, b) -> None:
    """Carry messages both ways between two channels (TrioChannel /
    StreamChannel) until either ends; then close both."""
    async def pump(src, dst):
        try:
            while True:
                await dst.send(await src.recv())
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError, _ext.DecodeError):
            pass

    try:
        async with trio.open_nursery() as n:
            async def one_way(src, dst):
                await pump(src, dst)
                n.cancel_scope.cancel()
            n.start_soon(one_way, a, b)
            n.start_soon(one_way, b, a)
    finally:
        a.close()
        b.close()


async def _first_message(conn) -> dict:
    if conn.tls:
        try:
            msg = await conn.channel().recv()
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            return {"t": "err", "err": f"the root at {conn.peer_addr} closed the connection"}
        return msg if isinstance(msg, dict) else {"t": "err", "err": "a malformed answer"}
    end = conn.end
    while True:
        try:
            m = end.recv_nowait()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(end.recv_fileno())
            continue
        except (_ext.EndOfChannel, _ext.BrokenError, _ext.ClosedError):
            return {"t": "err", "err": f"the root at {conn.peer_addr} closed the connection"}
        try:
            msg = _ext.loads(m)
        finally:
            m.release()
        return msg if isinstance(msg, dict) else {"t": "err", "err": "a malformed answer"}


async def connect_peer(entry: dict, asker: tuple):
    """A connection to the actor of ``entry`` (in another program, or a
    process actor): the root (or process actor) at its address answers ok
    (the connection is then the peer's channel) or why not (LookupError).
    ``asker`` is (name, uuid, pid)."""
    from subactor import ipc

    last: Exception | None = None
    for raw in entry.get("addrs") or ():
        try:
            conn = await open_conn(raw, {"t": "peer", "uid": [entry["name"], entry["uuid"]], "aid": list(asker)})
        except (OSError, ConnectionError) as exc:
            last = exc
            continue
        first = await first_answer(conn, 10)
        if first.get("t") != "ok":
            raise LookupError(first.get("err") or f"actor {entry['name']!r} is not served at {raw}")
        return conn
    raise LookupError(f"actor {entry['name']!r} could not be reached at {entry.get('addrs')}: {last}")
