"""subactor.msg.Struct: typed records the C codec encodes and decodes.

A Struct class keeps its fields in ``__slots__``. When the class is made,
its layout (field names, slot offsets, defaults, tag) is compiled once into
a C ``StructPlan`` (``_ext.struct_plan``); the field *types* are compiled
into the plan on first decode (so annotations may name classes defined
later). Encoding and decoding then never look at Python annotations.
"""
from __future__ import annotations

import copy as _copy
import sys
from typing import Any, ClassVar

from .. import _ext

_NODEFAULT = object()
_LAZY_ANNOTATIONS = sys.version_info >= (3, 14)


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default, default_factory):
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = _NODEFAULT, default_factory: Any = None) -> Any:
    """A field's default value, or a factory called for each new instance."""
    if default is not _NODEFAULT and default_factory is not None:
        raise TypeError("field(): give default or default_factory, not both")
    return _Field(default, default_factory)


def _factory_of(value):
    """A default that is a mutable container: a factory of fresh copies."""
    if isinstance(value, (list, dict, set, bytearray)):
        if not value:
            return type(value)
        return lambda: _copy.deepcopy(value)
    return None


class StructConfig:
    """What the class options say: ``cls.__struct_config__``."""

    __slots__ = ("frozen", "kw_only", "tag", "tag_field", "tag_opt")

    def __init__(self, frozen, kw_only, tag, tag_field, tag_opt=None):
        self.frozen, self.kw_only, self.tag, self.tag_field = frozen, kw_only, tag, tag_field
        self.tag_opt = tag_opt if tag_opt is not None else (None if isinstance(tag, (str, int)) else None)

    def __repr__(self):
        return (f"StructConfig(frozen={self.frozen}, kw_only={self.kw_only}, "
                f"tag={self.tag!r}, tag_field={self.tag_field!r})")


def _rebuild(cls, values):
    obj = cls.__new__(cls)
    for name, v in zip(cls.__struct_fields__, values):
        object.__setattr__(obj, name, v)
    return obj


def _lazy_annotations(ns: dict) -> dict:
    """A class body's annotations on 3.14, where they are evaluated lazily
    (PEP 649/749): the namespace holds an annotate function, not a dict.
    Names not defined yet come back as forward references."""
    if not _LAZY_ANNOTATIONS:
        return {}
    import annotationlib

    annotate = annotationlib.get_annotate_from_class_namespace(ns)
    if annotate is None:
        return {}
    return annotationlib.call_annotate_function(annotate, annotationlib.Format.FORWARDREF)


class StructMeta(type):
    def __new__(mcls, name, bases, ns, *, frozen=None, kw_only=False, tag=None, tag_field=None, **kw):
        if ns.get("__module__") == __name__ and name == "Struct":
            ns["__slots__"] = ()
            return super().__new__(mcls, name, bases, ns, **kw)
        if "__slots__" in ns:
            raise TypeError(f"{name}: a Struct declares fields with annotations, not __slots__")
        base_fields: list[str] = []
        base_defaults: dict[str, tuple[int, Any]] = {}
        base_cfg = None
        for b in reversed(bases):
            if isinstance(b, StructMeta) and b is not Struct and hasattr(b, "__struct_fields__"):
                for f in b.__struct_fields__:
                    if f not in base_fields:
                        base_fields.append(f)
                base_defaults.update(b.__struct_defaults__)
                base_cfg = b.__struct_config__
        if frozen is None:
            frozen = base_cfg.frozen if base_cfg else False
        annotations = ns.get("__annotations__") or _lazy_annotations(ns)
        own = []
        defaults = dict(base_defaults)
        for fname, ann in annotations.items():
            if isinstance(ann, str) and ann.startswith(("ClassVar", "typing.ClassVar")) or \
                    getattr(ann, "__origin__", None) is ClassVar or ann is ClassVar:
                continue
            if fname.startswith("__"):
                raise TypeError(f"{name}: field names cannot start with '__' ({fname!r})")
            if fname not in base_fields:
                own.append(fname)
            if fname in ns:
                d = ns.pop(fname)
                if isinstance(d, _Field):
                    if d.default_factory is not None:
                        defaults[fname] = (2, d.default_factory)
                    elif d.default is not _NODEFAULT:
                        defaults[fname] = (1, d.default)
                    else:
                        defaults.pop(fname, None)
                else:
                    fac = _factory_of(d)
                    defaults[fname] = (2, fac) if fac else (1, d)
        fields = tuple(base_fields + own)
        if not kw_only:
            seen_default = None
            for f in fields:
                if f in defaults:
                    seen_default = f
                elif seen_default is not None:
                    raise TypeError(f"{name}: required field {f!r} follows field {seen_default!r} "
                                    "that has a default (or use kw_only=True)")
        ns["__slots__"] = tuple(own)
        cls = super().__new__(mcls, name, bases, ns, **kw)
        if tag is None and base_cfg is not None:
            tag = base_cfg.tag_opt
        if tag is True:
            tag_value = name
        elif tag is None or tag is False:
            tag_value = None
        elif isinstance(tag, (str, int)) and not isinstance(tag, bool):
            tag_value = tag
        elif callable(tag):
            tag_value = tag(name)
        else:
            raise TypeError(f"{name}: tag must be True, a str, an int or a callable, not {tag!r}")
        if tag_value is not None:
            tag_field = tag_field or (base_cfg.tag_field if base_cfg and base_cfg.tag_field else "type")
            if tag_field in fields:
                raise TypeError(f"{name}: the tag field {tag_field!r} is also a field")
        else:
            tag_field = None
        cls.__struct_fields__ = fields
        cls.__struct_defaults__ = defaults
        cls.__struct_config__ = StructConfig(bool(frozen), bool(kw_only), tag_value, tag_field, tag if tag is True or callable(tag) else None)
        cls.__match_args__ = fields
        if "__init__" not in ns:  # a class's own __init__ stays (decoding never calls __init__)
            cls.__init__ = _make_init(cls, fields, defaults, kw_only)
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_setattr
            cls.__hash__ = _frozen_hash
        dvals = tuple(defaults[f][1] if f in defaults else None for f in fields)
        dkinds = bytes(defaults[f][0] if f in defaults else 0 for f in fields)
        cls.__struct_plan__ = _ext.struct_plan(cls, fields, dvals, dkinds, tag_field, tag_value)
        cls.__struct_resolved__ = False
        return cls


def _make_init(cls, fields, defaults, kw_only):
    params, body, env = [], [], {"_NODEFAULT": _NODEFAULT, "_setattr": object.__setattr__}
    if kw_only and fields:
        params.append("*")
    for i, f in enumerate(fields):
        if f in defaults:
            kind, val = defaults[f]
            env[f"_d{i}"] = val
            if kind == 1:
                params.append(f"{f}=_d{i}")
                body.append(f"    _setattr(self, {f!r}, {f})")
            else:
                params.append(f"{f}=_NODEFAULT")
                body.append(f"    _setattr(self, {f!r}, _d{i}() if {f} is _NODEFAULT else {f})")
        else:
            params.append(f)
            body.append(f"    _setattr(self, {f!r}, {f})")
    src = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    if not fields:
        src = "def __init__(self):\n    pass\n"
    exec(src, env)
    fn = env["__init__"]
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    return fn


def _frozen_setattr(self, name, *value):
    raise AttributeError(f"{type(self).__name__} is frozen: cannot set or delete {name!r}")


def _frozen_hash(self):
    return hash((type(self),) + tuple(getattr(self, f) for f in self.__struct_fields__))


class Struct(metaclass=StructMeta):
    """Base class of typed records: ``class Point(Struct): x: int; y: int = 0``.

    Class options: ``frozen=True`` (immutable and hashable), ``kw_only=True``
    (keyword-only __init__), ``tag=True|"name"|int`` with ``tag_field=`` (the
    class's tag, written first in its encoding, chooses among a union of
    Structs). Instances encode as a MessagePack map of field name -> value."""

    __struct_fields__ = ()

    def __repr__(self):
        parts = []
        for f in self.__struct_fields__:
            try:
                parts.append(f"{f}={getattr(self, f)!r}")
            except AttributeError:
                parts.append(f"{f}=<unset>")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f, _NODEFAULT) == getattr(other, f, _NODEFAULT)
                   for f in self.__struct_fields__)

    def __reduce__(self):
        return (_rebuild, (type(self), tuple(getattr(self, f) for f in self.__struct_fields__)))

    def __copy__(self):
        return _rebuild(type(self), tuple(getattr(self, f) for f in self.__struct_fields__))

    def __rich_repr__(self):
        for f in self.__struct_fields__:
            yield f, getattr(self, f)

    def to_dict(self) -> dict:
        """The fields as a dict (not recursive)."""
        return {f: getattr(self, f) for f in self.__struct_fields__}


def asdict(s: Struct) -> dict:
    return s.to_dict()


def astuple(s: Struct) -> tuple:
    return tuple(getattr(s, f) for f in s.__struct_fields__)


def replace(s: Struct, **changes) -> Struct:
    """A copy of ``s`` with some fields changed."""
    bad = set(changes) - set(s.__struct_fields__)
    if bad:
        raise TypeError(f"{type(s).__name__} has no field(s) {sorted(bad)}")
    vals = tuple(changes.get(f, getattr(s, f)) for f in s.__struct_fields__)
    return _rebuild(type(s), vals)


def fields(s) -> tuple[str, ...]:
    return s.__struct_fields__


del sys
