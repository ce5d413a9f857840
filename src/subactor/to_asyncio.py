"""asyncio inside actors, with tractor's names (``tractor.to_asyncio``).

An actor started with ``infect_asyncio=True`` runs an asyncio loop with
trio as its guest; there, a trio task runs asyncio code with
:func:`run_task` and talks to an asyncio task over
:func:`open_channel_from`'s :class:`LinkedTaskChannel`. The root does the
same under :func:`run_as_asyncio_guest`. Semantics: :mod:`subactor._aio`.
"""
from subactor._aio import (LinkedTaskChannel, open_channel_from, run_as_asyncio_guest, run_task)
from subactor._exceptions import (AsyncioCancelled, AsyncioRuntimeTranslationError, AsyncioTaskExited,
                                  TrioCancelled, TrioTaskExited)

__all__ = ["run_task", "open_channel_from", "LinkedTaskChannel", "run_as_asyncio_guest", "AsyncioCancelled",
           "AsyncioTaskExited", "TrioCancelled", "TrioTaskExited", "AsyncioRuntimeTranslationError"]
