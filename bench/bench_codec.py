"""Codec benchmark: subactor's MessagePack codec against msgspec and pickle.

Run: .venv/bin/python bench/bench_codec.py [--quick]

Encode and decode of four representative messages, each timed for
subactor._ext.dumps/loads, msgspec.msgpack.encode/decode and pickle
(protocol 5) in the same run, in the main interpreter. Each figure is the
median over repeats of the mean time per call in a timed loop
(time.perf_counter_ns). The ratio column is relative to msgspec (goal for
subactor: <= 1.5x). This machine is small and noisy: compare ratios, not
absolute times, across runs.
"""
from __future__ import annotations

import os
import pickle
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _table import print_table  # noqa: E402

import msgspec  # noqa: E402

from subactor import _ext  # noqa: E402


def messages() -> dict[str, object]:
    """The benchmarked messages, by name. Tuple-free, so that all three
    codecs encode the same values (msgspec turns tuples into arrays)."""
    rpc = {
        "type": "call",
        "cid": 48213,
        "ns": "myproject.workers.resize",
        "func": "thumbnail",
        "kwargs": {"path": "/data/images/0001.png", "width": 256, "height": 192, "quality": 0.85},
        "uid": ["worker-3", "a1b2c3d4"],
    }
    ints = [(i * 2654435761) % (1 << (i % 40)) - (1 << (i % 40 - 1) if i % 40 else 0) for i in range(1000)]
    nested = {f"field_{i}": [i, i * 0.5, f"value {i}", [i, -i, None, True]] for i in range(100)}
    blob = os.urandom(1 << 20)
    return {
        "small RPC dict": rpc,
        "list of 1000 ints": ints,
        "dict of 100 str keys -> nested lists": nested,
        "1 MiB bytes": blob,
    }


def _median_ns_per_call(fn, arg, quick: bool) -> float:
    """Median over repeats of the mean ns per call of fn(arg)."""
    # Calibrate like timeit's autorange: grow the loop until it takes >= 2 ms.
    loops = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            fn(arg)
        took = time.perf_counter_ns() - t0
        if took >= 2_000_000:
            break
        loops *= 2
    target = (5 if quick else 20) * 1_000_000  # ns per repeat
    loops = max(1, int(loops * target / took))
    repeats = 5 if quick else 15
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            fn(arg)
        per_call.append((time.perf_counter_ns() - t0) / loops)
    return statistics.median(per_call)


def run(quick: bool = False) -> list[dict]:
    """Rows for bench/_table.py: one group per (message, direction), msgspec
    first, ratios relative to it."""
    mp_enc, mp_dec = msgspec.msgpack.encode, msgspec.msgpack.decode

    def pk_enc(obj):
        return pickle.dumps(obj, protocol=5)

    rows = []
    for name, msg in messages().items():
        ours, theirs, pk = _ext.dumps(msg), mp_enc(msg), pk_enc(msg)
        # Same values on the wire both ways (the conformance tests say more).
        assert mp_dec(ours) == msg and _ext.loads(theirs) == msg
        for op, cases in (
            ("encode", [("msgspec", mp_enc, msg), ("subactor", _ext.dumps, msg), ("pickle 5", pk_enc, msg)]),
            ("decode", [("msgspec", mp_dec, theirs), ("subactor", _ext.loads, ours), ("pickle 5", pickle.loads, pk)]),
        ):
            group = f"{op}: {name} ({len(ours):,} bytes as msgpack)"
            base = None
            for case, fn, arg in cases:
                t = _median_ns_per_call(fn, arg, quick) / 1000.0
                base = base or t
                row = dict(group=group, case=case, median=t, unit="us", ratio=t / base)
                if case == "subactor":
                    row["note"] = "subactor/msgspec (goal <= 1.5x)"
                rows.append(row)
    return rows


if __name__ == "__main__":
    print_table("codec (ratio: x msgspec)", run(quick="--quick" in sys.argv))
