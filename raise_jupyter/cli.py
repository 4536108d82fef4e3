"""The ``raise`` command line: ``raise demo``, ``info``, ``serve``, ``worker`` and ``token``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from raise_jupyter.errors import RaiseError


def _demo(args: argparse.Namespace) -> int:
    from raise_jupyter.demo import NOTEBOOKS, run_notebooks
    from raise_jupyter.store import resolve_root

    names = [name if name.endswith(".ipynb") else f"{name}.ipynb" for name in args.notebooks]
    unknown = [name for name in names if name not in NOTEBOOKS]
    if unknown:
        print(f"error: no demo notebook {unknown[0]!r}; choose from {', '.join(NOTEBOOKS)}", file=sys.stderr)
        return 2

    root = resolve_root(args.root)
    print(f"Running the demo notebooks in fresh kernels against the store at {root}", flush=True)
    for run in run_notebooks(root, names=list(dict.fromkeys(names)) or None):
        if run.skipped:
            print(f"\n== {run.name}: skipped, {run.skipped}", flush=True)
            continue
        print(f"\n== {run.name}: ran in {run.seconds:.1f} s, saved with its outputs to {run.saved_to}\n", flush=True)
        print(run.report, flush=True)
    print(f"\nOpen them in JupyterLab with: jupyter lab {root / 'demo-notebooks'}", flush=True)
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
    from raise_jupyter.store import resolve_root

    print(
        f"Serving {args.namespace} from {resolve_root(args.root)} on http://{args.host}:{args.port} "
        "(every endpoint but /health needs a token from 'raise token create USER'; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    serve(args.namespace, root=args.root, host=args.host, port=args.port)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from raise_jupyter.scheduler import Worker

    worker = Worker(args.root, poll_interval=args.poll_interval)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("Received %s; stopping after the running task", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # The loop runs in a second thread and the main thread only waits for it. So the signal
    # handler, which Python runs in the main thread, cannot deadlock on a lock that the loop holds.
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"once": args.once}, name="raise-worker")
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    return 0


def _token_actor(args: argparse.Namespace) -> object:
    from raise_jupyter import access
    from raise_jupyter.errors import NotFoundError
    from raise_jupyter.store import open_catalog, resolve_root

    root = resolve_root(args.root)
    if not (root / "catalog.db").exists() and not (root / "config.yaml").exists():
        # A mistyped --root would otherwise create an empty store whose tokens no server accepts.
        raise NotFoundError(f"No store at {root}; pass the --root of the store that raise serve uses, or set RAISE_HOME.")
    # The acting user is $RAISE_USER, else the operating-system user, as for FeatureStore.
    return access.Actor(access.resolve_user(None), open_catalog(root))


def _token(args: argparse.Namespace) -> int:
    from raise_jupyter import tokens

    actor = _token_actor(args)
    if args.token_command == "create":
        created = tokens.create_token(actor, args.user)
        print(f"Token {created.id} for {created.user} (shown only now; store it safely):")
        print(created.token)
    elif args.token_command == "list":
        listed = tokens.list_tokens(actor)
        if listed.empty:
            print("(no tokens)")
        else:
            print(listed.to_string(index=False))
    else:
        if tokens.revoke_token(actor, args.token_id):
            print(f"Revoked token {args.token_id}.")
        else:
            print(f"Token {args.token_id} was revoked already.")
    return 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}: use a number above 0, such as 1 or 0.5")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", type=Path, default=argparse.SUPPRESS, help="store root (default: $RAISE_HOME, else ~/.raise)"
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO level")

    parser = argparse.ArgumentParser(prog="raise", description="Raise: a feature store in the notebook.", parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the example notebooks headless (flights, embeddings, magics) and print what each produced",
    )
    demo.add_argument("notebooks", nargs="*", help="notebooks to run, such as 01-flights (default: all)")
    demo.set_defaults(run=_demo)

    info = commands.add_parser("info", parents=[common], help="list the feature groups of a namespace")
    info.add_argument("namespace", help="namespace path, such as acme/ml/engagement")
    info.set_defaults(run=_info)

    serve = commands.add_parser("serve", parents=[common], help="serve online lookups over HTTP")
    serve.add_argument("namespace", help="namespace path, such as acme/ml/engagement")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: 8000)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker", parents=[common], help="run the scheduled alerts and live-table refreshes of a store when they are due"
    )
    worker.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds between checks for due tasks (default: 1)",
    )
    worker.add_argument("--once", action="store_true", help="run the tasks that are due now, then exit")
    worker.set_defaults(run=_worker)

    token = commands.add_parser(
        "token", parents=[common], help="create, list and revoke the bearer tokens of the HTTP server (needs owner of the store)"
    )
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", parents=[common], help="create a token for USER and print it once")
    create.add_argument("user", help="user name the token identifies, such as alice")
    token_commands.add_parser("list", parents=[common], help="list the tokens, without their secrets")
    revoke = token_commands.add_parser("revoke", parents=[common], help="revoke a token by its id")
    revoke.add_argument("token_id", type=int, help="token id, as 'raise token list' shows it")
    token.set_defaults(run=_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.root = getattr(args, "root", None)
    verbose = getattr(args, "verbose", False)
    is_worker = args.command == "worker"
    log_format = "%(levelname)s %(name)s: %(message)s"
    if is_worker:
        log_format = "%(asctime)s " + log_format
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=log_format)
    if is_worker:
        # A worker is a long-running service, so it always logs its starts, stops and task runs.
        logging.getLogger("raise_jupyter").setLevel(logging.INFO)
    try:
        return args.run(args)
    except RaiseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output went away, as with "raise demo | head".
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
