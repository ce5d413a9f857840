"""The debugger (subactor.devx), driven as a user would: each test runs an
example program of examples/debugging/ in a pseudo-terminal (pexpect runs
it in a child process) and types at its REPLs. Every wait is bounded by
pexpect's timeout; a failure shows what the terminal printed."""
import os
import re
import sys
import time

import pytest

from .conftest import ROOT

pexpect = pytest.importorskip("pexpect")

EXAMPLES = ROOT / "examples" / "debugging"
PROMPT = r"\(Pdb\+\) "
TIMEOUT = 30   # per expect; the machine is busy, a REPL opens in well under a second idle


class Term:
    """A program on a pseudo-terminal, with the dialogue kept for the
    failure message."""

    def __init__(self, script: str, *args: str):
        env = dict(os.environ, PYTHON_COLORS="0", NO_COLOR="1", TERM="dumb")
        self.child = pexpect.spawn(sys.executable, [str(EXAMPLES / script), *args], cwd=str(ROOT), env=env,
                                   timeout=TIMEOUT, encoding="utf-8", codec_errors="replace")
        self.log: list[str] = []

    def expect(self, pattern) -> str:
        try:
            self.child.expect(pattern)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            pytest.fail(f"waiting for {pattern!r}: {type(exc).__name__}\n--- dialogue so far ---\n"
                        + "".join(self.log) + "\n--- unmatched terminal output ---\n" + str(self.child.before))
        seen = self.child.before + (self.child.after if isinstance(self.child.after, str) else "")
        self.log.append(seen)
        return self.child.before

    def prompt(self) -> str:
        """Wait for a REPL prompt; returns what came before it."""
        return self.expect(PROMPT)

    def send(self, line: str) -> None:
        self.log.append(f"<<typed {line!r}>>")
        self.child.sendline(line)

    def ctrl_c(self) -> None:
        self.log.append("<<Ctrl-C>>")
        self.child.sendcontrol("c")

    def end(self) -> int:
        self.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        """Kill it if it still runs, and close the terminal (its descriptor
        would count as a leak)."""
        self.child.close(force=True)


@pytest.fixture
def term():
    made = []

    def spawn(script, *args):
        t = Term(script, *args)
        made.append(t)
        return t

    yield spawn
    for t in made:
        t.close()


def test_pause_in_a_child_continue_then_quit(term):
    t = term("subactor_breakpoint.py")
    before = t.prompt()
    assert "Opening a pdb REPL in paused actor ('pause_in_a_loop'" in before
    for _ in range(3):   # each `c` continues; the loop pauses again
        t.send("c")
        assert "Opening a pdb REPL in paused actor ('pause_in_a_loop'" in t.prompt()
    t.send("q")
    # The quit ends that actor's call with BdbQuit; the root then opens its
    # own post-mortem REPL on the RemoteActorError.
    before = t.prompt()
    assert "Opening a pdb REPL in crashed actor ('root'" in before
    assert "RemoteActorError" in before and "BdbQuit" in before and "'pause_in_a_loop'" in before
    t.send("c")
    assert t.end() != 0


def test_the_prompt_names_the_actor(term):
    t = term("grandchild_pause.py")
    t.expect(r"grandchild \(Pdb\+\) ")
    t.send("c")
    t.end()


def test_pause_in_a_grandchild(term):
    t = term("grandchild_pause.py")
    before = t.prompt()
    assert "paused actor ('grandchild'" in before
    assert "-> await subactor.pause()" in before
    t.send("p x + 1")
    assert "43" in t.prompt()
    t.send("c")
    t.expect("grandchild returned 42")
    assert t.end() == 0


def test_two_pauses_are_served_one_after_the_other(term):
    t = term("two_pauses.py")
    before = t.prompt()
    assert before.count("paused actor") == 1, before
    first = re.search(r"paused actor \('(first|second)'", before).group(1)
    # The other one waits for the lock: nothing of it shows while this REPL is open.
    time.sleep(1.5)
    t.send("p 'still here'")
    before = t.prompt()
    assert "still here" in before and "paused actor" not in before
    t.send("c")
    # The second REPL opens when the first continues, while that actor is
    # still alive (it sleeps 3 s before it ends).
    before = t.prompt()
    second = re.search(r"paused actor \('(first|second)'", before).group(1)
    assert {first, second} == {"first", "second"}
    assert "ending" not in before, before
    t.send("c")
    t.expect("results a b")
    assert t.end() == 0


@pytest.mark.parametrize("backend,how", [("subint", "async"), ("process", "async"), ("subint", "sync")])
def test_post_mortem_in_an_actor(term, backend, how):
    # "sync": a sync function's call in a trio-mode actor (run in its
    # message loop) opens the REPL as any failed call does.
    t = term("pm_in_actor.py", backend, how)
    before = t.prompt()
    assert "Opening a pdb REPL in crashed actor ('crasher'" in before
    assert "NameError: boom with the value" in before
    assert 'raise NameError(f"boom with {doomed}")' in before   # at the raise
    t.send("p doomed")
    assert "'the value'" in t.prompt()
    t.send("c")
    # Then the error goes on: the root's own post-mortem REPL, on the remote error.
    before = t.prompt()
    assert "crashed actor ('root'" in before and "RemoteActorError" in before
    t.send("c")
    assert t.end() != 0


def test_ctrl_c_while_a_repl_is_open_goes_to_the_repl(term):
    t = term("grandchild_pause.py")
    t.prompt()
    t.ctrl_c()
    assert "Ignoring SIGINT while a pdb REPL is open" in t.prompt()
    t.ctrl_c()
    t.prompt()
    t.send("p x")
    assert "42" in t.prompt()
    t.send("c")
    t.expect("grandchild returned 42")   # the tree was not torn down
    assert t.end() == 0


def test_ctrl_c_after_the_repl_cancels_the_tree(term):
    t = term("pause_then_sleep.py")
    t.prompt()
    t.ctrl_c()   # ignored: the REPL is open
    t.prompt()
    t.send("c")
    t.expect("child sleeping")
    time.sleep(0.5)   # the lock is let go with `c`; the root hears it soon after
    start = time.monotonic()
    t.ctrl_c()
    before = t.expect(pexpect.EOF)
    t.child.close()
    assert "KeyboardInterrupt" in before
    assert t.child.exitstatus != 0 or t.child.signalstatus is not None
    assert time.monotonic() - start < TIMEOUT


def test_an_actor_that_dies_holding_the_lock_releases_it(term):
    t = term("holder_dies.py")
    assert "paused actor ('doomed'" in t.prompt()
    # The nursery takes it down the ladder (its REPL ignores the interrupt):
    # killed, its hub channel ends, the lock goes; the next pause gets it.
    t.expect("the holder is gone")
    assert "paused actor ('later'" in t.prompt()
    t.send("c")
    t.expect("result later")
    assert t.end() == 0


def test_pause_without_debug_mode_is_a_clear_error():
    import subactor

    with pytest.raises(RuntimeError, match="debugger is off"):
        subactor.pause_from_sync()


def test_stack_on_sig_dumps_every_actor():
    import subprocess

    out = subprocess.run([sys.executable, str(EXAMPLES / "stack_on_sig.py")], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT), env=dict(os.environ, PYTHON_COLORS="0"))
    assert out.returncode == 0, out.stderr
    err = out.stderr
    assert re.search(r"- actor \('sleeper', '[0-9a-f]{32}'\) pid \d+ backend subint: state running", err), err
    assert "the root's trio tasks" in err and "in main" in err, err
    # the actor's own dump: its trio tasks, down to the call it runs
    assert re.search(r"actor \('sleeper', '[0-9a-f]{32}'\) \(subint\) Python stacks", err), err
    assert "in waits_for_ever" in err, err


def test_enable_stack_on_sig_checks_its_input():
    from subactor import devx

    with pytest.raises(TypeError, match="signal number"):
        devx.enable_stack_on_sig("USR1")


def test_post_mortem_and_open_crash_handler(term):
    t = term("crash_handler.py")
    # the actor's own await subactor.post_mortem() in its except block ...
    before = t.prompt()
    assert "crashed actor ('handler'" in before and "KeyError: 'missing'" in before
    t.send("c")
    # ... then the runtime's crash REPL, as the error goes on
    assert "crashed actor ('handler'" in t.prompt()
    t.send("c")
    t.expect("the root caught KeyError")
    # open_crash_handler() around sync code in the root, after the tree
    before = t.prompt()
    assert "crashed actor ('root'" in before and "AssertionError: seven is not eight" in before
    t.send("p value")
    assert "7" in t.prompt()
    t.send("c")
    t.expect("the assertion went on")
    assert t.end() == 0


def test_a_cancelled_lock_request_is_dropped(term):
    t = term("waiter_cancelled.py")
    assert "paused actor ('holder'" in t.prompt()
    t.expect("the waiter's call is cancelled")
    t.send("c")
    t.expect("got holder")
    # The terminal is free: the holder's next pause gets it (a request left
    # behind by the cancelled call would hold it for good).
    before = t.prompt()
    assert "paused actor ('holder'" in before
    assert "paused actor ('waiter'" not in "".join(t.log)
    t.send("c")
    t.expect("again holder")
    assert t.end() == 0


def test_term_lock_serves_in_order_and_forgets_the_gone():
    from subactor.devx._lock import TermLock

    lock = TermLock()
    granted = []
    lock.request(("a", "1"), lambda: granted.append("a"))
    lock.request(("b", "2"), lambda: granted.append("b"))
    lock.request(("c", "3"), lambda: granted.append("c"))
    assert granted == ["a"] and lock.holder == ("a", "1")
    lock.release(("b", "2"))            # b gives up waiting: it is never served
    lock.drop(("a", "1"))               # a's actor is gone while it holds it
    assert granted == ["a", "c"] and lock.holder == ("c", "3")
    lock.release(("c", "3"))
    assert lock.holder is None
    assert lock.try_acquire(("root", "0")) and not lock.try_acquire(("x", "9"))


def test_open_crash_handler_box_and_raise_on_exit():
    from contextlib import contextmanager

    from subactor import devx

    seen = []

    @contextmanager
    def no_repl(repl, maybe_bxerr=None):   # tractor's repl_fixture: stands in for the REPL
        seen.append(("pre", type(repl).__name__))
        yield False
        seen.append("post")

    with pytest.raises(KeyError):
        with devx.open_crash_handler(repl_fixture=no_repl) as box:
            raise KeyError("k")
    assert isinstance(box.value, KeyError)
    with devx.open_crash_handler(raise_on_exit=[ValueError], repl_fixture=no_repl) as box:
        raise LookupError("only exactly ValueError goes on")
    assert isinstance(box.value, LookupError)
    with devx.open_crash_handler(raise_on_exit=False, repl_fixture=no_repl) as box:
        pass
    assert box.value is None
    assert seen == [("pre", "PdbREPL"), "post", ("pre", "PdbREPL"), "post"]
