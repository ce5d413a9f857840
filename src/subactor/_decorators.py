"""``@subactor.context``: marks a context entry point. No trio here, so that
an actor serving only sync calls can check the mark without importing it."""


def context(fn):
    """Mark an async function as a context entry point (``@subactor.context``).

    The function is called as ``fn(ctx, **kwargs)`` in the callee actor.
    """
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_flags & 0x80:  # CO_COROUTINE
        raise TypeError(f"@context needs an async def function, got {fn!r}")
    fn._subactor_context = True
    return fn


def is_context(fn) -> bool:
    return bool(getattr(fn, "_subactor_context", False))
