"""The ``rotator`` command: the composition root, and the only place that maps outcomes to exit codes.

Exit codes: 0 fine; 1 a failure found at run time; 2 bad configuration or usage. The commands
return an :class:`~rotator.doors.outcome.Outcome`; :data:`EXIT_CODES` is the one table that turns
it into a number (argparse's own usage errors exit 2 too).
"""

import argparse
import json
import os
import re
import signal
import sys
import threading

from collections.abc import Mapping, Sequence
from types import FrameType, MappingProxyType

from rotator.doors.outcome import Outcome


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
        Outcome.USAGE: EXIT_USAGE,
    }
)
#: The most rows ``history --limit`` may ask for (a bound SQLite's LIMIT can hold, and a screenful of audit).
HISTORY_LIMIT = 10_000

_DEMO = """\
Start the fakes on free loopback ports, write a two-target config in a temporary folder, and run
the real engine through a whole cycle: adopt the tokens the connections hold, rotate, verify by
credentialsHash, let the grace pass (on the fakes' clock), revoke, then a forced second rotation
and its revoke. Each step is printed as it is recorded, then the status table, then the proof:
Infisical holds a token GitLab accepts, and every old token answers 401. Nothing leaves loopback;
nothing is left behind. Exit 0 if the proof holds.
"""
_FAKES_EPILOG = """\
The fakes are for trying rotator out and for tests; they hold everything in memory.
GitLab listens on PORT and Infisical on PORT+1 (default 8929 and 8930); --port 0 picks two free
ports. The seed matches config/example.yaml: projects acme/app and acme/api, one Infisical GitLab
connection each, a manager token, and a machine identity. Stop with Ctrl-C.
Each start is a new world (new credentials, tokens numbered from 1 again): delete the journal an
earlier session left (rm -f config/rotator-state.db* for config/example.yaml) and export the new
variables.
The printed ROTATOR_TEST_HOOKS arms the test hooks for these fakes only: with it exported,
ROTATOR_TEST_CLOCK_OFFSET=31d moves rotator's clock a month ahead.

example:
  rotator fakes                 # then, in another shell, export the printed variables
  rotator fakes --port 0 --json # machine-readable, for scripts and tests
"""


_HEALTHCHECK = """\
GET http://HOST:PORT/healthz, HOST:PORT being the config's daemon.listen (0.0.0.0 and :: are probed
on 127.0.0.1 and ::1), with a 3 s timeout. Reads only daemon.listen: no secret, no journal. The
image's HEALTHCHECK runs it, so the probe follows daemon.listen.

environment: ROTATOR_CONFIG, if --config is not given.

exit codes: 0 the daemon answered 200; 1 anything else, an unreadable config included (never 2,
which Docker reserves in a health check).

example:
  rotator --config rotator.yaml healthcheck
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
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="the YAML configuration (default: $ROTATOR_CONFIG; there is no default path)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_target_commands(commands)
    for name in TARGET_COMMANDS:
        # `rotator check --config x.yaml` is the commonest way to write it: accepted after the
        # command too, under its own name, so that giving it in both places can be refused.
        commands.choices[name].add_argument(
            "--config",
            dest="config_after",
            metavar="PATH",
            help="the YAML configuration, also accepted before the command (default: $ROTATOR_CONFIG)",
        )
    health = commands.add_parser(
        "healthcheck",
        help="exit 0 if the daemon on daemon.listen answers /healthz (the image's HEALTHCHECK)",
        description=_HEALTHCHECK,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    health.add_argument(
        "--config", dest="config_after", metavar="PATH", help="also accepted before the command"
    )
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
    commands.add_parser(
        "demo",
        help="a full rotation cycle against the fakes, narrated and proved; needs no config or secret",
        description=_DEMO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


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


def _add_target_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    run = commands.add_parser(
        "run-once",
        help="resume, revoke past grace, rotate what is due, then exit (the CronJob mode)",
        description=_RUN_ONCE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    run.add_argument("--force", action="store_true", help="rotate the selected targets even if not due")
    run.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing (= plan)")
    _run_flags(run)
    run.set_defaults(trigger="run-once")
    rotate = commands.add_parser(
        "rotate", help="rotate one target now (= run-once --target NAME --force)", description=_ROTATE
    )
    rotate.add_argument("name", metavar="NAME", help="the target to rotate")
    _run_flags(rotate)
    rotate.set_defaults(trigger="rotate", force=True, dry_run=False)
    plan = commands.add_parser(
        "plan", help="what run-once would do, per target, with reasons; sends no mutation upstream"
    )
    plan.add_argument("--target", action="append", metavar="NAME", help="only this target (repeatable)")
    plan.set_defaults(trigger="plan", force=False, dry_run=True, take_over=False, revoke_anyway=False)
    status = commands.add_parser(
        "status", help="per target: token, expiry, last rotation, next due, pending revokes, drift (offline)"
    )
    status.add_argument("--json", action="store_true", help='print {"as_of": ..., "targets": [...]}')
    history = commands.add_parser("history", help="the audit trail, one row per rotation, newest first")
    history.add_argument("--target", metavar="NAME", help="only this target")
    history.add_argument(
        "--limit",
        type=_history_limit,
        default=20,
        metavar="N",
        help=f"at most this many rows, 1 to {HISTORY_LIMIT} (default: %(default)s)",
    )
    history.add_argument("--json", action="store_true", help="print a JSON array")
    commands.add_parser(
        "check", help="preflight without side effects: config, credentials, roles, connections"
    )
    forget = commands.add_parser(
        "forget",
        help="stop tracking a removed target's journal entry (--revoke: revoke what it holds first)",
        description=_FORGET,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    forget.add_argument(
        "key", metavar="KEY", help="the entry's key, url|project|connection, as status prints it"
    )
    forget.add_argument(
        "--revoke", action="store_true", help="first revoke every live token it tracks that is safe to revoke"
    )
    commands.add_parser(
        "daemon",
        help="run until stopped: rotate on schedule, serve /healthz /readyz /metrics and the HTTP trigger",
        description=_DAEMON,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


_RUN_ONCE = """\
Resume any unfinished rotation, revoke old tokens whose grace has passed, rotate every due target
(every selected target with --force), then exit. A run with nothing to do calls nothing upstream.

exit codes: 0 all fine or nothing due; 1 a target failed, is frozen by drift, holds a revoke, or is
backing off; 2 bad config or usage.

examples:
  rotator --config rotator.yaml run-once
  rotator --config rotator.yaml run-once --target app-deploy --force
  rotator --config rotator.yaml run-once --dry-run
"""
_FORGET = """\
A target removed from the config, re-pointed to another project, or left behind by a gitlab.url
change keeps its journal entry: its pending revokes are still carried out, and its current token
is revoked once another target's verified push holds the connection. `rotator status` lists such
entries, what they hold, and this command for each. forget drops the entry (its token records and
tombstones); its rotations stay in `rotator history`. Without --revoke, whatever it still holds
stays live in GitLab, untracked. It refuses while the entry has an unfinished rotation (run
`rotator run-once` first) and, without --revoke, while a tombstone is live (a late create may
still use that name).

With --revoke it first re-checks every tombstoned name (revoking a match), then revokes, through
the configured GitLab, every live token the entry tracks: grace and the still-in-use check are
waived, but not the safety rules. A token the connection may
still hold (its hash is this entry's verified push) is refused, as is any token when the connection
holds an unknown push (drift), a token another target tracks, and every token of an entry recorded
for another GitLab instance. A connection Infisical reports deleted holds nothing: all are revoked.
If anything is refused or fails, nothing is forgotten.

exit codes: 0 forgotten; 1 a revoke or re-check refused or failed, an unfinished rotation, a live
tombstone without --revoke (the entry is kept), or the entry is busy;
2 KEY names no removed entry (a configured target still maps to it, or it is unknown).

example:
  rotator --config rotator.yaml status       # lists removed entries and the command for each
  rotator --config rotator.yaml forget --revoke \\
      'https://gitlab.example.com|42|3c90c3cc-0d44-4b50-8888-8dd25736052a'
"""
_DAEMON = """\
Run until SIGTERM or SIGINT. Every target is checked every daemon.check_interval (default 5m, plus
up to daemon.jitter), woken at its next due time or end of grace, and at each fire of its cron
schedule; at most max_concurrent_rotations run at once. An HTTP server on daemon.listen (default
0.0.0.0:8080) serves:

  GET  /healthz /readyz /metrics /openapi.json     open
  GET  /v1/targets  /v1/targets/NAME               Authorization: Bearer $ROTATOR_API_TOKEN
  POST /v1/targets/NAME/rotate                     202 + id; 409 in flight or drift; 404; 401
  GET  /v1/rotations/ID                            progress and outcome of a triggered rotation

A POST within daemon.min_trigger_interval (default 1m; 0s: off) of the end of the target's last
forced rotation (a POST or `rotator rotate`, as the journal records it: across replicas sharing
it and across restarts) starts nothing: it gets 409 while that rotation runs, then 202 with that
rotation's id, "coalesced": true and "next_trigger_at". A failed rotation counts too (it may have
minted a token before failing): to retry one at once, run `rotator rotate NAME`, which is never
coalesced.

Without ROTATOR_API_TOKEN the /v1 routes answer 503; scheduled rotations still run. On SIGTERM the
daemon takes no new work, lets rotations in flight finish (at most daemon.shutdown_timeout), and
exits 0 (1 if one was still running: the journal lets the next start resume it).

example:
  ROTATOR_API_TOKEN=$(openssl rand -hex 32) rotator --config rotator.yaml daemon
  curl -X POST -H "Authorization: Bearer $ROTATOR_API_TOKEN" localhost:8080/v1/targets/app-deploy/rotate
"""
_ROTATE = (
    "Rotate one target now, finishing any unfinished rotation first."
    " The same as run-once --target NAME --force."
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


def _main(argv: Sequence[str] | None) -> Outcome:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "fakes":
        return _run_fakes(args)
    if args.command == "healthcheck":
        from rotator.doors import healthcheck  # noqa: PLC0415 - reads daemon.listen, nothing else

        return healthcheck.run(args.config, args.config_after, os.environ)
    if args.command == "demo":
        from rotator.doors import demo  # noqa: PLC0415 - only this command needs the fakes

        try:
            return demo.run(sys.stdout)
        except KeyboardInterrupt:
            print(
                "rotator demo: interrupted; the fakes are stopped and the temporary folder removed",
                file=sys.stderr,
            )
            return Outcome.INTERRUPTED
    return _target_command(args)


#: The commands that act on the configured targets: each reads ``--config``.
TARGET_COMMANDS = ("run-once", "rotate", "plan", "status", "history", "check", "daemon", "forget")


def _config_path(args: argparse.Namespace) -> str | None:
    """``--config`` given before or after the command; given in both places it is a usage error."""
    from rotator.core.errors import ConfigError  # noqa: PLC0415

    before: str | None = args.config
    after: str | None = getattr(args, "config_after", None)
    if before is not None and after is not None:
        # Two files named for one run: rotator will not guess which the operator meant.
        raise ConfigError("--config", "given both before and after the command; give it once")
    return after if after is not None else before


def _target_command(args: argparse.Namespace) -> Outcome:

    from rotator.core.errors import ConfigError  # noqa: PLC0415
    from rotator.doors import commands, hooks, wiring  # noqa: PLC0415

    hooks.forget_proofs()  # a test hook's proof is good for one command, as it is for one process
    if args.command == "rotate":
        args.target = [args.name]
    handlers = {
        "run-once": commands.run_once,
        "rotate": commands.run_once,
        "plan": commands.run_once,
        "status": commands.status,
        "history": commands.history,
        "check": commands.check,
        "daemon": commands.daemon,
        "forget": commands.forget,
    }
    try:
        config = wiring.load(_config_path(args), os.environ)
        return handlers[args.command](args, config)
    except ConfigError as error:
        print(f"rotator: error: {error}", file=sys.stderr)
        return Outcome.USAGE
