"""The ``raise`` command line: ``raise demo`` and ``raise info``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from raise_jupyter.errors import RaiseError


def _demo(args: argparse.Namespace) -> int:
    from raise_jupyter.demo import run_demo

    for line in run_demo(args.root):
        print(line, flush=True)
        print(flush=True)
    return 0


def _info(args: argparse.Namespace) -> int:
    from raise_jupyter.store import FeatureStore, resolve_root

    root = resolve_root(args.root)
    if not (root / "catalog.db").exists() and not (root / "config.yaml").exists():
        print(f"error: no store at {root}; pass --root or set RAISE_HOME", file=sys.stderr)
        return 1

    fs = FeatureStore(args.namespace, root=root)
    print(f"root: {fs.root}")
    print(f"namespace: {fs.namespace}")
    groups = fs.list_feature_groups()
    if not groups:
        print("  (no feature groups)")
    for group in groups:
        print(f"  {group.name}: {len(group.features)} features, {group.count():,} rows, version {group.version}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from raise_jupyter.server import serve

    serve(args.namespace, root=args.root, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", type=Path, default=argparse.SUPPRESS, help="store root (default: $RAISE_HOME, else ~/.raise)"
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO level")

    parser = argparse.ArgumentParser(prog="raise", description="Raise: a feature store in the notebook.", parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", parents=[common], help="load the 2013 NYC flights into namespace demo/flights and show features, SQL and time travel"
    )
    demo.set_defaults(run=_demo)

    info = commands.add_parser("info", parents=[common], help="list the feature groups of a namespace")
    info.add_argument("namespace", help="namespace path, such as acme/ml/engagement")
    info.set_defaults(run=_info)

    serve = commands.add_parser("serve", parents=[common], help="serve online lookups over HTTP")
    serve.add_argument("namespace", help="namespace path, such as acme/ml/engagement")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: 8000)")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.root = getattr(args, "root", None)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except RaiseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of the output went away, as with "raise demo | head".
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
