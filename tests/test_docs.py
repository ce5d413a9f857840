"""Every example of README.md and docs/*.md runs as written, straight from
the Markdown: each fenced block whose info string is exactly ``python`` is
saved as a script and run in a process of its own. A fragment that is not
meant to run is fenced as ``python fragment`` (shown the same, not run)."""
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

# What a block prints, by (file, index of its python block).
EXPECT = {
    ("README.md", 0): ["ready > hi", "[", "]"],
}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks():
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        n = 0
        for m in _FENCE.finditer(md.read_text()):
            if m.group(1).strip() == "python":
                yield md.relative_to(ROOT).as_posix(), n, m.group(2)
                n += 1


BLOCKS = list(blocks())


def test_the_readme_example_is_found():
    assert ("README.md", 0) in {(f, i) for f, i, _ in BLOCKS}
    assert set(EXPECT) <= {(f, i) for f, i, _ in BLOCKS}


@pytest.mark.parametrize("where,index,code", BLOCKS, ids=[f"{f}#{i}" for f, i, _ in BLOCKS])
def test_markdown_example_runs_as_written(tmp_path, where, index, code):
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    for want in EXPECT.get((where, index), []):
        assert want in out.stdout, (want, out.stdout)
