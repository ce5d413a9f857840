"""Type specs: a Python type (annotation) compiled once into the tuple the
C decoder walks (``(kind, display name, args...)``, kinds as in
csrc/codec_typed.h). Compiled specs are cached per type."""
from __future__ import annotations

import enum
import types
import typing
from typing import Any

from .. import _ext

ANY, NONE, BOOL, INT, FLOAT, STR, BYTES, LIST, VARTUPLE, TUPLE, DICT, SET, FROZENSET, OPTIONAL, \
    UNION, LITERAL, ENUM, STRUCT, TAGGED, DATETIME, DECIMAL, CUSTOM = range(22)

_SCALARS = {
    type(None): (NONE, "None"), None: (NONE, "None"), bool: (BOOL, "bool"), int: (INT, "int"),
    float: (FLOAT, "float"), str: (STR, "str"), bytes: (BYTES, "bytes"),
    Any: (ANY, "Any"), object: (ANY, "Any"),
}

_EXT_CLASSES = {("datetime", "datetime"): (DATETIME, "datetime"), ("decimal", "Decimal"): (DECIMAL, "Decimal")}

_cache: dict[Any, tuple] = {}


def _name(tp) -> str:
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None) or repr(tp)


def resolve_struct(cls) -> None:
    """Compile the field types of a Struct class into its plan (once)."""
    if cls.__struct_resolved__:
        return
    cls.__struct_resolved__ = True  # before recursing: a field may name this class
    try:
        import sys
        mod = sys.modules.get(cls.__module__)
        hints = typing.get_type_hints(cls, globalns=vars(mod) if mod else None, include_extras=False)
    except Exception as exc:
        cls.__struct_resolved__ = False
        raise TypeError(f"cannot resolve the field types of {cls.__qualname__}: {exc}") from exc
    try:
        specs = tuple(spec_of(hints[f]) for f in cls.__struct_fields__)
    except BaseException:
        cls.__struct_resolved__ = False
        raise
    _ext.struct_plan_resolve(cls.__struct_plan__, specs)


def spec_of(tp: Any) -> tuple[Any, ...]:
    """The type spec of a type (cached)."""
    try:
        return _cache[tp]
    except (KeyError, TypeError):
        pass
    spec = _compile(tp)
    try:
        _cache[tp] = spec
    except TypeError:
        pass
    return spec


def _compile(tp) -> tuple:
    from ._struct import Struct, StructMeta

    if tp in _SCALARS if _hashable(tp) else False:
        return _SCALARS[tp]
    if isinstance(tp, typing.TypeAliasType if hasattr(typing, "TypeAliasType") else ()):
        return spec_of(tp.__value__)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return spec_of(args[0])
    if isinstance(tp, StructMeta) and tp is not Struct:
        resolve_struct(tp)
        return (STRUCT, tp.__qualname__, tp.__struct_plan__)
    if isinstance(tp, type) and (tp.__module__, tp.__qualname__) in _EXT_CLASSES:
        # datetime/Decimal, known by name so that this module imports neither
        return _EXT_CLASSES[tp.__module__, tp.__qualname__]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (ENUM, tp.__qualname__, {m.value: m for m in tp})
    if tp in (list, typing.List):
        return (LIST, "list", spec_of(Any))
    if tp in (tuple, typing.Tuple):
        return (VARTUPLE, "tuple", spec_of(Any))
    if tp in (dict, typing.Dict):
        return (DICT, "dict", spec_of(Any), spec_of(Any))
    if tp in (set, typing.Set):
        return (SET, "set", spec_of(Any))
    if tp in (frozenset, typing.FrozenSet):
        return (FROZENSET, "frozenset", spec_of(Any))
    if origin in (list, set, frozenset):
        item = spec_of(args[0]) if args else spec_of(Any)
        kind = {list: LIST, set: SET, frozenset: FROZENSET}[origin]
        return (kind, f"{origin.__name__}[{item[1]}]", item)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = spec_of(args[0])
            return (VARTUPLE, f"tuple[{item[1]}, ...]", item)
        if args == ((),):
            args = ()
        items = tuple(spec_of(a) for a in args)
        return (TUPLE, f"tuple[{', '.join(i[1] for i in items) or '()'}]", items)
    if origin is dict:
        k, v = (spec_of(args[0]), spec_of(args[1])) if args else (spec_of(Any), spec_of(Any))
        return (DICT, f"dict[{k[1]}, {v[1]}]", k, v)
    if origin is typing.Literal:
        return (LITERAL, f"Literal[{', '.join(map(repr, args))}]", tuple(args))
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if isinstance(tp, type):
        return (CUSTOM, _name(tp), tp)
    raise TypeError(f"subactor.msg cannot use {tp!r} as a field or payload type")


def _hashable(tp) -> bool:
    try:
        hash(tp)
    except TypeError:
        return False
    return True


def _union(args) -> tuple:
    from ._struct import StructMeta

    has_none = type(None) in args
    rest = [a for a in args if a is not type(None)]
    structs = [a for a in rest if isinstance(a, StructMeta)]
    others = [spec_of(a) for a in rest if not isinstance(a, StructMeta)]
    alts = list(others)
    if len(structs) == 1:
        alts.append(spec_of(structs[0]))
    elif structs:
        tag_fields = {s.__struct_config__.tag_field for s in structs}
        untagged = [s.__qualname__ for s in structs if s.__struct_config__.tag is None]
        if untagged or len(tag_fields) != 1:
            raise TypeError("a union of several Structs needs each to have a tag, all with the same "
                            f"tag_field (untagged: {untagged or 'none'}; tag fields: {sorted(map(str, tag_fields))})")
        by_tag = {}
        for s in structs:
            resolve_struct(s)
            if s.__struct_config__.tag in by_tag:
                raise TypeError(f"two Structs of a union have the tag {s.__struct_config__.tag!r}")
            by_tag[s.__struct_config__.tag] = s.__struct_plan__
        alts.append((TAGGED, " | ".join(s.__qualname__ for s in structs), tag_fields.pop(), by_tag))
    if any(a[0] == ANY for a in alts):
        return spec_of(Any)
    name = " | ".join([a[1] for a in alts] + (["None"] if has_none else []))
    if len(alts) == 1:
        inner = alts[0]
        return (OPTIONAL, name, inner) if has_none else inner
    if has_none:
        alts.insert(0, spec_of(None))
    return (UNION, name, tuple(alts))
