"""Runtime state, under tractor's module name (``tractor.runtime``):
the current actor and the current IPC context."""
from subactor._context import current_ipc_ctx
from subactor._state import Actor, current_actor

__all__ = ["Actor", "current_actor", "current_ipc_ctx"]
