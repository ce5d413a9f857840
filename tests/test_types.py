"""The public API as a `mypy --strict` user sees it: the README example is
clean, and ``@subactor.context`` keeps the decorated function's signature
(mypy is pinned in the dev extras)."""
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("mypy")


def _mypy(tmp_path, code):
    (tmp_path / "prog.py").write_text(code)
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir",
                           str(tmp_path / ".mypy_cache"), "prog.py"], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))


def test_readme_example_is_clean_under_mypy_strict(tmp_path):
    code = re.search(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M).group(1)
    r = _mypy(tmp_path, code)
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
