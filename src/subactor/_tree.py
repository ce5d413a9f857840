"""The live actor tree as this interpreter sees it: ``actor_tree()`` (plain
data) and ``print_tree()``.

Every open actor nursery of this interpreter is tracked (weakly); each row
is one of its actors, subinterpreter or process, with its parent (the
actor that opened the nursery), uid, backend, state and what it runs.
An actor's own children live in that actor's interpreter or process: call
``print_tree()`` there (in code that runs in it) to see them.
"""
from __future__ import annotations

import sys
import weakref

_nurseries: "weakref.WeakSet" = weakref.WeakSet()


def track(nursery) -> None:
    """Called by every ActorNursery when it is made."""
    _nurseries.add(nursery)


def _me() -> tuple[str, str]:
    from subactor import _state

    actor = _state._current
    if actor is None:
        return ("root", "")
    return tuple(actor.uid) if getattr(actor, "uid", None) else (actor.name, "")


def actor_tree() -> list[dict]:
    """One dict per live actor of the open nurseries of this interpreter:
    name, uid, parent (uid), backend, state, running, pid (process actors)."""
    parent = _me()
    rows = []
    for an in list(_nurseries):
        for child in list(an._children):
            try:
                info = dict(child.handle.info())
            except Exception as exc:   # a handle that ended under us
                info = {"state": f"unknown ({type(exc).__name__})"}
            rows.append({
                "name": child.portal.name,
                "uid": tuple(child.portal.uid) if child.portal.uid else None,
                "parent": parent,
                "backend": info.get("backend") or an.backend,
                "state": info.get("state"),
                "running": info.get("running") or ("process actor" if info.get("pid") else None),
                "pid": info.get("pid"),
            })
    return sorted(rows, key=lambda r: r["name"])


def print_tree(file=None) -> None:
    """Print the live actor tree of this interpreter (see actor_tree())."""
    out = file or sys.stdout
    parent = _me()
    rows = actor_tree()
    print(f"{parent[0]}{' ' + parent[1][:8] if parent[1] else ''} ({len(rows)} actors)", file=out)
    for i, r in enumerate(rows):
        branch = "`-" if i == len(rows) - 1 else "|-"
        uid = r["uid"][1][:8] if r["uid"] else "?"
        pid = f" pid {r['pid']}" if r["pid"] else ""
        print(f"{branch} {r['name']} [{uid}] {r['backend']}{pid} {r['state']}: {r['running'] or '-'}", file=out)
