"""What an actor runs first, inside its own interpreter.

The C host runs a two-line script that calls :func:`main`. This module must
stay free of trio and of anything slow to import: an actor that only runs a
sync function should cost an interpreter and little more.

The work arrives as the actor's input bytes (``_ext.actor_input()``): a
pickle of ``(fn, args, kwargs, main_path)``. Functions defined in the
parent's ``__main__`` script are found by loading that script as
``__mp_main__`` on first need, as :mod:`multiprocessing` does.
"""
import pickle
import sys

from subactor import _ext

SCRIPT = "from subactor._bootstrap import main\nmain()\n"


class _Unpickler(pickle.Unpickler):
    """Resolves names of the parent's ``__main__`` by loading its script."""

    def __init__(self, data, main_path):
        import io

        super().__init__(io.BytesIO(data))
        self._main_path = main_path

    def find_class(self, module, name):
        if module == "__main__" and self._main_path:
            return getattr(_load_parent_main(self._main_path), name)
        return super().find_class(module, name)


def _load_parent_main(path):
    mod = sys.modules.get("__mp_main__")
    if mod is None:
        import runpy
        import types

        # run_path runs the script with __name__ == "__mp_main__", so its
        # `if __name__ == "__main__":` block does not run again here.
        mod = types.ModuleType("__mp_main__")
        mod.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
        sys.modules["__mp_main__"] = mod
    return mod


def encode_call(fn, args, kwargs):
    """The actor input for calling ``fn(*args, **kwargs)``: the parent's main
    script path (plain data) and, separately, the pickled call, so the path
    is known before the call is unpickled."""
    # Always passed: nested objects may refer to __main__ too, and the
    # actor loads the script only when the unpickler asks for it.
    main_path = getattr(sys.modules.get("__main__"), "__file__", None)
    payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
    return pickle.dumps((main_path, payload), protocol=pickle.HIGHEST_PROTOCOL)


def main():
    main_path, payload = pickle.loads(_ext.actor_input())
    fn, args, kwargs = _Unpickler(payload, main_path).load()
    result = fn(*args, **kwargs)
    _ext.set_result(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
