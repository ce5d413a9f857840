"""Type stubs of the public API (subactor/__init__.py loads these names lazily)."""
from subactor import (
    devx as devx,
    discovery as discovery,
    ipc as ipc,
    log as log,
    msg as msg,
    runtime as runtime,
    to_asyncio as to_asyncio,
    trionics as trionics,
)
from subactor._context import (
    Context as Context,
    MsgStream as MsgStream,
    current_ipc_ctx as current_ipc_ctx,
)
from subactor._decorators import (
    context as context,
    stream as stream,
)
from subactor._exceptions import (
    ActorNotAvailable as ActorNotAvailable,
    ActorTooSlowError as ActorTooSlowError,
    ContextCancelled as ContextCancelled,
    ModuleNotExposed as ModuleNotExposed,
    MsgTypeError as MsgTypeError,
    NoRuntime as NoRuntime,
    RemoteActorError as RemoteActorError,
    StreamOverrun as StreamOverrun,
    TransportClosed as TransportClosed,
    get_err_type as get_err_type,
    reg_err_types as reg_err_types,
)
from subactor._ext import (
    AbandonedActorWarning as AbandonedActorWarning,
    ActorInterrupted as ActorInterrupted,
)
from subactor._host import (
    ActorFailed as ActorFailed,
    ActorHandle as ActorHandle,
    SubinterpreterImportError as SubinterpreterImportError,
    list_actors as list_actors,
    live_counts as live_counts,
    run_in_subinterpreter as run_in_subinterpreter,
    spawn as spawn,
)
from subactor._tree import (
    actor_tree as actor_tree,
    print_tree as print_tree,
)
from subactor._nursery import (
    ActorNursery as ActorNursery,
    open_nursery as open_nursery,
)
from subactor._pool import (
    BrokenWorkerError as BrokenWorkerError,
    PoolStatistics as PoolStatistics,
    WorkerPool as WorkerPool,
    default_worker_pool as default_worker_pool,
    open_worker_pool as open_worker_pool,
    run_sync as run_sync,
)
from subactor._portal import (
    Portal as Portal,
)
from subactor._clustering import (
    open_actor_cluster as open_actor_cluster,
)
from subactor._root import (
    open_root_actor as open_root_actor,
    run_daemon as run_daemon,
)
from subactor._state import (
    Actor as Actor,
    current_actor as current_actor,
    debug_mode as debug_mode,
    get_runtime_vars as get_runtime_vars,
    is_root_process as is_root_process,
)
from subactor.devx._debug import (
    pause as pause,
    pause_from_sync as pause_from_sync,
    post_mortem as post_mortem,
)
from subactor.discovery._api import (
    find_actor as find_actor,
    get_registry as get_registry,
    query_actor as query_actor,
    wait_for_actor as wait_for_actor,
)

__all__ = [
    "AbandonedActorWarning",
    "Actor",
    "ActorFailed",
    "ActorHandle",
    "ActorInterrupted",
    "ActorNotAvailable",
    "ActorNursery",
    "ActorTooSlowError",
    "BrokenWorkerError",
    "Context",
    "ContextCancelled",
    "ModuleNotExposed",
    "MsgStream",
    "MsgTypeError",
    "NoRuntime",
    "PoolStatistics",
    "Portal",
    "RemoteActorError",
    "StreamOverrun",
    "SubinterpreterImportError",
    "TransportClosed",
    "WorkerPool",
    "actor_tree",
    "context",
    "current_actor",
    "current_ipc_ctx",
    "debug_mode",
    "default_worker_pool",
    "devx",
    "discovery",
    "find_actor",
    "get_err_type",
    "get_registry",
    "get_runtime_vars",
    "ipc",
    "is_root_process",
    "list_actors",
    "live_counts",
    "log",
    "msg",
    "open_actor_cluster",
    "open_nursery",
    "open_root_actor",
    "open_worker_pool",
    "pause",
    "pause_from_sync",
    "post_mortem",
    "print_tree",
    "query_actor",
    "reg_err_types",
    "run_daemon",
    "run_in_subinterpreter",
    "run_sync",
    "runtime",
    "spawn",
    "stream",
    "to_asyncio",
    "trionics",
    "wait_for_actor",
]
