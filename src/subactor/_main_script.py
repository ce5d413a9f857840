"""The program's main script as a file an actor can load (to find the
functions defined in ``__main__``): ``__main__.__file__``, or for a
``python -c CODE`` program a private copy of CODE written to a file once.

A ``-c`` program has no file, but its code is in ``sys.orig_argv``: it is
written to ``<private temp dir>/__main__-c.py`` (the directory mode 0700,
removed at exit), and actors load that file as ``__mp_main__`` as they load
a script, so functions defined in the ``-c`` code work at every depth of
the tree when the code's entry point is guarded by
``if __name__ == "__main__":``. A script read from standard input cannot be
read again: it has none (see :func:`subactor._exceptions.check_findable`).
No trio here.
"""
from __future__ import annotations

import sys

_c_copy: str | None = None     # the -c code's file, once written


def dash_c_code() -> str | None:
    """The code of a ``python -c CODE`` program, else None (also when the
    command line does not show it plainly: ``-c`` as its own argument,
    followed by the code and then exactly the program's ``sys.argv[1:]``)."""
    if sys.argv[:1] != ["-c"]:
        return None
    argv = list(getattr(sys, "orig_argv", ()))
    rest = sys.argv[1:]
    for i in range(1, len(argv) - 1):
        if argv[i] == "-c" and argv[i + 2:] == rest:
            return argv[i + 1]
    return None


def main_file() -> str | None:
    """The file of the program's main script, or None when it has none
    (an interactive session, or ``-c`` code that cannot be found)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path:
        return path
    global _c_copy
    if _c_copy is None:
        code = dash_c_code()
        if code is None:
            return None
        import atexit
        import os
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="subactor-main-")
        target = os.path.join(folder, "__main__-c.py")
        with open(target, "w", encoding="utf-8") as f:
            f.write(code)
        atexit.register(shutil.rmtree, folder, True)
        _c_copy = target
    return _c_copy
