"""limit_plds(): restrict the payloads of the current context."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ._spec import spec_of


@contextlib.contextmanager
def limit_plds(spec: Any) -> Iterator[Any]:
    """Inside a context: for the block, what this side sends and receives
    (``started()``, stream items, the result) must be of type ``spec``;
    a violation raises ``MsgTypeError``. Restores the previous spec after."""
    from .._context import current_ipc_ctx

    ctx = current_ipc_ctx()
    if ctx is None:
        raise RuntimeError("limit_plds() is used inside a context (a @context function or an "
                           "open_context() block)")
    spec_of(spec)  # a bad type fails here, before the block
    prev = ctx._pld_type
    ctx._pld_type = type(None) if spec is None else spec
    try:
        yield spec
    finally:
        ctx._pld_type = prev
