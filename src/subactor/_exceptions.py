"""Errors of the actor API, and how an exception crosses between actors.

An exception never crosses as an object: the side that raised it sends a
plain-data "box" (qualified type name, message, formatted traceback, the
name of the actor it came from); the receiving side raises a
:class:`RemoteActorError` that carries the box. Names follow tractor.
No trio here: actors that run only sync functions import this module too.
"""
from __future__ import annotations

import builtins
# typing and collections.abc cost an actor's fresh interpreter ~0.3 MiB and
# are needed only by type checkers here (annotations are strings).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any
import os


def _uid(value) -> tuple[str, str] | None:
    """An actor uid as a tuple (the wire gives lists), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value, "")
    return tuple(value)  # type: ignore[return-value]


class RemoteActorError(Exception):
    """An exception raised in another actor, re-raised here.

    What crossed is plain data, kept in ``msgdata``:

    - ``boxed_type_str``: the name of the type the sending actor raised
      ("RemoteActorError" itself when that actor was relaying an error it
      got from further away); ``boxed_type`` is that type when this side
      knows it (builtins, subactor's and trio's own error types, and types
      registered with :func:`reg_err_types`), else None: an unknown type is
      never imported by name, since a name from the wire must not run an
      import here.
    - ``src_uid`` / ``src_type_str`` / ``src_type``: the actor where the
      error started and its original type, however many actors relayed it;
      ``relay_uid`` the actor that sent it here; ``relay_path`` the uids it
      passed through, origin first.
    - ``tb_str``: the traceback text of the sending actor.
    """

    def __init__(self, message: str = "", ipc_msg: dict[str, Any] | None = None, boxed_type: type | None = None,
                 **msgdata: Any):
        super().__init__(message)
        data = dict(ipc_msg or {})
        data.update(msgdata)
        if boxed_type is not None:
            data.setdefault("boxed_type_str", boxed_type.__name__)
            register_err_type(boxed_type)
        data.setdefault("message", message)
        self.msgdata: dict[str, Any] = data

    # -- what crossed ---------------------------------------------------------
    @property
    def boxed_type_str(self) -> str:
        return self.msgdata.get("boxed_type_str") or "<unknown>"

    @property
    def boxed_type(self) -> type | None:
        return get_err_type(self.msgdata.get("boxed_type_str") or "")

    @property
    def src_type_str(self) -> str:
        return self.msgdata.get("src_type_str") or self.boxed_type_str

    @property
    def src_type(self) -> type | None:
        return get_err_type(self.src_type_str)

    @property
    def src_uid(self) -> tuple[str, str] | None:
        return _uid(self.msgdata.get("src_uid"))

    @property
    def relay_uid(self) -> tuple[str, str] | None:
        return _uid(self.msgdata.get("relay_uid")) or self.src_uid

    @property
    def relay_path(self) -> list[tuple[str, str]]:
        return [_uid(u) for u in self.msgdata.get("relay_path") or ()] or (
            [self.src_uid] if self.src_uid else [])

    def is_inception(self) -> bool:
        """True if it was relayed: the sender is not where it started."""
        return self.relay_uid is not None and self.relay_uid != self.src_uid

    @property
    def tb_str(self) -> str:
        return self.msgdata.get("tb_str", "")

    @property
    def remote_message(self) -> str:
        return self.msgdata.get("remote_message", "")

    @property
    def src_actor(self) -> str:
        """The name of the actor where the error started."""
        uid = self.src_uid
        return uid[0] if uid else "?"

    def __str__(self) -> str:
        head = super().__str__()
        if not self.tb_str:
            return head
        return f"{head}\n--- traceback in actor {self.src_actor!r} ---\n{self.tb_str.rstrip()}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_remote_error, (type(self), self.args[0] if self.args else "", self.msgdata))


def _rebuild_remote_error(cls, message, msgdata):
    return cls(message, msgdata)


class ContextCancelled(RemoteActorError):
    """A context (or the actor running it) was cancelled. Raised at the side
    that did not ask for the cancel; the side that asked (``ctx.cancel()``)
    sees it absorbed. ``canceller`` is the uid of the actor that asked."""

    @property
    def canceller(self) -> tuple[str, str] | None:
        return _uid(self.msgdata.get("canceller")) or self.src_uid


class StreamOverrun(RemoteActorError, RuntimeError):
    """A stream's receiver had no room for an item (its ``msg_buffer_size``
    was full and it does not allow overruns). The receiver sends it to the
    sender, whose context then fails with it."""


class MsgTypeError(RemoteActorError, TypeError):
    """A message that is not one the protocol allows, or a payload that the
    codec cannot carry."""


class TransportClosed(Exception):
    """The channel to an actor broke or was closed under a call."""


class ActorTooSlowError(TimeoutError):
    """An actor did not answer a cancel request within the caller's timeout."""


class ModuleNotExposed(ModuleNotFoundError):
    """The called function's module is not in the actor's ``enable_modules``."""


class ActorNotAvailable(TransportClosed, RuntimeError):
    """The actor behind a portal has ended (or was cancelled): nothing more
    can be sent to it."""


class RuntimeFailure(RuntimeError):
    """The actor runtime was used in a way it cannot be: a second root
    runtime opened inside an open one, or a root runtime opened inside an
    actor (tractor's name)."""


class NoRuntime(RuntimeError):
    """No actor runtime here: ``current_actor()`` in the root process
    outside ``open_root_actor()`` / ``open_nursery()`` (or in a worker of
    the pool, which is no actor of the tree)."""


# -- asyncio inside actors (subactor.to_asyncio) ----------------------------
# Plain Exceptions, not cancellations of either loop: each is what one side
# of a linked trio/asyncio task pair sees of the other side's end, and it
# crosses between actors like any error.

class AsyncioCancelled(Exception):
    """Raised in the trio task: its asyncio task was cancelled, and not by
    this trio task (it cancelled itself, or other asyncio code did)."""


class AsyncioTaskExited(Exception):
    """Raised in the trio task: its asyncio task returned while the trio
    side still expected values (``open_channel_from(...,
    suppress_graceful_exits=False)``; otherwise the trio side sees
    ``trio.EndOfChannel``)."""


class TrioCancelled(Exception):
    """Raised in the asyncio task by the channel's ``get()`` and
    ``send_nowait()``: its trio task was cancelled or failed (the asyncio
    task is cancelled too, and gets this if it uses the channel after)."""


class TrioTaskExited(Exception):
    """Raised in the asyncio task by the channel's ``get()`` and
    ``send_nowait()``: its trio task left the ``open_channel_from`` block
    while the asyncio task was still running."""


class AsyncioRuntimeTranslationError(RuntimeError):
    """The two loops of an infected actor could not be kept in step: the
    asyncio loop ended before trio's guest run did, say."""


# The error types a box may name and this side resolves without an import:
# builtins are looked up there; these by their bare name; trio's own on
# demand (only if trio is already imported here).
_REGISTRY: dict[str, type] = {}


def register_err_type(t: type) -> None:
    _REGISTRY.setdefault(t.__name__, t)


def reg_err_types(types: Iterable[type[BaseException]]) -> None:
    """Register error types (classes) so that errors of these types raised
    in another actor come back with ``boxed_type`` set to them. Types are
    found by their bare name, as tractor does; registering a type does not
    register its subclasses."""
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"reg_err_types() takes exception classes, got {t!r}")
        _REGISTRY[t.__name__] = t


def get_err_type(type_name: str) -> type | None:
    """The error type of that (bare or dotted) name that this side knows:
    a builtin, one of subactor's or trio's error types, or a registered
    one; None otherwise (never an import)."""
    name = type_name.rpartition(".")[2]
    t = getattr(builtins, name, None)
    if isinstance(t, type) and issubclass(t, BaseException):
        return t
    t = _REGISTRY.get(name)
    if t is not None:
        return t
    import sys

    trio = sys.modules.get("trio")
    if trio is not None:
        t = getattr(trio, name, None)
        if isinstance(t, type) and issubclass(t, BaseException):
            return t
    ext = sys.modules.get("subactor._ext")
    t = getattr(ext, name, None)
    if isinstance(t, type) and issubclass(t, BaseException):
        return t
    return None


def check_findable(fn, where: str) -> None:
    """Refuse, with a clear TypeError, a callable that another interpreter
    could not find by name (``where`` says who: "an actor", "a worker").
    Partials are checked through to their function; other callables are
    left to pickle or to the caller's own checks."""
    import sys
    import types

    if not callable(fn):
        raise TypeError(f"{where} needs a callable, not {type(fn).__name__}: {fn!r}")
    target = fn
    while hasattr(target, "func") and type(target).__name__ == "partial":
        target = target.func
    if not isinstance(target, types.FunctionType):
        return
    qual, mod = target.__qualname__, target.__module__
    if mod == "__mp_main__" and "subactor._actor._parent_main" in sys.modules:
        sys.modules["subactor._actor._parent_main"].check_not_loading()
    name = f"{mod}.{qual}"
    if "<lambda>" in qual:
        raise TypeError(f"{name} is a lambda: {where} finds functions by name, so only "
                        f"module-level functions can be sent")
    if "<locals>" in qual:
        raise TypeError(f"{name} is defined inside a function (a closure): {where} finds functions "
                        f"by name, so only module-level functions can be sent")
    if mod == "__main__":
        from subactor import _main_script

        path = _main_script.main_file()
        if not path:
            raise TypeError(f"{qual} is defined in __main__, which is not a file here (an interactive "
                            f"session or python -c): {where} loads the main script from its file to "
                            f"find it, so it cannot; save the script to a file or define {qual} in a module")
        if path == "<stdin>" or not os.path.isfile(path):
            raise TypeError(f"{qual} is defined in __main__, which was read from {path!r}, not from a "
                            f"file: {where} loads the main script from its file to find it, so it "
                            f"cannot; save the script to a file or define {qual} in a module")
        return
    if mod == "__mp_main__" and getattr(sys.modules.get(mod), "_subactor_parent_main", False):
        return   # the parent's __main__, loaded in this actor (every actor of the tree can load it)
    module = sys.modules.get(mod)
    if module is None or getattr(module, "__spec__", None) is None:
        raise TypeError(f"{name} cannot be imported in {where}: its module {mod!r} has no import "
                        f"spec (made at run time?); define it in an importable module")


def qualified_name(t: type) -> str:
    mod = getattr(t, "__module__", "builtins")
    return t.__qualname__ if mod == "builtins" else f"{mod}.{t.__qualname__}"


# CPython's words when a module refuses a subinterpreter (3.12/3.13).
_REFUSALS = (
    "does not support loading in subinterpreters",
    "does not support per-interpreter GIL",
    "not compatible with",
    "cannot load module more than once per process",
)


def refused_module(exc: BaseException) -> str | None:
    """The module that an ImportError in ``exc``'s chain says cannot load in
    a subinterpreter ("?" if it does not name it), or None."""
    seen = set()
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ImportError):
            text = str(e)
            for r in _REFUSALS:
                at = text.find(r)
                if at >= 0:
                    # "module numpy._core._multiarray_umath does not support ..."
                    words = text[:at].split()
                    if len(words) >= 2 and words[-2] == "module":
                        return words[-1].strip("'\"")
                    return e.name or "?"
        e = e.__cause__ or e.__context__
    return None


def backend_hint(module: str, msg: str, *, shared_gil: bool = False) -> str:
    """The message for an import refused by a subinterpreter: names the
    module and the ways out that the caller's API really takes
    (``shared_gil``: the low-level spawn(), which takes shared_gil=True)."""
    if shared_gil:
        way = ("run it with shared_gil=True (it gives up parallelism), or in an actor with "
               'backend="process"')
    else:
        way = ('run this code in a child process with backend="process" (open_nursery(), '
               "start_actor(), run_in_actor() and open_worker_pool() take it)")
    return f"module {module!r} cannot load in an own-GIL subinterpreter; {way}. Original error: {msg}"


def box_error(exc: BaseException, actor, *, canceller=None) -> dict:
    """Plain-data description of `exc` for the wire, sent by ``actor`` (its
    uid, or its name). A RemoteActorError that came from elsewhere is
    relayed: its box names this actor's own type of it (RemoteActorError,
    ContextCancelled, ...), this actor as the relay, and keeps where it
    started. ``canceller`` (a uid) marks a ContextCancelled box."""
    me = list(_uid(actor))
    received = isinstance(exc, RemoteActorError) and exc.src_uid is not None
    msg = str(exc.args[0]) if received and exc.args else str(exc)
    if not received:
        module = refused_module(exc)
        if module is not None:
            msg = backend_hint(module, msg)
    box = {
        "type": type(exc).__name__,
        "qual": qualified_name(type(exc)),
        "msg": msg,
        "tb": _format(exc),
        "src": list(exc.src_uid) if received else me,
        "src_type": exc.src_type_str if received else type(exc).__name__,
        "relay": me,
        "path": [list(u) for u in exc.relay_path] + [me] if received else [me],
    }
    if isinstance(exc, ContextCancelled):
        canceller = canceller or exc.canceller
    if canceller is not None:
        box["cancelled"] = True
        box["canceller"] = list(canceller)
    return box


def _format(exc: BaseException) -> str:
    import traceback  # only on the error path: it is slow to import

    return "".join(traceback.format_exception(exc))


def unbox_error(box: dict) -> BaseException:
    """The exception to raise here for a box received from another actor."""
    name = str(box.get("type", "Exception")).rpartition(".")[2]
    msg = box.get("msg", "")
    if name == "ModuleNotExposed":
        return ModuleNotExposed(msg)
    if name == "ActorNotAvailable":
        return ActorNotAvailable(msg)
    cancelled = bool(box.get("cancelled")) or name == "ContextCancelled"
    cls = ContextCancelled if cancelled else RemoteActorError
    src = _uid(box.get("src")) or ("?", "")
    data = {
        "boxed_type_str": name,
        "src_uid": src,
        "src_type_str": box.get("src_type") or name,
        "relay_uid": _uid(box.get("relay")) or src,
        "relay_path": [_uid(u) for u in box.get("path") or ()],
        "tb_str": box.get("tb", ""),
        "remote_message": msg,
    }
    if box.get("canceller") is not None:
        data["canceller"] = _uid(box["canceller"])
    return cls(f"{name}: {msg}" if msg else name, data)


for _t in (RemoteActorError, ContextCancelled, StreamOverrun, MsgTypeError, TransportClosed,
           ActorTooSlowError, ModuleNotExposed, ActorNotAvailable, AsyncioCancelled, AsyncioTaskExited,
           TrioCancelled, TrioTaskExited, AsyncioRuntimeTranslationError, RuntimeFailure, NoRuntime):
    register_err_type(_t)
del _t
