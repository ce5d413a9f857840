"""The cancellation ladder against its deadlines, with the parent's event
loop watched throughout, and Ctrl-C of a tree holding one stuck actor.

Run: .venv/bin/python -m subactor bench ladder   (or bench/bench_ladder.py [--quick])

Four kinds of actor (bench_ladder_remote.STUCK), with grace=0.3 s and
kill_after=0.8 s:

- checkpoint: ``await trio.sleep_forever()``; ends at rung 1, goal: before
  the grace deadline;
- spin: ``while True: pass``; interrupted at rung 2, goal: by grace;
- sleep: ``time.sleep(1000)``; abandoned at rung 3, goal: at kill_after;
- gil_c: ``sum(range(GIL_N))`` again and again, a C call that holds the
  actor's GIL for about 2 s: no interrupt lands until it returns; goal:
  abandoned at kill_after.

For each, 20 samples (5 with --quick), each in a fresh child process
(bench_ladder_child.py; an abandoned actor outlives its ladder):

- "cancel to gone": from ``portal.cancel_actor()`` called to the actor
  ended or abandoned (the ladder over), against the deadline of its kind
  + 20 ms;
- "stall": the longest gap between two wake-ups of a heartbeat task that
  sleeps 1 ms in a loop, from just before the cancel until the ladder is
  over; goal <= 20 ms in every case. "idle" is the same heartbeat over the
  200 ms before the cancel: the machine's own noise;
- "Ctrl-C to exit": a child program whose tree holds one actor of the kind
  prints "ready" once the actor is stuck; it gets SIGINT and is timed until
  it exits; goal <= grace + kill_after + 1 s. A second SIGINT is sent only if
  it has not exited 10 s after the first, SIGKILL at 30 s. Its stderr
  should be a single clean KeyboardInterrupt traceback.

A case misses its goal when its worst sample does (marked MISS); a sample
whose child overran its timeout counts as a failure (FAIL), never a hang.
"""
from __future__ import annotations

import collections
import os
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _child import Child, describe_exit, read_stderr  # noqa: E402
from _table import machine  # noqa: E402

import bench_ladder_remote as remote  # noqa: E402

GRACE = 0.3
KILL_AFTER = 0.8
TOLERANCE = 0.020           # an end may be this late past its deadline
STALL_GOAL = 0.020          # the longest event-loop stall allowed
SIGINT_GOAL = GRACE + KILL_AFTER + 1.0
SECOND_SIGINT_AFTER = 10.0  # generous: long past SIGINT_GOAL
HARD_BOUND = 30.0           # SIGKILL, and the sample is a failure
SAMPLE_TIMEOUT = 30.0
# Kind, the deadline its ladder should end by, and that deadline's name.
GONE = "cancel_actor() called -> actor gone or abandoned"
STALL = "longest event-loop stall during the ladder (heartbeat, 1 ms sleeps)"
CTRL_C = "Ctrl-C: SIGINT -> process exit (a tree of one actor of the kind)"
MASS = "many at once: an.cancel() of idle trio-mode actors, defaults grace 1 s, kill_after 3 s"
MASS_N = 200
GROUPS = [GONE, STALL, CTRL_C, MASS, "reference"]
KINDS = [
    ("checkpoint", GRACE, "grace"),
    ("spin", GRACE, "grace"),
    ("sleep", KILL_AFTER, "kill_after"),
    ("gil_c", KILL_AFTER, "kill_after"),
]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- one sample of each measurement ----------------------------------------

def ladder_sample(kind: str) -> dict:
    """One run of bench_ladder_child.py ladder: its figures, or
    {"fail": why}."""
    import json

    with Child(["bench_ladder_child.py", "ladder", kind, str(GRACE), str(KILL_AFTER)]) as c:
        deadline = c.started + SAMPLE_TIMEOUT
        got = c.wait_line("@@SAMPLE@@", deadline)
        exited = c.wait_exit(deadline)
    err = read_stderr(c.stderr)
    if got is None:
        why = "timed out (killed)" if not exited else f"no sample (exit {describe_exit(c.returncode)})"
        return {"fail": why, "stderr": err}
    out = json.loads(got[1][len("@@SAMPLE@@"):])
    out["exit"] = c.returncode if exited else "killed"
    out["stderr"] = err
    return out


def sigint_sample(kind: str) -> dict:
    """One run of bench_ladder_child.py sigint: SIGINT once the actor is
    stuck, timed to the exit."""
    with Child(["bench_ladder_child.py", "sigint", kind, str(GRACE), str(KILL_AFTER)]) as c:
        ready = c.wait_line("ready", c.started + SAMPLE_TIMEOUT)
        if ready is None:
            c.finish()
            return {"fail": f"no ready line (exit {describe_exit(c.returncode)})", "stderr": read_stderr(c.stderr)}
        time.sleep(0.05)
        t0 = c.signal(signal.SIGINT)
        second = False
        if not c.wait_exit(t0 + SECOND_SIGINT_AFTER):
            second = True
            c.signal(signal.SIGINT)
            c.wait_exit(t0 + HARD_BOUND)
        killed = c.exited_at is None
    return {
        "exit_time": None if killed else c.exited_at - t0,
        "second": second,
        "killed": killed,
        "exit": describe_exit(c.returncode),
        "stderr": read_stderr(c.stderr),
    }


# -- the table ------------------------------------------------------------

def _ms(x):
    return None if x is None else round(x * 1e3, 1)


def _counts(xs) -> str:
    return ", ".join(f"{k} x{n}" for k, n in collections.Counter(xs).most_common())


def _stderr_note(samples) -> str:
    """How many samples printed one clean KeyboardInterrupt on stderr, and
    what the others printed (one example of each kind of noise)."""
    chains = collections.Counter()
    noise = {}
    for s in samples:
        err = s.get("stderr") or {}
        chains[" -> ".join(err.get("chain") or []) or "no traceback"] += 1
        for kind, text in err.get("noise") or []:
            noise.setdefault(kind, [0, text])[0] += 1
    clean = chains.pop("KeyboardInterrupt", 0)
    parts = [f"one clean KeyboardInterrupt {clean}/{len(samples)}"]
    parts += [f"stderr {c} x{n}" for c, n in chains.most_common()]
    parts += [f"{k} x{n} (e.g. {t!r})" for k, (n, t) in noise.items()]
    return "; ".join(parts)


def _fail_note(samples) -> tuple[int, str]:
    fails = [s["fail"] for s in samples if "fail" in s]
    return len(fails), (f"FAILED {len(fails)}: {_counts(fails)}" if fails else "")


def rows_for(kind, deadline, dname, lad, sig) -> list[dict]:
    rows = []
    n_fail, fail_note = _fail_note(lad)
    ok = [s for s in lad if "fail" not in s]
    limit = deadline + TOLERANCE
    if ok:
        gone = [s["gone"] for s in ok]
        late = sum(g > limit for g in gone)
        ret = statistics.median(s["returned"] for s in ok)
        ends = _counts("rung %d/%s" % (s["rung"], s["state"]) for s in ok)
        note = [f"ended at: {ends}",
                f"cancel_actor() returned after {ret * 1e3:.1f} ms (median)"]
        if late:
            note.insert(0, f"{late}/{len(ok)} late")
        rows.append(dict(group=GONE, case=kind,
                         deadline=f"{dname} {deadline * 1e3:.0f}", median=_ms(statistics.median(gone)),
                         worst=_ms(max(gone)), unit="ms", n=len(ok),
                         verdict="FAIL" if n_fail else ("MISS" if max(gone) > limit else "ok"),
                         note="; ".join(filter(None, [fail_note, *note]))))
        stall = [s["stall"] for s in ok]
        idle = [s["idle_gap"] for s in ok]
        over = sum(x > STALL_GOAL for x in stall)
        rows.append(dict(group=STALL,
                         case=kind, deadline=f"goal {STALL_GOAL * 1e3:.0f}", median=_ms(statistics.median(stall)),
                         worst=_ms(max(stall)), unit="ms", n=len(ok),
                         verdict="FAIL" if n_fail else ("MISS" if max(stall) > STALL_GOAL else "ok"),
                         note="; ".join(filter(None, [
                             fail_note, f"{over}/{len(ok)} over {STALL_GOAL * 1e3:.0f} ms" if over else "",
                             f"idle before the cancel: median {statistics.median(idle) * 1e3:.1f}, "
                             f"worst {max(idle) * 1e3:.1f} ms"]))))
    else:
        for g in (GONE, STALL):
            rows.append(dict(group=g, case=kind, deadline="", median=None, worst=None, unit="ms", n=0,
                             verdict="FAIL", note=fail_note))

    n_fail, fail_note = _fail_note(sig)
    done = [s for s in sig if "fail" not in s]
    times = [s["exit_time"] for s in done if s["exit_time"] is not None]
    killed = sum(s["killed"] for s in done)
    second = sum(s["second"] for s in done)
    worst = max(times) if times else None
    miss = killed or second or (worst is not None and worst > SIGINT_GOAL)
    late = sum(t > SIGINT_GOAL for t in times)
    rows.append(dict(
        group=CTRL_C, case=kind,
        deadline=f"bound {SIGINT_GOAL * 1e3:.0f}", median=_ms(statistics.median(times)) if times else None,
        worst=_ms(worst), unit="ms", n=len(times),
        verdict="FAIL" if (n_fail or killed) else ("MISS" if miss else "ok"),
        note="; ".join(filter(None, [
            fail_note, f"{late}/{len(times)} late" if late else "",
            f"second SIGINT needed {second}", f"SIGKILLed {killed}",
            f"exit {_counts(s['exit'] for s in done)}", _stderr_note(done)]))))
    return rows


def mass_rows(quick: bool) -> list[dict]:
    """an.cancel() of MASS_N idle trio-mode actors at once, with the
    ladder's defaults: every actor must end cleanly (none interrupted or
    abandoned), within kill_after."""
    import json

    samples = []
    for i in range(1 if quick else 3):
        with Child(["bench_ladder_child.py", "mass", str(MASS_N), "1.0", "3.0"]) as c:
            deadline = c.started + 300
            got = c.wait_line("@@SAMPLE@@", deadline)
            c.wait_exit(deadline)
        if got is None:
            samples.append({"fail": f"no sample (exit {describe_exit(c.returncode)})"})
        else:
            samples.append(json.loads(got[1][len("@@SAMPLE@@"):]))
        _log(f"bench_ladder: mass cancel {i + 1} done")
    done = [s for s in samples if "fail" not in s]
    took = [s["took"] for s in done]
    stall = [s["stall"] for s in done]
    rungs = {}
    for s in done:
        for k, v in s["rungs"].items():
            rungs[k] = rungs.get(k, 0) + v
    clean = all(set(s["rungs"]) == {"1"} and not s["abandoned"] for s in done)
    note = (f"rungs {', '.join(f'{k}: {v}' for k, v in sorted(rungs.items()))}; "
            f"abandoned {sum(s['abandoned'] for s in done)}")
    fails = len(samples) - len(done)
    return [
        dict(group=MASS, case=f"{MASS_N} actors: cancel to all ended", deadline="kill_after 3000",
             median=_ms(statistics.median(took)) if took else None, worst=_ms(max(took)) if took else None,
             unit="ms", n=len(took),
             verdict="FAIL" if fails else ("ok" if clean and max(took) <= 3.0 + 0.5 else "MISS"),
             note=note + (f"; {fails} failed" if fails else "")),
        dict(group=MASS, case=f"{MASS_N} actors: longest loop stall", deadline="",
             median=_ms(statistics.median(stall)) if stall else None, worst=_ms(max(stall)) if stall else None,
             unit="ms", n=len(stall), verdict="",
             note="all the actors' threads compete for 2 cores with the event loop's"),
    ]


def gil_c_rows(quick: bool) -> list[dict]:
    ts = [remote.time_gil_c() for _ in range(1 if quick else 3)]
    return [dict(group="reference", case="gil_c's C call alone",
                 deadline="", median=_ms(statistics.median(ts)), worst=_ms(max(ts)), unit="ms", n=len(ts),
                 verdict="", note=f"sum(range({remote.GIL_N:.0e})) in this process's main interpreter, no actor running")]


def run(quick: bool = False) -> list[dict]:
    n = 5 if quick else 20
    lad = {k: [] for k, _, _ in KINDS}
    sig = {k: [] for k, _, _ in KINDS}
    t0 = time.monotonic()
    # Kinds interleaved, so that a noisy stretch of the machine is spread
    # over all of them.
    for i in range(n):
        for kind, _, _ in KINDS:
            lad[kind].append(ladder_sample(kind))
        for kind, _, _ in KINDS:
            sig[kind].append(sigint_sample(kind))
        _log(f"bench_ladder: round {i + 1}/{n} done after {time.monotonic() - t0:.0f} s")
    rows = []
    for kind, deadline, dname in KINDS:
        rows += rows_for(kind, deadline, dname, lad[kind], sig[kind])
    rows += mass_rows(quick)
    rows += gil_c_rows(quick)
    rows.sort(key=lambda r: GROUPS.index(r["group"]))  # stable: kinds stay in order
    return rows


def table(rows: list[dict]) -> str:
    out = [f"== ladder: grace {GRACE * 1e3:.0f} ms, kill_after {KILL_AFTER * 1e3:.0f} ms ({machine()}) ==",
           "   MISS: the worst sample misses the goal (end > deadline + 20 ms, stall > 20 ms, "
           f"Ctrl-C exit > {SIGINT_GOAL:.1f} s or a second SIGINT); FAIL: a sample failed or was killed"]
    group = None
    w = max(len(str(r["case"])) for r in rows)
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            out.append(f"-- {group}")
            out.append(f"  {'case':<{w}}  {'deadline ms':>16}  {'median':>9}  {'worst':>9}  {'n':>3}  verdict")
        med = "-" if r["median"] is None else f"{r['median']:.1f}"
        worst = "-" if r["worst"] is None else f"{r['worst']:.1f}"
        out.append(f"  {r['case']:<{w}}  {r['deadline']:>16}  {med:>9}  {worst:>9}  {r['n']:>3}  "
                   f"{r['verdict']:<7}  {r['note']}".rstrip())
    return "\n".join(out)


if __name__ == "__main__":
    print(table(run(quick="--quick" in sys.argv)), flush=True)
