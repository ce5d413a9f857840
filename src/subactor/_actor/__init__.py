"""Code that runs *inside* actors, in the actor's own interpreter (a
subinterpreter, or the child process of the process backend).

Nothing here is used by the parent, and nothing here may import trio at
module level: an actor that only runs sync functions must never pay for it.

- :mod:`._runtime`: a long-lived actor (``start_actor`` / ``run_in_actor``):
  its sync-mode loop, and the switch to trio mode;
- :mod:`._trio_mode`: that actor's trio mode, one task per call;
- :mod:`._oneshot`: a one-shot actor (``subactor.spawn``,
  ``run_in_subinterpreter``): unpickle a call, run it, hand back the result;
- :mod:`._pool_worker`: a worker of the pool (``subactor.run_sync``);
- :mod:`._parent_main`: finding functions of the parent's ``__main__`` script;
- :mod:`._process_main`: the entry point of a process-backend child.
"""
