"""`python -m subactor demo | doctor | bench` as a user runs them (in a child:
the demo abandons an actor on purpose)."""

import os
import subprocess
import sys

import pytest

from .conftest import ROOT, run_child


def test_demo_runs_and_shows_the_ladder():
    r = run_child("import sys, subactor.__main__ as m; sys.exit(m.main(['demo', '--mb', '16']))", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "results identical" in r.stdout
    assert "rung 1 (cooperative cancel" in r.stdout
    assert "rung 2 (interrupted" in r.stdout
    assert "rung 3 (abandoned" in r.stdout


def test_doctor_names_modules_needing_the_process_backend():
    r = run_child("import sys, subactor.__main__ as m; sys.exit(m.main(['doctor']))", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "own-GIL subinterpreter actor starts and answers: yes" in r.stdout
    assert "trio runs in an actor: yes" in r.stdout
    assert "asyncio runs in an actor: yes" in r.stdout
    assert "subactor's modules load from bytecode in an actor: yes" in r.stdout   # (make wrote them)
    if sys.version_info[:2] == (3, 13):   # the per-interpreter leak, and the way around it
        assert "WARNING: Python 3.13 keeps" in r.stdout and "worker pool" in r.stdout
    else:
        assert "WARNING" not in r.stdout
    need = r.stdout.split('Need backend="process"', 1)[1]
    assert "readline" in need and "numpy" in need
    assert "\n  _json " not in need  # a module that loads is not listed


def test_bench_rejects_unknown_benchmark_clearly():
    r = run_child("import sys, subactor.__main__ as m; sys.exit(m.main(['bench', 'nope']))", timeout=60)
    assert r.returncode != 0
    assert "unknown benchmark" in r.stderr and "host" in r.stderr


def test_version():
    r = subprocess.run([sys.executable, "-m", "subactor", "--version"], capture_output=True, text=True,
                       timeout=60, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr
    from importlib.metadata import version

    assert r.stdout.strip() == f"subactor {version('subactor')}"


@pytest.mark.parametrize("arg,why", [("0", "must be at least 1, got 0"), ("-3", "must be at least 1, got -3"),
                                     ("lots", "must be a whole number, got 'lots'")])
def test_demo_rejects_a_bad_size_clearly(arg, why):
    r = subprocess.run([sys.executable, "-m", "subactor", "demo", "--mb", arg], capture_output=True, text=True,
                       timeout=60, cwd=str(ROOT))
    assert r.returncode == 2
    assert f"argument --mb: {why}" in r.stderr, r.stderr


PY312 = "/root/.pyenv/versions/3.12.1/bin/python3.12"


@pytest.mark.skipif(not os.path.exists(PY312), reason="no Python 3.12 on this machine")
def test_python_312_is_refused_with_an_explanation_not_an_abort():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([PY312, "-c", "import subactor\nsubactor._ext.spawn"], capture_output=True, text=True,
                       timeout=60, cwd=str(ROOT), env=env)
    assert r.returncode == 1, (r.returncode, r.stderr)   # an exception, not a signal
    assert "RuntimeWarning: subactor needs Python >= 3.13" in r.stderr, r.stderr
    assert "ImportError: subactor needs Python >= 3.13" in r.stderr, r.stderr
    r = subprocess.run([PY312, "-m", "subactor", "doctor"], capture_output=True, text=True, timeout=60,
                       cwd=str(ROOT), env=env)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "supported version (Python >= 3.13): NO" in r.stdout
    assert "_ctypes refuses to load in a subinterpreter" in r.stdout


def test_bench_marks_missed_goals_and_warns_on_a_busy_machine(monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from _table import format_table, progress
    finally:
        sys.path.remove(str(ROOT / "bench"))
    rows = [dict(group="g", case="met", median=1.0, unit="ms", goal_met=True),
            dict(group="g", case="missed", median=9.0, unit="ms", goal_met=False, note="goal <= 5 ms")]
    met, miss = format_table("t", rows).splitlines()[2:]
    assert "MISSED GOAL" not in met and "<< MISSED GOAL >> goal <= 5 ms" in miss
    progress("chan", "ping-pong")   # progress inside a module goes to stderr, not into the rows
    out, err = capsys.readouterr()
    assert out == "" and err.rstrip().endswith("bench_chan: ping-pong"), err
    from subactor._cli import _bench

    monkeypatch.setattr(_bench.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_bench.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    assert "load average 3.50 on 2 cores" in _bench.busy_warning()
    monkeypatch.setattr(_bench.os, "getloadavg", lambda: (0.5, 0.0, 0.0))
    assert _bench.busy_warning() is None


def test_doctor_finds_modules_without_a_current_pyc(tmp_path, monkeypatch):
    """A source with no .pyc, or one changed since its .pyc was written, is
    named (each actor would compile it); a current one is not; the warning
    is given only when nothing writes .pyc files."""
    import py_compile

    from subactor._cli import _doctor

    (tmp_path / "pkg").mkdir()
    for name in ("current", "missing", "changed"):
        (tmp_path / "pkg" / f"{name}.py").write_text("X = 1\n")
    py_compile.compile(str(tmp_path / "pkg" / "current.py"))
    py_compile.compile(str(tmp_path / "pkg" / "changed.py"))
    (tmp_path / "pkg" / "changed.py").write_text("X = 12\n")   # (another size: stale whatever the mtime)
    assert _doctor.stale_bytecode(str(tmp_path)) == [os.path.join("pkg", "changed.py"), os.path.join("pkg", "missing.py")]
    assert _doctor.pyc_is_current(str(tmp_path / "pkg" / "current.py"))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    note = _doctor.bytecode_note(str(tmp_path))
    assert note is not None and note.startswith("2 of subactor's modules") and "compileall" in note
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert _doctor.bytecode_note(str(tmp_path)) is None
