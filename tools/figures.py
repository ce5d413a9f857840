"""README's figures table from one `make bench` run.

Run: .venv/bin/python tools/figures.py [build/bench-results.json]

Prints the markdown table of README's "Figures" section, every row from
the same run of `make bench` (which writes build/bench-results.json), each
figure next to the anchors measured in that run and each goal marked met or
missed. A row whose benchmark did not run says so instead of a number.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable

Rows = list[dict[str, Any]]


class Missing(Exception):
    """A figure the run does not have."""


class Run:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.tables: dict[str, Rows] = data.get("tables", {})

    def row(self, table: str, case: str, group: str | None = None, size: int | None = None) -> dict:
        """The one row of `table` whose case starts with `case` (and whose
        group starts with `group`, whose size is `size`)."""
        for r in self.tables.get(table, []):
            if not str(r.get("case", "")).startswith(case):
                continue
            if group is not None and not str(r.get("group", "")).startswith(group):
                continue
            if size is not None and r.get("size") != size:
                continue
            return r
        raise Missing(f"{table}: {group or ''} / {case}")

    def m(self, table: str, case: str, group: str | None = None, key: str = "median", **kw: Any) -> float:
        v = self.row(table, case, group, **kw).get(key)
        if not isinstance(v, (int, float)):
            raise Missing(f"{table}: {case} has no {key}")
        return float(v)


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def us(v: float) -> str:
    return f"{v:.1f} us" if v < 100 else f"{v:.0f} us"


def ms(v: float) -> str:
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def p99(row: dict) -> str:
    note = str(row.get("note", ""))
    if note.startswith("p99 "):
        return note.split(";")[0][4:]
    return "?"


# -- the rows --------------------------------------------------------------------
# Each returns (what, subactor, anchor) or raises Missing.

def host_spawn(r: Run):
    g = "spawn to completion"
    s = r.m("host", "subactor actor", g)
    return ("spawn to completion of `pass`", ms(s),
            f"`_interpreters` create/exec/destroy {ms(r.m('host', '_interpreters', g))}; mp fork "
            f"{ms(r.m('host', 'multiprocessing fork', g))}, forkserver {ms(r.m('host', 'multiprocessing forkserver', g))}, "
            f"spawn {ms(r.m('host', 'multiprocessing spawn', g))}")


def host_parallel(r: Run):
    g = "CPU-bound"
    one, two = r.m("host", "same work twice", g), r.m("host", "two own-GIL actors", g)
    x = one / two
    return ("2 CPU-bound actors on 2 cores", f"{x:.2f}x the same work twice in the main interpreter",
            f"goal >= 1.75x: {mark(x >= 1.75)}")


def host_interrupt(r: Run):
    return ("interrupt of `while True: pass` to actor gone", ms(r.m("host", "interrupt() to actor done, median")),
            f"p90 {ms(r.m('host', 'interrupt() to actor done, p90'))}")


def chan_small(r: Run):
    k = "msgs_per_s"
    batch, one = r.m("chan", "chan actor->trio batch", key=k, size=64), r.m("chan", "chan actor->trio 1/call", key=k, size=64)
    pipe, iq = r.m("chan", "mp.Pipe", key=k, size=64), r.m("chan", "_interpqueues", key=k, size=64)
    return ("channel, 64 B messages actor -> trio (batched / one per call)",
            f"{batch / 1e6:.1f} M / {one / 1e6:.2f} M msg/s", f"mp.Pipe {pipe / 1e6:.2f} M/s, `_interpqueues` {iq / 1e6:.2f} M/s")


def chan_large(r: Run):
    k = "gb_per_s"
    size = 1 << 20
    return ("channel, 1 MiB messages actor -> trio (batched)", f"{r.m('chan', 'chan actor->trio batch', key=k, size=size):.1f} GB/s",
            f"memcpy {r.m('chan', 'memcpy', key=k, size=size):.1f} GB/s, mp.Pipe {r.m('chan', 'mp.Pipe', key=k, size=size):.1f} GB/s, "
            f"`_interpqueues` {r.m('chan', '_interpqueues', key=k, size=size):.1f} GB/s")


def chan_rt(r: Run):
    t = r.m("chan", "ping-pong trio<->actor", key="p50_us")
    pipe = r.m("chan", "ping-pong mp.Pipe", key="p50_us")
    return ("channel round trip trio <-> actor, p50", us(t), f"mp.Pipe {us(pipe)} (goal <= 25 us: {mark(t <= 25)})")


def _ratios(r: Run, table: str, mine: str, theirs: str) -> tuple[float, float]:
    xs = []
    groups = sorted({str(x.get("group")) for x in r.tables.get(table, [])})
    for g in groups:
        try:
            xs.append(r.m(table, mine, g) / r.m(table, theirs, g))
        except Missing:
            pass
    if not xs:
        raise Missing(table)
    return min(xs), max(xs)


def codec(r: Run):
    lo, hi = _ratios(r, "codec", "subactor", "msgspec")
    plo, phi = _ratios(r, "codec", "pickle", "msgspec")
    return ("codec encode / decode (4 payloads)", f"{lo:.2f}x-{hi:.2f}x msgspec's time (goal <= 1.5x: {mark(hi <= 1.5)})",
            f"pickle {plo:.1f}x-{phi:.1f}x msgspec's")


def struct(r: Run):
    enc = [(r.m("struct", "subactor", g) / r.m("struct", "msgspec", g), g)
           for g in sorted({str(x["group"]) for x in r.tables.get("struct", []) if str(x["group"]).startswith(("encode", "decode"))})]
    if not enc:
        raise Missing("struct")
    e = [x for x, g in enc if g.startswith("encode")]
    d = [x for x, g in enc if g.startswith("decode")]
    pk = [r.m("struct", "pickle", g) / r.m("struct", "subactor", g) for _, g in enc]
    return ("`subactor.msg.Struct` encode / validating decode",
            f"{min(e):.2f}x-{max(e):.2f}x / {min(d):.2f}x-{max(d):.2f}x msgspec.Struct's time (goal <= 1.3x: "
            f"{mark(max(e + d) <= 1.3)})",
            f"pickle of dataclasses {min(pk):.1f}x-{max(pk):.0f}x subactor's time (goal >= 3x: {mark(min(pk) >= 3)})")


def calls(r: Run):
    g = "call path, quiet"
    raw, pipe = r.m("api", "anchor: raw channel", g), r.m("api", "anchor: multiprocessing Pipe", g)
    s = r.row("api", "subactor portal.run(sync fn), sync-mode actor", g)
    t = r.m("api", "subactor portal.run(sync fn), trio-mode actor", g)
    return ("`portal.run` of a sync function, p50",
            f"{us(s['median'])}, p99 {p99(s)} (goal <= 15 us: {mark(s['median'] <= 15)}); trio-mode actor {us(t)}",
            f"raw channel round trip {us(raw)} ({s['median'] / raw:.1f}x), mp.Pipe {us(pipe)} ({s['median'] / pipe:.2f}x)")


def calls_async(r: Run):
    g = "call path, quiet"
    raw = r.m("api", "anchor: raw channel", g)
    a = r.m("api", "subactor portal.run(async fn), trio-mode actor", g)
    w = r.m("api", "subactor portal.run(async fn awaiting", g)
    return ("`portal.run` of an async function, trio-mode actor, p50",
            f"{us(a)} (goal <= 20 us: {mark(a <= 20)}), one that never awaits (runs inline); one that awaits a "
            f"checkpoint {us(w)} (goal: {mark(w <= 20)})", f"the same raw channel ({a / raw:.1f}x / {w / raw:.1f}x)")


def calls_busy(r: Run):
    gq, gb = "call path, quiet", "call path, busy"
    out = []
    ok_all = True
    for case, label in (("subactor portal.run(sync fn), sync-mode actor", "sync"),
                        ("subactor portal.run(async fn), trio-mode actor", "async")):
        q, b = r.m("api", case, gq), r.row("api", case, gb)
        p99v = float(p99(b).split()[0]) if p99(b) != "?" else float("inf")
        ok = b["median"] <= 3 * q and p99v <= 1000
        ok_all &= ok
        out.append(f"{label} {us(b['median'])} p50 ({b['median'] / q:.2f}x quiet), p99 {p99(b)}")
    raw, pipe = r.m("api", "anchor: raw channel", gb), r.m("api", "anchor: multiprocessing Pipe", gb)
    return ("the same calls, busy (two busy-loop processes)",
            "; ".join(out) + f" (goal p50 <= 3x quiet and p99 <= 1 ms: {mark(ok_all)})",
            f"raw channel {us(raw)}, mp.Pipe {us(pipe)}")


def stream_rt(r: Run):
    g = "round trip, 64 B"
    s = r.m("streams", "context stream send+receive", g)
    raw, call = r.m("streams", "raw channel ping-pong", g), r.m("streams", "portal.run of a sync", g)
    pipe = r.m("streams", "multiprocessing Pipe", g)
    return ("stream message round trip, p50", f"{us(s)} (goal <= 10 us: {mark(s <= 10)})",
            f"raw channel {us(raw)} ({s / raw:.1f}x), `portal.run` {us(call)} ({s / call:.2f}x), mp.Pipe {us(pipe)}")


def _its(v: float) -> str:
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.0f} k/s"


def stream_small(r: Run):
    g = "one way, 64 B"
    d, o = r.m("streams", "context stream, overruns fail", g), r.m("streams", "context stream, allow_overruns", g)
    raw, pipe = r.m("streams", "raw channel", g), r.m("streams", "mp.Pipe", g)
    best = max(d, o)
    return ("context stream, 64 B items one way", f"{_its(d)} by default, {_its(o)} with `allow_overruns` "
            f"(goal 1 M/s: {mark(best >= 1e6)})", f"raw channel {_its(raw)}, mp.Pipe {_its(pipe)}")


def _gbs(r: Run, case: str) -> float:
    row = r.row("streams", case, "one way, 1 MiB")
    return float(row["median"]) * (1 << 20) / 1e9


def stream_large(r: Run):
    d, o = _gbs(r, "context stream, overruns fail"), _gbs(r, "context stream, allow_overruns")
    raw, pipe = _gbs(r, "raw channel"), _gbs(r, "mp.Pipe")

    def one(v: float) -> str:
        ok = v >= 0.5 * raw and v >= 4 * pipe
        return f"{v:.2f} GB/s ({v / raw:.2f}x raw, {v / pipe:.1f}x Pipe: {mark(ok)})"

    return ("context stream, 1 MiB items one way, plain `bytes` (goal >= 0.5x raw and >= 4x Pipe)",
            f"by default (overruns fail) {one(d)}; `allow_overruns` {one(o)}",
            f"raw channel {raw:.2f} GB/s, mp.Pipe {pipe:.2f} GB/s")


def stream_zc(r: Run):
    z = _gbs(r, "context stream, allow_overruns, zero_copy")
    raw, pipe = _gbs(r, "raw channel"), _gbs(r, "mp.Pipe")
    ok = z >= 0.5 * raw and z >= 4 * pipe
    return ("the same, `open_stream(zero_copy=True)`", f"{z:.2f} GB/s ({z / raw:.2f}x raw, {z / pipe:.1f}x Pipe: {mark(ok)})",
            "the same anchors")


def stream_memory(r: Run):
    g = "memory: 1 KiB"
    peak = r.m("streams", "peak RSS", g)
    cons = r.row("streams", "consumer", g)
    return ("memory: 1 KiB items, a producer ~100x faster than its consumer, 30 s",
            f"peak RSS +{peak:.2f} MiB over the baseline; {str(cons.get('note', '')).split('; ', 1)[-1]}",
            f"goal < 64 MiB: {mark(peak < 64)}")


def spawn(r: Run):
    g = "spawn to first answer, warm and cold"
    w, c = r.m("api", "subactor start_actor, sync fn, warm", g), r.m("api", "subactor start_actor, sync fn, cold", g)
    return ("`start_actor` to first answer, sync actor",
            f"warm {ms(w)} (goal <= 1.5 ms: {mark(w <= 1.5)}); cold {ms(c)} (goal <= 6 ms: {mark(c <= 6)})",
            f"mp fork {ms(r.m('api', 'anchor: multiprocessing fork', g))}, forkserver "
            f"{ms(r.m('api', 'anchor: multiprocessing forkserver', g))}, spawn {ms(r.m('api', 'anchor: multiprocessing spawn', g))}; "
            f"process actor {ms(r.m('api', 'anchor: process actor', g))}")


def spawn_trio(r: Run):
    g = "spawn to first answer, warm and cold"
    w = r.m("api", "subactor start_actor, async fn: the actor imports trio, warm", g)
    c = r.m("api", "subactor start_actor, async fn: the actor imports trio, cold", g)
    try:
        trio_import = f"; `import trio` alone {ms(r.m('imports', 'import trio', 'an actor'))} in a fresh subinterpreter"
    except Missing:
        trio_import = ""
    return ("`start_actor` to first answer, the actor imports trio (an async function)",
            f"warm {ms(w)} (goal <= 5 ms: {mark(w <= 5)}); cold {ms(c)} (goal <= 60 ms: {mark(c <= 60)}{trio_import})",
            f"the same anchors; warm is {w / c:.2f}x cold")


def cancel(r: Run):
    g = "cancel to end"
    ack = r.m("cancel", "subactor rung 1: checkpointing", g)
    gone = r.m("cancel", "subactor rung 1: ... to interpreter", g)
    return ("cancel to end, rung 1 (checkpointing actor)", f"{ms(ack)} to its ack; {ms(gone)} until its interpreter is gone",
            f"mp `terminate()` {ms(r.m('cancel', 'multiprocessing Process.terminate', g))}, trio-parallel "
            f"{ms(r.m('cancel', 'trio_parallel', g))} (goal <= 5 ms: {mark(ack <= 5)})")


def cancel_2_3(r: Run):
    g = "cancel to end"
    two = r.m("cancel", "subactor rung 2", g)
    three = r.row("cancel", "subactor rung 3", g)
    worst = str(three.get("note", "")).rsplit("worst ", 1)[-1]
    return ("cancel to end, rung 2 (tight loop) / rung 3 (blocked in C)",
            f"{ms(two)} after the grace deadline (goal <= 20 ms: {mark(two <= 20)}) / at the hard deadline, "
            f"{float(three['median']) / 500:.3f}x (worst {worst})", "goal rung 3: +-10% of the deadline")


LADDER_KINDS = ["checkpoint", "spin", "sleep", "gil_c"]


def _ladder_rows(r: Run, group: str) -> list[dict]:
    """bench ladder's rows of `group`, one per kind of stuck actor."""
    return [r.row("ladder", k, group) for k in LADDER_KINDS]


def ladder(r: Run):
    kinds = LADDER_KINDS
    rows = _ladder_rows(r, "cancel_actor() called")
    verdicts = [str(x.get("verdict")) for x in rows]
    return ("the ladder, grace 0.3 s / kill_after 0.8 s: cancel to gone (20 runs each; median / worst)",
            "; ".join(f"{k} {x['median']:.0f} / {x['worst']:.0f} ms" for k, x in zip(kinds, rows)),
            f"each by its deadline + 20 ms: {mark(all(v == 'ok' for v in verdicts))}"
            + ("" if all(v == "ok" for v in verdicts) else
               " (" + ", ".join(f"{k}: {str(x.get('note', '')).split(';')[0]}" for k, x, v in zip(kinds, rows, verdicts)
                                if v != "ok") + ")"))


def ladder_stall(r: Run):
    kinds = LADDER_KINDS
    rows = _ladder_rows(r, "longest event-loop stall")
    worst = max(float(x["worst"]) for x in rows)
    return ("the parent's event loop during those ladders: longest stall (median / worst of 20)",
            "; ".join(f"{k} {x['median']:.1f} / {x['worst']:.0f} ms" for k, x in zip(kinds, rows)),
            f"goal <= 20 ms: {mark(worst <= 20)}")


def ctrl_c(r: Run):
    kinds = LADDER_KINDS
    rows = _ladder_rows(r, "Ctrl-C")
    clean = all("one clean KeyboardInterrupt 20/20" in str(x.get("note")) for x in rows)
    worst = max(float(x["worst"]) for x in rows)
    return ("Ctrl-C to exit, a tree holding one stuck actor of each kind (worst of 20)",
            " / ".join(f"{x['worst']:.0f}" for x in rows) + " ms" +
            ("; one clean `KeyboardInterrupt` each time" if clean else "; not always one clean `KeyboardInterrupt`"),
            f"goal <= grace + kill_after + 1 s = 2.1 s: {mark(worst <= 2100 and clean)}")


def fuzz(r: Run):
    row = r.row("sigint_fuzz", "all", "SIGINT -> process exit, by stuck actor")
    note = str(row.get("note", ""))
    head = str(r.row("sigint_fuzz", "", "header").get("case", "")).split(";")[0]
    return (f"Ctrl-C fuzz: {head}, SIGINT at a random moment to a small tree",
            f"median {row['median'] / 1e3:.2f} s, worst {row['worst'] / 1e3:.2f} s; {note.split('; worst')[0]}",
            f"goal <= 2.1 s: {mark(row.get('verdict') == 'ok')}")


def mass_cancel(r: Run):
    g = "many at once"
    a = r.row("ladder", "200 actors: cancel to all ended", g)
    s = r.row("ladder", "200 actors: longest loop stall", g)
    return ("`an.cancel()` of 200 idle trio-mode actors (defaults 1 s / 3 s)",
            f"{a['median'] / 1e3:.1f} s median, {a['worst'] / 1e3:.1f} s worst; {a.get('note')}; loop stalls up to "
            f"{s['worst'] / 1e3:.2f} s", "")


def scale(r: Run):
    g = "RSS over the baseline"
    per = r.m("scale", "1000 actors alive", g)
    src = r.row("scale", "modules an actor compiles", g)
    g2 = "spawn to first answer, median of the last 10"
    first, last = r.m("scale", "the first 10", g2), r.m("scale", "up to 1000 alive", g2)
    return ("1,000 idle actors alive in one process", f"{per:.2f} MiB RSS each (goal <= 3 MiB: {mark(per <= 3)}); "
            f"{src['median']:.0f} modules compiled from source in an actor ({src.get('note')})",
            f"spawn to first answer: the first 10 {ms(first)}, at 1,000 alive {ms(last)} ({last / first:.2f}x)")


def scale_end(r: Run):
    g = "ending them"
    t = r.row("scale", "an.cancel() of", g)
    ab = r.m("scale", "actors abandoned", g)
    return (f"{t['case']}, the default ladder (1 s / 3 s)", f"{t['median']:.1f} s; {ab:.0f} abandoned (goal 0: {mark(ab == 0)})",
            "their interpreters end one per core at a time (docs/cancellation.md)")


def discovery(r: Run):
    g = "portal.run round trip"
    a, p = r.m("discovery_net", "parent -> child", g), r.m("discovery_net", "portal.run, peer in this process", g)
    return ("peer `portal.run` inside one process", f"{us(p)}: {p / a:.2f}x the parent -> child call ({us(a)})",
            f"goal <= 1.5x: {mark(p / a <= 1.5)}")


def network(r: Run):
    g = "portal.run round trip"
    t, u = r.m("discovery_net", "portal.run, peer in another program, TCP", g), r.m("discovery_net", "portal.run, peer in another program, UDS", g)
    raw = r.m("discovery_net", "raw trio SocketStream", g)
    return ("`portal.run` to an actor of another program", f"TCP {us(t)}, UDS {us(u)}",
            f"raw trio `SocketStream` 64 B ping-pong to that program {us(raw)}")


def network_stream(r: Run):
    g = "1 MiB items from another program"
    s, raw = r.m("discovery_net", "context stream items", g), r.m("discovery_net", "raw trio SocketStream", g)
    return ("1 MiB stream items from an actor of another program, TCP", f"{s:.2f} GB/s",
            f"raw `trio.SocketStream` reads {raw:.2f} GB/s ({s / raw:.2f}x)")


def network_find(r: Run):
    f = r.m("discovery_net", "actor of another program", "find_actor")
    local = r.m("discovery", "from the root", "find_actor")
    return ("`find_actor` of another program's actor to a portal", f"{ms(f / 1e3)} (ask the registrar, connect, "
            "authenticate, hand the socket to the actor)", f"the in-process `find_actor` {us(local)}")


def network_spawn(r: Run):
    g = "spawn to the first answer"
    rem, loc = r.m("discovery_net", "remote spawn", g), r.m("discovery_net", "local subinterpreter", g)
    return ("remote spawn through a daemon to its first answer", ms(rem), f"a local spawn {ms(loc)} ({rem / loc:.2f}x)")


def wire(r: Run):
    g = "round trip, 64 B payload"
    k, n = r.m("wire", "ipc TrioChannel, TCP, key", g), r.m("wire", "ipc TrioChannel, TCP, no key", g)
    tls, raw_tls = r.m("wire", "ipc StreamChannel, TLS", g), r.m("wire", "raw trio SSLStream", g)
    return ("HMAC authentication on 64 B round trips", f"{k / n:.2f}x the same connection without a key "
            f"({us(k)} / {us(n)}; goal <= 1.10x: {mark(k / n <= 1.10)})", f"TLS {us(tls)} vs raw `SSLStream` {us(raw_tls)}")


def imports(r: Run):
    g = "a fresh interpreter"
    sub = r.m("imports", "subactor, cumulative", "python -X importtime")
    pas, tr = r.m("imports", 'python -c "pass"', g), r.m("imports", 'python -c "import trio"', g)
    return ("`import subactor` in a fresh interpreter", f"{ms(sub)} cumulative (`-X importtime`); no trio, asyncio, "
            "logging or ssl loaded", f"`import trio` {ms(tr - pas)} over `python -c pass` ({ms(pas)})")


def aio(r: Run):
    g = "round trip in one infected actor"
    a = r.m("asyncio", "trio memory channels", g)
    plain = r.m("asyncio", "the same in a plain", g)
    t, c = r.m("asyncio", "to_asyncio.run_task", g), r.m("asyncio", "open_channel_from", g)
    return ("asyncio inside an infected actor: round trip, p50", f"`to_asyncio.run_task` {us(t)}, 64 B over "
            f"`open_channel_from` {us(c)} ({t / a:.1f}x / {c / a:.1f}x)",
            f"trio memory channels, trio task <-> trio task in the same actor, {us(a)} ({us(plain)} in a plain actor)")


def aio_spawn(r: Run):
    g1, g2 = "spawn to a first async answer, backend=subint", "spawn to a first async answer, backend=process"
    s, sp = r.m("asyncio", "infect_asyncio=True", g1), r.m("asyncio", "plain actor", g1)
    p, pp = r.m("asyncio", "infect_asyncio=True", g2), r.m("asyncio", "plain actor", g2)
    return ("spawn to a first async answer, `infect_asyncio=True`", f"subint {ms(s)} ({s / sp:.2f}x), process {ms(p)} ({p / pp:.2f}x)",
            f"the plain actor {ms(sp)} / {ms(pp)}")


def process(r: Run):
    g = "spawn to first answer"
    p, s = r.m("process", "process: start_actor", g), r.m("process", "subint: start_actor", g)
    return ("process backend: spawn to first answer", ms(p), f"subint {ms(s)}, mp spawn {ms(r.m('process', 'multiprocessing spawn', g))}")


def process_stream(r: Run):
    g = "stream throughput"
    p, s = r.m("process", "process: 1 MiB stream items, actor -> parent", g), r.m("process", "subint: 1 MiB stream items, actor -> parent", g)
    pipe = r.m("process", "multiprocessing Pipe 1 MiB", g)
    return ("process backend: 1 MiB stream items", f"{p / 1e3:.2f} GB/s", f"subint {s / 1e3:.2f} GB/s, mp.Pipe `send_bytes` {pipe / 1e3:.2f} GB/s")


def pool(r: Run):
    g = "warm call, quiet"
    s, t = r.row("pool", "subactor pool.run_sync", g), r.m("pool", "anchor: trio_parallel", g)
    b = r.row("pool", "subactor pool.run_sync", "warm call, busy")
    x = t / s["median"]
    return ("pool: warm `run_sync` call, p50", f"{us(s['median'])}, p99 {p99(s)} (goal <= 12 us and >= 10x trio-parallel: "
            f"{mark(s['median'] <= 12 and x >= 10)}); busy {us(b['median'])} ({b['median'] / s['median']:.2f}x quiet, p99 {p99(b)})",
            f"trio-parallel {us(t)} ({x:.1f}x)")


def pool_many(r: Run):
    g = "throughput"
    s = r.row("pool", "subactor pool.run_sync", g)
    t, p = r.row("pool", "trio_parallel", g), r.row("pool", "ProcessPoolExecutor", g)
    return ("pool: 10,000 small calls", str(s.get("note")), f"trio-parallel {t.get('note')}, ProcessPoolExecutor {p.get('note')}")


def pool_cpu(r: Run):
    g = "CPU-bound map"
    seq = r.m("pool", "sequential", g)
    s, t, p = r.m("pool", "subactor pool", g), r.m("pool", "trio_parallel", g), r.m("pool", "ProcessPoolExecutor", g)
    return ("pool: CPU-bound map on 2 cores", f"{seq / s:.2f}x sequential (goal >= 1.75x: {mark(seq / s >= 1.75)})",
            f"trio-parallel {seq / t:.2f}x, ProcessPoolExecutor {seq / p:.2f}x")


def log(r: Run):
    g1, g2 = "portal.run(sync fn) p50", "start_actor + first answer"
    off1, f1 = r.m("log", "logging off", g1), r.m("log", "logging filtered", g1)
    off2, f2 = r.m("log", "logging off", g2), r.m("log", "logging filtered", g2)
    return ("what logging costs: `portal.run` p50 / a spawn-to-end cycle, logging on but filtered (`warning`)",
            f"{f1 / off1:.2f}x / {f2 / off2:.2f}x the same with no logging", f"no logging: {us(off1)} / {ms(off2)}")


def leak(r: Run):
    g1, g2 = "RSS kept per spawn/end cycle, bare", "RSS kept per spawn/end cycle, with trio"
    return ("RSS kept per spawn/end cycle on Python 3.13 (bare / after `import trio`)",
            f"{r.m('leak', 'subactor actor', g1):.2f} / {r.m('leak', 'subactor actor', g2):.2f} MiB",
            f"`_interpreters` create/destroy {r.m('leak', '_interpreters', g1):.2f} / {r.m('leak', '_interpreters', g2):.2f} MiB "
            "(CPython's own; docs/design.md)")


ROWS: list[Callable[[Run], tuple[str, str, str]]] = [
    host_spawn, host_parallel, host_interrupt, chan_small, chan_large, chan_rt, codec, struct,
    calls, calls_async, calls_busy, stream_rt, stream_small, stream_large, stream_zc, stream_memory,
    spawn, spawn_trio, scale, scale_end, cancel, cancel_2_3, ladder, ladder_stall, ctrl_c, fuzz, mass_cancel,
    pool, pool_many, pool_cpu, process, process_stream, discovery, network, network_stream, network_find,
    network_spawn, wire, imports, aio, aio_spawn, log, leak,
]


def table(data: dict) -> str:
    run = Run(data)
    out = ["| what | subactor | anchor (same run) |", "|---|---|---|"]
    for fn in ROWS:
        try:
            what, mine, anchor = fn(run)
        except (Missing, KeyError, ValueError, ZeroDivisionError) as e:
            what, mine, anchor = fn.__name__, f"(not in this run: {e})", ""
        out.append(f"| {what} | {mine} | {anchor} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "build/bench-results.json"
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        print(f"{path}: not found; `make bench` writes it", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"{path}: not a bench results file ({e})", file=sys.stderr)
        return 2
    print(f"<!-- {data.get('machine', '?')}{', quick' if data.get('quick') else ''} -->")
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
