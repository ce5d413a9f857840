"""Types of the worker pool (the runtime is in _pool.py). ``run_sync``
checks the positional arguments against ``fn``'s parameters, as
``trio.to_thread.run_sync`` does."""
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, NamedTuple, TypeVar, TypeVarTuple, Unpack

import trio

__all__ = [
    "BrokenWorkerError",
    "PoolStatistics",
    "WorkerPool",
    "default_worker_pool",
    "open_worker_pool",
    "run_sync",
]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

BACKENDS: Final[tuple[str, ...]]
DEFAULT_IDLE_TIMEOUT: Final[float]

class BrokenWorkerError(RuntimeError): ...

class PoolStatistics(NamedTuple):
    idle_workers: int
    running_workers: int
    ending_workers: int
    workers_started: int
    calls: int

class WorkerPool:
    grace: float
    kill_after: float
    backend: str
    size: int
    max_calls: int | None
    max_blocks: int | None
    idle_timeout: float | None
    def __init__(self, size: int | None = None, *, max_calls: int | None = None, max_blocks: int | None = None,
                 idle_timeout: float | None = ..., kill_after: float = ..., grace: float = ...,
                 backend: str = "subint") -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def limiter(self) -> trio.CapacityLimiter: ...
    def statistics(self) -> PoolStatistics: ...
    async def run_sync(self, fn: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts], cancellable: bool = False,
                       limiter: trio.CapacityLimiter | None = None, kill_on_cancel: bool = False) -> _T: ...
    async def aclose(self) -> None: ...

def open_worker_pool(size: int | None = None, *, max_calls: int | None = None, max_blocks: int | None = None,
                     idle_timeout: float | None = ..., kill_after: float = ..., grace: float = ...,
                     backend: str = "subint") -> AbstractAsyncContextManager[WorkerPool]: ...
def default_worker_pool() -> WorkerPool: ...
async def run_sync(fn: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts], cancellable: bool = False,
                   limiter: trio.CapacityLimiter | None = None, kill_on_cancel: bool = False) -> _T: ...
