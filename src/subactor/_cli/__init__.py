"""python -m subactor {demo,bench,doctor,daemon}"""
import argparse


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("subactor")
    except metadata.PackageNotFoundError:   # a source tree on sys.path, not installed
        return "unknown (not installed)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m subactor", description=__doc__)
    p.add_argument("--version", action="version", version=f"subactor {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="an actor tree doing parallel work, then stuck actors cancelled")
    d.add_argument("--mb", type=_positive_int, default=256,
                   help="size of the generated data set in MB, at least 1 (default 256)")
    b = sub.add_parser("bench", help="run the benchmark suite and print the comparison tables")
    b.add_argument("--quick", action="store_true", help="fewer repetitions")
    b.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    b.add_argument("--markdown", metavar="FILE", help="also write the tables as a Markdown page")
    b.add_argument("only", nargs="*", help="benchmark modules to run (default: all)")
    sub.add_parser("doctor", help="can this Python run actors; which extension modules need the process backend")
    dm = sub.add_parser("daemon", help="a long-lived root that serves modules to other programs and answers discovery")
    dm.add_argument("--listen", metavar="ADDR", action="append",
                    help="registry address: tcp://HOST:PORT or uds:///PATH (default tcp://127.0.0.1:1616; repeatable)")
    dm.add_argument("--enable-modules", metavar="MODS", default="",
                    help="comma-separated modules whose functions peers may call")
    dm.add_argument("--name", default="daemon", help="the daemon's actor name (default 'daemon')")
    args = p.parse_args(argv)
    if args.cmd == "daemon":
        from subactor._cli._daemon import main as daemon

        return daemon(args.listen, [m for m in args.enable_modules.split(",") if m], args.name)
    if args.cmd == "demo":
        from subactor._cli._demo import main as demo

        return demo(total_mb=args.mb)
    if args.cmd == "doctor":
        from subactor._cli._doctor import main as doctor

        return doctor()
    from subactor._cli._bench import main as bench

    return bench(quick=args.quick, json_path=args.json, only=args.only, markdown_path=args.markdown)
