"""Which Python versions subactor supports, and what an unsupported one gets.

subactor needs Python 3.13 or later. On 3.12 own-GIL subinterpreters are
there (PEP 684) but not usable for a runtime like this one: ``_ctypes``
refuses to load in a subinterpreter, so no actor can import trio, and two
own-GIL interpreters importing ``datetime`` at once corrupt the heap and
abort the process. Rather than abort, ``import subactor`` on 3.12 works,
warns once, and every use of the C core raises :data:`TOO_OLD`;
``python -m subactor doctor`` prints it.
"""
import sys
import types

MIN = (3, 13)

TOO_OLD = (
    f"subactor needs Python >= 3.13; this is Python {sys.version.split()[0]}. On 3.12, own-GIL "
    "subinterpreters cannot import trio (_ctypes refuses to load in a subinterpreter) and two of "
    "them importing datetime at once abort the process (a double free in CPython), so subactor "
    "does not run actors there. Use Python 3.13, or 3.14 for long-running programs that start "
    "and end many actors (3.13 leaks memory per interpreter; see `python -m subactor doctor`).")

# What 3.13 keeps of each interpreter that ends (bench/bench_leak.py).
LEAK_NOTE = (
    "Python 3.13 keeps about 1.7 MiB of memory for every actor interpreter that ends (about "
    "8 MiB when it imported trio); 3.14 keeps none. A program that starts and ends actors all "
    "the time grows without bound on 3.13: use the worker pool (subactor.run_sync / "
    "open_worker_pool), whose workers are reused, or Python 3.14.")


class _TooOld(types.ModuleType):
    """Stands in for the C core on an unsupported Python: any use explains."""

    class ActorInterrupted(BaseException):
        pass

    class AbandonedActorWarning(RuntimeWarning):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(TOO_OLD)


def install_stub() -> None:
    """On Python < 3.13: warn once and put :class:`_TooOld` in place of
    ``subactor._ext``, so that ``import subactor`` works and says why."""
    import warnings

    warnings.warn(TOO_OLD, RuntimeWarning, stacklevel=3)
    sys.modules.setdefault("subactor._ext", _TooOld("subactor._ext"))
