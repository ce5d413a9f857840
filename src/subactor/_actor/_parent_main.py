"""Functions of the parent's ``__main__`` script, inside an actor.

A function defined in the script the parent runs is known there as
``__main__.fn``. An actor finds it by loading that script once, as
``__mp_main__`` (so its ``if __name__ == "__main__":`` block does not run
again), as :mod:`multiprocessing` does.
"""
import sys

# The main script this actor is loading right now (see load()), else None.
# A script that starts actors at import time (no ``__main__`` guard) would
# start them again from here, at every depth: check_not_loading() stops that.
loading: str | None = None


def check_not_loading() -> None:
    """A clear RuntimeError when an actor is started while this actor loads
    the program's main script, as multiprocessing's spawn does: the script
    starts actors at import time, without an ``if __name__ == "__main__":``
    guard."""
    if loading is None:
        return
    raise RuntimeError(
        f"an actor was started while an actor was loading the program's main script "
        f"{loading!r} to find its functions: the script starts actors when it is imported. "
        f"Actors load the main script as a module (as multiprocessing does), so its entry "
        f"point must be guarded:\n\n    if __name__ == \"__main__\":\n        trio.run(main)\n")


def load(path):
    """The parent's main script loaded as ``__mp_main__`` (once)."""
    global loading
    mod = sys.modules.get("__mp_main__")
    if mod is None:
        import runpy
        import types

        if path in ("<stdin>", "-") or not path:
            raise RuntimeError(
                "the program's main script was read from standard input: an actor cannot load "
                "it again to find its functions; save it to a file and run that, or define the "
                "functions in an importable module")
        mod = types.ModuleType("__mp_main__")
        loading = path
        try:
            mod.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
        finally:
            loading = None
        mod._subactor_parent_main = True   # its functions are known as __main__.<name> to the tree
        sys.modules["__mp_main__"] = mod
    return mod


def install(path):
    """Let pickles name objects of the parent's ``__main__`` script: the
    script is loaded (see :func:`load`) the first time one is looked up."""
    if not path:
        return
    import types

    class _ParentMain(types.ModuleType):
        def __getattr__(self, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return getattr(load(path), attr)

    sys.modules["__main__"] = _ParentMain("__main__")
