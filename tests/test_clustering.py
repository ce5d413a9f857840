"""open_actor_cluster: N actors serving the same modules at once."""
import pytest
import trio

import subactor

from . import remote
from .conftest import run_bounded as run

MOD = remote.__name__




def test_a_cluster_of_named_actors_serves_its_modules_and_ends_with_the_block():
    async def main():
        async with subactor.open_actor_cluster(modules=[MOD], names=["a", "b", "c"]) as portals:
            assert sorted(portals) == ["root.a", "root.b", "root.c"]
            answers = {}
            async with trio.open_nursery() as n:
                for name, p in portals.items():
                    async def call(name=name, p=p):
                        answers[name] = await p.run(remote.add, a=len(name), b=1)
                    n.start_soon(call)
            assert answers == {"root.a": 7, "root.b": 7, "root.c": 7}
            assert {p.channel.aid.name for p in portals.values()} == set(portals)
        assert not any(p._alive for p in portals.values())   # each ended with the block

    run(main)


def test_a_cluster_defaults_to_one_actor_per_core():
    import os

    async def main():
        async with subactor.open_actor_cluster(modules=[MOD]) as portals:
            assert len(portals) == (os.cpu_count() or 1)
            assert sorted(portals)[0] == "root.worker_0"

    run(main)


def test_bad_cluster_arguments_are_clear_errors():
    async def main():
        with pytest.raises(ValueError, match="2 names for count=3"):
            async with subactor.open_actor_cluster(modules=[MOD], count=3, names=["x", "y"]):
                pass
        with pytest.raises(ValueError, match="count"):
            async with subactor.open_actor_cluster(modules=[MOD], count=0):
                pass
        with pytest.raises(ValueError, match="distinct"):
            async with subactor.open_actor_cluster(modules=[MOD], names=["x", "x"]):
                pass
        with pytest.raises(TypeError, match="loglevl"):
            async with subactor.open_actor_cluster(modules=[MOD], count=1, loglevl="info"):
                pass

    run(main)
