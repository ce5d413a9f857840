"""The built wheel as a user gets it: `make wheel` (an sdist, a wheel built
from it, repaired by auditwheel into a manylinux wheel), installed into a
clean virtual environment with no source tree in sight; an example and
`python -m subactor doctor` run there.

It runs in `make wheel-test` (which builds the wheel first), or in any
pytest run when SUBACTOR_WHEEL_TEST=1; in `make test` it is skipped: a
wheel build plus a venv with trio installed from the package index takes
about a minute on this machine."""
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.skipif(os.environ.get("SUBACTOR_WHEEL_TEST") != "1",
                                reason="run by `make wheel-test` (SUBACTOR_WHEEL_TEST=1)")


def _one(pattern):
    found = glob.glob(str(ROOT / pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_sdist_carries_what_its_tests_need():
    names = tarfile.open(_one("build/dist/subactor-*.tar.gz")).getnames()
    top = names[0].split("/")[0]
    for want in ["LICENSE", "Makefile", "setup.py", "csrc/common.h", "tests/conftest.py", "tests/helpers.py",
                 "tests/remote.py", "examples/parallel_map.py", "tools/find-python", "src/subactor/__init__.pyi"]:
        assert f"{top}/{want}" in names, want
    assert not [n for n in names if n.endswith(".so") or "/build/" in n]


def test_wheel_is_manylinux_and_installs_and_runs_in_a_clean_venv(tmp_path):
    wheel = _one("build/wheelhouse/subactor-*-manylinux_*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("subactor/_ext.") and n.endswith(".so") for n in names)
    assert "subactor/py.typed" in names and "subactor/__init__.pyi" in names
    # Every package and every type stub of the source tree.
    src = ROOT / "src"
    for f in [*src.glob("subactor/**/__init__.py"), *src.glob("subactor/**/*.pyi")]:
        assert f.relative_to(src).as_posix() in names, f
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", wheel], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # No source tree: a fresh folder, and a Python that does not see ROOT.
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "parallel_map.py", work)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def run(*args):
        return subprocess.run([py, *args], capture_output=True, text=True, timeout=180, cwd=str(work), env=env)

    r = run("-c", "import subactor, subactor._ext as e; print(e.__file__)")
    assert r.returncode == 0, r.stderr
    assert str(venv) in r.stdout and str(ROOT) not in r.stdout, r.stdout
    r = run("parallel_map.py")
    assert r.returncode == 0 and "33860 primes below 400000" in r.stdout, r.stderr
    r = run("-m", "subactor", "doctor")
    assert r.returncode == 0, r.stderr
    assert "trio runs in an actor: yes" in r.stdout and "asyncio runs in an actor: yes" in r.stdout
    r = run("-m", "subactor", "--version")
    assert r.stdout.strip() == "subactor 0.1.0", r.stdout
