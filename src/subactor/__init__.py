"""subactor: structured-concurrency actors in own-GIL subinterpreters.

This module only re-exports. It stays cheap to import because every actor
imports it (through ``subactor._ext``): names whose modules need trio are
loaded on first use.
"""
import sys as _sys

if _sys.version_info < (3, 13):
    # Unsupported (see subactor._pyver): the import works and says why, and
    # every use of the C core raises the same explanation; no abort.
    from subactor import _pyver

    _pyver.install_stub()
from subactor._ext import ActorInterrupted, AbandonedActorWarning

_LAZY = {
    "run_sync": "subactor._pool",
    "open_worker_pool": "subactor._pool",
    "WorkerPool": "subactor._pool",
    "default_worker_pool": "subactor._pool",
    "BrokenWorkerError": "subactor._pool",
    "PoolStatistics": "subactor._pool",
    "open_nursery": "subactor._nursery",
    "ActorNursery": "subactor._nursery",
    "Portal": "subactor._portal",
    "Context": "subactor._context",
    "MsgStream": "subactor._context",
    "context": "subactor._decorators",
    "stream": "subactor._decorators",
    "current_ipc_ctx": "subactor._context",
    "StreamOverrun": "subactor._exceptions",
    "MsgTypeError": "subactor._exceptions",
    "TransportClosed": "subactor._exceptions",
    "ActorTooSlowError": "subactor._exceptions",
    "reg_err_types": "subactor._exceptions",
    "get_err_type": "subactor._exceptions",
    "current_actor": "subactor._state",
    "Actor": "subactor._state",
    "is_root_process": "subactor._state",
    "get_runtime_vars": "subactor._state",
    "debug_mode": "subactor._state",
    "pause": "subactor.devx._debug",
    "pause_from_sync": "subactor.devx._debug",
    "post_mortem": "subactor.devx._debug",
    "open_root_actor": "subactor._root",
    "run_daemon": "subactor._root",
    "open_actor_cluster": "subactor._clustering",
    "NoRuntime": "subactor._exceptions",
    "RemoteActorError": "subactor._exceptions",
    "ContextCancelled": "subactor._exceptions",
    "ModuleNotExposed": "subactor._exceptions",
    "ActorNotAvailable": "subactor._exceptions",
    "run_in_subinterpreter": "subactor._host",
    "spawn": "subactor._host",
    "ActorHandle": "subactor._host",
    "ActorFailed": "subactor._host",
    "SubinterpreterImportError": "subactor._host",
    "live_counts": "subactor._host",
    "list_actors": "subactor._host",
    "print_tree": "subactor._tree",
    "actor_tree": "subactor._tree",
    "find_actor": "subactor.discovery._api",
    "wait_for_actor": "subactor.discovery._api",
    "query_actor": "subactor.discovery._api",
    "get_registry": "subactor.discovery._api",
}

# Public submodules, imported on first attribute access (``subactor.log``
# after a bare ``import subactor``, as tractor programs write ``tractor.log``).
_SUBMODULES = frozenset({"log", "trionics", "discovery", "ipc", "to_asyncio", "runtime", "msg", "devx"})

# The submodules are public names too: ``dir(subactor)`` lists them and
# ``from subactor import *`` binds them, without ``import subactor``
# importing any of them.
__all__ = ["ActorInterrupted", "AbandonedActorWarning", *_LAZY, *sorted(_SUBMODULES)]

# tractor's private names that tractor programs (and its tests) read, found
# where a private tractor path leads (the top level): not in __all__.
_TRACTOR_PRIVATE = {"_runtime_vars": "subactor._state", "RuntimeFailure": "subactor._exceptions"}


def __dir__():
    return sorted({*globals(), *__all__})


def _import(qualname):
    # importlib.import_module() without importing importlib, which an
    # actor's start would otherwise pay for here (``from subactor import
    # _transport`` asks this module first).
    __import__(qualname)
    return _sys.modules[qualname]


def __getattr__(name):
    mod = _LAZY.get(name) or _TRACTOR_PRIVATE.get(name)
    if mod is None:
        if name in _SUBMODULES or (name.startswith("_") and not name.startswith("__")):
            # A private submodule named as an attribute (subactor._exceptions)
            # before anything imported it, as a plain package allows.
            try:
                return _import(f"subactor.{name}")
            except ModuleNotFoundError:
                pass
        raise AttributeError(f"module 'subactor' has no attribute {name!r}")

    value = getattr(_import(mod), name)
    globals()[name] = value
    return value
