"""Encoders, decoders and codecs over the C codec's typed mode."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterable, Iterator

from .. import _ext
from ._spec import spec_of

_typed_dumps = _ext.typed_dumps
_typed_loads = _ext.typed_loads


class Encoder:
    """``Encoder(enc_hook=None).encode(obj)``: MessagePack bytes. Structs
    encode as maps, sets as arrays, Enum members by value, datetime and
    Decimal as ext 16 and 17; ``enc_hook(obj)`` turns any other object into
    one of those."""

    __slots__ = ("enc_hook",)

    def __init__(self, *, enc_hook: Callable[[Any], Any] | None = None):
        self.enc_hook = enc_hook

    def encode(self, obj: Any) -> bytes:
        return _typed_dumps(obj, self.enc_hook)


class Decoder:
    """``Decoder(type=Any, dec_hook=None).decode(data)``: one value of
    ``type``, validated in C. A value of the wrong type raises
    ``ValidationError`` naming its path; bad bytes raise ``DecodeError``.
    ``dec_hook(type, obj)`` builds a custom type from what was decoded."""

    __slots__ = ("type", "dec_hook", "_spec")

    def __init__(self, type: Any = Any, *, dec_hook: Callable[[type, Any], Any] | None = None):
        self.type = type
        self.dec_hook = dec_hook
        self._spec = spec_of(type)

    def decode(self, data) -> Any:
        return _typed_loads(data, self._spec, self.dec_hook)


def encode(obj: Any, *, enc_hook=None) -> bytes:
    return _typed_dumps(obj, enc_hook)


def decode(data, *, type: Any = Any, dec_hook=None) -> Any:
    return _typed_loads(data, spec_of(type), dec_hook)


def validate(value: Any, type: Any, *, enc_hook=None, dec_hook=None) -> Any:
    """``value`` as ``type`` would decode it (encode then decode): raises
    ``ValidationError`` (naming the path) or ``EncodeError``."""
    return _typed_loads(_typed_dumps(value, enc_hook), spec_of(type), dec_hook)


class MsgCodec:
    """A pair of encoder and decoder (``mk_codec``). ``pld_spec`` is the type
    payloads decode as (``Any``: no restriction)."""

    def __init__(self, *, enc_hook=None, dec_hook=None, ext_types: Iterable[type] = (), pld_spec: Any = Any):
        self.ext_types = tuple(ext_types)
        if self.ext_types and (enc_hook is None or dec_hook is None):
            missing = "enc_hook" if enc_hook is None else "dec_hook"
            raise TypeError(f"mk_codec(ext_types={list(self.ext_types)}) also needs {missing}: "
                            "the codec does not know these types natively")
        self.enc_hook = enc_hook
        self.dec_hook = dec_hook
        self.pld_spec = pld_spec
        self.enc = Encoder(enc_hook=enc_hook)
        self.dec = Decoder(pld_spec, dec_hook=dec_hook)

    def encode(self, obj: Any) -> bytes:
        return _typed_dumps(obj, self.enc_hook)

    def decode(self, data) -> Any:
        return self.dec.decode(data)

    def __repr__(self):
        return f"<MsgCodec pld_spec={self.dec._spec[1]} ext_types={[t.__name__ for t in self.ext_types]}>"


def _mk_msgdec():
    from .pretty_struct import Struct

    class MsgDec(Struct):
        """A decoder of payloads of one spec (``mk_dec(spec=...)``): a
        pretty Struct whose ``_dec`` (the Decoder) is private."""

        _dec: Any = None

        @property
        def spec(self) -> Any:
            return self._dec.type

        @property
        def pld_spec_str(self) -> str:
            return self._dec._spec[1]

        def decode(self, data) -> Any:
            return self._dec.decode(data)

        def __repr__(self) -> str:
            return f"<MsgDec spec={self.pld_spec_str}>"

    MsgDec.__module__ = __name__
    MsgDec.__qualname__ = "MsgDec"
    return MsgDec


MsgDec = _mk_msgdec()


def mk_dec(spec: Any = Any, *, dec_hook=None) -> "MsgDec":
    """A decoder of values of type ``spec`` (validating)."""
    return MsgDec(_dec=Decoder(spec, dec_hook=dec_hook))


def mk_codec(*, enc_hook=None, dec_hook=None, ext_types: Iterable[type] = (), pld_spec: Any = Any,
             **unsupported) -> MsgCodec:
    if unsupported:
        raise TypeError(f"mk_codec(): unsupported arguments {sorted(unsupported)}")
    return MsgCodec(enc_hook=enc_hook, dec_hook=dec_hook, ext_types=ext_types, pld_spec=pld_spec)


def msgspec_codec(*, enc_hook=None, dec_hook=None, pld_spec: Any = Any) -> MsgCodec:
    """Opt-in: a codec that also carries msgspec Structs (and anything
    else ``msgspec.to_builtins``/``msgspec.convert`` know), for code that
    runs where msgspec loads (the root, process actors; never a
    subinterpreter actor: msgspec uses single-phase init). A msgspec Struct
    crosses as its builtins (a map) and is rebuilt, validated by msgspec,
    where the spec names its type. ``enc_hook``/``dec_hook`` still handle
    what msgspec does not."""
    try:
        import msgspec
    except ImportError as exc:
        raise ImportError(f"msgspec_codec() needs msgspec where it runs: {exc} (msgspec cannot load in a "
                          "subinterpreter actor; use subactor.msg.Struct there, or backend='process')") from exc

    def _enc(obj):
        if isinstance(obj, msgspec.Struct):
            return msgspec.to_builtins(obj, enc_hook=enc_hook)
        if enc_hook is not None:
            return enc_hook(obj)
        raise NotImplementedError(f"no encoding for {type(obj).__name__}")

    def _dec(type_, obj):
        if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
            try:
                return msgspec.convert(obj, type_, dec_hook=dec_hook)
            except msgspec.ValidationError as exc:
                raise TypeError(str(exc)) from None
        if dec_hook is not None:
            return dec_hook(type_, obj)
        raise NotImplementedError(f"no decoding for {type_!r}")

    return MsgCodec(enc_hook=_enc, dec_hook=_dec, pld_spec=pld_spec)


_default = MsgCodec()
_current: contextvars.ContextVar[MsgCodec] = contextvars.ContextVar("subactor.msg.codec", default=_default)


def current_codec() -> MsgCodec:
    return _current.get()


@contextlib.contextmanager
def apply_codec(codec: MsgCodec) -> Iterator[MsgCodec]:
    """Use ``codec`` for the payloads this task's contexts send and receive
    while the block runs (a context variable: the task and its children)."""
    if not isinstance(codec, MsgCodec):
        raise TypeError(f"apply_codec() takes a MsgCodec (from mk_codec()), not {type(codec).__name__}")
    token = _current.set(codec)
    try:
        yield codec
    finally:
        _current.reset(token)
