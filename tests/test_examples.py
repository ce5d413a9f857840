"""Each script of examples/ runs as written, in a process of its own."""
import subprocess
import sys

import pytest

from .conftest import ROOT

EXPECT = {
    "parallel_map.py": ["33860 primes below 400000"],
    "streaming.py": ["squaring up to 10", "5 -> 25", "the actor said: ValueError: 7 is over the limit 3"],
    "discovery.py": ["the worker read back: hello", "the root reads: hello"],
    "asyncio_in_an_actor.py": ["[42, 'ticking', 0, 1, 2]"],
    "typed_messages.py": ["actor refused to send: $.values[0]: expected float, got str",
                          "average: Reading(sensor='s1', values=[22.0], unit='C')",
                          "parent refused to send: $.values: expected list[float], got str"],
}


def test_every_example_is_tested():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(EXPECT)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_example_runs(name):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    for want in EXPECT[name]:
        assert want in out.stdout, (want, out.stdout)
    assert "Traceback" not in out.stderr, out.stderr
