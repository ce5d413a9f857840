"""python -m subactor daemon: run_daemon from the command line."""
from __future__ import annotations

import sys


def main(listen: list[str] | None, mods: list[str], name: str) -> int:
    import trio

    import subactor
    from subactor import ipc

    try:
        addrs = [ipc.wrap_address(a) for a in (listen or ["tcp://127.0.0.1:1616"])]
    except ValueError as exc:
        print(f"subactor daemon: {exc}", file=sys.stderr)
        return 2

    async def run():
        try:
            async with subactor.open_root_actor(name=name, registry_addrs=[a.unwrap() for a in addrs],
                                                enable_modules=mods) as root:
                role = "the registrar" if root.is_registrar else "registered with the registrar"
                where = ", ".join(str(ipc.wrap_address(a)) for a in root.accept_addrs)
                print(f"subactor daemon {name!r}: serving {mods or 'no modules'} at {where} ({role}); "
                      f"Ctrl-C ends it", file=sys.stderr, flush=True)
                await trio.sleep_forever()
        except (ImportError, OSError, ValueError, TypeError, PermissionError) as exc:
            print(f"subactor daemon: {exc}", file=sys.stderr)
            return 1

    try:
        for m in mods:
            __import__(m)
    except ImportError as exc:
        print(f"subactor daemon: cannot import {exc.name or m!r}: {exc}", file=sys.stderr)
        return 1
    try:
        return trio.run(run) or 0
    except KeyboardInterrupt:
        print(f"subactor daemon {name!r}: ended (Ctrl-C)", file=sys.stderr)
        return 130
