"""A Struct whose repr is a readable, multi-line listing of its public
fields (``_``-prefixed fields are private: left out), and the helpers
behind it: ``pformat()`` and ``iter_struct_ppfmt_lines()``
(``tractor.msg.pretty_struct``)."""
from __future__ import annotations

from typing import Any, Iterator

from ._struct import Struct as _Base


def _public(s) -> list[str]:
    return [f for f in type(s).__struct_fields__ if not f.startswith("_")]


def _type_name(s, f: str) -> str:
    ann = None
    for klass in type(s).__mro__:
        ann = getattr(klass, "__annotations__", {}).get(f)
        if ann is not None:
            break
    if ann is None:
        return "Any"
    return ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))


def iter_struct_ppfmt_lines(struct: Any, field_indent: int = 2) -> Iterator[tuple[str, str]]:
    """``(indent, "name: type = value")`` for each public field; a nested
    Struct's value is its own pformat() one level deeper."""
    prefix = " " * field_indent
    for f in _public(struct):
        v = getattr(struct, f, None)
        if isinstance(v, _Base):
            text = pformat(v, field_indent=field_indent * 2, close_indent=field_indent)
        else:
            text = repr(v)
        yield prefix, f"{f}: {_type_name(struct, f)} = {text},"


def pformat(struct: Any, field_indent: int = 2, close_indent: int = 0) -> str:
    """A Struct as ``Name(\\n  field: type = value,\\n)``, private fields left out."""
    lines = [p + line for p, line in iter_struct_ppfmt_lines(struct, field_indent=field_indent)]
    name = type(struct).__name__
    if not lines:
        return f"{name}()"
    return f"{name}(\n" + "\n".join(lines) + "\n" + " " * close_indent + ")"


class Struct(_Base):
    """subactor.msg.Struct with pformat() as its repr."""

    def __repr__(self) -> str:
        return pformat(self)

    def pformat(self, field_indent: int = 2) -> str:
        return pformat(self, field_indent=field_indent)
