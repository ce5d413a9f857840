"""Developer tools: the multi-actor debugger and live-tree inspection.

- :func:`pause` / :func:`pause_from_sync`: a pdb REPL in any actor, on the
  tree's one terminal, under the root's terminal lock (``debug_mode``).
- :func:`post_mortem`, :func:`open_crash_handler`: post-mortem REPLs; under
  ``debug_mode`` an actor whose call raises opens one by itself.
- :func:`enable_stack_on_sig`: a signal (SIGUSR1) dumps every actor of the
  process, its state and its Python stack, to stderr.

See docs/debugger.md. Names are loaded lazily: the hub imports
:mod:`subactor.devx._lock` without the rest.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from subactor.devx._debug import (PdbREPL as PdbREPL, maybe_open_crash_handler as maybe_open_crash_handler,
                                      open_crash_handler as open_crash_handler, pause as pause,
                                      pause_from_sync as pause_from_sync, post_mortem as post_mortem)
    from subactor.devx._stack import dump_stacks as dump_stacks, enable_stack_on_sig as enable_stack_on_sig

_LAZY = {
    "pause": "subactor.devx._debug",
    "pause_from_sync": "subactor.devx._debug",
    "post_mortem": "subactor.devx._debug",
    "open_crash_handler": "subactor.devx._debug",
    "maybe_open_crash_handler": "subactor.devx._debug",
    "PdbREPL": "subactor.devx._debug",
    "enable_stack_on_sig": "subactor.devx._stack",
    "dump_stacks": "subactor.devx._stack",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'subactor.devx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
