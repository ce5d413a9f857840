"""The trio-facing layer over the C actor host (``subactor._ext``).

One actor here is one run of one function in a fresh subinterpreter on a
dedicated thread. The parent never blocks its event loop: completion is an
eventfd awaited with :func:`trio.lowlevel.wait_readable`.

Cancellation of :func:`run_in_subinterpreter` takes the actor down the
ladder of :mod:`subactor._ladder`: its cancel flag is set (code that polls
``_ext.cancel_requested()`` can leave), at ``grace`` seconds it is
interrupted (``ActorInterrupted`` is raised in its code), at ``kill_after``
seconds it is abandoned with a warning. The caller gets its
``trio.Cancelled`` in every case, within that deadline.
"""
from __future__ import annotations

import pickle
import sys
from typing import Any, Callable

import trio

from subactor import _ext, _ladder, _main_script
from subactor._actor import _oneshot
from subactor._exceptions import backend_hint, check_findable, refused_module

__all__ = [
    "ActorFailed",
    "ActorHandle",
    "SubinterpreterImportError",
    "list_actors",
    "live_counts",
    "run_in_subinterpreter",
    "spawn",
]

live_counts: Callable[[], dict[str, int]] = _ext.live_counts
list_actors: Callable[[], list[dict[str, Any]]] = _ext.list_actors

class ActorFailed(Exception):
    """The actor's code raised. Carries the remote exception's qualified type
    name, its message and the formatted remote traceback."""

    def __init__(self, actor_name: str, type_name: str, message: str, traceback_text: str):
        self.actor_name = actor_name
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        super().__init__(f"actor {actor_name!r} raised {type_name}: {message}")

    def __str__(self) -> str:
        return (
            f"actor {self.actor_name!r} raised {self.type_name}: {self.message}\n"
            f"--- traceback in the actor ---\n{self.traceback_text.rstrip()}"
        )


class SubinterpreterImportError(ActorFailed, ImportError):
    """A module the actor imported cannot load in an own-GIL subinterpreter."""

    def __init__(self, actor_name: str, type_name: str, message: str, traceback_text: str, module: str):
        self.module = module
        ActorFailed.__init__(self, actor_name, type_name, message, traceback_text)
        self.args: tuple[Any, ...] = (f"actor {actor_name!r}: {backend_hint(module, message, shared_gil=True)}",)

    def __str__(self) -> str:
        return f"{self.args[0]}\n--- traceback in the actor ---\n{self.traceback_text.rstrip()}"


def encode_call(fn: Callable, args: tuple, kwargs: dict) -> bytes:
    """Pickle a call for an actor, with a clear error naming what failed."""
    check_findable(fn, "an actor")
    try:
        # The parent's main script path (plain data) and, separately, the
        # pickled call, so that the actor knows the path before it unpickles
        # the call (nested objects may refer to __main__ too; the actor
        # loads the script only when the unpickler asks for it).
        main_path = _main_script.main_file()
        payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        return pickle.dumps((main_path, payload), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"cannot send the call {getattr(fn, '__qualname__', fn)!r} to an actor: "
            f"its function or arguments cannot be pickled ({exc})"
        ) from exc


class ActorHandle:
    """A running (or finished) actor that calls one function."""

    def __init__(self, actor: _ext.SubintHandle):
        self._actor = actor

    @property
    def name(self) -> str:
        return self._actor.name

    @property
    def state(self) -> str:
        return self._actor.state

    @property
    def done(self) -> bool:
        return self._actor.done

    def info(self) -> dict[str, Any]:
        return self._actor.info()

    def interrupt(self) -> bool:
        """Ask for ``ActorInterrupted`` to be raised in the actor's code
        (returns at once; see ``_ext.SubintHandle.interrupt``); False if it
        is already ending or gone."""
        return self._actor.interrupt()

    async def wait(self) -> None:
        """Wait, without blocking the event loop, until the actor is done."""
        if not self._actor.done:
            await trio.lowlevel.wait_readable(self._actor.fileno())
        # The thread wrote the eventfd as its last act; the join is short.
        self._actor.join()

    def join(self, timeout: float | None = None, *, abandon: bool = True) -> bool:
        """Blocking join (GIL released); abandon with a warning on timeout."""
        return self._actor.join(timeout, abandon=abandon)

    def result(self) -> Any:
        """The function's return value, or :class:`ActorFailed` (or
        :class:`SubinterpreterImportError`, or ``ActorInterrupted``)."""
        outcome = self._actor.outcome()
        if outcome[0] == "ok":
            data = outcome[1]
            return None if data is None else pickle.loads(data)
        kind, type_name, message, tb = outcome
        if kind == "interrupted":
            raise _ext.ActorInterrupted(f"actor {self.name!r} was interrupted\n{tb.rstrip()}")
        if type_name in ("ImportError", "ModuleNotFoundError"):
            module = refused_module(ImportError(message))
            if module is not None:
                raise SubinterpreterImportError(self.name, type_name, message, tb, module)
        raise ActorFailed(self.name, type_name, message, tb)

    def __repr__(self) -> str:
        return f"<ActorHandle {self._actor!r}>"


def spawn(fn: Callable, *args: Any, name: str | None = None, shared_gil: bool = False, **kwargs: Any) -> ActorHandle:
    """Start ``fn(*args, **kwargs)`` in a new actor and return its handle."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be str, not {type(name).__name__}")
    data = encode_call(fn, args, kwargs)
    label = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}()"
    actor = _ext.spawn(
        _oneshot.SCRIPT,
        name=name or getattr(fn, "__name__", "actor"),
        label=label,
        input=data,
        shared_gil=bool(shared_gil),
    )
    return ActorHandle(actor)


async def run_in_subinterpreter(
    fn: Callable,
    *args: Any,
    name: str | None = None,
    shared_gil: bool = False,
    grace: float = _ladder.DEFAULT_GRACE,
    kill_after: float = _ladder.DEFAULT_KILL_AFTER,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` in a new actor and return its result.

    On cancellation the actor goes down the ladder: its cancel flag is set,
    at ``grace`` seconds it is interrupted, at ``kill_after`` seconds (both
    from the cancel) it is abandoned with a warning if it is still running
    (blocked in C, say), and the cancellation goes on. ``grace=0``
    interrupts at once.
    """
    grace, kill_after = _ladder.check_deadlines(grace, kill_after)
    handle = spawn(fn, *args, name=name, shared_gil=shared_gil, **kwargs)
    try:
        await handle.wait()
    except BaseException:
        await _ladder.Ladder(handle._actor, grace=grace, kill_after=kill_after).run()
        raise
    return handle.result()
