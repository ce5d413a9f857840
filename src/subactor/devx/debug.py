"""The debugger's public module under tractor's name (``tractor.devx.debug``):
its REPL entry points and the texts of its banners, which tools that drive
the REPL (and tractor's test-suite) match on. See :mod:`subactor.devx._debug`."""
from subactor.devx._debug import (  # noqa: F401
    PdbREPL,
    _crash_msg,
    _ctlc_ignore_header,
    _pause_msg,
    _repl_fail_msg,
    BoxedMaybeException,
    maybe_open_crash_handler,
    open_crash_handler,
    pause,
    pause_from_sync,
    post_mortem,
)

__all__ = ["BoxedMaybeException", "PdbREPL", "TractorConfig", "maybe_open_crash_handler", "open_crash_handler", "pause", "pause_from_sync", "post_mortem"]


class TractorConfig:
    """tractor's pdbp settings (``tractor.devx.debug.TractorConfig``), accepted
    so that programs which set them run: subactor's REPL is stdlib pdb,
    with no syntax highlighting, so these change nothing."""

    use_pygements = False
    sticky_by_default = False
    enable_hidden_frames = True
    truncate_long_lines = True
