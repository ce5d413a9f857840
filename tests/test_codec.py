"""The MessagePack codec: round trips, wire conformance with msgspec, error
texts, limits, pickle fallback, garbage input, and use inside an own-GIL
actor. The wire format is described at the top of csrc/codec.c."""
import array
import enum
import math
import pickle
import struct

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subactor import _ext

dumps, loads = _ext.dumps, _ext.loads
EncodeError, DecodeError = _ext.EncodeError, _ext.DecodeError
MAX_DEPTH = 256


def same(a, b):
    """Equal in value and in type, all the way down (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        # Keys compare by value; walk both in insertion order, which a round
        # trip keeps.
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items())
        )
    return a == b


def roundtrip(obj, **kw):
    return loads(dumps(obj, **kw), **kw)


# --------------------------------------------------------------------------
# Round trips of each type and edge values

INT_EDGES = [
    0, 1, -1, 127, 128, -32, -33, 255, 256, -128, -129, 0xFFFF, 0x10000, -0x8000, -0x8001,
    2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
    -(2**63),
    # outside the 64-bit formats: ext 1
    2**64, -(2**63) - 1, 2**100, -(2**100), 10**400, -(10**400), 2**64 * 255, -(2**71),
]


@pytest.mark.parametrize("value", INT_EDGES)
def test_int_edges_round_trip(value):
    out = roundtrip(value)
    assert type(out) is int and out == value


@pytest.mark.parametrize(
    "value, wire",
    [
        (None, b"\xc0"), (False, b"\xc2"), (True, b"\xc3"),
        (0, b"\x00"), (127, b"\x7f"), (-1, b"\xff"), (-32, b"\xe0"), (-33, b"\xd0\xdf"),
        (128, b"\xcc\x80"), (256, b"\xcd\x01\x00"), (2**16, b"\xce\x00\x01\x00\x00"),
        (2**32, b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), (2**64 - 1, b"\xcf" + b"\xff" * 8),
        (-129, b"\xd1\xff\x7f"), (-(2**31), b"\xd2\x80\x00\x00\x00"),
        (-(2**63), b"\xd3\x80" + b"\x00" * 7),
        (1.5, b"\xcb" + struct.pack(">d", 1.5)),
        ("", b"\xa0"), ("a" * 31, b"\xbf" + b"a" * 31), ("a" * 32, b"\xd9\x20" + b"a" * 32),
        ("a" * 256, b"\xda\x01\x00" + b"a" * 256),
        (b"", b"\xc4\x00"), (b"ab", b"\xc4\x02ab"), (b"x" * 256, b"\xc5\x01\x00" + b"x" * 256),
        ([], b"\x90"), ([None] * 16, b"\xdc\x00\x10" + b"\xc0" * 16), ({}, b"\x80"),
        ({"a": 1}, b"\x81\xa1a\x01"),
        # ours: ext 1 big int, ext 2 tuple
        (2**64, b"\xc7\x09\x01\x01" + b"\x00" * 8), (-(2**63) - 1, b"\xc7\x09\x01\xff\x7f" + b"\xff" * 7),
        ((), b"\xd4\x02\x90"), ((1, 2), b"\xc7\x03\x02\x92\x01\x02"), ((1, 2, 3), b"\xd6\x02\x93\x01\x02\x03"),
    ],
)
def test_exact_wire_bytes(value, wire):
    assert dumps(value) == wire
    assert same(loads(wire), value)


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, -2.5, 1e308, -1e308, 5e-324, 2.2250738585072014e-308, math.pi,
     math.inf, -math.inf, math.nan],
)
def test_floats_round_trip_exactly(value):
    assert same(roundtrip(value), value)


def test_float32_on_the_wire_decodes():
    assert loads(b"\xca" + struct.pack(">f", 1.5)) == 1.5
    assert math.isinf(loads(b"\xca" + struct.pack(">f", math.inf)))


@pytest.mark.parametrize(
    "value",
    ["", "a", "a" * 31, "a" * 32, "x" * 255, "x" * 256, "y" * 65535, "y" * 65536,
     "héllo", "日本語テキスト", "\U0001f600 emoji", "\x00nul\x00", "\ufeff", "\U0010ffff"],
)
def test_str_round_trip(value):
    out = roundtrip(value)
    assert type(out) is str and out == value


def test_lone_surrogate_raises_encode_error_naming_where():
    # Documented choice: a lone surrogate has no UTF-8 form; we refuse it
    # rather than invent one (msgspec and other decoders would reject it).
    with pytest.raises(EncodeError, match=r"lone surrogate.* at \$\[1\]\['s'\]") as info:
        dumps([0, {"s": "ok\ud800"}])
    assert isinstance(info.value.__cause__, UnicodeEncodeError)


def test_surrogate_bytes_on_the_wire_are_a_decode_error():
    with pytest.raises(DecodeError, match=r"not valid UTF-8 at byte offset 1") as info:
        loads(b"\x91\xa3\xed\xa0\x80")
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65535, 65536, 1 << 20])
def test_bytes_like_round_trip_as_bytes(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for obj in (data, bytearray(data), memoryview(data)):
        out = roundtrip(obj)
        assert type(out) is bytes and out == data


def test_non_contiguous_memoryview_encodes_its_items():
    assert roundtrip(memoryview(b"abcdef")[::2]) == b"ace"
    m = memoryview(array.array("i", [1, 2, 3, 4]))[::2]  # items of 4 bytes
    assert roundtrip(m) == m.tobytes() == array.array("i", [1, 3]).tobytes()


def test_containers_round_trip():
    values = [
        [], (), {}, [[]], ((),), {"": {}}, [1, [2, [3, [4]]]], (1, (2, (3,))),
        [(), [()], ([],)], {"a": (1, [2, (3,)])}, {(1, 2): "tuple key", 3: "int", None: 0, b"b": 1,
                                                  2.5: 2, True: "bool", (): "empty", ("x", (1,)): 5},
        list(range(15)), list(range(16)), list(range(65535)), list(range(65536)),
        tuple(range(300)), tuple(range(70000)),
        {str(i): i for i in range(15)}, {str(i): i for i in range(16)}, {i: i for i in range(65536)},
    ]
    for v in values:
        assert same(roundtrip(v), v), repr(v)[:80]


def test_subclasses_encode_as_their_base_type():
    class Color(enum.IntEnum):
        RED = 1

    class S(str):
        pass

    class L(list):
        pass

    class D(dict):
        pass

    class T(tuple):
        pass

    class F(float):
        pass

    class B(bytes):
        pass

    value = [Color.RED, S("s"), L([1]), D(a=1), T((1,)), F(0.5), B(b"b"), True]
    assert same(roundtrip(value), [1, "s", [1], {"a": 1}, (1,), 0.5, b"b", True])


def test_loads_takes_any_bytes_like():
    wire = dumps({"k": [1, 2]})
    for data in (wire, bytearray(wire), memoryview(wire), array.array("B", wire)):
        assert loads(data) == {"k": [1, 2]}
    assert loads(memoryview(b"\x00\x91\x00\xc0")[1::2]) == [None]  # strided: b"\x91\xc0"


def test_argument_errors():
    with pytest.raises(TypeError, match="exactly 1 positional"):
        dumps()
    with pytest.raises(TypeError, match="exactly 1 positional"):
        dumps(1, True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'pickle'"):
        dumps(1, pickle=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'x'"):
        loads(b"\xc0", x=1)
    with pytest.raises(TypeError):
        loads("not bytes")
    assert issubclass(EncodeError, TypeError) and issubclass(DecodeError, ValueError)


def test_map_key_cache_keeps_keys_apart():
    # Many distinct short keys (more than the cache's 512 slots), then the
    # same keys again: every dict must come back with its own keys.
    msgs = [{f"k{i}": i, f"k{i + 1}": -i, "ü": i, "x" * 40: i} for i in range(2000)]
    out = loads(dumps(msgs))
    assert out == msgs
    assert loads(dumps([{"abc": 1}, {"abd": 2}, {"abc": 3}])) == [{"abc": 1}, {"abd": 2}, {"abc": 3}]


# --------------------------------------------------------------------------
# Errors: unsupported types, depth, pickle

def test_unsupported_type_names_type_and_path():
    class Thing:
        pass

    with pytest.raises(EncodeError) as info:
        dumps([1, 2, {"key": [Thing()]}])
    msg = str(info.value)
    assert "Thing" in msg and "at $[2]['key'][0]" in msg and "send plain data" in msg
    assert "pickle_fallback" not in msg   # no public API takes it
    assert isinstance(info.value, TypeError)

    with pytest.raises(EncodeError, match=r"unsupported type 'set' at \$ "):
        dumps({1, 2})
    with pytest.raises(EncodeError, match=r"'frozenset' at \$\[0\]<key>"):
        dumps([{frozenset(): 1}])
    with pytest.raises(EncodeError, match=r"'complex' at \$\[0\]\[1\]\[5\]"):
        dumps(((0, (1, 2, 3, 4, 5, 1j)),))
    with pytest.raises(EncodeError, match=r"'object' at \$\['a'\]<key>\[1\]"):
        dumps({"a": {(1, object()): 2}})


def test_depth_limit_on_encode():
    def nest(n, make=lambda x: [x]):
        v = 0
        for _ in range(n):
            v = make(v)
        return v

    for make in (lambda x: [x], lambda x: (x,), lambda x: {"k": x}):
        assert roundtrip(nest(MAX_DEPTH, make)) == nest(MAX_DEPTH, make)
        with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH} levels"):
            dumps(nest(MAX_DEPTH + 1, make))


def test_reference_cycle_hits_the_depth_limit():
    a = []
    a.append(a)
    with pytest.raises(ValueError, match="depth limit"):
        dumps(a)
    d = {}
    d["d"] = d
    with pytest.raises(ValueError, match="depth limit"):
        dumps(d)


def test_depth_limit_on_decode():
    assert loads(b"\x91" * MAX_DEPTH + b"\xc0") is not None
    with pytest.raises(DecodeError, match=f"deeper than {MAX_DEPTH} levels.*byte offset {MAX_DEPTH}"):
        loads(b"\x91" * (MAX_DEPTH + 1) + b"\xc0")
    with pytest.raises(DecodeError, match=f"deeper than {MAX_DEPTH}"):
        loads(b"\x81\xc0" * (MAX_DEPTH + 1) + b"\xc0")
    # Tuples (ext 2 around an array) count one level each.
    deep_tuple = dumps(((((0,),),),))
    assert loads(deep_tuple) == ((((0,),),),)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_pickle_fallback_round_trips_unsupported_objects():
    value = {"pts": [Point(1, 2), Point(3, (4, 5))], "s": {1, 2}, "c": 3j, "n": [1, "x"]}
    wire = dumps(value, pickle_fallback=True)
    assert loads(wire, pickle_fallback=True) == value
    # Supported types are still plain MessagePack even with the flag.
    assert dumps([1, "x"], pickle_fallback=True) == dumps([1, "x"])
    assert msgspec.msgpack.decode(wire)["n"] == [1, "x"]
    assert isinstance(msgspec.msgpack.decode(wire)["s"], msgspec.msgpack.Ext)


def test_pickled_data_is_refused_unless_asked_for():
    wire = dumps([0, {1, 2}], pickle_fallback=True)
    with pytest.raises(DecodeError, match=r"ext 3.*pickle is disabled.*byte offset 2"):
        loads(wire)
    with pytest.raises(DecodeError, match="pickle is disabled"):
        loads(wire, pickle_fallback=False)


def test_pickle_failure_is_an_encode_error_with_path():
    with pytest.raises(EncodeError, match=r"cannot pickle .*'function' at \$\['f'\]") as info:
        dumps({"f": lambda: 1}, pickle_fallback=True)
    assert info.value.__cause__ is not None


def test_corrupt_pickle_is_a_decode_error():
    payload = b"\x80\x05garbage"
    wire = bytes([0xC7, len(payload), 3]) + payload
    with pytest.raises(DecodeError, match="could not be unpickled at byte offset 0"):
        loads(wire, pickle_fallback=True)


def test_mutation_during_pickle_is_detected():
    victim = [0, 0, 0]

    class Shrinker:
        def __reduce__(self):
            victim.clear()
            return (int, ())

    victim[0] = Shrinker()
    with pytest.raises(RuntimeError, match="changed size"):
        dumps(victim, pickle_fallback=True)

    d = {}

    class Grower:
        def __reduce__(self):
            d["new"] = 1
            return (int, ())

    d["a"] = Grower()
    with pytest.raises(RuntimeError, match="changed size"):
        dumps(d, pickle_fallback=True)


# --------------------------------------------------------------------------
# Garbage in: DecodeError with what and where, never a crash

@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"", "empty input"),
        (b"\xc1", "invalid type byte 0xc1.*offset 0"),
        (b"\x92\x01", r"array of 2 items but only 1 bytes are left at byte offset 0"),
        (b"\x01\x02", r"trailing data: 1 bytes after the value at byte offset 1"),
        (b"\xcd\x01", "truncated input: int needs 2 more bytes but 1 are left at byte offset 0"),
        (b"\x91\xcb\x00", "float needs 8 more bytes.*byte offset 1"),
        (b"\xa5abc", "str needs 5 more bytes but 3 are left"),
        (b"\xdb\xff\xff\xff\xff", "str needs 4294967295 more bytes"),
        (b"\xdd\xff\xff\xff\xff\xc0", "array of 4294967295 items but only 1 bytes"),
        (b"\xdf\xff\xff\xff\xff", "map of 4294967295 entries"),
        (b"\xc5\x00", "bin length needs 2 more bytes but 1"),
        (b"\xd4\x05\x00", "unsupported ext type 5 at byte offset 0"),
        (b"\xd4\xff\x00", "unsupported ext type -1"),
        (b"\xc7\x00\x01", r"ext 1 \(big int\) with an empty payload"),
        (b"\xd4\x02\xc0", r"ext 2 \(tuple\) whose payload is not an array"),
        (b"\xd5\x02\x90\xc0", r"ext 2 \(tuple\) payload has 1 bytes after its array at byte offset 3"),
        (b"\xd5\x02\x92\x01", "array of 2 items but only 1 bytes"),
        (b"\xc7\x00\x02", r"ext 2 \(tuple\) whose payload is not an array"),
        (b"\x81\x80\x01", r"unhashable map key of type 'dict' at byte offset 1"),
        (b"\x81\x91\x80\x01", r"unhashable map key of type 'tuple' at byte offset 1"),
    ],
)
def test_decode_errors_say_what_and_where(data, pattern):
    with pytest.raises(DecodeError, match=pattern):
        loads(data)


def test_every_truncation_of_a_message_is_a_decode_error():
    wire = dumps({"a": [1, 2.5, "xyz", b"b", None, True, (1, (2,)), 2**70, {"n": -300}], "b": ""})
    for i in range(len(wire)):
        with pytest.raises(DecodeError):
            loads(wire[:i])


def test_array_keys_from_other_encoders_become_tuples():
    # msgspec (and others) write tuple keys as arrays; a key must be hashable.
    wire = msgspec.msgpack.encode({(1, (2, 3)): "v"})
    assert loads(wire) == {(1, (2, 3)): "v"}


# --------------------------------------------------------------------------
# Conformance with msgspec

CONFORMANCE = [
    None, True, False, 0, -1, 2**64 - 1, -(2**63), 1.25, math.inf, "", "ü" * 100, b"\x00" * 300,
    [], {}, [1, [2, [3]]], {"a": {"b": [None, 1.5, "c"]}}, {1: "int key", b"k": "bytes key"},
    list(range(-100, 70000, 7)), {f"k{i}": [i, str(i)] for i in range(100)},
]


@pytest.mark.parametrize("value", CONFORMANCE)
def test_msgspec_reads_our_bytes_and_we_read_theirs(value):
    assert same(msgspec.msgpack.decode(dumps(value)), value)
    assert same(loads(msgspec.msgpack.encode(value)), value)


def test_msgspec_sees_our_ext_types():
    ext = msgspec.msgpack.decode(dumps((1, "two")))
    assert isinstance(ext, msgspec.msgpack.Ext) and ext.code == 2
    assert msgspec.msgpack.decode(ext.data) == [1, "two"]
    for big in (2**64, -(2**63) - 1, 10**50, -(10**50)):
        ext = msgspec.msgpack.decode(dumps(big))
        assert ext.code == 1 and int.from_bytes(ext.data, "big", signed=True) == big
    # and ours from theirs
    assert loads(msgspec.msgpack.encode(msgspec.msgpack.Ext(2, b"\x92\x01\xc0"))) == (1, None)
    assert loads(msgspec.msgpack.encode(msgspec.msgpack.Ext(1, (10**30).to_bytes(13, "big")))) == 10**30


# --------------------------------------------------------------------------
# Property tests

_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True) | st.text() | st.binary()
)
_keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=6).map(tuple)
        | st.dictionaries(_keys, inner, max_size=6)
    ),
    max_leaves=30,
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_property_round_trip(value):
    wire = dumps(value)
    assert same(loads(wire), value)
    assert same(loads(bytearray(wire)), value)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=64))
def test_property_random_bytes_never_crash(data):
    try:
        loads(data)
    except DecodeError:
        pass


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_values, st.data())
def test_property_mutated_messages_decode_or_raise_decode_error(value, data):
    wire = bytearray(dumps(value))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.integers(0, 255))
    try:
        out = loads(wire)
    except DecodeError:
        return
    # Whatever decodes re-encodes to bytes that decode to the same thing.
    again = dumps(out)
    assert dumps(loads(again)) == again


# --------------------------------------------------------------------------
# Inside an own-GIL actor

def test_codec_works_inside_an_own_gil_actor():
    code = (
        "from subactor import _ext\n"
        "value = {'ints': [0, -1, 2**64 - 1, 2**70], 't': (1, (2, 'x')), 'b': b'\\x00\\xff', 'f': 1.5,\n"
        "         'keys': [{'same': i} for i in range(600)]}\n"
        "assert _ext.loads(_ext.dumps(value)) == value\n"
        "try:\n"
        "    _ext.dumps([object()])\n"
        "except _ext.EncodeError as e:\n"
        "    assert '$[0]' in str(e)\n"
        "blob = _ext.dumps({3, 4}, pickle_fallback=True)\n"
        "assert _ext.loads(blob, pickle_fallback=True) == {3, 4}\n"
        "_ext.set_result(_ext.dumps(value))\n"
    )
    a = _ext.spawn(code, name="codec")
    assert a.join(10)
    kind, result = a.outcome()
    assert kind == "ok", a.outcome()
    assert loads(result) == {
        "ints": [0, -1, 2**64 - 1, 2**70], "t": (1, (2, "x")), "b": b"\x00\xff", "f": 1.5,
        "keys": [{"same": i} for i in range(600)],
    }


def test_pickle_of_protocol_5_matches_stdlib():
    # ext 3 carries exactly pickle.dumps(obj, protocol=5).
    wire = dumps({7}, pickle_fallback=True)
    payload = pickle.dumps({7}, protocol=5)
    assert wire.endswith(payload) and wire[-len(payload) - 1] == 3
