"""Functions of the parent's ``__main__`` script, inside an actor.

A function defined in the script the parent runs is known there as
``__main__.fn``. An actor finds it by loading that script once, as
``__mp_main__`` (so its ``if __name__ == "__main__":`` block does not run
again), as :mod:`multiprocessing` does.
"""
import sys


def load(path):
    """The parent's main script loaded as ``__mp_main__`` (once)."""
    mod = sys.modules.get("__mp_main__")
    if mod is None:
        import runpy
        import types

        mod = types.ModuleType("__mp_main__")
        mod.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
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
