"""subactor.msg: Struct, typed encode/decode, validation errors, codecs;
property tests (hypothesis) of the round trip and of invalid input."""
from __future__ import annotations

import datetime
import decimal
import enum
import pickle
from typing import Any, Literal, Optional

import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from subactor import _ext, msg
from subactor.msg import DecodeError, EncodeError, Struct, ValidationError


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(Struct):
    x: int
    y: int = 0


class Poly(Struct):
    points: list[Point]
    name: str = "p"


class Every(Struct, kw_only=True):
    n: None = None
    b: bool = False
    i: int = 0
    f: float = 0.0
    s: str = ""
    by: bytes = b""
    li: list[int] = []
    vt: tuple[str, ...] = ()
    ft: tuple[int, str] = (0, "")
    d: dict[str, float] = {}
    se: set[int] = set()
    fs: frozenset[str] = frozenset()
    opt: Optional[int] = None
    un: int | str = 0
    lit: Literal["a", "b", 3] = "a"
    color: Color = Color.RED
    level: Level = Level.LOW
    pt: Point | None = None
    when: datetime.datetime = datetime.datetime(2020, 1, 1)
    dec: decimal.Decimal = decimal.Decimal("0")


class Cat(Struct, tag=True):
    name: str


class Dog(Struct, tag="dog", tag_field="kind"):
    bark: int


class Dog2(Struct, tag="dog2", tag_field="kind"):
    w: float


class Node(Struct):
    value: int
    children: list[Node] = []


class Frozen(Struct, frozen=True):
    a: int
    b: str = "x"


def rt(value, type_=Any):
    return msg.decode(msg.encode(value), type=type_)


# -- Struct class ---------------------------------------------------------

def test_struct_basics():
    p = Point(1)
    assert (p.x, p.y) == (1, 0)
    assert p == Point(1, 0) and p != Point(2)
    assert repr(p) == "Point(x=1, y=0)"
    assert Point.__struct_fields__ == ("x", "y")
    assert msg.asdict(p) == {"x": 1, "y": 0} and msg.astuple(p) == (1, 0)
    assert msg.replace(p, y=5) == Point(1, 5)
    assert not hasattr(p, "__dict__")
    assert pickle.loads(pickle.dumps(Poly([p]))) == Poly([p])


def test_struct_options():
    with pytest.raises(TypeError, match="positional|required"):
        Every(1)  # kw_only
    f = Frozen(1)
    with pytest.raises(AttributeError, match="frozen"):
        f.a = 2
    assert hash(f) == hash(Frozen(1)) and {f, Frozen(1)} == {f}
    assert Cat.__struct_config__.tag == "Cat" and Cat.__struct_config__.tag_field == "type"
    assert msg.encode(Cat("tom"))[:6] == b"\x82\xa4type"  # the tag is first


def test_struct_class_errors():
    with pytest.raises(TypeError, match="required field 'b' follows field 'a'"):
        class Bad(Struct):
            a: int = 0
            b: int
    with pytest.raises(TypeError, match="tag field 'k' is also a field"):
        class Bad2(Struct, tag=True, tag_field="k"):
            k: int


def test_mutable_defaults_are_fresh():
    a, b = Poly([]), Every()
    a.points.append(Point(1))
    assert Poly([]).points == [] and b.li == [] and Every().li is not b.li
    # decoding fills defaults too, each time a fresh one
    x, y = rt({"points": []}, Poly), msg.decode(msg.encode({}), type=Every)
    assert x.name == "p" and y.li == [] and y.li is not Every().li


def test_inheritance():
    class P3(Point):
        z: int = 0

    assert P3.__struct_fields__ == ("x", "y", "z")
    assert rt(P3(1, 2, 3), P3) == P3(1, 2, 3)


# -- encode / decode ---------------------------------------------------------

def test_every_field_type_round_trips():
    e = Every(n=None, b=True, i=-5, f=1.5, s="é", by=b"\x00", li=[1, 2], vt=("a",), ft=(1, "b"),
              d={"k": 2.0}, se={1, 2}, fs=frozenset({"z"}), opt=3, un="u", lit=3, color=Color.GREEN,
              level=Level.HIGH, pt=Point(1, 2), when=datetime.datetime(2021, 2, 3, 4, 5, 6, 7,
                                                                        tzinfo=datetime.timezone.utc),
              dec=decimal.Decimal("3.14"))
    back = rt(e, Every)
    assert back == e
    assert type(back.vt) is tuple and type(back.se) is set and type(back.fs) is frozenset
    assert back.color is Color.GREEN and back.level is Level.HIGH


def test_nested_recursive_and_tagged_unions():
    tree = Node(1, [Node(2), Node(3, [Node(4)])])
    assert rt(tree, Node) == tree
    pets = [Dog(1), Dog2(2.5)]
    assert rt(pets, list[Dog | Dog2]) == pets
    assert rt(Cat("c"), Cat | None) == Cat("c") and rt(None, Cat | None) is None


def test_plain_decode_gives_builtins():
    assert _ext.loads(_ext.dumps(Poly([Point(1)]))) == {"points": [{"x": 1, "y": 0}], "name": "p"}
    assert msg.decode(msg.encode(Cat("c"))) == {"type": "Cat", "name": "c"}


def test_float_accepts_int_and_int_rejects_float():
    assert rt(3, float) == 3.0 and type(rt(3, float)) is float
    with pytest.raises(ValidationError, match=r"^\$: expected int, got float$"):
        rt(3.0, int)
    with pytest.raises(ValidationError, match="expected int, got bool"):
        rt(True, int)


@pytest.mark.parametrize("value,type_,err", [
    ({"points": [{"x": 1}, {"x": 2}, {"x": 3}, {"x": "s"}]}, Poly, r"\$.points\[3\].x: expected int, got str"),
    ({"points": [{"y": 1}]}, Poly, r"\$.points\[0\]: missing required field 'x' of Point"),
    ({"points": 5}, Poly, r"\$.points: expected list\[Point\], got int"),
    ([1, "a"], list[int], r"\$\[1\]: expected int, got str"),
    ({"a": "b"}, dict[str, int], r"\$\['a'\]: expected int, got str"),
    ({1: 1}, dict[str, int], r"\$<key>: expected str, got int"),
    ([1, 2, 3], tuple[int, int], r"expected tuple\[int, int\] \(an array of 2 items\), got 3 items"),
    ("c", Literal["a", "b"], r"\$: expected Literal\['a', 'b'\], got 'c'"),
    ("blue", Color, r"expected a value of Color, got 'blue'"),
    (1.5, int | str, r"\$: expected int \| str, got float"),
    ({"type": "Nope", "name": "x"}, Cat, r"\$.type: expected tag 'Cat' of Cat, got 'Nope'"),
    ({"kind": "cat", "bark": 1}, Dog | Dog2, r"\$.kind: unknown tag 'cat' for Dog \| Dog2"),
    ({"bark": 1, "kind": "dog"}, Dog | Dog2, r"first key is not the tag field 'kind'"),
    ({"kind": "dog", "bark": "x"}, Dog | Dog2, r"\$.bark: expected int, got str"),
    ([[1], ["x"]], list[set[int]], r"\$\[1\]\[0\]: expected int, got str"),
    ({"a": 1}, Point, r"\$: missing required field 'x' of Point"),
    ([1], Point, r"\$: expected Point \(a map\), got array"),
])
def test_validation_errors_name_path_expected_and_got(value, type_, err):
    with pytest.raises(ValidationError, match=err) as info:
        rt(value, type_)
    assert isinstance(info.value, DecodeError)


def test_unknown_fields_are_ignored():
    assert rt({"x": 1, "zzz": [1, {"deep": 2}]}, Point) == Point(1)


def test_bad_bytes_are_decode_errors():
    with pytest.raises(DecodeError, match="truncated"):
        msg.decode(msg.encode(Poly([Point(1)]))[:-1], type=Poly)
    with pytest.raises(DecodeError, match="trailing data"):
        msg.decode(msg.encode(Point(1)) + b"\x00", type=Point)


def test_unencodable_field_names_its_path():
    with pytest.raises(EncodeError, match=r"unsupported type 'object' at \$.points\[0\].x"):
        msg.encode(Poly([Point(object())]))


class Path:
    """A type the codec does not know (carried with enc_hook/dec_hook)."""

    def __init__(self, s):
        self.s = s

    def __eq__(self, o):
        return isinstance(o, Path) and o.s == self.s


class Holder(Struct):
    p: Path


def test_custom_types_with_hooks():
    def enc(obj):
        if isinstance(obj, Path):
            return f"path:{obj.s}"
        raise NotImplementedError

    def dec(t, obj):
        if t is Path:
            return Path(obj.removeprefix("path:"))
        raise NotImplementedError

    codec = msg.mk_codec(enc_hook=enc, dec_hook=dec, ext_types=[Path], pld_spec=Holder)
    assert codec.decode(codec.encode(Holder(Path("/a")))) == Holder(Path("/a"))
    with pytest.raises(EncodeError, match="enc_hook failed"):
        msg.encode(object(), enc_hook=enc)
    with pytest.raises(ValidationError, match="expected Path"):
        msg.decode(msg.encode({"p": "x"}), type=Holder)  # no dec_hook
    with pytest.raises(TypeError, match="also needs dec_hook"):
        msg.mk_codec(enc_hook=enc, ext_types=[Path])
    with msg.apply_codec(codec) as c:
        assert msg.current_codec() is c
    assert msg.current_codec() is not codec


def test_bad_spec_and_unsupported_type():
    with pytest.raises(TypeError, match="not a type spec"):
        _ext.typed_loads(b"\x01", (99, "x"))
    with pytest.raises(TypeError, match="union of several Structs needs each to have a tag"):
        msg.Decoder(Point | Poly)


# -- properties ---------------------------------------------------------------

ints = st.integers(min_value=-(2**70), max_value=2**70)
floats = st.floats(allow_nan=False)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
datetimes = st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc))
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=4)

points = st.builds(Point, x=ints, y=ints)
every = st.builds(
    Every, n=st.none(), b=st.booleans(), i=ints, f=floats, s=texts, by=st.binary(max_size=20),
    li=st.lists(ints, max_size=5), vt=st.lists(texts, max_size=3).map(tuple),
    ft=st.tuples(ints, texts), d=st.dictionaries(texts, floats, max_size=4),
    se=st.sets(ints, max_size=5), fs=st.frozensets(texts, max_size=3), opt=st.none() | ints,
    un=ints | texts, lit=st.sampled_from(["a", "b", 3]), color=st.sampled_from(Color),
    level=st.sampled_from(Level), pt=st.none() | points, when=datetimes, dec=decimals)
nodes = st.recursive(st.builds(Node, value=ints),
                     lambda kids: st.builds(Node, value=ints, children=st.lists(kids, max_size=3)),
                     max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(every)
def test_property_every_field_type_round_trips(e):
    assert rt(e, Every) == e


@settings(max_examples=100, deadline=None)
@given(nodes)
def test_property_nested_round_trips(n):
    assert rt(n, Node) == n


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.builds(Dog, bark=ints), st.builds(Dog2, w=floats)), max_size=6))
def test_property_tagged_union_round_trips(pets):
    assert rt(pets, list[Dog | Dog2]) == pets


json_like = st.recursive(
    st.none() | st.booleans() | ints | floats | texts | st.binary(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(texts, c, max_size=4), max_leaves=15)


@settings(max_examples=400, deadline=None)
@given(json_like, st.sampled_from([Every, Poly, Point, Node, list[Point], dict[str, Every], Dog | Dog2,
                                   tuple[int, str], Literal["a", 1], Color, set[int], int | None]))
def test_property_any_value_against_any_spec_is_value_or_validation_error(value, type_):
    data = _ext.dumps(value)
    try:
        out = msg.decode(data, type=type_)
    except ValidationError:
        return
    # what decodes is of the type and encodes back to a value that decodes the same
    assert msg.decode(msg.encode(out), type=type_) == out


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([Every, Poly, Node, Dog | Dog2, list[int], dict[str, Point]]))
def test_property_random_bytes_give_decode_error_never_a_crash(data, type_):
    try:
        msg.decode(data, type=type_)
    except DecodeError:  # ValidationError is one
        pass


# -- pretty_struct / mk_dec (tractor.msg.pretty_struct, tractor.msg._codec) ----

from subactor.msg import pretty_struct  # noqa: E402


class Pretty(pretty_struct.Struct):
    name: str = "n"
    _private: int = 1
    inner: Point | None = None


def test_pretty_struct_hides_private_fields():
    text = repr(Pretty(inner=Point(1)))
    assert text.startswith("Pretty(\n") and text.endswith(")")
    assert "name: str = 'n'," in text and "_private" not in text
    assert [line for _, line in pretty_struct.iter_struct_ppfmt_lines(Pretty())] == \
        ["name: str = 'n',", "inner: Point | None = None,"]
    assert rt(Pretty(_private=5), Pretty)._private == 5  # private is only about display


def test_mk_dec():
    dec = msg.mk_dec(spec=list[Point])
    assert dec.decode(msg.encode([Point(1)])) == [Point(1)]
    assert "_dec" not in pretty_struct.pformat(dec) and "MsgDec(" in pretty_struct.pformat(dec)
    with pytest.raises(ValidationError):
        dec.decode(msg.encode([1]))
