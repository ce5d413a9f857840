"""A child process supervised from a nursery, its output relayed to the log
line by line (``supervise_run_process``)."""
from __future__ import annotations

import subprocess
import textwrap
from typing import Any, Callable

import trio

from subactor.log import check_loglevel, get_logger

log = get_logger("trionics")

_UNSET = object()
LINE_MAX = 64 * 1024        # a longer line is relayed in pieces of this size
STDERR_KEPT = 16 * 1024     # the tail of stderr kept for a failure's CalledProcessError


async def _pump(stream: trio.abc.ReceiveStream, tag: str, emit: Callable[[str], Any] | None,
                keep: bytearray | None) -> None:
    """Read ``stream`` to its end (a pipe nobody reads fills, and the child
    then blocks in write()): each line to ``emit`` as "[tag] line", and/or
    the bytes (their tail) into ``keep``."""
    pending = b""
    async with stream:
        async for chunk in stream:
            if keep is not None:
                keep += chunk
                del keep[:-STDERR_KEPT]
            if emit is None:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(f"[{tag}] {_text(line)}")
            while len(pending) >= LINE_MAX:
                emit(f"[{tag}] {_text(pending[:LINE_MAX])}")
                pending = pending[LINE_MAX:]
    if emit is not None and pending:
        emit(f"[{tag}] {_text(pending)}")


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace").removesuffix("\r")


async def supervise_run_process(cmd: list[str] | str, *, check: bool = True, label: str | None = None,
                                relay_stdout: bool = False, relay_stderr: bool = False,
                                relay_level: str = "io", stdout: Any = _UNSET,
                                task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
                                **run_process_kwargs: Any) -> None:
    """Run ``cmd`` as a child process, for ``nursery.start()``: it gets the
    ``trio.Process`` once the process started, and this task supervises
    the process until it ends.

    The child never shares the parent's terminal: stdin is /dev/null and
    stdout too unless ``relay_stdout`` (or an explicit ``stdout=``).
    ``relay_stdout``/``relay_stderr`` log each line of that stream at
    ``relay_level`` ("io") as ``[label:out] line`` / ``[label:err] line``
    while the child runs. With ``check`` (the default) a non-zero exit
    raises ``subprocess.CalledProcessError`` from this task once the
    output is read to its end, with the tail of stderr as ``.stderr`` and in
    a note. Other keywords go to ``trio.run_process`` (``env``, ``cwd``,
    ...)."""
    for key in ("capture_stdout", "capture_stderr", "stdin", "stderr", "check"):
        if key in run_process_kwargs:
            raise TypeError(f"supervise_run_process() sets {key!r} itself: use relay_stdout=/relay_stderr=/"
                            f"stdout=/check= instead")
    emit = None
    if relay_stdout or relay_stderr:
        check_loglevel(relay_level, "relay_level")
        if not isinstance(relay_level, str) or not callable(getattr(log, relay_level.lower(), None)):
            raise ValueError(f"relay_level must name a level with a method of the logger, got {relay_level!r}")

        def emit(line: str) -> None:
            # Looked up per line: the logger's methods may be replaced.
            getattr(log, relay_level.lower())(line)

    tag = label or (cmd if isinstance(cmd, str) else " ".join(map(str, cmd)))
    if relay_stdout:
        out = subprocess.PIPE
    elif stdout is _UNSET:
        out = subprocess.DEVNULL
    elif stdout == subprocess.PIPE:
        raise ValueError("stdout=subprocess.PIPE has no reader here, and the child would block once the "
                         "pipe is full: use relay_stdout=True")
    else:
        out = stdout
    want_err = relay_stderr or check
    kept = bytearray() if check else None
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(lambda task_status: trio.run_process(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE if want_err else subprocess.DEVNULL,
            check=False, task_status=task_status, **run_process_kwargs))
        if relay_stdout:
            nursery.start_soon(_pump, proc.stdout, f"{tag}:out", emit, None)
        if want_err:
            nursery.start_soon(_pump, proc.stderr, f"{tag}:err", emit if relay_stderr else None, kept)
        task_status.started(proc)
    if check and proc.returncode:
        err = bytes(kept or b"")
        cpe = subprocess.CalledProcessError(proc.returncode, proc.args, stderr=err)
        cpe.add_note(f"stderr of {tag!r} (exit status {proc.returncode}):\n"
                     + textwrap.indent(err.decode(errors="replace"), "   "))
        raise cpe
