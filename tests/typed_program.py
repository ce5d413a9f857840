"""A program that uses every public name of subactor (``subactor.__all__``
and the ``__all__`` of its public submodules) the way a typed program
would. It is not run: tests/test_typed_program.py checks it with
``mypy --strict``, and checks that it names every public name.

``assert_type`` pins the types that matter (a name that lost its type
comes back as ``Any``, which ``assert_type`` refuses); the other uses pass
values to annotated variables and parameters, which ``--strict`` checks
against the declared types. Nothing here runs at import.
"""
from __future__ import annotations

import logging
import pathlib
import socket
import sys
import types
from typing import Any, assert_type

import trio

import subactor
from subactor import devx, discovery, ipc, log, msg, runtime, to_asyncio, trionics
from subactor.devx import debug
from subactor.msg import pretty_struct
from subactor.msg import types as msg_types
from subactor._transport import TrioChannel


# -- functions an actor runs -------------------------------------------------

async def add(x: int, y: int = 1) -> int:
    return x + y


def double(x: int) -> int:
    return x * 2


@subactor.context
async def echo(ctx: subactor.Context, prefix: str) -> str:
    await ctx.started(len(prefix))
    async with ctx.open_stream() as stream:
        assert_type(stream, subactor.MsgStream)
        async for item in stream:
            await stream.send(f"{prefix}{item}")
    return prefix


@subactor.stream
async def feed(ctx: subactor.Context, n: int) -> None:
    for i in range(n):
        await ctx.send_yield(i)


# -- the top-level API -------------------------------------------------------

async def nursery_and_portals() -> None:
    async with subactor.open_root_actor(name="typed") as root:
        assert_type(root, subactor.Actor)
        uid: tuple[str, str] = root.uid
        print(uid, root.accept_addrs, root.registry_addrs, root.lifetime_stack)
    async with subactor.open_nursery(grace=1.0) as an:
        assert_type(an, subactor.ActorNursery)
        portal = await an.start_actor("worker", enable_modules=[__name__])
        assert_type(portal, subactor.Portal)
        assert_type(await portal.run(add, x=1), int)
        assert_type(await portal.run(double, x=2), int)
        async with portal.open_context(echo, prefix="> ") as (ctx, first):
            assert_type(ctx, subactor.Context)
            async with ctx.open_stream() as stream:
                assert_type(stream, subactor.MsgStream)
                await stream.send(1)
        async with portal.open_stream_from(feed, n=3) as items:
            async for item in items:
                print(item)
        ok: bool = await portal.cancel_actor()
        ria = await an.run_in_actor(add, x=2)
        assert_type(ria, subactor.Portal)
        print(ok, await ria.wait_for_result())
        await an.cancel()
    async with subactor.open_actor_cluster([__name__], count=2) as portals:
        assert_type(portals, dict[str, subactor.Portal])


async def pools() -> None:
    async with subactor.open_worker_pool(2) as pool:
        assert_type(pool, subactor.WorkerPool)
        assert_type(await pool.run_sync(double, 3), int)
        stats = pool.statistics()
        assert_type(stats, subactor.PoolStatistics)
        idle: int = stats.idle_workers
        print(idle)
    assert_type(await subactor.run_sync(double, 4), int)
    assert_type(subactor.default_worker_pool(), subactor.WorkerPool)
    await subactor.run_in_subinterpreter(double, 5)


def handles() -> None:
    h = subactor.spawn(double, 6)
    assert_type(h, subactor.ActorHandle)
    done: bool = h.join(timeout=1.0)
    info: dict[str, Any] = h.info()
    print(done, info, h.result())
    actors: list[dict[str, Any]] = subactor.list_actors()
    counts: dict[str, int] = subactor.live_counts()
    tree: list[dict[str, Any]] = subactor.actor_tree()
    subactor.print_tree(file=sys.stderr)
    print(actors, counts, tree)


def state_and_errors() -> None:
    actor = subactor.current_actor(err_on_no_runtime=False)
    assert_type(actor, subactor.Actor | None)
    ctx = subactor.current_ipc_ctx()
    assert_type(ctx, subactor.Context | None)
    flags: tuple[bool, bool] = (subactor.is_root_process(), subactor.debug_mode())
    rvars: dict[str, Any] = subactor.get_runtime_vars()
    print(flags, rvars)
    subactor.reg_err_types([KeyError])
    found: type | None = subactor.get_err_type("KeyError")
    print(found)
    errors: tuple[type[BaseException], ...] = (
        subactor.ActorFailed, subactor.SubinterpreterImportError, subactor.ActorInterrupted,
        subactor.ActorNotAvailable, subactor.ActorTooSlowError, subactor.BrokenWorkerError,
        subactor.ContextCancelled, subactor.ModuleNotExposed, subactor.MsgTypeError,
        subactor.NoRuntime, subactor.RemoteActorError, subactor.StreamOverrun,
        subactor.TransportClosed,
    )
    warning: type[Warning] = subactor.AbandonedActorWarning
    print(errors, warning)
    try:
        pass
    except subactor.ContextCancelled as e:   # a RemoteActorError: caught first
        by: tuple[str, str] | None = e.canceller
        print(by)
    except subactor.RemoteActorError as e:
        boxed: type | None = e.boxed_type
        src: tuple[str, str] | None = e.src_uid
        data: dict[str, Any] = e.msgdata
        print(boxed, src, data)


async def debugging() -> None:
    await subactor.pause()
    subactor.pause_from_sync()
    await subactor.post_mortem()
    await devx.pause(shield=True)
    devx.pause_from_sync()
    await devx.post_mortem(ValueError())
    devx.dump_stacks()
    signum: int = devx.enable_stack_on_sig()
    print(signum)
    with devx.open_crash_handler() as box:
        assert_type(box, debug.BoxedMaybeException)
    with devx.maybe_open_crash_handler(pdb=False):
        pass
    with debug.open_crash_handler(), debug.maybe_open_crash_handler(pdb=False):
        pass
    repls: tuple[type[object], ...] = (devx.PdbREPL, debug.PdbREPL, debug.TractorConfig)
    print(repls)
    await debug.pause()
    debug.pause_from_sync()
    await debug.post_mortem()


async def discovering() -> None:
    async with subactor.find_actor("worker") as p:
        assert_type(p, subactor.Portal | None)
    async with subactor.wait_for_actor("worker") as p2:
        assert_type(p2, subactor.Portal)
    async with subactor.query_actor("worker") as found:
        print(found)
    async with subactor.get_registry() as reg:
        assert_type(reg, discovery.RegistryPortal)
    async with discovery.find_actor("worker") as p3, discovery.wait_for_actor("worker") as p4:
        print(p3, p4)
    async with discovery.query_actor("worker") as q, discovery.get_registry() as r:
        print(q, r)
    subactor.run_daemon([__name__], registry_addrs=[("127.0.0.1", 1616)])


async def wire() -> None:
    addr: ipc.Address = ipc.wrap_address(("127.0.0.1", 0))
    tcp: ipc.TCPAddress = ipc.TCPAddress("127.0.0.1", 0)
    uds = ipc.uds_address("typed")
    assert_type(uds, ipc.UDSAddress)
    inproc: type[object] = ipc.InprocAddress
    where: str = ipc.runtime_dir()
    ipc.check_private_dir(where)
    key: bytes | None = ipc.get_authkey()
    k2: bytes = ipc.new_authkey_file(pathlib.Path(where) / "key")
    k3: bytes = ipc.read_authkey_file(pathlib.Path(where) / "key")
    names: tuple[str, str] = (ipc.AUTHKEY_ENV, ipc.AUTHKEY_FILE_ENV)
    sizes: tuple[int, float, int] = (ipc.DEFAULT_MAX_FRAME, ipc.HANDSHAKE_TIMEOUT, ipc.HELLO_MAX)
    auth_error: type[PermissionError] = ipc.AuthenticationError
    print(addr, tcp, inproc, key, k2, k3, names, sizes, auth_error, ipc.KEY_FROM_ENV)
    conn = await ipc.connect(tcp, {"hello": 1}, authkey=ipc.KEY_FROM_ENV)
    assert_type(conn, ipc.Connection)
    chan = conn.channel()
    # a TrioChannel over the socket end; the StreamChannel itself under TLS
    assert_type(chan, TrioChannel | ipc.StreamChannel)
    await chan.send({"t": "ping"})
    reply: dict[str, Any] = await chan.recv()
    print(reply)
    await conn.aclose()

    async def handler(c: ipc.Connection) -> None:
        await c.aclose()

    async with trio.open_nursery() as tn:
        await tn.start(ipc.serve, tcp, handler)
        a, b = socket.socketpair()
        tn.start_soon(ipc.serve_socket, a, handler)
        b.close()
    end_type: type[object] = ipc.SocketEnd
    print(end_type)


def logging_api() -> None:
    lg = log.get_logger("typed")
    assert_type(lg, log.StackLevelAdapter)
    lg.info("hello %s", "world")
    lg.runtime("runtime")
    console = log.get_console_log("info", logger=lg)
    assert_type(console, log.StackLevelAdapter)
    level: str = log.get_loglevel()
    log.add_log_level("TYPED", 23)
    high: bool = log.at_least_level(lg, "warning")
    checked: str | int | None = log.check_loglevel("info")
    spec: dict[str | None, str] = log.parse_logspec("info")
    applied: tuple[str | None, dict[str, log.StackLevelAdapter]] = log.apply_logspec("info")
    levels: dict[str, int] = log.CUSTOM_LEVELS
    palettes: tuple[dict[str, Any], dict[str, Any]] = (log.STD_PALETTE, log.BOLD_PALETTE)
    formats: tuple[str, str, str] = (log.LOG_FORMAT, log.DATE_FORMAT, log.ENV_LOGLEVEL)
    std: logging.LoggerAdapter[logging.Logger] = lg
    print(level, high, checked, spec, applied, levels, palettes, formats, std)


class Point(msg.Struct):
    x: int
    y: int = msg.field(default=0)


def messages() -> None:
    p = Point(x=1)
    names: tuple[str, ...] = msg.fields(p)
    as_dict: dict[str, Any] = msg.asdict(p)
    as_tuple: tuple[Any, ...] = msg.astuple(p)
    moved = msg.replace(p, x=2)
    assert_type(moved, Point)
    config: type[object] = msg.StructConfig
    pretty: type[msg.Struct] = pretty_struct.Struct
    data: bytes = msg.encode(p)
    back: Any = msg.decode(data, type=Point)
    valid: Any = msg.validate({"x": 1}, Point)
    enc: msg.Encoder = msg.Encoder()
    dec: msg.Decoder = msg.Decoder()
    codec = msg.mk_codec()
    assert_type(codec, msg.MsgCodec)
    assert_type(msg.msgspec_codec(), msg.MsgCodec)
    assert_type(msg.current_codec(), msg.MsgCodec)
    assert_type(msg.mk_dec(Point), msg.MsgDec)
    with msg.apply_codec(codec) as applied:
        assert_type(applied, msg.MsgCodec)
    with msg.limit_plds(int):
        pass
    spec: tuple[Any, ...] = msg.spec_of(int | str)
    errors: tuple[type[Exception], ...] = (msg.DecodeError, msg.EncodeError, msg.ValidationError,
                                           msg.MsgTypeError)
    aid: msg.Aid = msg_types.Aid("typed", "0" * 32, 1)
    print(names, as_dict, as_tuple, config, pretty, back, valid, enc, dec, spec, errors, aid, msg.Aid)


async def runtime_api() -> None:
    actor = runtime.current_actor(err_on_no_runtime=False)
    assert_type(actor, runtime.Actor | None)
    assert_type(runtime.current_ipc_ctx(), subactor.Context | None)
    flags: tuple[bool, bool] = (runtime.debug_mode(), runtime.is_root_process())
    rvars: dict[str, Any] = runtime.get_runtime_vars()
    async with runtime.open_root_actor() as root:
        assert_type(root, runtime.Actor)
    print(flags, rvars)


async def aio_task(x: int) -> int:
    return x


async def asyncio_api() -> None:
    value: Any = await to_asyncio.run_task(aio_task, x=1)
    async with to_asyncio.open_channel_from(aio_task, x=1) as (chan, first):   # tractor's order
        assert_type(chan, to_asyncio.LinkedTaskChannel)
        await chan.send(1)
    errors: tuple[type[BaseException], ...] = (
        to_asyncio.AsyncioCancelled, to_asyncio.AsyncioTaskExited, to_asyncio.TrioCancelled,
        to_asyncio.TrioTaskExited, to_asyncio.AsyncioRuntimeTranslationError)
    print(value, first, errors)


def asyncio_guest(main: Any) -> None:
    to_asyncio.run_as_asyncio_guest(main)


async def trionics_api() -> None:
    send, recv = trio.open_memory_channel[int](1)
    bcast = trionics.broadcast_receiver(recv, 4)
    assert_type(bcast, trionics.BroadcastReceiver)
    state: type[object] = trionics.BroadcastState
    lagged: type[Exception] = trionics.Lagged
    receiver: trionics.AsyncReceiver[Any] = bcast
    print(state, lagged, receiver, send)
    async with trionics.collapse_eg():
        pass
    eg = BaseExceptionGroup("x", [ValueError()])
    one: BaseException | None = trionics.get_collapsed_eg(eg)
    multi: BaseExceptionGroup[BaseException] | bool = trionics.is_multi_cancelled(eg)
    print(one, multi)
    async with trionics.gather_contexts([subactor.open_nursery()]) as entered:
        print(entered)
    async with trionics.maybe_open_context(subactor.open_worker_pool) as (cached, value):
        print(cached, value)
    async with trionics.maybe_open_nursery() as tn:
        print(tn)
    async with trionics.maybe_raise_from_masking_exc() as masked:
        assert_type(masked, trionics.MaskedError)
    async with trio.open_nursery() as tn2:
        await trionics.start_or_cancel(tn2, trio.sleep, 0)
        await tn2.start(trionics.supervise_run_process, ["true"])


def modules() -> tuple[types.ModuleType, ...]:
    return (subactor.devx, subactor.discovery, subactor.ipc, subactor.log, subactor.msg,
            subactor.runtime, subactor.to_asyncio, subactor.trionics)


async def main() -> None:
    await nursery_and_portals()
    await pools()
    handles()
    state_and_errors()
    await debugging()
    await discovering()
    await wire()
    logging_api()
    messages()
    await runtime_api()
    await asyncio_api()
    await trionics_api()
    print(modules(), subactor.ActorNursery, subactor.MsgStream, subactor.Context)
