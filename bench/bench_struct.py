"""Typed-message benchmark: subactor.msg.Struct against msgspec.Struct,
pickle and dataclasses + dataclasses.asdict through subactor's codec.

Run: .venv/bin/python bench/bench_struct.py [--quick]
 (or: python -m subactor bench struct)

Encode and decode of three messages, each timed for every contender in the
same run, in the main interpreter (where msgspec loads):
  - a 5-field Struct;
  - a list of 1,000 of them;
  - a nested Struct with a dict and a list of Structs.
Contenders: subactor (msg.Encoder / msg.Decoder(T), validating), msgspec
(msgpack Encoder / Decoder(T), validating: the anchor, ratio 1.0), pickle
protocol 5 (of equivalent slots dataclasses), and dataclasses encoded with
asdict() + subactor._ext.dumps and decoded with _ext.loads + the class
constructors (no validation). A last group per message is the cost of
validation: subactor's typed decode against its plain _ext.loads of the
same bytes (dicts, not Structs). Each figure is the median over repeats of
the mean time per call (time.perf_counter_ns). Goals: subactor within 1.3x
of msgspec, and at least 3x faster than pickle. The machine is small and
shared: compare ratios, not absolute times, across runs.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _table import print_table  # noqa: E402
from bench_codec import _median_ns_per_call  # noqa: E402

import msgspec  # noqa: E402

from subactor import _ext, msg  # noqa: E402


# subactor.msg ------------------------------------------------------------
class Rec(msg.Struct):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


class Nested(msg.Struct):
    title: str
    counts: dict[str, int]
    recs: list[Rec]
    owner: Rec
    note: str | None = None


# msgspec -----------------------------------------------------------------
class MRec(msgspec.Struct):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


class MNested(msgspec.Struct):
    title: str
    counts: dict[str, int]
    recs: list[MRec]
    owner: MRec
    note: str | None = None


# dataclasses ---------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class DRec:
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


@dataclasses.dataclass(slots=True)
class DNested:
    title: str
    counts: dict[str, int]
    recs: list[DRec]
    owner: DRec
    note: str | None = None


def _rec_args(i: int) -> tuple:
    return (i, f"record-{i}", i * 0.25, i % 2 == 0, ["a", f"t{i % 7}"])


def _nested(rec, nested):
    return nested("inventory", {f"k{i}": i for i in range(20)}, [rec(*_rec_args(i)) for i in range(20)],
                  rec(*_rec_args(99)), None)


def cases():
    """name -> (subactor value, its type, msgspec value, its type, dataclass value, dataclass decoder)."""
    def d_rec(d):
        return DRec(**d)

    def d_nested(d):
        return DNested(d["title"], d["counts"], [DRec(**r) for r in d["recs"]], DRec(**d["owner"]), d["note"])

    return {
        "5-field Struct": (Rec(*_rec_args(1)), Rec, MRec(*_rec_args(1)), MRec, DRec(*_rec_args(1)), d_rec),
        "list of 1,000 Structs": ([Rec(*_rec_args(i)) for i in range(1000)], list[Rec],
                                  [MRec(*_rec_args(i)) for i in range(1000)], list[MRec],
                                  [DRec(*_rec_args(i)) for i in range(1000)], lambda ds: [DRec(**d) for d in ds]),
        "nested Struct (dict + list of 20)": (_nested(Rec, Nested), Nested, _nested(MRec, MNested), MNested,
                                              _nested(DRec, DNested), d_nested),
    }


def run(quick: bool = False) -> list[dict]:
    rows = []
    menc = msgspec.msgpack.Encoder()
    senc = msg.Encoder()
    for name, (sv, st, mv, mt, dv, ddec) in cases().items():
        mdec = msgspec.msgpack.Decoder(mt)
        sdec = msg.Decoder(st)
        ours, theirs = senc.encode(sv), menc.encode(mv)
        assert ours == theirs, "the same bytes on the wire"  # same field order, same formats
        assert sdec.decode(theirs) == sv and mdec.decode(ours) == mv

        def asdict_enc(v, _ad=dataclasses.asdict):
            return _ext.dumps([_ad(x) for x in v] if isinstance(v, list) else _ad(v))

        def asdict_dec(b, _dec=ddec):
            return _dec(_ext.loads(b))

        def pk_enc(v):
            return pickle.dumps(v, protocol=5)

        pk = pk_enc(dv)
        ad = asdict_enc(dv)
        assert asdict_dec(ad) == dv
        for op, group_cases in (
            ("encode", [("msgspec", menc.encode, mv), ("subactor", senc.encode, sv),
                        ("pickle 5 (dataclass)", pk_enc, dv), ("asdict + _ext.dumps", asdict_enc, dv)]),
            ("decode", [("msgspec", mdec.decode, theirs), ("subactor", sdec.decode, ours),
                        ("pickle 5 (dataclass)", pickle.loads, pk), ("_ext.loads + dataclass", asdict_dec, ad)]),
            ("validation cost", [("_ext.loads (plain dicts)", _ext.loads, ours), ("subactor typed decode", sdec.decode, ours)]),
        ):
            group = f"{op}: {name} ({len(ours):,} bytes)"
            base = None
            for case, fn, arg in group_cases:
                t = _median_ns_per_call(fn, arg, quick) / 1000.0
                base = base or t
                row = dict(group=group, case=case, median=t, unit="us", ratio=t / base)
                if case == "subactor":
                    row["note"] = "x msgspec (goal <= 1.3x)"
                if case.startswith("pickle"):
                    ours_t = next(r["median"] for r in rows if r["group"] == group and r["case"] == "subactor")
                    row["note"] = f"{t / ours_t:.1f}x subactor's time (goal >= 3x)"
                if case == "subactor typed decode":
                    row["note"] = "typed/plain"
                rows.append(row)
    return rows


if __name__ == "__main__":
    print_table("typed messages (ratio: x first row of each group)", run(quick="--quick" in sys.argv))
