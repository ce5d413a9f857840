"""``enable_stack_on_sig()``: a signal dumps the live actor tree to stderr.

What is dumped, in the root (signals reach only the main interpreter):

- every actor this process hosts, from the C host's table
  (``_ext.list_actors``): name, id, state, what it runs, its thread, age;
- every member of the tree the hub knows (uid, pid, backend: a process
  actor is in another process);
- the root's own Python stacks (all its threads);
- the root's trio tasks and where each waits;
- each actor's trio tasks and where each waits, written by the actor
  itself (faulthandler does not load in subinterpreters): the hub asks
  every member (``stack``); an actor whose trio loop is free answers at
  once, on its own thread. One that does not (it runs sync code, or is
  blocked in a C call) is listed with what the C host says it runs
  ("in C or busy: <what>").
"""
from __future__ import annotations

import signal as _signal
import sys
import threading
import traceback
from typing import TextIO


def dump_stacks(file: TextIO | None = None) -> None:
    """Write the tree's state and stacks (see the module's doc) to ``file``
    (stderr by default)."""
    out = file or sys.stderr
    w = out.write
    w("\n======== subactor: the live actor tree ========\n")
    try:
        from subactor import _ext

        actors = _ext.list_actors()
    except Exception as exc:   # noqa: BLE001 - a diagnostic must not fail
        actors = []
        w(f"(the actor table is not available: {exc!r})\n")
    from subactor.discovery import _hub

    hub = _hub._hub
    members = list(hub.members.values()) if hub is not None else []
    by_name: dict[str, list] = {}
    for a in actors:
        by_name.setdefault(a.get("name"), []).append(a)
    for m in members:
        if m.chan is None:
            w(f"- root {m.uid!r} pid {m.pid} (this process, main interpreter)\n")
            continue
        backend = "process" if m.proc else "subint"
        rec = by_name.get(m.name, [None])[0] if not m.proc else None
        state = f"state {rec['state']}, running {rec['running']!r}, thread {rec['thread_id']}, age {rec['age']:.1f} s" \
            if rec else "its state is in its own process"
        w(f"- actor {m.uid!r} pid {m.pid} backend {backend}: {state}; parent {m.parent!r}\n")
    listed = {m.name for m in members}
    for a in actors:
        if a.get("name") not in listed:
            w(f"- actor {a.get('name')!r} (not in the tree's registry: a pool worker or one-shot) "
              f"state {a.get('state')}, running {a.get('running')!r}\n")
    w("-------- the root's Python stacks --------\n")
    out.flush()
    _faulthandler_dump(out)
    tasks = _task_stacks()
    if tasks:
        w("-------- the root's trio tasks --------\n" + tasks)
    if hub is not None:
        asked = 0
        for m in members:
            if m.chan is not None:
                m.chan.send_control({"t": "stack"})
                asked += 1
        if asked:
            w(f"-------- {asked} actor(s) asked for their stacks: each writes its own below, "
              f"once its loop is free; one that does not is busy in sync code or in C "
              f"(see 'running' above) --------\n")
    out.flush()


def actor_dump() -> None:
    """In an actor, on the hub's ``stack`` request: write this actor's
    Python stack to stderr."""
    from subactor import _state

    actor = _state.current_actor(err_on_no_runtime=False)
    uid = actor.uid if actor is not None else ("?", "?")
    backend = "process" if _state.in_child_process() else "subint"
    text = [f"-------- actor {uid!r} ({backend}) Python stacks: its trio tasks --------\n"]
    text.append(_task_stacks())
    sys.stderr.write("".join(text))
    sys.stderr.flush()


def _task_stacks() -> str:
    """Every trio task of this interpreter's run and where it waits (its
    await chain), or "" outside a run."""
    try:
        import trio

        root = trio.lowlevel.current_root_task()
    except (RuntimeError, ImportError):
        return ""
    out = []
    todo = [(root, 0)]
    while todo:
        task, depth = todo.pop()
        pad = "  " * depth
        out.append(f"{pad}task {task.name!r}:\n")
        for frame, lineno in task.iter_await_frames():
            code = frame.f_code
            if _TRIO_DIR in code.co_filename:
                continue   # trio's own machinery: the same in every task
            out.append(f"{pad}  File \"{code.co_filename}\", line {lineno}, in {code.co_name}\n")
        for n in reversed(task.child_nurseries):
            for t in sorted(n.child_tasks, key=lambda t: t.name, reverse=True):
                todo.append((t, depth + 1))
    return "".join(out)


def _faulthandler_dump(out) -> None:
    """This interpreter's threads only: faulthandler walks the calling
    interpreter's thread states in C, holding no frame object. (Not
    sys._current_frames(): in 3.13 it returns the frames of every
    interpreter's threads, objects of other interpreters that must not be
    touched here; formatting them corrupts memory.)"""
    import faulthandler

    try:
        faulthandler.dump_traceback(out, all_threads=True)
    except (ValueError, OSError, AttributeError):   # no real descriptor: the current thread alone
        out.write("".join(traceback.format_stack(sys._getframe(1))))
        out.flush()


_TRIO_DIR = f"{__import__('os').sep}trio{__import__('os').sep}"
_installed: dict[int, object] = {}


def enable_stack_on_sig(sig: int = _signal.SIGUSR1) -> int:
    """From now on, signal ``sig`` (SIGUSR1 by default) dumps the tree (see
    :func:`dump_stacks`). Only in the root's main thread (where signals
    are delivered); elsewhere a RuntimeError. Returns the signal."""
    from subactor import _state

    if _state.in_actor() or threading.current_thread() is not threading.main_thread():
        raise RuntimeError("enable_stack_on_sig(): only the root's main thread receives signals; "
                           "call it in the root (it dumps every actor)")
    if not isinstance(sig, int):
        raise TypeError(f"enable_stack_on_sig(sig=...) must be a signal number, got {sig!r}")
    prev = _signal.signal(sig, lambda signum, frame: dump_stacks())
    _installed.setdefault(sig, prev)
    return sig
