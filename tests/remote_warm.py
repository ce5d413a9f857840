"""Functions the warm-interpreter tests call inside actors."""
import os
import sys


def probe(env_key="SUBACTOR_WARM_TEST"):
    """What a cold and a warm actor must agree on."""
    real_main = sys.modules.get("__main__")
    return {
        "sys_path": list(sys.path),
        "main_keys": sorted(vars(real_main)) if real_main is not None else None,
        "modules": {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())},
        "env": os.environ.get(env_key),
        "cwd": os.getcwd(),
    }


def import_and_call(name):
    """Import module `name` (found on this actor's sys.path) and call its f()."""
    import importlib

    return importlib.import_module(name).f()
