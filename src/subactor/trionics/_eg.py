"""Exception groups: raising the lone error of a group bare, and telling a
group of cancellations from one with errors."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Iterable

import trio

_COLLAPSED_NOTE = "(raised bare by subactor.trionics.collapse_eg: it was the only exception of a group)"


def _collapse(eg: BaseExceptionGroup) -> BaseException:
    """``eg`` with every group of one exception replaced by that exception,
    at every depth; a group that contains one exception becomes it."""
    inner = [_collapse(e) if isinstance(e, BaseExceptionGroup) else e for e in eg.exceptions]
    if len(inner) == 1:
        return inner[0]
    if any(a is not b for a, b in zip(inner, eg.exceptions)):
        return eg.derive(inner)
    return eg


def get_collapsed_eg(beg: BaseExceptionGroup) -> BaseException | None:
    """The lone exception (not a group) that ``beg`` comes down to when its
    groups of one are collapsed, else None."""
    if not isinstance(beg, BaseExceptionGroup):
        raise TypeError(f"get_collapsed_eg() takes an exception group, got {type(beg).__name__}")
    exc = _collapse(beg)
    return None if isinstance(exc, BaseExceptionGroup) else exc


@asynccontextmanager
async def collapse_eg(hide_tb: bool = True, ignore: Iterable[type[BaseException]] = (),
                      add_notes: bool = True):
    """Raise the lone exception of an exception group that leaves the block
    bare (``except ValueError`` then works around a nursery); a group of
    several is raised unchanged, as is a lone exception whose type is in
    ``ignore``."""
    __tracebackhide__ = hide_tb
    ignore = tuple(ignore)
    try:
        yield
    except BaseExceptionGroup as beg:
        exc = get_collapsed_eg(beg)
        if exc is None or type(exc) in ignore:
            raise
        if add_notes and _COLLAPSED_NOTE not in getattr(exc, "__notes__", ()):
            exc.add_note(_COLLAPSED_NOTE)
        # Its own cause stays; the group it came out of is not shown as
        # "during handling of the above exception".
        raise exc from exc.__cause__


def is_multi_cancelled(beg: BaseException, ignore_nested: Iterable[type[BaseException]] = ()
                       ) -> BaseExceptionGroup | bool:
    """``beg`` itself when it is a group of nothing but ``trio.Cancelled``
    (and the types in ``ignore_nested``), at any depth: a group of tasks
    that were all cancelled. False otherwise (a lone exception included)."""
    if not isinstance(beg, BaseExceptionGroup):
        return False
    kinds = (trio.Cancelled, *ignore_nested)
    _, rest = beg.split(kinds)
    return beg if rest is None else False
