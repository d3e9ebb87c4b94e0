"""The ``rotator`` command: the composition root, and the only place that maps outcomes to exit codes.

Exit codes: 0 fine; 1 a failure found at run time; 2 bad configuration or usage. The commands
return an :class:`~rotator.doors.outcome.Outcome`; :data:`EXIT_CODES` is the one table that turns
it into a number (argparse's own usage errors exit 2 too). Each command's help text is a page of
:mod:`rotator.doors.help`; the options accepted before or after the command are
:mod:`rotator.doors.options`.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading

from collections.abc import Callable, Mapping, Sequence
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING

from rotator.adapters.logs import bridge
from rotator.core.errors import ConfigError, JournalUnavailableError
from rotator.core.redact import redact
from rotator.doors import help as help_text
from rotator.doors import options
from rotator.doors.outcome import Outcome


if TYPE_CHECKING:
    from rotator.doors.config import Config


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Every outcome's exit code: this table is the only place a command's result becomes a number.
EXIT_CODES: Mapping[Outcome, int] = MappingProxyType(
    {
        Outcome.OK: EXIT_OK,
        Outcome.FAILING: EXIT_FAILED,
        Outcome.PROBLEMS: EXIT_FAILED,
        Outcome.REFUSED: EXIT_FAILED,
        Outcome.CANNOT_LISTEN: EXIT_FAILED,
        Outcome.ABANDONED: EXIT_FAILED,
        Outcome.DISPROVED: EXIT_FAILED,
        Outcome.INTERRUPTED: EXIT_FAILED,
        Outcome.OUTPUT_LOST: EXIT_FAILED,
        Outcome.UNHEALTHY: EXIT_FAILED,
        Outcome.UNAVAILABLE: EXIT_FAILED,
        Outcome.USAGE: EXIT_USAGE,
    }
)
#: The most rows ``history --limit`` may ask for (a bound SQLite's LIMIT can hold, and a screenful of audit).
HISTORY_LIMIT = 10_000

#: Where `rotator fakes` puts GitLab (Infisical on the next port): config/example.yaml names both.
FAKES_PORT = 8929
#: The commands that act on the configured targets: each reads ``--config`` (before or after it).
TARGET_COMMANDS = (
    "run-once", "rotate", "plan", "status", "history", "inventory", "check", "validate", "daemon", "forget",
)  # fmt: skip
#: The commands that write log lines (on stderr): they take the log options after them too.
LOGGING_COMMANDS = ("run-once", "rotate", "plan", "status", "inventory", "check", "daemon", "forget")
#: The shells ``rotator completion`` writes a script for (those shtab supports).
SHELLS = ("bash", "zsh", "tcsh")


def _version() -> str:
    from rotator import __version__  # noqa: PLC0415 - lazy: metadata lookup only when asked

    return str(__version__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every command's help text comes from :data:`rotator.doors.help.PAGES`."""
    parser = argparse.ArgumentParser(
        prog="rotator",
        description=(
            "Keep GitLab access tokens (project, group, service account) fresh inside Infisical,"
            " without lockouts or leaks."
        ),
        epilog=help_text.TOP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rotator {_version()}")
    options.add(parser, after=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, page in help_text.PAGES.items():
        command = _add_page(commands, name, page)
        arguments = _ARGUMENTS.get(name)
        if arguments is not None:
            arguments(command)
        if name in TARGET_COMMANDS:
            options.add(command, after=True, logs=name in LOGGING_COMMANDS)
        elif name == "healthcheck":  # reads daemon.listen only, logs nothing
            options.add(command, after=True, logs=False)
    return parser


def _add_page(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, page: help_text.Page
) -> argparse.ArgumentParser:
    """A command (or a ``state`` action) whose help is ``page``: summary, description, epilog."""
    return commands.add_parser(
        name,
        help=page.summary,
        description=page.description,
        epilog=help_text.epilog(page),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _run_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--take-over", action="store_true", help="accept the connection's current hash after drift"
    )
    command.add_argument(
        "--revoke-anyway", action="store_true", help="revoke pending tokens even if GitLab saw them used"
    )


def _history_limit(text: str) -> int:
    """``--limit``: a whole number of rows, 1 to HISTORY_LIMIT; anything else is a usage error (exit 2)."""
    # ASCII digits only: int() would also take "+5", " 5", "1_0" and Arabic-Indic digits. Leading
    # zeros aside, more than five digits is over the bound: not converted (int() refuses 4,301).
    digits = re.fullmatch("[0-9]+", text) is not None and len(text.lstrip("0")) <= len(str(HISTORY_LIMIT))
    value = int(text) if digits else 0
    if not 1 <= value <= HISTORY_LIMIT:
        # The value is not echoed: it may be thousands of digits long.
        msg = f"must be a whole number from 1 to {HISTORY_LIMIT}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _run_once(run: argparse.ArgumentParser) -> None:
    run.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    run.add_argument("--force", action="store_true", help="rotate the selected targets even if not due")
    run.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing (= plan)")
    _run_flags(run)
    run.set_defaults(trigger="run-once")


def _rotate(rotate: argparse.ArgumentParser) -> None:
    rotate.add_argument("name", metavar="NAME", help="the target to rotate")
    _run_flags(rotate)
    rotate.set_defaults(trigger="rotate", force=True, dry_run=False)


def _plan(plan: argparse.ArgumentParser) -> None:
    plan.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    plan.set_defaults(trigger="plan", force=False, dry_run=True, take_over=False, revoke_anyway=False)


def _status(status: argparse.ArgumentParser) -> None:
    status.add_argument(
        "--json", action="store_true", help='print {"as_of": ..., "targets": [...], "removed": [...]}'
    )
    status.add_argument(
        "--live",
        action="store_true",
        help='also read GitLab and Infisical (reads only; needs the secrets); --json adds "live"',
    )


def _history(history: argparse.ArgumentParser) -> None:
    history.add_argument("--target", metavar="NAME", help="only this target")
    history.add_argument(
        "--limit",
        type=_history_limit,
        default=20,
        metavar="N",
        help=f"at most this many rows, 1 to {HISTORY_LIMIT} (default: %(default)s)",
    )
    history.add_argument("--json", action="store_true", help="print a JSON array")


def _inventory(inventory: argparse.ArgumentParser) -> None:
    inventory.add_argument("--target", metavar="NAME", help="only this target's scope (no watch: scopes)")
    inventory.add_argument(
        "--json", action="store_true", help='print {"generated_at": ..., "scopes": [...], "tokens": [...]}'
    )


def _forget(forget: argparse.ArgumentParser) -> None:
    forget.add_argument(
        "key", metavar="KEY", help="the entry's key, url|project|connection, as status prints it"
    )
    forget.add_argument(
        "--revoke", action="store_true", help="first revoke every live token it tracks that is safe to revoke"
    )


def _fakes(fakes: argparse.ArgumentParser) -> None:
    fakes.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    fakes.add_argument(
        "--port",
        type=int,
        default=FAKES_PORT,
        help="GitLab's port; Infisical takes the next (default: %(default)s)",
    )
    fakes.add_argument("--json", action="store_true", help="print the seed as one JSON object")


def _state(state: argparse.ArgumentParser) -> None:
    actions = state.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, page in help_text.STATE_PAGES.items():
        action = _add_page(actions, name, page)
        action.add_argument("--from", dest="source", required=True, metavar="URL", help="the journal to copy")
        action.add_argument(
            "--to",
            dest="destination",
            required=True,
            metavar="URL",
            help="an empty store (created if missing)",
        )


def _completion(completion: argparse.ArgumentParser) -> None:
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")


#: Each command's own arguments (the global options are added by :mod:`rotator.doors.options`).
_ARGUMENTS: Mapping[str, Callable[[argparse.ArgumentParser], None]] = MappingProxyType(
    {
        "run-once": _run_once,
        "rotate": _rotate,
        "plan": _plan,
        "status": _status,
        "history": _history,
        "inventory": _inventory,
        "forget": _forget,
        "fakes": _fakes,
        "state": _state,
        "completion": _completion,
    }
)


def _run_fakes(args: argparse.Namespace) -> Outcome:
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
        return Outcome.CANNOT_LISTEN
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
            if (args.host, args.port) != ("127.0.0.1", FAKES_PORT):
                # config/example.yaml names the default ports: as written it would miss these fakes.
                print(
                    f"# config/example.yaml expects 127.0.0.1:{FAKES_PORT} and :{FAKES_PORT + 1}: use a copy"
                )
                print("# whose gitlab.url and infisical.url are the two URLs above.")
            print("# ROTATOR_TEST_HOOKS arms ROTATOR_TEST_CLOCK_OFFSET against these fakes only:")
            print(
                "#   ROTATOR_TEST_CLOCK_OFFSET=61m rotator run-once   # revokes past the example's 1h grace"
            )
            # Everything above is new at each start; a journal from an earlier start describes
            # tokens and connection contents this world never had (rotator would see drift).
            print("# A new world: delete the journal an earlier start left (rm -f config/rotator-state.db*).")
            print("# Ctrl-C stops the fakes.", flush=True)
        stop.wait()
    finally:
        context.__exit__(None, None, None)
    return Outcome.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (1 if the reader of stdout left early).

    Re-entrant: the tests call it many times in one process, each call one command as a process
    would run it (``os.environ``, ``sys.stdout`` and ``sys.stderr`` are read at call time).
    """
    try:
        outcome = _main(argv)
        # Flushed here, not at interpreter exit: there a BrokenPipeError is printed as "Exception
        # ignored ..." with a traceback, whatever we catch.
        sys.stdout.flush()
    except BrokenPipeError:
        # `rotator history | head -1`: the reader left, so do we, quietly. Python ignores SIGPIPE,
        # so the write raised instead; stdout now points at /dev/null so the final flush at exit
        # has nowhere to fail. Whatever ran has already been journaled; only the output was lost.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        outcome = Outcome.OUTPUT_LOST
    code = EXIT_CODES[outcome]
    if outcome is Outcome.ABANDONED:
        # Only the daemon, always its own process: a rotation still runs in a worker thread, which
        # the interpreter would wait for at exit. The journal lets the next start resume it.
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> Outcome:  # noqa: PLR0911 - one return per kind of command or failure
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "healthcheck":
        # Before the log variables are read: the probe logs nothing, and must never exit 2.
        from rotator.doors import healthcheck  # noqa: PLC0415 - reads daemon.listen, nothing else

        return healthcheck.run(args.config, args.config_after, os.environ)
    try:
        args.log = options.log_options(args, os.environ)
        # Before any journal opens: a PostgreSQL pool's warnings are log lines in our format even
        # in the commands that configure no log of their own (status, history, state copy).
        bridge(args.log)
        if args.command == "completion":
            return _print_completion(parser, args.shell)
        if args.command == "fakes":
            return _run_fakes(args)
        if args.command == "state":
            from rotator.doors import state_copy  # noqa: PLC0415 - only this command copies journals

            return state_copy.run(args.source, args.destination, os.environ)
        if args.command == "demo":
            from rotator.doors import scratch  # noqa: PLC0415

            scratch.check(os.environ, None)  # its journal is in its own scratch folder
            return _run_demo()
        return _target_command(args)
    except ConfigError as error:
        # Redacted: a usage error may quote what was written (a key, a name), and a token pasted
        # in the wrong place is still a token.
        print(f"rotator: error: {redact(str(error))}", file=sys.stderr)
        return Outcome.USAGE
    except JournalUnavailableError as error:
        print(f"rotator: error: {redact(str(error))}", file=sys.stderr)
        return Outcome.UNAVAILABLE


def _print_completion(parser: argparse.ArgumentParser, shell: str) -> Outcome:
    import shtab  # noqa: PLC0415 - only this command needs it

    print(shtab.complete(parser, shell=shell))
    return Outcome.OK


def _run_demo() -> Outcome:
    from rotator.doors import demo  # noqa: PLC0415 - only this command needs the fakes

    try:
        return demo.run(sys.stdout)
    except KeyboardInterrupt:
        print(
            "rotator demo: interrupted; the fakes are stopped and the temporary folder removed",
            file=sys.stderr,
        )
        return Outcome.INTERRUPTED


def _validate(args: argparse.Namespace, config: "Config") -> Outcome:
    """``validate``: the config is already loaded and checked; say so in one line."""
    from rotator.doors import wiring  # noqa: PLC0415

    names = [t.name for t in config.targets]
    path = wiring.config_path(options.config_path(args), os.environ)
    print(f"ok: {path}: {len(names)} target(s): {', '.join(names)}")
    return Outcome.OK


def _require_targets(args: argparse.Namespace, config: "Config") -> None:
    """Every NAME given is a configured target: checked before any secret is read or journal opened."""
    from rotator.engine.run import require_known  # noqa: PLC0415

    names = [t.name for t in config.targets]
    # `rotate nope`: the user typed a NAME, not --target; the error names what was typed.
    key = "rotate NAME" if args.command == "rotate" else "--target"
    for name in args.target or ():
        require_known(name, names, key=key, listed="configured")


def _target_command(args: argparse.Namespace) -> Outcome:
    from rotator.doors import commands, hooks, inventory, wiring  # noqa: PLC0415

    hooks.forget_proofs()  # a test hook's proof is good for one command, as it is for one process
    if args.command == "rotate":
        args.target = [args.name]
    handlers: Mapping[str, Callable[[argparse.Namespace, Config], Outcome]] = {
        "run-once": commands.run_once,
        "rotate": commands.run_once,
        "plan": commands.run_once,
        "status": commands.status,
        "history": commands.history,
        "inventory": inventory.run,
        "check": commands.check,
        "validate": _validate,
        "daemon": commands.daemon,
        "forget": commands.forget,
    }
    config = wiring.load(options.config_path(args), os.environ)
    if args.command in {"run-once", "rotate", "plan"}:
        _require_targets(args, config)
    if args.command != "validate":  # validate opens no journal and writes nothing
        from rotator.doors import scratch  # noqa: PLC0415

        scratch.check(os.environ, wiring.state_dir(config))
    return handlers[args.command](args, config)
