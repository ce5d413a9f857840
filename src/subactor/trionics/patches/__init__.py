"""Fixes for bugs in trio itself, applied only when asked for.

Each fix is a module here with three functions: ``is_needed()`` (does the
installed trio still have the bug?), ``apply()`` (install the fix; True if
it did so now, False if it was not needed or is in place already) and
``repro()`` (the smallest program showing the bug: it returns at once with
the fix in place, and hangs or fails without it).

``apply_all()`` applies every fix and returns ``{name: applied}``. subactor
does not apply them by itself: a program that meets one of these bugs calls
``apply_all()`` (or one module's ``apply()``) before ``trio.run``.
"""
from __future__ import annotations

import importlib

# The fixes, by module name (each a module of this package).
PATCHES = ("_wakeup_socketpair",)


def apply_all() -> dict[str, bool]:
    applied = {}
    for name in PATCHES:
        mod = importlib.import_module(f"{__name__}.{name}")
        applied[name.lstrip("_")] = bool(mod.apply())
    return applied


__all__ = ["PATCHES", "apply_all"]
