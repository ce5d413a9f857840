"""Functions of the program's ``__main__`` script in actors: a script
without the ``if __name__ == "__main__":`` guard gets an error that names
the fix (no recursive spawn); functions of a script work at every depth of
the tree; functions of ``python -c`` code too (its code is
written to a private file that actors load); a script read from stdin gets
an error saying why."""
import os
import subprocess
import sys
import textwrap


SCRIPT = '''
import trio
import subactor


def leaf(n):
    return n + 1


async def mid(n):
    async with subactor.open_nursery() as an:
        p = await an.run_in_actor(leaf, n=n)
        return await p.wait_for_result()


async def main():
    async with subactor.open_nursery() as an:
        p = await an.run_in_actor(mid, n=3)
        print("grandchild says", await p.wait_for_result(), flush=True)
'''
GUARDED = SCRIPT + '\n\nif __name__ == "__main__":\n    trio.run(main)\n'
UNGUARDED = SCRIPT + '\n\nprint("script body ran", flush=True)\ntrio.run(main)\n'


def _run(argv, tmp_path, stdin=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=str(tmp_path), input=stdin)


def test_function_of_main_runs_in_a_grandchild(tmp_path):
    (tmp_path / "prog.py").write_text(GUARDED)
    out = _run([sys.executable, "prog.py"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "grandchild says 4" in out.stdout


def test_script_without_main_guard_gets_an_error_naming_the_fix(tmp_path):
    (tmp_path / "prog.py").write_text(UNGUARDED)
    out = _run([sys.executable, "prog.py"], tmp_path)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert 'if __name__ == "__main__":' in out.stderr, out.stderr
    assert "starts actors when it is imported" in out.stderr, out.stderr
    assert "no import spec" not in out.stderr, out.stderr
    # The program's own run and one load by the child actor: no deeper spawns.
    assert out.stdout.count("script body ran") == 2, out.stdout


def test_script_on_stdin_gets_an_error_saying_why(tmp_path):
    out = _run([sys.executable, "-"], tmp_path, stdin=GUARDED)
    assert out.returncode == 1
    assert "read from '<stdin>', not from a file" in out.stderr, out.stderr
    assert "FileNotFoundError" not in out.stderr, out.stderr


def _dash_c(code, tmp_path):
    # TMPDIR in tmp_path: the copy of the -c code is written there, and must be gone at exit.
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=60, cwd=str(tmp_path), env=env)
    assert list((tmp_path / "tmp").iterdir()) == [], "the copy of the -c code outlived the program"
    return out


def test_functions_of_dash_c_code_run_at_every_depth(tmp_path):
    code = SCRIPT + """
async def more():
    print("pool says", await subactor.run_sync(leaf, 9), flush=True)
    print("one-shot says", await subactor.run_in_subinterpreter(leaf, 10), flush=True)
    async with subactor.open_nursery() as an:
        p = await an.run_in_actor(mid, n=5, backend="process")
        print("process grandchild says", await p.wait_for_result(), flush=True)


if __name__ == "__main__":
    trio.run(main)
    trio.run(more)
"""
    out = _dash_c(code, tmp_path)
    assert out.returncode == 0, out.stderr
    for line in ("grandchild says 4", "pool says 10", "one-shot says 11", "process grandchild says 6"):
        assert line in out.stdout, (line, out.stdout, out.stderr)


def test_dash_c_code_without_main_guard_gets_an_error_naming_the_fix(tmp_path):
    out = _dash_c(UNGUARDED, tmp_path)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert 'if __name__ == "__main__":' in out.stderr, out.stderr
    assert "starts actors when it is imported" in out.stderr, out.stderr
    assert out.stdout.count("script body ran") == 2, out.stdout


def test_dash_c_code_is_found_only_from_a_plain_command_line(monkeypatch):
    from subactor import _main_script

    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-X", "dev", "-c", "print(1)"])
    assert _main_script.dash_c_code() == "print(1)"
    monkeypatch.setattr(sys, "argv", ["-c", "arg"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-c", "print(1)", "arg"])
    assert _main_script.dash_c_code() == "print(1)"
    monkeypatch.setattr(sys, "orig_argv", ["python", "-Ic", "print(1)", "-c", "arg"])  # -c run together
    assert _main_script.dash_c_code() is None
    monkeypatch.setattr(sys, "argv", ["prog.py"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "prog.py", "-c", "x"])
    assert _main_script.dash_c_code() is None
