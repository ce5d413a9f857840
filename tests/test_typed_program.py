"""tests/typed_program.py, a program that uses every public name, is clean
under ``mypy --strict`` (pinned in the dev extras): a public name that loses
its type, or whose type changes, fails here."""
import importlib
import re
import subprocess
import sys

import pytest

import subactor

from .conftest import ROOT

PROGRAM = ROOT / "tests" / "typed_program.py"

# The public submodules, by the name the program imports each as.
SUBMODULES = {
    "devx": "devx",
    "devx.debug": "debug",
    "discovery": "discovery",
    "ipc": "ipc",
    "log": "log",
    "msg": "msg",
    "msg.types": "msg_types",
    "runtime": "runtime",
    "to_asyncio": "to_asyncio",
    "trionics": "trionics",
}


def _public_names():
    yield from (("subactor", n) for n in subactor.__all__)
    for mod, alias in SUBMODULES.items():
        yield from ((alias, n) for n in importlib.import_module(f"subactor.{mod}").__all__)


def test_the_program_names_every_public_name():
    src = PROGRAM.read_text()
    missing = [f"{alias}.{n}" for alias, n in _public_names() if not re.search(rf"\b{alias}\.{n}\b", src)]
    assert not missing, f"tests/typed_program.py does not use: {missing}"
    assert len(list(_public_names())) > 150


def test_every_public_submodule_is_covered():
    # A new public submodule (one with an __all__, imported by subactor/__init__.pyi) joins SUBMODULES.
    stub = (ROOT / "src" / "subactor" / "__init__.pyi").read_text()
    imported = set(re.findall(r"^\s+(\w+) as \1,$", stub.split("from subactor._context")[0], re.M))
    assert imported == {m for m in SUBMODULES if "." not in m}, imported


def _shared_cache(tmp_path) -> str:
    # One mypy cache for the whole run, in the run's own temporary folder
    # (fresh each run): trio's and subactor's stubs are analysed once, not
    # once per check; each program is still checked in full.
    return str(tmp_path.parent / "mypy-cache")


def _mypy(tmp_path, path):
    pytest.importorskip("mypy")
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                           _shared_cache(tmp_path), str(path)], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))


def test_the_program_is_clean_under_mypy_strict(tmp_path):
    r = _mypy(tmp_path, PROGRAM)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout


def test_a_wrong_type_in_the_program_fails(tmp_path):
    # The checks are live: the program with one expected type wrong is refused.
    src = PROGRAM.read_text()
    wrong = "assert_type(await portal.run(add, x=1), str)"
    bad = src.replace("assert_type(await portal.run(add, x=1), int)", wrong)
    assert wrong in bad
    (tmp_path / "typed_program.py").write_text(bad)
    r = _mypy(tmp_path, tmp_path / "typed_program.py")
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'Expression is of type "int", not "str"' in r.stdout, r.stdout
