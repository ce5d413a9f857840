"""Logging for subactor programs: the stdlib's :mod:`logging` with tractor's
names, levels and record fields.

- :func:`get_logger` returns a :class:`StackLevelAdapter` over a logger of
  the ``subactor`` tree (or of ``pkg_name``'s tree). Called without a name it
  names the logger after the calling module's package, so every module of a
  package shares one logger and the record's ``filename`` tells them apart.
- Extra levels, each a method of the adapter and a registered level name:
  transport 5, runtime 15, devx 17, io 21, cancel 22, pdb 500
  (:data:`CUSTOM_LEVELS`; :func:`add_log_level` adds more).
- :func:`get_console_log` sets a level and adds one stderr handler: coloured
  when stderr is a terminal, plain under ``NO_COLOR``, for ``TERM=dumb`` or
  when stderr is not a terminal (``FORCE_COLOR`` forces colour).
- Every record carries ``actor_name``, ``actor_uid`` (the actor's unique id)
  and ``task`` (the trio task, or the thread outside trio): the adapter puts
  them in, and the console handler fills them in for records of plain
  loggers.

An actor's level comes from ``loglevel=`` of ``open_nursery``/``start_actor``
/``run_in_actor`` (the parent's level when not given), overridden by the
``SUBACTOR_LOGLEVEL`` environment variable; ``current_actor().loglevel``
reads it. Nothing imports this module (or :mod:`logging`) unless a level is
asked for or the program imports it.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Mapping, MutableMapping

__all__ = [
    "CUSTOM_LEVELS", "STD_PALETTE", "BOLD_PALETTE", "LOG_FORMAT", "DATE_FORMAT", "ENV_LOGLEVEL",
    "StackLevelAdapter", "get_logger", "get_console_log", "get_loglevel", "add_log_level",
    "at_least_level", "check_loglevel", "parse_logspec", "apply_logspec",
]

ROOT_NAME = "subactor"
# A tractor program moved over keeps naming its loggers "tractor.<x>".
_ROOT_ALIASES = ("subactor", "tractor")
ENV_LOGLEVEL = "SUBACTOR_LOGLEVEL"
_DEFAULT_LOGLEVEL = "ERROR"

CUSTOM_LEVELS: dict[str, int] = {}
# Colour names per level, for the console formatter (the bold palette is the
# same colours with "bold_" in front, used for the level name itself).
STD_PALETTE: dict[str, str] = {
    "CRITICAL": "red",
    "ERROR": "red",
    "WARNING": "yellow",
    "INFO": "green",
    "DEBUG": "white",
}
BOLD_PALETTE: dict[str, dict[str, str]] = {"bold": {}}

LOG_FORMAT = ("{asctime} ({actor_name}[{actor_uid:.8}], {process}, {task}) [{levelname}] "
              "{name} {filename}:{lineno} {message}")
DATE_FORMAT = "%b %d %H:%M:%S"

_ANSI = {
    "black": 30, "red": 31, "green": 32, "yellow": 33, "blue": 34, "purple": 35, "cyan": 36,
    "white": 37,
}


class StackLevelAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter with tractor's extra levels as methods
    (``log.cancel(msg)``, ``log.runtime(msg)``, ...) whose records name the
    line that called the method, and carry the actor's name and uid."""

    def __init__(self, logger: logging.Logger, extra: Mapping[str, Any] | None = None):
        super().__init__(logger, extra or {})

    @property
    def level(self) -> str:
        """The effective level's name, in lower case."""
        return logging.getLevelName(self.getEffectiveLevel()).lower()

    def at_least_level(self, level: str | int) -> bool:
        return at_least_level(self, level)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        fields = _record_fields()
        fields.update(self.extra)
        given = kwargs.get("extra")
        if given:
            fields.update(given)
        kwargs["extra"] = fields
        return msg, kwargs

    def log(self, level: int | str, msg: object, *args: object, **kwargs: Any) -> None:
        if isinstance(level, str):
            level = _level_number(level)
        if self.isEnabledFor(level):
            # One frame more than the stdlib's adapter: our level methods
            # call this one, and the record must name *their* caller.
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            msg, kwargs = self.process(msg, kwargs)
            self.logger.log(level, msg, *args, **kwargs)

    # The stdlib's level methods call self.log(); through them the record
    # must still name their caller: they are redefined here so that every
    # emit is exactly two frames below the caller.
    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(logging.INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(logging.WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        self._emit(logging.ERROR, msg, args, dict(kwargs, exc_info=exc_info))

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(logging.CRITICAL, msg, args, kwargs)

    if TYPE_CHECKING:
        # The custom levels' methods, set on the class by add_log_level()
        # below (one more per level a program adds).
        def transport(self, msg: object, *args: object, **kwargs: Any) -> None: ...
        def runtime(self, msg: object, *args: object, **kwargs: Any) -> None: ...
        def devx(self, msg: object, *args: object, **kwargs: Any) -> None: ...
        def io(self, msg: object, *args: object, **kwargs: Any) -> None: ...
        def cancel(self, msg: object, *args: object, **kwargs: Any) -> None: ...
        def pdb(self, msg: object, *args: object, **kwargs: Any) -> None: ...

    def _emit(self, level: int, msg: object, args: tuple[object, ...], kwargs: dict[str, Any]) -> None:
        if self.isEnabledFor(level):
            # caller -> level method -> _emit -> Logger.log: two of ours
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
            msg, kwargs = self.process(msg, kwargs)
            self.logger.log(level, msg, *args, **kwargs)


def _level_method(name: str):
    def emit(self, msg, *args, **kwargs):
        self._emit(CUSTOM_LEVELS[name], msg, args, kwargs)

    emit.__name__ = name.lower()
    emit.__qualname__ = f"StackLevelAdapter.{name.lower()}"
    emit.__doc__ = f"Log ``msg`` at the {name} level."
    return emit


def add_log_level(name: str, value: int, color: str = "white") -> None:
    """Register a level: its name (``logging.addLevelName``), its colour and
    a same-named method (lower case) of :class:`StackLevelAdapter`.
    Registering a name again changes its value and colour."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a log level name must be an identifier, got {name!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"log level {name!r}: the value must be a positive int, got {value!r}")
    if color not in _ANSI:
        raise ValueError(f"log level {name!r}: unknown colour {color!r} (one of {sorted(_ANSI)})")
    upper = name.upper()
    CUSTOM_LEVELS[upper] = value
    logging.addLevelName(value, upper)
    STD_PALETTE[upper] = color
    BOLD_PALETTE["bold"][upper] = f"bold_{color}"
    method = name.lower()
    if not hasattr(StackLevelAdapter, method):
        setattr(StackLevelAdapter, method, _level_method(upper))


for _name, _value, _color in (
    ("TRANSPORT", 5, "cyan"),
    ("RUNTIME", 15, "white"),
    ("DEVX", 17, "cyan"),
    ("IO", 21, "purple"),       # a child process's output relayed line by line
    ("CANCEL", 22, "yellow"),
    ("PDB", 500, "white"),
):
    add_log_level(_name, _value, _color)
for _name, _color in list(STD_PALETTE.items()):
    BOLD_PALETTE["bold"].setdefault(_name, f"bold_{_color}")
del _name, _value, _color


def _level_number(level: str | int) -> int:
    if isinstance(level, bool):
        raise TypeError(f"a log level is a level name or an int, not {level!r}")
    if isinstance(level, int):
        return level
    if not isinstance(level, str):
        raise TypeError(f"a log level is a level name or an int, not {type(level).__name__}")
    upper = level.strip().upper()
    if upper in CUSTOM_LEVELS:
        return CUSTOM_LEVELS[upper]
    number = logging.getLevelNamesMapping().get(upper)
    if number is None:
        known = sorted({*logging.getLevelNamesMapping(), *CUSTOM_LEVELS} - {"NOTSET", "WARN", "FATAL"},
                       key=lambda n: _level_number(n))
        raise ValueError(f"unknown log level {level!r}; known levels: {', '.join(n.lower() for n in known)}")
    return number


def check_loglevel(level: Any, what: str = "loglevel") -> str | int | None:
    """``level`` if it names a level (a name in any case, or an int), else
    a TypeError/ValueError naming ``what``."""
    if level is None:
        return None
    try:
        _level_number(level)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what}: {exc}") from None
    return level


def at_least_level(log: logging.Logger | logging.LoggerAdapter[logging.Logger], level: str | int) -> bool:
    """Whether ``log`` emits records of ``level``."""
    return log.isEnabledFor(_level_number(level))


# -- record fields -----------------------------------------------------------
def _record_fields() -> dict[str, str]:
    from subactor import _state

    actor = _state._current
    if actor is not None:
        name, uid = actor.uid
    else:
        name, uid = "root", "-"   # the main interpreter before anything asked who it is
    return {"actor_name": name, "actor_uid": uid, "task": _task_name()}


def _task_name() -> str:
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_task().name
        except RuntimeError:
            pass
    if _IN_SUBINTERPRETER:
        return f"thread {threading.get_ident()}"
    return threading.current_thread().name


# In a subinterpreter actor, threading.current_thread() makes a dummy Thread
# (the interpreter's threading module takes the process's main thread for
# its own), which complains when the actor ends; LogRecord asks for it
# unless logThreads is off. Records there carry the thread id only.
from subactor import _ext  # noqa: E402

_IN_SUBINTERPRETER = _ext.current_actor() is not None
if _IN_SUBINTERPRETER:
    logging.logThreads = False


class ActorFilter(logging.Filter):
    """Fills in ``actor_name``, ``actor_uid`` and ``task`` on records that
    lack them (records of plain loggers); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "actor_uid"):
            for key, value in _record_fields().items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


# -- names -------------------------------------------------------------------
def _caller_path(depth: int) -> str:
    """The package of the module ``depth`` frames up (the module itself
    when it is top level); works for modules not in sys.modules too (exec,
    runpy), as it reads the frame's globals."""
    try:
        g = sys._getframe(depth + 1).f_globals
    except ValueError:
        return ""
    name = g.get("__name__") or ""
    package = g.get("__package__")
    if package is None:
        package = name.rpartition(".")[0]
    return package or name


def _caller_leaf(depth: int) -> str | None:
    """The last part of the calling module's name when it is a module (not
    a package's __init__)."""
    try:
        g = sys._getframe(depth + 1).f_globals
    except ValueError:
        return None
    name = g.get("__name__") or ""
    if name and name != g.get("__package__"):
        return name.rpartition(".")[2]
    return None


def _relative(name: str, pkg_name: str) -> str:
    prefixes = _ROOT_ALIASES if pkg_name == ROOT_NAME else (pkg_name,)
    for prefix in prefixes:
        if name == prefix:
            return ""
        if name.startswith(prefix + "."):
            return name[len(prefix) + 1:]
    return name


def _get_logger(name, pkg_name, logger, mk_sublog, depth) -> StackLevelAdapter:
    if isinstance(logger, StackLevelAdapter):
        return logger
    if isinstance(logger, logging.LoggerAdapter):
        logger = logger.logger
    if logger is not None:
        if not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger, got {type(logger).__name__}")
        return StackLevelAdapter(logger)
    if not isinstance(pkg_name, str) or not pkg_name:
        raise TypeError(f"pkg_name must be a non-empty str, got {pkg_name!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    root = logging.getLogger(pkg_name)
    if not mk_sublog:
        return StackLevelAdapter(root)
    if name is None:
        rest = _relative(_caller_path(depth + 1), pkg_name)
    else:
        rest = _relative(name, pkg_name)
        # get_logger(__name__) in pkg.sub.mod: the module is in the
        # record's filename already, the logger is its package's.
        head, _, leaf = rest.rpartition(".")
        if head and leaf == _caller_leaf(depth + 1):
            rest = head
    return StackLevelAdapter(root.getChild(rest) if rest else root)


def get_logger(name: str | None = None, pkg_name: str = ROOT_NAME, *,
               logger: logging.Logger | None = None, mk_sublog: bool = True,
               _root_name: str | None = None, **_tractor_only: Any) -> StackLevelAdapter:
    """A :class:`StackLevelAdapter` over the logger ``pkg_name.name``.

    ``name`` None: the calling module's package (its own name when top
    level), relative to ``pkg_name``; a ``name`` that starts with
    ``pkg_name.`` is taken relative to it (``subactor.`` and ``tractor.``
    for the default ``pkg_name``). ``mk_sublog=False``: ``pkg_name``'s
    own logger. ``logger``: wrap that logger instead."""
    return _get_logger(name, _root_name or pkg_name, logger, mk_sublog, depth=1)


_console_lock = threading.Lock()


def get_console_log(level: str | int | None = None,
                    logger: logging.Logger | StackLevelAdapter | None = None,
                    **kwargs: Any) -> StackLevelAdapter:
    """Set ``level`` on a logger and make it print to stderr (once: a second
    call changes the level only). Without ``logger`` and ``name`` that is
    the root logger of ``pkg_name`` (``subactor``), so the whole tree
    prints. Without ``level`` nothing is changed; the adapter is returned."""
    if logger is None and kwargs.get("name") is None:
        kwargs.setdefault("mk_sublog", False)
    log = _get_logger(kwargs.pop("name", None), kwargs.pop("_root_name", None) or kwargs.pop("pkg_name", ROOT_NAME),
                      logger, kwargs.pop("mk_sublog", True), depth=1)
    if not level:
        return log
    number = _level_number(check_loglevel(level, "get_console_log level"))
    target = log.logger
    with _console_lock:
        target.setLevel(number)
        if not any(getattr(h, "_subactor_console", False) for h in target.handlers):
            target.addHandler(_console_handler())
    return log


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (a
    test's capture, a redirect made after the handler)."""

    _subactor_console = True

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _wants_colour(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Formatter(logging.Formatter):
    """LOG_FORMAT, with the level's colour (ANSI) on the time, the level
    name (bold) and the logger name when colour is on."""

    def __init__(self, colour: bool):
        super().__init__(LOG_FORMAT, DATE_FORMAT, style="{")
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:
        if not self.colour:
            return super().formatMessage(record)
        code = _ANSI.get(STD_PALETTE.get(record.levelname, "white"), 37)
        saved = record.levelname, record.asctime, record.name
        record.levelname = f"\x1b[1;{code}m{record.levelname}\x1b[0m"
        record.asctime = f"\x1b[{code}m{record.asctime}\x1b[0m"
        record.name = f"\x1b[{code}m{record.name}\x1b[0m"
        try:
            return super().formatMessage(record)
        finally:
            record.levelname, record.asctime, record.name = saved


def _console_handler() -> logging.Handler:
    handler = _StderrHandler()
    handler.addFilter(ActorFilter())
    handler.setFormatter(_Formatter(_wants_colour(sys.stderr)))
    return handler


# -- an actor's level --------------------------------------------------------
def get_loglevel() -> str:
    """The level of this actor: ``SUBACTOR_LOGLEVEL`` when set, else the
    actor's ``loglevel``, else "ERROR" (nothing was asked for: no handler
    is installed, and Python's last-resort handler prints warnings)."""
    env = os.environ.get(ENV_LOGLEVEL)
    if env:
        return env
    from subactor import _state

    actor = _state._current
    level = getattr(actor, "loglevel", None) if actor is not None else None
    return level if level is not None else _DEFAULT_LOGLEVEL


def _apply_actor_level(actor, level: str | int | None) -> str | int | None:
    """Set the level of the actor ``actor`` (``SUBACTOR_LOGLEVEL`` wins over
    ``level``): its ``loglevel`` and a console handler at that level on the
    ``subactor`` tree. Returns the level in effect (None: nothing asked)."""
    env = os.environ.get(ENV_LOGLEVEL)
    if env:
        level = check_loglevel(env, ENV_LOGLEVEL)
    if level is None:
        return None
    actor.loglevel = level
    get_console_log(level)
    return level


# -- logging specs (tractor's "logspec") -------------------------------------
def parse_logspec(logspec: str | bool, default_level: str | None = None,
                  pkg_name: str = ROOT_NAME) -> dict[str | None, str]:
    """A spec as ``{sub-logger name or None (the root): level}``: True is
    the root at ``default_level`` ("cancel"), False nothing, "info" the
    root at info, "a:info,b.c:debug" levels per sub-logger of ``pkg_name``."""
    if logspec is False:
        return {}
    if logspec is True:
        return {None: default_level or "cancel"}
    if not isinstance(logspec, str):
        raise ValueError(f"a logging spec is a bool or a str, got {logspec!r}")
    parts = [p.strip() for p in logspec.split(",") if p.strip()]
    if len(parts) == 1 and ":" not in parts[0]:
        return {None: check_loglevel(parts[0], "logging spec")}
    out: dict[str | None, str] = {}
    for part in parts:
        name, sep, level = part.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"logging spec part {part!r} is not <sub-logger>:<level> (in {logspec!r})")
        if pkg_name in name.split("."):
            raise ValueError(f"logging spec part {part!r}: name sub-loggers relative to {pkg_name!r}, "
                             f"without it")
        out[name.strip()] = check_loglevel(level.strip(), f"logging spec part {part!r}")
    return out


def apply_logspec(logspec: str | bool, default_level: str | None = None,
                  pkg_name: str = ROOT_NAME) -> tuple[str | None, dict[str, StackLevelAdapter]]:
    """Turn on the console for each logger of the spec at its level; a
    sub-logger given its own level does not also print through the root.
    Returns (the root's level or ``default_level``, {logger name: adapter})."""
    specs = parse_logspec(logspec, default_level, pkg_name)
    logs: dict[str, StackLevelAdapter] = {}
    for sub, level in specs.items():
        log = get_console_log(level, pkg_name=pkg_name, name=sub, mk_sublog=sub is not None)
        if sub is not None:
            log.logger.propagate = False
        logs[log.logger.name] = log
    return specs.get(None, default_level), logs


def _apply_in_actor() -> None:
    """In an actor, its level (``loglevel=`` of its spawn, or
    ``SUBACTOR_LOGLEVEL``) takes effect when this module is first imported
    there: an actor whose code never logs imports no logging at all."""
    from subactor import _state

    actor = _state._current
    if actor is not None and _state._is_actor and (actor.loglevel is not None or os.environ.get(ENV_LOGLEVEL)):
        _apply_actor_level(actor, actor.loglevel)


_apply_in_actor()
