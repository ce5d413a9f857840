"""Task start and cancellation helpers: ``start_or_cancel`` and the
unmasking of errors hidden by a cancellation."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

_TRIO_DIR = os.path.dirname(trio.__file__) + os.sep
_NOT_STARTED = "child exited without calling task_status.started()"


def _raised_by_trio(exc: BaseException) -> bool:
    """The innermost frame of ``exc``'s traceback is trio's own code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(_TRIO_DIR)


async def start_or_cancel(nursery: trio.Nursery, async_fn: Callable[..., Awaitable[Any]], *args: Any,
                          name: object = None) -> Any:
    """``nursery.start(async_fn, *args, name=name)``, except that a task
    that ends before ``task_status.started()`` because it was cancelled
    (an enclosing scope, a failing sibling) raises that cancellation here,
    not trio's "child exited without calling task_status.started()"
    RuntimeError. That RuntimeError is still raised when nothing was
    cancelled (the task's own bug); a RuntimeError of the task itself is
    always raised as it is."""
    try:
        return await nursery.start(async_fn, *args, name=name)
    except RuntimeError as exc:
        if exc.args == (_NOT_STARTED,) and _raised_by_trio(exc):
            await trio.lowlevel.checkpoint_if_cancelled()
        raise


class MaskedError:
    """What :func:`maybe_raise_from_masking_exc` yields: after the block,
    ``value`` is the exception that masked another one (or None)."""

    __slots__ = ("value", "masked", "raise_on_exit")

    def __init__(self, raise_on_exit: bool):
        self.value: BaseException | None = None
        self.masked: BaseException | None = None
        self.raise_on_exit: bool = raise_on_exit

    def __bool__(self) -> bool:
        return self.value is not None

    def __repr__(self) -> str:
        return f"<MaskedError value={self.value!r} masked={self.masked!r}>"


# Exceptions that are signals, not errors: one of them hidden by a
# cancellation is never brought back (trio.Lock.acquire() waits inside its
# handler of WouldBlock, so a cancelled acquire always "masks" one).
_SIGNALS = (trio.WouldBlock, trio.Cancelled)


def _masked(exc: BaseException, kinds: tuple) -> BaseException | None:
    if not isinstance(exc, kinds):
        return None
    ctx = exc.__context__
    if ctx is None or isinstance(ctx, _SIGNALS) or isinstance(ctx, kinds):
        return None
    return ctx


@asynccontextmanager
async def maybe_raise_from_masking_exc(unmask_from: tuple[type[BaseException], ...] = (trio.Cancelled,),
                                       raise_unmasked: bool = True, extra_note: str | None = None,
                                       **_tractor_only: Any) -> AsyncIterator[MaskedError]:
    """Bring back an error hidden by a cancellation: when the block ends
    with an exception of ``unmask_from`` (``trio.Cancelled``) that was
    raised while another exception was being handled (an unshielded
    checkpoint in an ``except``/``finally`` block, a channel's ``aclose()``
    in an ``async with``), raise that other exception instead, from the
    cancellation. In a group, the first such exception is raised. With
    ``raise_unmasked=False`` the block's exception is raised unchanged and
    the yielded box only records it. Signals (``trio.WouldBlock``,
    another ``Cancelled``) are never brought back."""
    if not isinstance(unmask_from, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in unmask_from):
        raise TypeError(f"unmask_from must be a tuple of exception types, got {unmask_from!r}")
    box = MaskedError(raise_unmasked)
    try:
        yield box
    except BaseException as exc:
        if isinstance(exc, BaseExceptionGroup):
            matched, _ = exc.split(unmask_from)
            candidates = _leaves(matched) if matched is not None else []
        else:
            candidates = [exc]
        for masker in candidates:
            hidden = _masked(masker, unmask_from)
            if hidden is None:
                continue
            box.value, box.masked = masker, hidden
            note = f"(this {type(hidden).__name__} was masked by a {type(masker).__name__} raised while it was handled)"
            if extra_note:
                note += f"\n{extra_note}"
            if note not in getattr(hidden, "__notes__", ()):
                hidden.add_note(note)
            if raise_unmasked:
                raise hidden from masker
            break
        raise


def _leaves(eg: BaseExceptionGroup) -> list[BaseException]:
    out = []
    for e in eg.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out
