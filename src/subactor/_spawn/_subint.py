"""The subinterpreter backend: an actor is an interpreter on its own thread.

The C host (``_ext.spawn``) makes a thread that creates the interpreter
(own GIL unless ``shared_gil``), runs a two-line script that calls the
entry point, ends the interpreter and exits. The actor's channel is made
here; the actor attaches side 1 of it from its config (``cfg["chan"]``),
the parent keeps side 0. The channel is also named to the C host, which
closes side 1 if the actor ends without ever attaching it (an actor
interrupted while it starts), so that nothing queued toward it leaks.

An actor of an actor nursery started from the root (entry ``"runtime"``,
own GIL) takes a warm interpreter from the reserve when one made with the
same sys.path and environment is parked there (:mod:`subactor._warm`);
otherwise, and always for the pool's workers and the shared-GIL backend,
the C host makes a new one.
"""
from __future__ import annotations

import os
import sys

from subactor import _ext

SCRIPTS = {
    "runtime": "from subactor._actor._runtime import actor_main\nactor_main()\n",
    "worker": "from subactor._actor._pool_worker import main\nmain()\n",
}


def _label(cfg: dict, entry: str) -> str:
    if entry == "worker":
        return "a worker pool's call loop"
    return f"actor runtime serving {', '.join(cfg.get('mods') or ()) or 'nothing'}"


def actor_sys_path() -> list[str]:
    """The sys.path an actor gets: this interpreter's, with "" (the current
    directory, first in sys.path under `python -c` and the REPL) pinned to
    the directory it means now: an actor must find what its parent finds."""
    return [p or os.getcwd() for p in sys.path]


def spawn(cfg: dict, entry: str, *, shared_gil: bool = False, channel: tuple[int, int] | None = None):
    """(``_ext.SubintHandle``, ``_ext.ChannelEnd``): see :func:`subactor._spawn.spawn`."""
    cid = _ext.channel(*channel) if channel else _ext.channel()
    end = _ext.ChannelEnd(cid, 0)
    try:
        handle = _ext.spawn(
            SCRIPTS[entry],
            name=cfg["name"],
            label=_label(cfg, entry),
            input=_ext.dumps(dict(cfg, chan=cid)),
            shared_gil=shared_gil,
            chan=cid,
            sys_path=actor_sys_path(),
            # The reserve is the root's (see subactor._warm); an actor's own
            # nursery makes its children cold.
            warm=entry == "runtime" and _ext.current_actor() is None,
        )
    except BaseException:
        # Side 1 was never attached: closing side 0 frees the channel.
        end.close()
        raise
    return handle, end
