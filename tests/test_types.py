"""The public API as a type checker sees it: the README example is clean
under `mypy --strict`, ``@subactor.context`` keeps the decorated function's
signature, the context managers yield what they say, and
`pyright --verifytypes subactor` (basedpyright, which bundles pyright and
gets node from PyPI: no npm download) finds the public API typed. mypy and
basedpyright are pinned in the dev extras."""
import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

# The public symbols whose type verifytypes may not call known, each for a
# reason (anything else that loses its type fails the test below):
ALLOWED_INCOMPLETE = {
    # subactor._spawn._sockend (the spawn layer): SocketEnd.send/send_nowait's
    # `data` and __del__ are not annotated there yet.
    "subactor.ipc.SocketEnd",
}
# ... and the score that `make test` holds the package to.
MIN_SCORE = 0.95


def _shared_cache(tmp_path) -> str:
    # One mypy cache for the whole run, in the run's own temporary folder
    # (fresh each run): trio's and subactor's stubs are analysed once, not
    # once per check; each program is still checked in full.
    return str(tmp_path.parent / "mypy-cache")


def _mypy(tmp_path, code):
    pytest.importorskip("mypy")
    (tmp_path / "prog.py").write_text(code)
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                           _shared_cache(tmp_path), "prog.py"], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))


def _readme_code():
    return re.search(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M).group(1)


def test_readme_example_is_clean_under_mypy_strict(tmp_path):
    r = _mypy(tmp_path, _readme_code())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout


def test_context_decorator_keeps_the_signature(tmp_path):
    r = _mypy(tmp_path, '''
import subactor


@subactor.context
async def echo(ctx: subactor.Context, prefix: str, n: int = 1) -> str:
    return prefix * n


@subactor.stream
async def feed(ctx: subactor.Context) -> None:
    pass


reveal_type(echo)
reveal_type(feed)
''')
    assert ('def (ctx: subactor._context.Context, prefix: str, n: int =) -> '
            'typing.Coroutine[Any, Any, str]') in r.stdout, r.stdout
    assert "def (ctx: subactor._context.Context) -> typing.Coroutine[Any, Any, None]" in r.stdout, r.stdout


def _verifytypes(tmp_path):
    pytest.importorskip("basedpyright")
    # verifytypes finds the package through the `python` on PATH: this venv's.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run([sys.executable, "-m", "basedpyright", "--verifytypes", "subactor", "--ignoreexternal",
                        "--outputjson"], capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert r.stdout.lstrip().startswith("{"), r.stdout + r.stderr
    return json.loads(r.stdout)["typeCompleteness"]


def test_verifytypes_finds_the_public_api_typed(tmp_path):
    report = _verifytypes(tmp_path)
    assert report["pyTypedPath"], "no py.typed found: verifytypes saw no package"
    counts = report["exportedSymbolCounts"]
    assert counts["withKnownType"] > 150, counts   # it saw the package, not an empty one
    incomplete = {s["name"]: [d["message"].splitlines()[0] for d in s["diagnostics"]
                              if "docstring" not in d["message"]]
                  for s in report["symbols"] if s["isExported"] and not s["isTypeKnown"]}
    lost = {k: v for k, v in incomplete.items() if k not in ALLOWED_INCOMPLETE}
    assert not lost, f"public names whose type is not known: {json.dumps(lost, indent=1)}"
    assert report["completenessScore"] >= MIN_SCORE, (report["completenessScore"], counts)


def test_the_context_managers_and_calls_have_precise_types(tmp_path):
    # assert_type fails under mypy when a type is Any or differs; the one
    # `type: ignore` must be needed (--strict warns on an unused one), so
    # the pool's run_sync checks the arguments against the function's.
    r = _mypy(tmp_path, PRECISE)
    assert r.returncode == 0, r.stdout + r.stderr


PRECISE = '''
from typing import Any, assert_type

import subactor
from subactor import Actor, ActorNursery, Context, MsgStream, Portal, WorkerPool


@subactor.context
async def child(ctx: Context, n: int) -> str:
    await ctx.started(n)
    async with ctx.open_stream() as stream:
        assert_type(stream, MsgStream)
        async for v in stream:
            await stream.send(v)
    return "done"


async def add(x: int, y: int) -> int:
    return x + y


def mul(x: int, y: int) -> float:
    return x * y * 1.0


async def main() -> None:
    async with subactor.open_root_actor() as root:
        assert_type(root, Actor)
    async with subactor.open_nursery() as an:
        assert_type(an, ActorNursery)
        portal = await an.start_actor("a", enable_modules=[__name__])
        assert_type(portal, Portal)
        assert_type(await portal.run(add, x=1, y=2), int)
        assert_type(await portal.run(mul, x=1, y=2), float)
        async with portal.open_context(child, n=3) as (ctx, first):
            assert_type(ctx, Context)
            assert_type(first, Any)
            async with ctx.open_stream() as stream:
                assert_type(stream, MsgStream)
                assert_type(stream.ctx, Context)
            assert_type(ctx.canceller, tuple[str, str] | None)
        assert_type(await portal.cancel_actor(), bool)
    async with subactor.open_worker_pool(2) as pool:
        assert_type(pool, WorkerPool)
        assert_type(await pool.run_sync(mul, 2, 3), float)
        await pool.run_sync(mul, 2, "x")  # type: ignore[arg-type]
    assert_type(await subactor.run_sync(mul, 2, 3), float)
'''


def test_pyright_agrees_on_the_readme_the_typed_program_and_the_precise_types(tmp_path):
    # The same programs under pyright (basedpyright, its standard mode):
    # its checker reads the stubs on its own terms (overloads, TypeVarTuple,
    # dataclass_transform) and must find no error either.
    pytest.importorskip("basedpyright")
    (tmp_path / "readme.py").write_text(_readme_code())
    (tmp_path / "precise.py").write_text(PRECISE)
    (tmp_path / "typed_program.py").write_text((ROOT / "tests" / "typed_program.py").read_text())
    (tmp_path / "pyrightconfig.json").write_text('{"typeCheckingMode": "standard"}')
    r = subprocess.run([sys.executable, "-m", "basedpyright", "--pythonpath", sys.executable, "--outputjson",
                        "readme.py", "precise.py", "typed_program.py"],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    report = json.loads(r.stdout)
    errors = [f"{d['file'].rsplit('/', 1)[-1]}:{d['range']['start']['line'] + 1}: {d['message']}"
              for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert report["summary"]["filesAnalyzed"] == 3, report["summary"]
    assert not errors, "\n".join(errors)


# The modules whose types come from a .pyi stub beside them (their own
# annotations are not read by a type checker).
STUBBED = ["subactor._decorators", "subactor._tree", "subactor._context", "subactor._portal", "subactor._pool",
           "subactor._transport", "subactor.msg._codec", "subactor.msg._struct"]


def test_the_stubs_match_the_runtime(tmp_path):
    # mypy's stubtest imports each module and compares it with its stub: a
    # name, parameter or default the stub lacks or invents fails here, so a
    # stub cannot drift from the code it describes.
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--allowlist", str(ROOT / "tests" / "stubtest-allowlist.txt"),
                        *STUBBED], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_context_with_a_payload_spec_keeps_the_signature(tmp_path):
    r = _mypy(tmp_path, '''
import subactor


@subactor.context(pld_spec=int)
async def child(ctx: subactor.Context, n: int) -> str:
    await ctx.started(n)
    return "x"


reveal_type(child)
''')
    assert r.returncode == 0, r.stdout
    assert "def (ctx: subactor._context.Context, n: int) -> typing.Coroutine[Any, Any, str]" in r.stdout, r.stdout
