"""subactor.print_tree() / actor_tree(): the live actors of this
interpreter's nurseries, subinterpreter and process actors alike."""
import io

import subactor

from .conftest import run_bounded


def test_tree_shows_live_subint_and_process_actors():
    seen = {}

    async def main():
        async with subactor.open_nursery() as an:
            a = await an.start_actor("t-sub", enable_modules=["tests.remote"])
            b = await an.start_actor("t-proc", enable_modules=["tests.remote"], backend="process")
            rows = {r["name"]: r for r in subactor.actor_tree()}
            buf = io.StringIO()
            subactor.print_tree(buf)
            seen.update(rows=rows, text=buf.getvalue(), uids=(a.uid, b.uid))
            await an.cancel()
        seen["after"] = subactor.actor_tree()

    run_bounded(main)
    rows, text = seen["rows"], seen["text"]
    assert set(rows) == {"t-sub", "t-proc"}, rows
    sub, proc = rows["t-sub"], rows["t-proc"]
    assert sub["backend"] == "subint" and "serving tests.remote" in sub["running"]
    assert proc["backend"] == "process" and proc["pid"]
    assert sub["uid"] == tuple(seen["uids"][0]) and proc["uid"] == tuple(seen["uids"][1])
    assert sub["parent"] == proc["parent"] and sub["parent"][0] == "root"
    assert sub["state"] and proc["state"]
    assert "(2 actors)" in text and "t-sub" in text and f"pid {proc['pid']}" in text, text
    assert seen["after"] == []   # ended actors leave the tree
