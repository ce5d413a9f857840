"""Ctrl-C fuzz: SIGINT at a random moment to a program holding a small
actor tree, and what the user sees.

Run: .venv/bin/python -m subactor bench sigint_fuzz
     (or bench/bench_sigint_fuzz.py [--quick] [--runs N] [--seed S])
     SUBACTOR_FUZZ_RUNS and SUBACTOR_FUZZ_SEED set the run count and the
     seed under `python -m subactor bench` too.

Each run is a fresh bench_sigint_fuzz_child.py (a nested actor, a context
with a stream open, a pool call in flight and one stuck actor, "spin" or
"gil_c" at random; grace 0.3 s, kill_after 0.8 s). SIGINT goes at a random
moment between the child's "spawning" mark and its "teardown" mark: in
two runs of three, uniformly over the spawning phase as long as
calibration runs without SIGINT found it (the median), measured from the
"spawning" mark; in the third, uniformly over the steady phase, from the
"steady" mark. (One uniform draw over the whole window would put SIGINT
in a phase by its length, which on this noisy machine varies between
runs by a factor of two.) Then:

- the time from SIGINT to the process's exit; goal: every run exits
  within grace + kill_after + 1 s of a single SIGINT;
- a second SIGINT if it has not exited by then, SIGKILL at 30 s;
- its exit code (a KeyboardInterrupt exit is SIGINT, -2);
- its stderr: the user should see one clean KeyboardInterrupt traceback,
  nothing chained to it, and no "Exception ignored" or other noise. The
  table shows the ends of one example of each kind of unexpected output;
  its whole stderr goes to $TMPDIR/subactor-sigint-fuzz/<time>-<pid>-seed-<seed>/.

200 runs (30 with --quick); the fuzz stops early, and says so, if it runs
past its time budget. The seed is printed: a run can be repeated.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _child import Child, describe_exit, read_stderr  # noqa: E402
from _table import machine  # noqa: E402

GRACE = 0.3
KILL_AFTER = 0.8
STEADY = 0.3               # the child's steady phase, before its own teardown
GOAL = GRACE + KILL_AFTER + 1.0
HARD_BOUND = 30.0          # SIGKILL after this long
START_TIMEOUT = 20.0       # for the "spawning" mark
RUNS, QUICK_RUNS = 200, 30
DEFAULT_SEED = 20240601
BUDGET = 11 * 60.0         # seconds; no new run starts past it
STUCK = ("spin", "gil_c")
PHASES = ("spawning", "steady", "teardown", "done")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _marks(child: Child) -> dict[str, float]:
    out = {}
    for _, line in child.lines:
        if line.startswith("@@T "):
            _, phase, t = line.split()
            out[phase] = float(t)
    return out


def calibrate(stuck: str) -> dict:
    """A run without SIGINT: how long its spawning phase is (from
    "spawning" to "steady"), and how the program ends on its own."""
    with Child(["bench_sigint_fuzz_child.py", str(GRACE), str(KILL_AFTER), stuck, str(STEADY)]) as c:
        c.wait_exit(c.started + HARD_BOUND)
        timed_out = c.exited_at is None
    m = _marks(c)
    ok = not timed_out and all(p in m for p in ("spawning", "steady", "teardown"))
    return {
        "stuck": stuck, "ok": ok, "exit": describe_exit(c.returncode),
        "spawn": m["steady"] - m["spawning"] if ok else None,
        "teardown": (c.exited_at - m["teardown"]) if ok else None,
        "stderr": read_stderr(c.stderr), "raw": c.stderr,
    }


def one_run(stuck: str, mark: str, delay: float) -> dict:
    """A run with SIGINT ``delay`` s after the child's ``mark`` ("spawning"
    or "steady")."""
    with Child(["bench_sigint_fuzz_child.py", str(GRACE), str(KILL_AFTER), stuck, str(STEADY)]) as c:
        got = c.wait_line(f"@@T {mark} ", c.started + START_TIMEOUT)
        if got is None:
            c.finish()
            return {"stuck": stuck, "fail": f"no {mark} mark (exit {describe_exit(c.returncode)})",
                    "stderr": read_stderr(c.stderr), "raw": c.stderr}
        at = float(got[1].split()[2]) + delay
        while time.monotonic() < at and c.exited_at is None:
            c._pump(at - time.monotonic())
        exited_before = c.exited_at is not None
        t0 = c.signal(signal.SIGINT)
        second = killed = False
        if not exited_before:
            if not c.wait_exit(t0 + GOAL):
                second = True
                c.signal(signal.SIGINT)
                if not c.wait_exit(t0 + HARD_BOUND):
                    killed = True
                    c.kill()
    m = _marks(c)
    # Where the signal landed: the last mark before it.
    phase = "before spawning"
    for p in PHASES:
        if p in m and m[p] <= t0:
            phase = p
    if exited_before:
        phase = "after exit"
    return {
        "stuck": stuck, "mark": mark, "delay": delay, "phase": phase,
        "exit_time": None if (killed or exited_before) else c.exited_at - t0,
        "second": second, "killed": killed, "not_sent": exited_before,
        "exit": describe_exit(c.returncode), "stderr": read_stderr(c.stderr), "raw": c.stderr,
    }


# -- rows -----------------------------------------------------------------

def _ms(x):
    return None if x is None else round(x * 1e3, 1)


def _counts(xs) -> str:
    return ", ".join(f"{k} x{n}" for k, n in collections.Counter(xs).most_common())


def _clean(run: dict) -> bool:
    return run["stderr"]["chain"] == ["KeyboardInterrupt"]


def _summary(group: str, case: str, runs: list[dict]) -> dict:
    sent = [r for r in runs if "fail" not in r and not r["not_sent"]]
    times = [r["exit_time"] for r in sent if r["exit_time"] is not None]
    late = sum(t > GOAL for t in times)
    second = sum(r["second"] for r in sent)
    killed = sum(r["killed"] for r in sent)
    fails = sum("fail" in r for r in runs)
    unclean = sum(not _clean(r) for r in sent)
    noisy = sum(bool(r["stderr"]["noise"]) for r in sent)
    miss = late or second or killed
    verdict = "FAIL" if (fails or killed) else ("MISS" if miss else "ok")
    note = [f"{late} over {GOAL:.1f} s" if late else "",
            f"second SIGINT {second}", f"SIGKILL {killed}",
            f"exit {_counts(r['exit'] for r in sent)}" if sent else "",
            f"not one clean KeyboardInterrupt {unclean}/{len(sent)}",
            f"noise {noisy}/{len(sent)}",
            f"failed to start {fails}" if fails else ""]
    if times:
        w = max((r for r in sent if r["exit_time"] is not None), key=lambda r: r["exit_time"])
        note.append(f"worst: run {w['index']} ({w['stuck']}, SIGINT {w['delay'] * 1e3:.0f} ms after "
                    f"{w['mark']}, in {w['phase']})")
    return dict(group=group, case=case, n=len(sent),
                median=_ms(statistics.median(times)) if times else None,
                worst=_ms(max(times)) if times else None, unit="ms",
                verdict=verdict, note="; ".join(filter(None, note)))


def _examples(runs: list[dict], out_dir: str) -> list[dict]:
    """One example of each kind of unexpected stderr: each distinct
    exception chain other than a lone KeyboardInterrupt, and each kind of
    noise. The table shows its ends; its whole stderr is written to a file
    in ``out_dir``, named in the table."""
    seen = {}
    for r in runs:
        if r.get("not_sent"):
            continue
        chain = " -> ".join(r["stderr"]["chain"]) or "(no traceback)"
        if chain != "KeyboardInterrupt":
            key = ("traceback", chain)
            if key not in seen:
                seen[key] = [0, r]
            seen[key][0] += 1
        for kind, text in r["stderr"]["noise"]:
            key = (kind, text if kind == "other" else kind)
            if key not in seen:
                seen[key] = [0, r, text]
            seen[key][0] += 1
    rows = []
    for (kind, what), (n, r, *text) in sorted(seen.items(), key=lambda kv: -kv[1][0]):
        raw = r["raw"].rstrip().splitlines()
        detail = raw if len(raw) <= 24 else raw[:8] + [f"    ... ({len(raw) - 16} lines)"] + raw[-8:]
        path = os.path.join(out_dir, f"run-{r['index']}.stderr")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(r["raw"])
            detail.append(f"(all of it: {path})")
        except OSError:
            pass
        rows.append(dict(group="unexpected output, one example of each kind", case=kind, n=n,
                         median=None, worst=None, unit="",
                         verdict="", note=(f"{what}" if not text else text[0]) +
                         f"  [e.g. run {r['index']}: {r['stuck']}, SIGINT in {r.get('phase', '-')}, "
                         f"exit {r['exit']}]",
                         detail=detail))
    return rows


def _params(quick: bool) -> tuple[int, int]:
    runs = int(os.environ.get("SUBACTOR_FUZZ_RUNS", QUICK_RUNS if quick else RUNS))
    seed = int(os.environ.get("SUBACTOR_FUZZ_SEED", DEFAULT_SEED))
    return runs, seed


def run(quick: bool = False, runs: int | None = None, seed: int | None = None) -> list[dict]:
    n, s = _params(quick)
    n = n if runs is None else runs
    s = s if seed is None else seed
    rng = random.Random(s)
    _log(f"bench_sigint_fuzz: {n} runs, seed {s}")
    t_start = time.monotonic()
    cal = [calibrate(k) for k in STUCK for _ in range(3)]
    spawn = {}
    for k in STUCK:
        ws = [c["spawn"] for c in cal if c["stuck"] == k and c["ok"]]
        spawn[k] = statistics.median(ws) if ws else 0.5
    results = []
    for i in range(n):
        if time.monotonic() - t_start > BUDGET:
            _log(f"bench_sigint_fuzz: time budget {BUDGET:.0f} s spent after {i} runs")
            break
        stuck = rng.choice(STUCK)
        if rng.random() < 2 / 3:
            r = one_run(stuck, "spawning", rng.uniform(0.0, spawn[stuck]))
        else:
            r = one_run(stuck, "steady", rng.uniform(0.0, STEADY))
        r["index"] = i
        results.append(r)
        if (i + 1) % 10 == 0:
            _log(f"bench_sigint_fuzz: {i + 1}/{n} runs after {time.monotonic() - t_start:.0f} s")
    elapsed = time.monotonic() - t_start

    head = (f"{len(results)} runs of {n}, seed {s}, {elapsed:.0f} s; SIGINT between spawning and "
            f"teardown: 2/3 over the spawning phase (calibrated: " + ", ".join(
                f"{k} {spawn[k] * 1e3:.0f} ms" for k in STUCK) + f"), 1/3 over the {STEADY * 1e3:.0f} ms steady phase")
    rows = [dict(group="header", case=head, n=len(results), median=None, worst=None, unit="",
                 verdict="", note="")]
    g = "SIGINT -> process exit, by stuck actor"
    rows.append(_summary(g, "all", results))
    for k in STUCK:
        rows.append(_summary(g, k, [r for r in results if r["stuck"] == k]))
    g = "SIGINT -> process exit, by where SIGINT landed"
    for p in ("spawning", "steady", "teardown"):
        sub = [r for r in results if r.get("phase") == p]
        if sub:
            rows.append(_summary(g, f"in {p}", sub))
    others = collections.Counter(r.get("phase", "failed") for r in results
                                 if r.get("phase") not in ("spawning", "steady", "teardown"))
    if others:
        rows.append(dict(group=g, case="not counted", n=sum(others.values()), median=None, worst=None,
                         unit="", verdict="", note=_counts(others.elements())
                         + " (the child had already ended: no SIGINT sent)"))
    g = "calibration: the same program, no SIGINT (its own teardown)"
    for c in cal:
        rows.append(dict(group=g, case=c["stuck"], n=1, median=_ms(c["teardown"]), worst=_ms(c["teardown"]),
                         unit="ms", verdict="" if c["ok"] else "FAIL",
                         note=f"teardown -> exit; spawning phase {_ms(c['spawn'])} ms; exit {c['exit']}; "
                              f"stderr: {' -> '.join(c['stderr']['chain']) or 'no traceback'}"
                              + (f", {len(c['stderr']['noise'])} noise line(s)" if c['stderr']['noise'] else "")
                              + (f", {c['stderr']['abandoned']} AbandonedActorWarning" if c['stderr']['abandoned']
                                 else "")))
    out_dir = os.path.join(tempfile.gettempdir(), "subactor-sigint-fuzz",
                           f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-seed-{s}")
    rows += _examples(results, out_dir)
    return rows


def table(rows: list[dict]) -> str:
    out = [f"== sigint_fuzz: grace {GRACE * 1e3:.0f} ms, kill_after {KILL_AFTER * 1e3:.0f} ms, "
           f"goal: exit within {GOAL:.1f} s of one SIGINT ({machine()}) =="]
    group = None
    w = max((len(str(r["case"])) for r in rows if r["group"] != "header"), default=10)
    for r in rows:
        if r["group"] == "header":
            out.append(f"   {r['case']}")
            continue
        if r["group"] != group:
            group = r["group"]
            out.append(f"-- {group}")
            if not group.startswith("unexpected"):
                out.append(f"  {'case':<{w}}  {'n':>4}  {'median ms':>10}  {'worst ms':>10}  verdict")
        if group.startswith("unexpected"):
            out.append(f"  {r['case']} x{r['n']}: {r['note']}")
            out += [f"      | {line}" for line in r.get("detail", [])]
            continue
        med = "-" if r["median"] is None else f"{r['median']:.1f}"
        worst = "-" if r["worst"] is None else f"{r['worst']:.1f}"
        out.append(f"  {r['case']:<{w}}  {r['n']:>4}  {med:>10}  {worst:>10}  {r['verdict']:<7}  {r['note']}".rstrip())
    return "\n".join(out)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--seed", type=int)
    a = ap.parse_args()
    print(table(run(quick=a.quick, runs=a.runs, seed=a.seed)), flush=True)
