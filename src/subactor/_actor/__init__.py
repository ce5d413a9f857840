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


def refuse_os_exit(name: str) -> None:
    """In a subinterpreter actor, make ``os._exit()`` an error of the actor.

    A subinterpreter shares its process with its parent and siblings:
    ``os._exit()`` there would end all of them at once, silently. It raises
    a RuntimeError naming the actor instead (the call that made it fails;
    the actor goes on). A process actor keeps the real ``os._exit``."""
    import os

    from subactor import _ext

    if _ext.current_actor() is None:
        return

    def _exit(status: int = 0) -> None:
        raise RuntimeError(
            f"os._exit({status!r}) in actor {name!r} would end the whole process, which this actor (a "
            f"subinterpreter) shares with its parent and its siblings; return or raise instead, or run "
            f"the actor with backend=\"process\"")

    _exit.__doc__ = os._exit.__doc__
    os._exit = _exit
