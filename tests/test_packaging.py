"""Packaging metadata and the Linux-only guard, as a packager sees them."""
import subprocess
import sys
import sysconfig
import tomllib

import pytest

from .conftest import ROOT

META = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_metadata_is_complete():
    assert META["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert META["requires-python"] == ">=3.13"
    for c in ["Operating System :: POSIX :: Linux", "Programming Language :: Python :: 3.13",
              "Programming Language :: Python :: 3.14", "Framework :: Trio", "Programming Language :: C"]:
        assert c in META["classifiers"], c
    assert META["authors"]
    # Users get a range of trio, the dev extras a pin.
    assert META["dependencies"] == ["trio>=0.26"]
    assert "trio==0.35.0" in META["optional-dependencies"]["dev"]


def test_setup_refuses_a_platform_without_eventfd_at_once():
    code = ("import sys, runpy; sys.platform = 'darwin'; sys.argv = ['setup.py', 'build_ext']; "
            "runpy.run_path('setup.py', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert r.returncode == 1
    assert "subactor supports Linux only (its C core uses eventfd(2)); this is 'darwin'" in r.stderr, r.stderr


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v gcc"], capture_output=True).returncode != 0,
                    reason="no gcc")
def test_c_core_refuses_a_platform_without_eventfd_with_a_clear_message(tmp_path):
    src = tmp_path / "t.c"
    src.write_text('#include "common.h"\n')
    r = subprocess.run(["gcc", "-U__linux__", "-fsyntax-only", f"-I{ROOT / 'csrc'}",
                        f"-I{sysconfig.get_paths()['include']}", str(src)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    first_error = next(line for line in r.stderr.splitlines() if "error" in line)
    assert "subactor supports Linux only: it needs eventfd(2)" in first_error, r.stderr
