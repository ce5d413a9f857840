"""A one-shot actor (``subactor.spawn``, ``run_in_subinterpreter``), inside
its own interpreter.

The C host runs a two-line script that calls :func:`main`. This module must
stay free of trio and of anything slow to import: an actor that only runs a
sync function should cost an interpreter and little more.

The work arrives as the actor's input bytes (``_ext.actor_input()``): a
pickle of ``(fn, args, kwargs, main_path)``. Functions defined in the
parent's ``__main__`` script are found by loading that script as
``__mp_main__`` on first need (:mod:`._parent_main`).
"""
import pickle

from subactor import _ext

SCRIPT = "from subactor._actor._oneshot import main\nmain()\n"


class _Unpickler(pickle.Unpickler):
    """Resolves names of the parent's ``__main__`` by loading its script."""

    def __init__(self, data, main_path):
        import io

        super().__init__(io.BytesIO(data))
        self._main_path = main_path

    def find_class(self, module, name):
        if module == "__main__" and self._main_path:
            from subactor._actor._parent_main import load

            return getattr(load(self._main_path), name)
        return super().find_class(module, name)


def main():
    from subactor._actor import refuse_os_exit

    refuse_os_exit(_ext.current_actor()["name"])
    main_path, payload = pickle.loads(_ext.actor_input())
    fn, args, kwargs = _Unpickler(payload, main_path).load()
    result = fn(*args, **kwargs)
    _ext.set_result(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
