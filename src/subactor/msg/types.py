"""Names of ``tractor.msg.types`` that subactor has: ``Aid``, an actor's
identity (name, uuid, pid). subactor's wire messages are small dicts, so
tractor's message classes (Started, Yield, Return, ...) are not here."""
from .._state import Aid

__all__ = ["Aid"]
