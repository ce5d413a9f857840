"""Write the fuzz seed inputs: one file per message, made with our own
encoder, covering every type byte family and our ext types.

Usage: python tools/fuzz/make_seeds.py OUT_DIR
"""
import os
import sys

from subactor import _ext

SEEDS = [
    None, True, False, 0, -1, 127, 128, -33, 2**16, -(2**31) - 1, 2**64 - 1, -(2**63), 2**64, -(10**40),
    1.5, float("nan"), "", "a" * 31, "b" * 40, "ü" * 200, b"", b"\x00" * 300, [], [1, [2, [3]]],
    list(range(20)), (), (1, (2, "x")), {}, {"a": 1, "b": [1.5, None]}, {(1, 2): {3: b"x"}},
    {f"k{i}": i for i in range(20)}, [{"same": i} for i in range(5)], "x" * 70000,
    [[[[[[[[[[0]]]]]]]]]],
    # shaped like the Struct specs of fuzz_decode.c (FUZZ_SPECS)
    {"x": 1, "y": -2}, {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}, {"type": "A", "n": 5},
    [{"type": "B", "s": "q"}, {"type": "A", "n": 1}],
    {"b": True, "f": 1.5, "by": b"z", "vt": ["a"], "ft": [1, {"x": 1}], "d": {"k": {"x": 2}},
     "se": [1, 2], "fs": ["s"], "o": None, "u": [1, 2], "lit": "a", "c": "r", "p": {"x": 0}, "any": [1]},
]


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for i, value in enumerate(SEEDS):
        with open(os.path.join(out, f"seed-{i:03d}"), "wb") as f:
            f.write(_ext.dumps(value))
    # Bytes that are not ours: float32 and an array used as a map key.
    extra = {"float32": b"\xca\x3f\xc0\x00\x00", "array-key": b"\x81\x92\x01\x02\xc0"}
    for name, data in extra.items():
        with open(os.path.join(out, f"seed-{name}"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
