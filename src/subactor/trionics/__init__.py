"""trio helpers with tractor's names (``tractor.trionics``).

- :func:`broadcast_receiver`, :class:`BroadcastReceiver`, :class:`Lagged`:
  one receive channel fanned out to many local tasks;
- :func:`collapse_eg`, :func:`get_collapsed_eg`, :func:`is_multi_cancelled`:
  exception groups;
- :func:`maybe_open_nursery`, :func:`gather_contexts`,
  :func:`maybe_open_context`: async context managers;
- :func:`start_or_cancel`, :func:`maybe_raise_from_masking_exc`: task start
  and cancellation;
- :func:`supervise_run_process`: a child process supervised from a nursery,
  its output relayed to the log line by line.

It needs trio; ``import subactor`` does not import it.
"""
from subactor.trionics._broadcast import AsyncReceiver, BroadcastReceiver, BroadcastState, Lagged, broadcast_receiver
from subactor.trionics._eg import collapse_eg, get_collapsed_eg, is_multi_cancelled
from subactor.trionics._mngrs import gather_contexts, maybe_open_context, maybe_open_nursery
from subactor.trionics._subproc import supervise_run_process
from subactor.trionics._taskc import MaskedError, maybe_raise_from_masking_exc, start_or_cancel

__all__ = [
    "AsyncReceiver", "BroadcastReceiver", "BroadcastState", "Lagged", "broadcast_receiver",
    "collapse_eg", "get_collapsed_eg", "is_multi_cancelled",
    "gather_contexts", "maybe_open_context", "maybe_open_nursery",
    "MaskedError", "maybe_raise_from_masking_exc", "start_or_cancel", "supervise_run_process",
]

