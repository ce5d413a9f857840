"""The reserve of warm interpreters: the root's option ``warm_interpreters``.

A warm interpreter is a fresh own-GIL subinterpreter, made on its own
thread exactly as a cold actor's is (same config, same sys.path, its
``__main__`` untouched), that has imported subactor's actor runtime and
trio (:data:`PRELOAD`, nothing of the user's) and waits, parked without a
GIL, until ``start_actor`` / ``run_in_actor`` takes it: the actor then
skips the interpreter's creation and those imports. The reserve lives in
the C host (csrc/warm.c); this module is the policy:

- the root runtime turns it on when it opens, with ``warm_interpreters=N``
  (``open_root_actor`` or the ``open_nursery`` that opens the root), else
  ``SUBACTOR_WARM_INTERPRETERS``, else :data:`DEFAULT` (0: off);
- it follows the actors' sys.path (a spawn with another one is cold, and
  the reserve is refilled for the new one) and the process's environment
  (one made before a change of ``os.environ`` is retired, never served);
- it is refilled after each take, one interpreter at a time, in the
  background;
- the last root block switches it off: its interpreters end on their own
  threads (the process's exit hook waits for them, by a deadline).
"""
from __future__ import annotations

import os

from subactor import _ext

ENV = "SUBACTOR_WARM_INTERPRETERS"
# Off by default: on CPython 3.13 every interpreter that ends keeps its
# memory (8.4 MiB for one that imported trio), and each root block would end
# its unused warm ones; see docs/design.md, "Warm interpreters".
DEFAULT = 0
MAX = 64
# What a warm interpreter has imported before an actor takes it: what a
# cold actor imports to serve a call, then to switch to trio mode.
PRELOAD = (
    "subactor._actor._runtime",
    "trio",
    "subactor._actor._trio_mode",
    "subactor._context",
    "subactor.discovery._client",
)


def check_size(n, where: str) -> int | None:
    """``n`` checked (an int from 0 to :data:`MAX`), or None if not given."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{where}(warm_interpreters=...) must be an int >= 0 (0 turns the reserve off), "
                        f"got {n!r}")
    if not 0 <= n <= MAX:
        raise ValueError(f"{where}(warm_interpreters=...) must be between 0 and {MAX}, got {n}")
    return n


def size_from_env() -> int:
    """:data:`ENV` as a size, :data:`DEFAULT` when unset or empty."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX:
        raise ValueError(f"{ENV}={raw!r}: expected a number of warm interpreters from 0 to {MAX}")
    return n


def turn_on(size: int | None) -> None:
    """The root opens: keep ``size`` warm interpreters (None: from the
    environment). Returns at once; they are made in the background."""
    n = size_from_env() if size is None else size
    if n == 0:
        _ext.warm_configure(0)
        return
    from subactor._spawn._subint import actor_sys_path

    _ext.warm_configure(n, sys_path=actor_sys_path(), preload=list(PRELOAD))


def turn_off() -> None:
    """The root ends: the reserve is switched off; its interpreters end on
    their own threads (this does not wait)."""
    _ext.warm_configure(0)
