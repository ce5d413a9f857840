"""Errors of the actor API, and how an exception crosses between actors.

An exception never crosses as an object: the side that raised it sends a
plain-data "box" (qualified type name, message, formatted traceback, the
name of the actor it came from); the receiving side raises a
:class:`RemoteActorError` that carries the box. Names follow tractor.
No trio here: actors that run only sync functions import this module too.
"""
from __future__ import annotations

import builtins
import importlib


class RemoteActorError(Exception):
    """An exception raised in another actor, re-raised here.

    ``boxed_type`` is the remote exception's type when it can be imported
    here (else ``None``; ``boxed_type_str`` always has its qualified name),
    ``tb_str`` the remote traceback text, ``src_actor`` the name of the actor
    where it was raised.
    """

    def __init__(self, message: str, *, boxed_type_str: str = "Exception", tb_str: str = "",
                 src_actor: str = "?", remote_message: str = ""):
        super().__init__(message)
        self.boxed_type_str = boxed_type_str
        self.tb_str = tb_str
        self.src_actor = src_actor
        self.remote_message = remote_message

    @property
    def boxed_type(self) -> type | None:
        return _resolve_type(self.boxed_type_str)

    @property
    def src_uid(self) -> tuple[str, str]:
        return (self.src_actor, "")

    def __str__(self) -> str:
        head = super().__str__()
        if not self.tb_str:
            return head
        return f"{head}\n--- traceback in actor {self.src_actor!r} ---\n{self.tb_str.rstrip()}"

    def __reduce__(self):
        return (_rebuild_remote_error, (type(self), self.args[0] if self.args else "", self.boxed_type_str,
                                        self.tb_str, self.src_actor, self.remote_message))


def _rebuild_remote_error(cls, message, boxed_type_str, tb_str, src_actor, remote_message):
    return cls(message, boxed_type_str=boxed_type_str, tb_str=tb_str, src_actor=src_actor,
               remote_message=remote_message)


class ContextCancelled(RemoteActorError):
    """A context (or the actor running it) was cancelled. Raised at the side
    that did not ask for the cancel; the side that asked sees it absorbed."""

    @property
    def canceller(self) -> str:
        return self.src_actor


class ModuleNotExposed(ModuleNotFoundError):
    """The called function's module is not in the actor's ``enable_modules``."""


class ActorNotAvailable(RuntimeError):
    """The actor behind a portal has ended (or was cancelled): nothing more
    can be sent to it."""


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
    name = f"{mod}.{qual}"
    if "<lambda>" in qual:
        raise TypeError(f"{name} is a lambda: {where} finds functions by name, so only "
                        f"module-level functions can be sent")
    if "<locals>" in qual:
        raise TypeError(f"{name} is defined inside a function (a closure): {where} finds functions "
                        f"by name, so only module-level functions can be sent")
    if mod == "__main__":
        if not getattr(sys.modules.get("__main__"), "__file__", None):
            raise TypeError(f"{qual} is defined in __main__, which is not a file here (an interactive "
                            f"session or -c): {where} cannot load it; define it in a module")
        return
    module = sys.modules.get(mod)
    if module is None or getattr(module, "__spec__", None) is None:
        raise TypeError(f"{name} cannot be imported in {where}: its module {mod!r} has no import "
                        f"spec (made at run time?); define it in an importable module")


def _resolve_type(qualname: str) -> type | None:
    if "." not in qualname:
        t = getattr(builtins, qualname, None)
        return t if isinstance(t, type) else None
    mod, _, name = qualname.rpartition(".")
    try:
        obj = importlib.import_module(mod)
        for part in name.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) else None


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


def backend_hint(module: str, msg: str) -> str:
    """The message for an import refused by a subinterpreter: names the
    module and the ways out."""
    return (
        f"module {module!r} cannot load in an own-GIL subinterpreter; run this actor in a "
        f'child process with backend="process" (or with shared_gil=True, which gives up '
        f"parallelism). Original error: {msg}"
    )


def box_error(exc: BaseException, actor_name: str) -> dict:
    """Plain-data description of `exc` for the wire."""
    if isinstance(exc, RemoteActorError):
        # Relayed from deeper in the tree: keep the original source.
        return {"type": exc.boxed_type_str, "msg": exc.remote_message or str(exc.args[0] if exc.args else ""),
                "tb": exc.tb_str, "src": exc.src_actor,
                "relay": qualified_name(type(exc))}
    msg = str(exc)
    module = refused_module(exc)
    if module is not None:
        msg = backend_hint(module, msg)
    return {
        "type": qualified_name(type(exc)),
        "msg": msg,
        "tb": _format(exc),
        "src": actor_name,
    }


def _format(exc: BaseException) -> str:
    import traceback  # only on the error path: it is slow to import

    return "".join(traceback.format_exception(exc))


def unbox_error(box: dict) -> BaseException:
    """The exception to raise here for a box received from another actor."""
    type_str = box.get("type", "Exception")
    msg = box.get("msg", "")
    src = box.get("src", "?")
    tb = box.get("tb", "")
    if type_str == qualified_name(ModuleNotExposed):
        return ModuleNotExposed(msg)
    if type_str == qualified_name(ActorNotAvailable):
        return ActorNotAvailable(msg)
    cls = ContextCancelled if (type_str == qualified_name(ContextCancelled)
                               or box.get("relay") == qualified_name(ContextCancelled)
                               or box.get("cancelled")) else RemoteActorError
    return cls(f"{type_str}: {msg}" if msg else type_str, boxed_type_str=type_str, tb_str=tb,
               src_actor=src, remote_message=msg)
