"""Loading a module from a file path (tractor's ``_code_load``).

``load_module_from_path(path, module_name=None)`` imports the file at
``path`` as ``module_name`` (by default its file's stem, or its folder's
name for a package's ``__init__.py``) and registers it in ``sys.modules``.
A package's ``__init__.py`` is loaded as a package: its submodules import
afterwards with the plain ``import`` statement.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType


def load_module_from_path(path, module_name: str | None = None) -> ModuleType:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_module_from_path(): no such file: {path!r}")
    is_pkg = os.path.basename(path) == "__init__.py"
    folder = os.path.dirname(os.path.abspath(path))
    if module_name is None:
        module_name = os.path.basename(folder) if is_pkg else os.path.splitext(os.path.basename(path))[0]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=[folder] if is_pkg else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"load_module_from_path(): {path!r} is no Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return mod
