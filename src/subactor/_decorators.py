"""``@subactor.context``: marks a context entry point. No trio here, so that
an actor serving only sync calls can check the mark without importing it."""


_NO_SPEC = object()


def context(fn=None, *, pld_spec=_NO_SPEC):
    """Mark an async function as a context entry point (``@subactor.context``).

    The function is called as ``fn(ctx, **kwargs)`` in the callee actor.
    ``@subactor.context(pld_spec=T)``: what ``started()``, the stream's
    ``send()`` and the return value carry must be of type ``T`` (see
    :mod:`subactor.msg`), checked by the side that sends and the side that
    receives; a violation raises ``MsgTypeError``.
    """
    if fn is None:
        def deco(f):
            f = context(f)
            if pld_spec is not _NO_SPEC:
                from subactor.msg import _spec
                _spec.spec_of(pld_spec)  # a type the codec cannot check fails here
                f._subactor_pld_spec = type(None) if pld_spec is None else pld_spec
            return f
        return deco
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_flags & 0x80:  # CO_COROUTINE
        raise TypeError(f"@context needs an async def function, got {fn!r}")
    fn._subactor_context = True
    return fn


def is_context(fn) -> bool:
    return bool(getattr(fn, "_subactor_context", False))


def stream(fn):
    """Mark a legacy one-way streaming function (``@subactor.stream``): an
    async function with a ``ctx`` parameter that sends items with
    ``await ctx.send_yield(value)``; the parent reads them with
    ``portal.open_stream_from(fn, **kwargs)``."""
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_flags & 0x80:  # CO_COROUTINE
        raise TypeError(f"@stream needs an async def function, got {fn!r}")
    if "ctx" not in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        raise TypeError(f"{fn.__name__} must be `ctx: tractor.Context` aware: a @stream function takes a "
                        f"parameter named ctx (a subactor.Context) and sends with ctx.send_yield()")
    fn._subactor_stream = True
    return fn


def is_stream(fn) -> bool:
    return bool(getattr(fn, "_subactor_stream", False))
