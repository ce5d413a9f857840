"""`python -m subactor demo | doctor | bench` as a user runs them (in a child:
the demo abandons an actor on purpose)."""

from .conftest import run_child


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
    need = r.stdout.split('Need backend="process"', 1)[1]
    assert "readline" in need and "numpy" in need
    assert "\n  _json " not in need  # a module that loads is not listed


def test_bench_rejects_unknown_benchmark_clearly():
    r = run_child("import sys, subactor.__main__ as m; sys.exit(m.main(['bench', 'nope']))", timeout=60)
    assert r.returncode != 0
    assert "unknown benchmark" in r.stderr and "host" in r.stderr
