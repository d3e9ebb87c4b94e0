"""The ``rotator`` command: the composition root, and the only place that maps outcomes to exit codes.

Exit codes: 0 fine; 1 a failure found at run time; 2 bad configuration or usage.
"""

import argparse
import json
import signal
import sys
import threading

from collections.abc import Sequence
from types import FrameType


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_FAKES_EPILOG = """\
The fakes are for trying rotator out and for tests; they hold everything in memory.
GitLab listens on PORT and Infisical on PORT+1 (default 8929 and 8930); --port 0 picks two free
ports. The seed matches config/example.yaml: projects acme/app and acme/api, one Infisical GitLab
connection each, a manager token, and a machine identity. Stop with Ctrl-C.

example:
  rotator fakes                 # then, in another shell, export the printed variables
  rotator fakes --port 0 --json # machine-readable, for scripts and tests
"""


def _version() -> str:
    from rotator import __version__  # noqa: PLC0415 - lazy: metadata lookup only when asked

    return str(__version__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with a help text per command."""
    parser = argparse.ArgumentParser(
        prog="rotator",
        description="Keep GitLab project access tokens fresh inside Infisical, without lockouts or leaks.",
    )
    parser.add_argument("--version", action="version", version=f"rotator {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fakes = commands.add_parser(
        "fakes",
        help="start a fake GitLab and a fake Infisical on loopback, seeded for config/example.yaml",
        description="Start a fake GitLab and a fake Infisical on 127.0.0.1, seeded, until interrupted.",
        epilog=_FAKES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fakes.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    fakes.add_argument(
        "--port",
        type=int,
        default=8929,
        help="GitLab's port; Infisical takes the next (default: %(default)s)",
    )
    fakes.add_argument("--json", action="store_true", help="print the seed as one JSON object")
    return parser


def _run_fakes(args: argparse.Namespace) -> int:
    from rotator.testing import start_fakes  # noqa: PLC0415 - only this command needs the fakes

    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    infisical_port = args.port + 1 if args.port else 0
    try:
        context = start_fakes(host=args.host, gitlab_port=args.port, infisical_port=infisical_port)
        fakes = context.__enter__()
    except OSError as error:
        print(
            f"rotator fakes: cannot listen on {args.host}:{args.port}: {error.strerror}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        seed = fakes.seed
        if args.json:
            print(json.dumps(seed.as_json()), flush=True)
        else:
            print(f"fake GitLab:     {seed.gitlab_url}  (projects {', '.join(seed.project_paths)})")
            print(f"fake Infisical:  {seed.infisical_url}  (connections {', '.join(seed.connection_ids)})")
            print(f"tokens the connections hold today (adopt_token_id): {list(seed.adopt_token_ids)}")
            print("# for rotator, in another shell:")
            for name, value in seed.environment().items():
                print(f"export {name}={value}")
            print("# Ctrl-C stops the fakes.", flush=True)
        stop.wait()
    finally:
        context.__exit__(None, None, None)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "fakes":
        return _run_fakes(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first
    return EXIT_USAGE  # pragma: no cover
