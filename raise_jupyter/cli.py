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
    from raise_jupyter.store import FeatureStore

    fs = FeatureStore(args.namespace, root=args.root)
    print(f"root: {fs.root}")
    print(f"namespace: {fs.namespace}")
    for group in fs.list_feature_groups():
        print(f"  {group.name}: {len(group.features)} features, {group.count():,} rows, version {group.version}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raise", description="Raise: a feature store in the notebook.")
    parser.add_argument("--root", type=Path, default=None, help="store root (default: $RAISE_HOME or ~/.raise)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="load the 2013 NYC flights and show features, SQL and time travel")
    demo.set_defaults(run=_demo)

    info = commands.add_parser("info", help="list the feature groups of a namespace")
    info.add_argument("namespace", help="namespace path, such as acme/ml/engagement")
    info.set_defaults(run=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except RaiseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
