"""The runtime inside a long-lived actor (``start_actor`` / ``run_in_actor``).

It serves calls arriving on the actor's channel. It starts without trio: an
actor that only ever runs sync functions answers them from a blocking loop
(the GIL released while it waits) and never imports trio. The first call
that needs an event loop (an async function or a context) switches the
actor, for the rest of its life, to a trio loop that runs every call as its
own task, so many calls and contexts run concurrently.

What a caller can reach is a security boundary: only functions *of* the
modules in ``enable_modules`` (defined there, ``fn.__module__`` is that
module), never what such a module merely imports (``os.getpid`` through
``mymod.os``, or a name bound by ``from os import getpid``).

A message from the parent that is not one of the protocol's ends the actor
with an error naming what it got (the parent then sees the actor fail).
"""
from __future__ import annotations

import os
import sys

from subactor import _ext, _state
from subactor._decorators import is_context
from subactor._exceptions import ModuleNotExposed, box_error
from subactor import _transport
from subactor._transport import FROM_PARENT, BlockingChannel, malformed

_CO_ASYNC = 0x80 | 0x100  # CO_COROUTINE | CO_ITERABLE_COROUTINE
_ModuleType = type(sys)   # types.ModuleType, without importing types (0.5 ms in a fresh interpreter)


def _import(name: str):
    """importlib.import_module(name) for an absolute name, without importing
    importlib (0.3 ms in a fresh interpreter, and most actors need nothing
    else of it): the module ``name``, imported if it was not."""
    __import__(name)
    return sys.modules[name]


def _is_async(fn) -> bool:
    return bool(getattr(getattr(fn, "__code__", None), "co_flags", 0) & _CO_ASYNC)


_current: "Runtime | None" = None


def current() -> "Runtime":
    """The runtime of this actor (for tests and diagnostics)."""
    if _current is None:
        raise RuntimeError("not inside a long-lived actor")
    return _current


class Runtime:
    def __init__(self, cfg: dict, end=None):
        self.end = end          # this actor's end of its channel to the parent
        self.name = cfg["name"]
        self.uid = (cfg["name"], cfg.get("uid", ""))
        parent = cfg.get("parent_uid")
        self.parent_uid = tuple(parent) if parent else (cfg.get("parent") or "parent", "")
        self.cancel_by = None   # who sent cancel_actor (its uid), once it came
        self.enabled = set(cfg.get("mods") or ())
        self.main_path = cfg.get("main")
        self.tasks: dict = {}   # cid -> _Call (trio mode)
        self.bye = False        # the parent asked it to leave
        self.said_bye = False   # ... and heard that its calls are over
        self.failing = False    # it leaves with an error of its own (not a cancel)
        self.bye_to: list = []  # peers' channels that asked it to leave (they hear bye too)
        self.spawn = None       # trio mode: start a task that lives as long as the actor serves
        self.calls = None       # trio mode: the nursery of every call, of the parent and of peers
        # This actor's link to the process's hub (its registry and the
        # switchboard of peer channels; see subactor.discovery), if it has
        # one: its end here, a HubLink once in trio mode (the discovery
        # modules are not imported before: on 3.13 every module an
        # interpreter imports adds to what CPython leaks when it ends).
        self.hub_end = None
        self.listener = None    # a process actor's Unix socket for peers (see _listen)
        self._other = None      # sync mode: what else the blocking loop waits on
        if cfg.get("hub"):
            try:
                self.hub_end = _ext.ChannelEnd(cfg["hub"], 1)
            except _ext.ClosedError:
                pass   # it was unregistered before it started: it goes on unfindable
        elif cfg.get("hub_fd") is not None:   # a process actor: a socket to the root's hub
            from subactor._spawn._sockend import SocketEnd

            self.hub_end = SocketEnd(cfg["hub_fd"], side="hub")
            self._listen(cfg.get("listen"))
        self.hub_stash: list = []   # hub messages that came in sync mode
        self.hub = None

    # -- resolving what to call ------------------------------------------
    def import_enabled(self) -> None:
        """Import the enabled modules at the start, as tractor does: a module
        that cannot be imported (a typo, a syntax error, an extension that
        refuses subinterpreters) ends the actor at once with an error naming
        it, instead of failing only the calls that reach it -- or none, if the
        calls go to another module. The parent's ``__main__`` loads on first use."""
        from subactor._exceptions import backend_hint, refused_module

        for ns in sorted(self.enabled):
            if ns == "__main__" or ns in sys.modules:
                continue
            try:
                _import(ns)
            except Exception as exc:
                refused = refused_module(exc)
                why = backend_hint(refused, str(exc)) if refused else f"{type(exc).__name__}: {exc}"
                self.failing = True
                raise ImportError(f"actor {self.name!r} could not import its enabled module {ns!r}: {why}") from exc


    def resolve(self, ns: str, fn_name: str):
        if ns not in self.enabled:
            raise ModuleNotExposed(
                f"{ns}.{fn_name}: module {ns!r} is not exposed by actor {self.name!r} "
                f"(enable_modules={sorted(self.enabled)})"
            )
        if ns == "__main__":
            if not self.main_path:
                raise ModuleNotFoundError(
                    f"{fn_name} is defined in the parent's __main__, which actor {self.name!r} does not "
                    f"load: it is not a file (an interactive session or -c), or the actor was started "
                    f"with inherit_parent_main=False; define it in a module instead"
                )
            from subactor._actor._parent_main import load

            mod = load(self.main_path)
        else:
            # An imported module is taken from sys.modules (what
            # import_module would return, without its machinery).
            mod = sys.modules.get(ns) or _import(ns)
        obj = mod
        for part in fn_name.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise AttributeError(f"module {ns!r} has no function {fn_name!r} (in actor {self.name!r})") from None
            if isinstance(obj, _ModuleType):
                raise ModuleNotExposed(
                    f"{ns}.{fn_name}: {part!r} is a module that {ns!r} imports, which actor {self.name!r} "
                    f"does not expose (only the functions of enable_modules themselves can be called)")
        if not callable(obj):
            raise TypeError(f"{ns}.{fn_name} is not callable (in actor {self.name!r})")
        home = getattr(obj, "__module__", None)
        if home != mod.__name__:
            raise ModuleNotExposed(
                f"{ns}.{fn_name} is not a function of module {ns!r} but of {home!r}, which {ns!r} merely "
                f"imports; actor {self.name!r} does not expose it (only the functions of enable_modules "
                f"themselves can be called)")
        return obj

    def _listen(self, path: str | None) -> None:
        """A process actor listens for peers on the Unix socket its parent
        named (in the private runtime directory), from its start: a peer
        connecting wakes the sync loop, which then switches to trio mode."""
        if not path:
            return
        import select
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(64)
        except OSError:
            sock.close()
            return   # it goes on, unreachable for peers (its parent still reaches it)
        sock.setblocking(False)
        self.listener = sock
        ep = select.epoll()
        ep.register(self.hub_end.recv_fileno(), select.EPOLLIN)
        ep.register(sock.fileno(), select.EPOLLIN)
        self._other = ep

    def other_fd(self) -> int | None:
        if self._other is not None:
            return self._other.fileno()
        return self.hub_end.recv_fileno() if self.hub_end is not None else None

    def close_listener(self) -> None:
        if self.listener is not None:
            try:
                os.unlink(self.listener.getsockname())
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        if self._other is not None:
            self._other.close()
            self._other = None

    def hub_pending(self) -> bool:
        """Sync mode: True if a message from the hub came (it is kept for
        trio mode). An end the hub closed is let go: its descriptor would
        stay readable for good."""
        if self.hub_stash:
            return True
        if self.listener is not None:
            import select

            if select.select([self.listener], [], [], 0)[0]:
                return True   # a peer connects: trio mode accepts it
        if self.hub_end is None:
            return False
        try:
            m = self.hub_end.recv_nowait()
        except BlockingIOError:
            return False
        except (_ext.EndOfChannel, _ext.BrokenError, _ext.ClosedError):
            self.hub_end.close()
            self.hub_end = None
            return False
        try:
            self.hub_stash.append(_ext.loads(m))
        finally:
            m.release()
        return True

    def say_bye(self) -> None:
        """Acknowledge the parent's cancel_actor (once): every call is over.
        The actor's lifetime stack is closed first: the parent hears bye
        once the actor's own cleanup is done too."""
        if self.said_bye:
            return
        self.said_bye = True
        close_lifetime_stack()
        try:
            self.end.send(_ext.dumps({"t": "bye"}), timeout=1.0)
        except Exception:
            pass  # the parent is gone, or its end is full for a second: it hears the end instead
        for chan in self.bye_to:
            chan.send_control({"t": "bye"})

    def bad_message(self, what: str) -> RuntimeError:
        """The error the actor leaves with after a malformed message."""
        self.failing = True
        return RuntimeError(f"actor {self.name!r} got {what} from its parent: it leaves")

    def crashed(self, exc: BaseException) -> None:
        """A call failed with ``exc``: under debug_mode, a post-mortem REPL
        at the raise before the error goes to its caller (subactor.devx)."""
        if _state._debug:
            from subactor.devx._debug import crashed

            crashed(exc)

    def error_msg(self, cid, exc: BaseException) -> dict:
        return {"t": "error", "cid": cid, "e": box_error(exc, self.uid)}

    def encode_return(self, cid, fn_name, value) -> bytes:
        try:
            return _ext.dumps({"t": "return", "cid": cid, "v": value})
        except Exception as exc:
            err = TypeError(f"the return value of {fn_name} cannot be sent back: {exc}")
            return _ext.dumps(self.error_msg(cid, err))

    def too_large(self, cid, fn_name, data: bytes, exc: ValueError) -> bytes:
        """The error that replaces a final message larger than the channel
        takes: that one call fails, the actor goes on."""
        err = ValueError(f"the return value of {fn_name} cannot be sent back: it is too large "
                         f"({len(data)} bytes encoded): {exc}")
        return _ext.dumps(self.error_msg(cid, err))

    def send_final(self, chan: BlockingChannel, cid, fn_name, data: bytes) -> None:
        try:
            chan.end.send(data)
        except _ext.ClosedError:
            raise
        except ValueError as exc:
            chan.end.send(self.too_large(cid, fn_name, data, exc))

    # -- sync mode ---------------------------------------------------------
    def serve_sync(self, chan: BlockingChannel) -> dict | None:
        """Serve until told to leave (returns None) or until a call needs
        trio (returns that call's message)."""
        while True:
            if self.hub_pending():
                return {"t": "hub"}   # a peer wants to connect: only trio mode serves more than one channel
            try:
                msg = chan.recv(self.other_fd())
            except _ext.DecodeError as exc:
                raise self.bad_message(f"bytes that are not a message ({exc})") from None
            if msg is None:
                return None
            if msg is _transport.OTHER:
                continue
            what = malformed(msg, FROM_PARENT)
            if what is not None:
                raise self.bad_message(what)
            t = msg["t"]
            if t == "cancel_actor":
                self.bye = True
                return None
            if t == "ctx":
                return msg
            if t != "run":
                continue  # a stale cancel/stop for a call already answered
            cid = msg["cid"]
            fn_name = f"{msg['ns']}.{msg['fn']}"
            try:
                fn = self.resolve(msg["ns"], msg["fn"])
                if _is_async(fn) or is_context(fn):
                    return msg
                value = fn(**(msg.get("kw") or {}))
            except Exception as exc:
                self.crashed(exc)
                chan.end.send(_ext.dumps(self.error_msg(cid, exc)))
                continue
            self.send_final(chan, cid, fn_name, self.encode_return(cid, fn_name, value))


def _install_cancellable_sleep() -> None:
    """Make time.sleep in this actor wake on a cancel request (and on an
    interrupt): it waits in poll() on the actor's wake descriptor instead of
    in one uninterruptible C call, so the common "sleeping worker" ends at
    the cooperative rung of the ladder instead of being abandoned."""
    import select
    import time

    wake = _ext.wake_fileno()
    if wake is None:
        return
    monotonic = time.monotonic

    def sleep(secs: float) -> None:
        if secs < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = monotonic() + secs
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        while True:
            if _ext.cancel_requested():
                raise _ext.ActorInterrupted("cancelled while in time.sleep()")
            left = deadline - monotonic()
            if left <= 0:
                return
            # Not drained here: the actor's own loop drains it; we only look.
            poller.poll(min(left, 1.0) * 1000)
            if _ext.cancel_requested():
                raise _ext.ActorInterrupted("cancelled while in time.sleep()")

    sleep.__doc__ = time.sleep.__doc__
    time.sleep = sleep


def _lone_error(eg: BaseExceptionGroup) -> BaseException | None:
    """The one error in a group of it and trio's cancellations, else None."""
    leaves = []
    stack = [eg]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        elif type(e).__name__ != "Cancelled":
            leaves.append(e)
    return leaves[0] if len(leaves) == 1 else None


def _quiet_teardown() -> None:
    """An interrupt ended trio.run from inside its loop: the tasks it
    abandoned complain when collected. The actor is ending; its outcome
    already says it was interrupted, so that noise is dropped."""
    import warnings

    sys.unraisablehook = lambda unraisable: None
    warnings.simplefilter("ignore")


def close_lifetime_stack() -> None:
    """Close the actor's ``lifetime_stack`` (once: a closed ExitStack is
    empty). An error of its callbacks is the actor's error."""
    _state.current_actor()._close_lifetime_stack()


def actor_main(cfg: dict | None = None, end=None) -> None:
    """Serve calls until told to leave. In a subinterpreter actor the config
    comes from the actor's input and the channel end is attached here; the
    process backend passes both in (its end speaks the same interface)."""
    if cfg is None:
        cfg = _ext.loads(_ext.actor_input())
    actor = _state.Actor(cfg["name"], cfg["uid"], parent=cfg.get("parent"), parent_main=cfg.get("main"))
    actor.enable_modules = list(cfg.get("mods") or ())
    _state.set_current(actor)
    # SUBACTOR_LOGLEVEL wins (the parent checked it before the spawn).
    actor.loglevel = os.environ.get("SUBACTOR_LOGLEVEL") or cfg.get("loglevel")
    if cfg.get("aio"):
        _state.set_infected(True)
    if cfg.get("debug"):
        _state.set_debug_mode(True)
        from subactor.devx._debug import breakpoint_hook

        sys.breakpointhook = breakpoint_hook
    # Its log level takes effect when subactor.log is first imported here
    # (by its code, or by its nursery's first lifecycle record): see
    # subactor.log._apply_in_actor. An actor that never logs imports no
    # logging.
    if "subactor.log" in sys.modules:
        from subactor import log

        log._apply_in_actor()
    from subactor._actor import refuse_os_exit

    refuse_os_exit(actor.name)
    if cfg.get("sleep_wakes"):
        _install_cancellable_sleep()
    global _current
    if end is None:
        end = _ext.ChannelEnd(cfg["chan"], 1)
    rt = _current = Runtime(cfg, end)
    chan = BlockingChannel(end)
    try:
        rt.import_enabled()
        pending = rt.serve_sync(chan)
        if pending is not None:
            import trio

            from subactor._actor._trio_mode import serve

            try:
                if cfg.get("aio"):
                    # Infected: the same serve loop, as the guest of an
                    # asyncio loop (see subactor._aio).
                    from subactor._aio import run_guest

                    run_guest(serve, rt, end, pending)
                else:
                    trio.run(serve, rt, end, pending)
            except trio.TrioInternalError as exc:
                # An interrupt that landed inside trio's own machinery.
                if isinstance(exc.__cause__, _ext.ActorInterrupted):
                    _quiet_teardown()
                    raise exc.__cause__ from None
                raise
            except _ext.ActorInterrupted:
                _quiet_teardown()
                raise
            except BaseExceptionGroup as eg:
                # The serve loop's own failure comes out of its nursery with
                # the cancellations it caused: the actor's outcome names it.
                lone = _lone_error(eg)
                if lone is None:
                    raise
                if isinstance(lone, _ext.ActorInterrupted):
                    # (Infected: an interrupt that landed in an asyncio
                    # task comes out of the trio task that awaited it.)
                    _quiet_teardown()
                raise lone from None
        if rt.bye:
            rt.say_bye()
    finally:
        try:
            close_lifetime_stack()  # it ended some other way: an error, its channel closed
        finally:
            rt.close_listener()
            end.close()
        sys.stdout.flush()
