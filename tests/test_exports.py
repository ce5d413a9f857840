"""The public API surface is pinned: a change to it must change this test."""
import ast
import pathlib
import types

import subactor

PUBLIC = [
    "AbandonedActorWarning",
    "Actor",
    "ActorFailed",
    "ActorHandle",
    "ActorInterrupted",
    "ActorNotAvailable",
    "ActorNursery",
    "ActorTooSlowError",
    "BrokenWorkerError",
    "Context",
    "ContextCancelled",
    "ModuleNotExposed",
    "MsgStream",
    "MsgTypeError",
    "NoRuntime",
    "PoolStatistics",
    "Portal",
    "RemoteActorError",
    "StreamOverrun",
    "SubinterpreterImportError",
    "TransportClosed",
    "WorkerPool",
    "actor_tree",
    "context",
    "current_actor",
    "current_ipc_ctx",
    "debug_mode",
    "default_worker_pool",
    "devx",
    "discovery",
    "find_actor",
    "get_err_type",
    "get_registry",
    "get_runtime_vars",
    "ipc",
    "is_root_process",
    "list_actors",
    "live_counts",
    "log",
    "msg",
    "open_actor_cluster",
    "open_nursery",
    "open_root_actor",
    "open_worker_pool",
    "pause",
    "pause_from_sync",
    "post_mortem",
    "print_tree",
    "query_actor",
    "reg_err_types",
    "run_daemon",
    "run_in_subinterpreter",
    "run_sync",
    "runtime",
    "spawn",
    "stream",
    "to_asyncio",
    "trionics",
    "wait_for_actor",
]


def test_public_names_are_pinned():
    assert sorted(subactor.__all__) == PUBLIC


def test_every_public_name_resolves_and_is_not_private():
    for name in PUBLIC:
        obj = getattr(subactor, name)
        assert obj is not None
        mod = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "") or ""
        assert mod.startswith("subactor"), (name, mod)


def test_dir_and_wildcard_list_the_submodules_without_importing_them():
    import subprocess
    import sys

    code = ("import sys, subactor; d = dir(subactor); "
            "print(all(m in d for m in ('log', 'trionics', 'discovery', 'ipc', 'to_asyncio')), "
            "'asyncio' in sys.modules, 'subactor.to_asyncio' in sys.modules, 'subactor.log' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False", "False", "False"], out.stderr
    code = "from subactor import *; print(to_asyncio.__name__, log.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["subactor.to_asyncio", "subactor.log"], out.stderr


def test_unknown_name_raises_attribute_error():
    try:
        subactor.no_such_thing
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_stub_lists_the_same_names():
    stub = pathlib.Path(subactor.__file__).with_suffix(".pyi")
    tree = ast.parse(stub.read_text())
    imported = {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert sorted(imported) == PUBLIC
    all_node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
    assert sorted(ast.literal_eval(all_node.value)) == PUBLIC


def test_tractor_names_present():
    # The names a tractor program uses, so it moves over with an import change.
    for name in ["open_nursery", "context", "current_actor", "RemoteActorError", "ContextCancelled",
                 "ModuleNotExposed", "Portal", "ActorNursery", "Context", "MsgStream"]:
        assert hasattr(subactor, name)
    an = subactor.ActorNursery
    for meth in ["start_actor", "run_in_actor", "cancel"]:
        assert callable(getattr(an, meth))
    for meth in ["run", "run_from_ns", "open_context", "cancel_actor", "wait_for_result", "result"]:
        assert callable(getattr(subactor.Portal, meth))
    for meth in ["started", "open_stream", "cancel", "wait_for_result"]:
        assert callable(getattr(subactor.Context, meth))
    for meth in ["send", "receive", "aclose"]:
        assert callable(getattr(subactor.MsgStream, meth))


def test_package_ships_typing_markers():
    pkg = pathlib.Path(subactor.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_ext.pyi").exists()


TO_ASYNCIO = ["AsyncioCancelled", "AsyncioRuntimeTranslationError", "AsyncioTaskExited", "LinkedTaskChannel",
              "TrioCancelled", "TrioTaskExited", "open_channel_from", "run_as_asyncio_guest", "run_task"]


def test_to_asyncio_names_are_pinned_and_load_lazily():
    import subprocess
    import sys

    assert sorted(subactor.to_asyncio.__all__) == TO_ASYNCIO
    for name in TO_ASYNCIO:
        assert getattr(subactor.to_asyncio, name).__module__.startswith("subactor"), name
    # `import subactor` imports neither asyncio nor the module; the
    # attribute does (tractor programs write tractor.to_asyncio).
    code = ("import sys, subactor; a = 'asyncio' in sys.modules; m = subactor.to_asyncio; "
            "print(a, 'asyncio' in sys.modules or 'trio' in sys.modules, m.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True", "subactor.to_asyncio"], out.stderr
