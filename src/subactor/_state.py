"""Who am I: the actor the current interpreter belongs to. No trio here."""
from __future__ import annotations

import os


class Actor:
    """The actor this code runs in (``subactor.current_actor()``).

    ``name`` is the name given at spawn ("root" for the main interpreter);
    ``uid`` is ``(name, unique id)``, as in tractor.
    """

    def __init__(self, name: str, uid: str, *, is_root: bool = False, parent: str | None = None):
        self.name = name
        self.uid = (name, uid)
        self.is_root = is_root
        self.parent = parent
        self.enable_modules: list[str] = []

    # Stream items a context's inbox holds by default (tractor's name).
    msg_buffer_size = 2 ** 6

    @property
    def aid(self):
        """tractor's actor id: ``.name``, ``.uuid``, ``.uid``, ``.pid``."""
        import types

        return types.SimpleNamespace(name=self.name, uuid=self.uid[1], uid=self.uid, pid=os.getpid())

    def __repr__(self) -> str:
        return f"<Actor {self.name!r} uid={self.uid[1][:8]} pid={os.getpid()}>"


_current: Actor | None = None


def current_actor() -> Actor:
    """The actor of the calling interpreter; the main interpreter is the root
    actor (made on first use, as tractor opens its root actor implicitly)."""
    global _current
    if _current is None:
        import uuid

        _current = Actor("root", uuid.uuid4().hex, is_root=True)
    return _current


def set_current(actor: Actor) -> None:
    global _current
    _current = actor
