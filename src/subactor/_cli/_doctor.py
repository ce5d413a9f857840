"""`python -m subactor doctor`: can this Python run subactor's actors, and
which installed extension modules need the process backend?

Every installed extension module (the standard library's lib-dynload and
the top-level packages of site-packages that ship compiled code) is
imported once inside an own-GIL subinterpreter actor. Importing runs the
modules' code, as any import does; each probe is bounded by a deadline.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import time

# One actor per module: a failed import can leave CPython state behind in
# that interpreter (two refused single-phase modules in one interpreter
# were seen to corrupt the heap at process exit), so each probe gets a
# fresh interpreter.
PROBE = """
import importlib
from subactor import _ext
from subactor._exceptions import refused_module
name = _ext.actor_input().decode()
try:
    importlib.import_module(name)
    res = ("ok", "")
except BaseException as exc:
    mod = refused_module(exc)
    res = ("refuses", mod) if mod is not None else ("error", f"{type(exc).__name__}: {exc}"[:120])
_ext.set_result(_ext.dumps(res))
"""


def pyc_is_current(path: str) -> bool:
    """True if the source ``path`` has a .pyc that the import system takes
    as it is: the right magic number and, for a timestamp pyc, the
    source's mtime and size in its header (a hash-based one is left to its
    own check). Without one, every actor that imports the module compiles
    it itself."""
    import importlib.util

    try:
        st = os.stat(path)
        with open(importlib.util.cache_from_source(path), "rb") as f:
            head = f.read(16)
    except (OSError, ValueError, NotImplementedError):
        return False
    if len(head) < 16 or head[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(head[4:8], "little") != 0:
        return True
    return (int.from_bytes(head[8:12], "little") == (int(st.st_mtime) & 0xFFFFFFFF)
            and int.from_bytes(head[12:16], "little") == (st.st_size & 0xFFFFFFFF))


def stale_bytecode(root: str) -> list[str]:
    """The .py files under ``root`` (relative paths) with no current .pyc
    (see pyc_is_current)."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(d, f)
                if not pyc_is_current(path):
                    out.append(os.path.relpath(path, root))
    return out


def bytecode_note(root: str) -> str | None:
    """A warning when subactor's own modules lack current .pyc files and
    nothing will write them (PYTHONDONTWRITEBYTECODE, or -B): each actor
    then compiles them itself, and what the compiler leaves behind stays in
    the actor (measured: ~0.9 MiB more RSS per idle actor when none has
    one, 3.58 against 2.68 MiB). None when that is not the case."""
    if not sys.dont_write_bytecode:
        return None   # the first import writes them; later actors load them
    stale = stale_bytecode(root)
    if not stale:
        return None
    return (f"{len(stale)} of subactor's modules have no current .pyc and PYTHONDONTWRITEBYTECODE is set "
            f"(e.g. {', '.join(stale[:3])}): every actor compiles them itself, up to ~0.9 MiB more memory "
            f"per actor; write them with `{os.path.basename(sys.executable)} -m compileall {root}` "
            f"(in a source checkout: make)")


def extension_modules() -> list[str]:
    """Top-level names of installed modules that contain compiled code."""
    suffixes = (".so", ".pyd")
    names: set[str] = set()
    for d in [p for p in sys.path if p.endswith("lib-dynload")]:
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(suffixes):
                    names.add(f.split(".", 1)[0])
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        if not os.path.isdir(site):
            continue
        for entry in os.listdir(site):
            path = os.path.join(site, entry)
            if entry.endswith(suffixes):
                names.add(entry.split(".", 1)[0])
            elif os.path.isdir(path) and entry.isidentifier() and os.path.exists(os.path.join(path, "__init__.py")):
                for root, _dirs, files in os.walk(path):
                    if any(f.endswith(suffixes) for f in files):
                        names.add(entry)
                        break
    # Test-only and main-interpreter-only modules are not worth probing.
    skip = {"_testcapi", "_testinternalcapi", "_testmultiphase", "_testsinglephase", "_testbuffer",
            "_testimportmultiple", "_testclinic", "_testexternalinspection", "_ctypes_test", "xxlimited",
            "xxlimited_35", "xxsubtype", "_xxtestfuzz", "_testclinic_limited", "_testlimitedcapi", "subactor"}
    return sorted(n for n in names - skip if n.isidentifier())


def own_gil_works() -> tuple[bool, str]:
    from subactor import _ext

    a = _ext.spawn("import sys\nfrom subactor import _ext\n_ext.set_result(b'ok')", name="doctor-check")
    if not a.join(30, abandon=False):
        a.abandon()
        return False, "an actor did not start within 30 s"
    out = a.outcome()
    return out == ("ok", b"ok"), str(out[:3])


async def _trio_answer() -> str:
    import trio

    await trio.sleep(0)
    return "ok"


async def _asyncio_answer() -> str:
    import asyncio

    from subactor import to_asyncio

    async def aio() -> str:
        await asyncio.sleep(0)
        return "ok"

    return await to_asyncio.run_task(aio)


def runs_in_actor(what: str, limit: float = 60.0) -> tuple[bool, str]:
    """(True, "") when an actor of the public API answers "ok" from trio
    (``what="trio"``) or from asyncio in an infected actor, within
    ``limit`` seconds, else (False, what happened)."""
    import trio

    import subactor

    fn = _trio_answer if what == "trio" else _asyncio_answer

    async def main() -> str:
        with trio.fail_after(limit):
            async with subactor.open_nursery() as an:
                p = await an.run_in_actor(fn, name=f"doctor-{what}", infect_asyncio=(what == "asyncio"))
                return await p.wait_for_result()

    try:
        got = trio.run(main)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:200]
    return got == "ok", "" if got == "ok" else repr(got)[:200]


def main(timeout: float = 20.0) -> int:
    from subactor import _pyver

    print(f"Python {sys.version.split()[0]} ({sys.executable})")
    ok = sys.version_info >= _pyver.MIN
    print(f"  supported version (Python >= 3.13): {'yes' if ok else 'NO'}")
    if not ok:
        print(f"  {_pyver.TOO_OLD}")
        return 1
    from subactor import _ext

    works, detail = own_gil_works()
    print(f"  own-GIL subinterpreter actor starts and answers: {'yes' if works else 'NO: ' + detail}")
    if not works:
        return 1
    for what in ("trio", "asyncio"):
        works, detail = runs_in_actor(what)
        print(f"  {what} runs in an actor: {'yes' if works else 'NO: ' + detail}")
        if not works:
            return 1
    if sys.version_info[:2] == (3, 13):
        print(f"  WARNING: {_pyver.LEAK_NOTE}")
    note = bytecode_note(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(f"  subactor's modules load from bytecode in an actor: {'yes' if note is None else 'NO'}")
    if note is not None:
        print(f"  WARNING: {note}")
    names = extension_modules()
    print(f"Probing {len(names)} installed extension modules in an own-GIL subinterpreter ...", flush=True)
    t0 = time.monotonic()
    results = []
    for i, name in enumerate(names, 1):
        print(f"\r  [{i}/{len(names)}] {name:<30}", end="", flush=True)
        a = _ext.spawn(PROBE, name=f"doctor-{name}", label=f"import {name}", input=name.encode())
        if not a.join(timeout, abandon=False):
            a.abandon()
            results.append((name, "error", f"import did not finish within {timeout:.0f} s"))
            continue
        out = a.outcome()
        if out[0] != "ok":
            results.append((name, "error", f"{out[1]}: {out[2]}"[:120]))
            continue
        kind, detail = _ext.loads(out[1])
        results.append((name, kind, detail))
    print("\r" + " " * 60 + "\r", end="")
    refuse = [(n, m) for n, k, m in results if k == "refuses"]
    errors = [(n, m) for n, k, m in results if k == "error"]
    fine = [n for n, k, _ in results if k == "ok"]
    print(f"  done in {time.monotonic() - t0:.1f} s: {len(fine)} load, {len(refuse)} need "
          f"backend=\"process\", {len(errors)} fail to import for other reasons")
    if refuse:
        print("Need backend=\"process\":")
        for n, m in refuse:
            print(f"  {n:<24} ({m} refuses own-GIL subinterpreters)")
    if errors:
        print("Fail to import in an actor for another reason (check them in the main interpreter too):")
        for n, m in errors:
            print(f"  {n:<24} {m}")
    return 0
