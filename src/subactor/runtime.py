"""Runtime state, under tractor's module name (``tractor.runtime``): the
current actor and IPC context, and the runtime-state functions
(:func:`current_actor`, :func:`is_root_process`, :func:`open_root_actor`,
:func:`get_runtime_vars`, :func:`debug_mode`). See :mod:`subactor._state`
for what "a runtime" is."""
from subactor import _state  # noqa: F401  (tractor.runtime._state, read by tractor's tests)
from subactor._context import current_ipc_ctx
from subactor._root import open_root_actor
from subactor._state import Actor, current_actor, debug_mode, get_runtime_vars, is_root_process

__all__ = ["Actor", "current_actor", "current_ipc_ctx", "debug_mode", "get_runtime_vars", "is_root_process",
           "open_root_actor"]
