"""Functions of the program's ``__main__`` script in actors: a script
without the ``if __name__ == "__main__":`` guard gets an error that names
the fix (no recursive spawn); functions of a script work at every depth of
the tree; a script that is no file (stdin, ``-c``) gets an error saying why."""
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


def test_script_of_dash_c_gets_an_error_saying_why(tmp_path):
    out = _run([sys.executable, "-c", textwrap.dedent(GUARDED)], tmp_path)
    assert out.returncode == 1
    assert "not a file here (an interactive session or python -c)" in out.stderr, out.stderr
