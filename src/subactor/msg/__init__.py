"""Typed messages: ``Struct``, codecs with enc/dec hooks, payload specs.

subactor's own typed records, encoded by its C MessagePack codec, so they
load and run in own-GIL subinterpreters (where msgspec, a single-phase-init
extension, cannot). tractor's ``tractor.msg`` maps to this module.

- ``Struct``: ``class Point(Struct): x: int; y: int = 0`` (options
  ``frozen``, ``kw_only``, ``tag``, ``tag_field``).
- ``encode(obj)``/``decode(data, type=...)`` and ``Encoder``/``Decoder``:
  decoding validates; a mismatch raises ``ValidationError`` (a
  ``DecodeError``) naming the path: ``$.points[3].x: expected int, got str``.
- ``mk_codec(enc_hook=, dec_hook=, ext_types=, pld_spec=)``,
  ``apply_codec(codec)``, ``current_codec()``.
- ``limit_plds(spec)``: restrict the payloads of the current context.
"""
from __future__ import annotations

from .._ext import DecodeError, EncodeError, ValidationError
from ._codec import (Decoder, Encoder, MsgCodec, MsgDec, apply_codec, current_codec, decode, encode, mk_codec,
                     mk_dec, msgspec_codec, validate)
from ._pld import limit_plds
from ._spec import spec_of
from ._struct import Struct, StructConfig, asdict, astuple, field, fields, replace
from .._exceptions import MsgTypeError
from .._state import Aid

__all__ = [
    "Struct", "StructConfig", "field", "fields", "asdict", "astuple", "replace",
    "Encoder", "Decoder", "MsgCodec", "MsgDec", "mk_dec", "msgspec_codec", "encode", "decode", "validate", "mk_codec", "apply_codec",
    "current_codec", "limit_plds", "spec_of", "DecodeError", "EncodeError", "ValidationError",
    "MsgTypeError", "Aid",
]
