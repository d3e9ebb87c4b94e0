"""The text of ``rotator --help`` and of each command's ``--help``, from one table.

Every command has a page (:data:`PAGES`): a description, the environment variables it reads, its
exit codes and an example. The variables are the rows of :data:`VARIABLES`, named by the constants
the reading code uses (:mod:`rotator.doors.environment`, :mod:`rotator.doors.wiring`,
:mod:`rotator.doors.options`), so a renamed variable cannot leave a stale name in the help.
"""

import textwrap

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from rotator.doors import environment as env
from rotator.doors.options import CONFIG_VARIABLE, LOG_FORMAT, LOG_LEVEL


@dataclass(frozen=True, slots=True)
class Variable:
    """One row of a page's environment section: the variable(s), as typed, and what they are."""

    names: str
    what: str


def _secret(name: str) -> str:
    return f"{name}[_FILE]"


CONFIG = Variable(CONFIG_VARIABLE, "the config file, if --config is not given (there is no default path)")
GITLAB = Variable(
    _secret(env.GITLAB_TOKEN), "required: the manager token (api scope, Maintainer+ on each project)"
)
INFISICAL = Variable(
    f"{_secret(env.INFISICAL_TOKEN)}, or {_secret(env.INFISICAL_CLIENT_ID)}"
    f" + {_secret(env.INFISICAL_CLIENT_SECRET)}, or {_secret(env.INFISICAL_IDENTITY_ID)}"
    f" [+ {env.INFISICAL_KUBERNETES_TOKEN_FILE}]",
    "required, exactly one: an access token, Universal Auth, or Kubernetes Auth (the pod's"
    f" service-account token, by default {env.KUBERNETES_TOKEN_DEFAULT})",
)
#: inventory reads GitLab alone, and only reads: a read_api token lists every token it may see.
INVENTORY_GITLAB = Variable(
    _secret(env.GITLAB_TOKEN),
    "required: the manager token (read_api is enough; Maintainer+ on projects, Owner on groups)",
)
#: status reads the secrets only with --live.
LIVE_GITLAB = Variable(_secret(env.GITLAB_TOKEN), "with --live only: the manager token")
LIVE_INFISICAL = Variable(
    f"{_secret(env.INFISICAL_TOKEN)}, or {_secret(env.INFISICAL_CLIENT_ID)}"
    f" + {_secret(env.INFISICAL_CLIENT_SECRET)}",
    "with --live only: the Infisical credentials",
)
WEBHOOK = Variable(_secret(env.WEBHOOK_URL), "where alerts are posted (overrides notify.webhook_url)")
API = Variable(_secret(env.API_TOKEN), "the bearer token /v1/* requires; unset, those routes answer 503")
STATE = Variable(
    _secret(env.STATE_PASSWORD), "for a postgresql:// URL: the database password (never in the URL)"
)
LOGS = Variable(
    f"{LOG_FORMAT}, {LOG_LEVEL}",
    "as --log-format (json|console) and --log-level; the options win",
)
#: Every variable a command may read, in the order the pages list them.
VARIABLES = (CONFIG, GITLAB, INFISICAL, WEBHOOK, API, STATE, LOGS)
_UPSTREAM = (CONFIG, GITLAB, INFISICAL, WEBHOOK, LOGS)
_USAGE = "2 bad config or usage, naming the key or variable at fault"
#: For the commands that read no config: only the command line can be wrong.
_BAD_USAGE = "2 a usage error (an unknown option or value)"
#: Where a variable's description starts, and the width the exit codes are wrapped to.
_COLUMN, _WIDTH = 32, 100


@dataclass(frozen=True, slots=True)
class Page:
    """One command's help: ``summary`` for the command list, the rest for its own ``--help``."""

    summary: str
    description: str
    environment: tuple[Variable, ...]
    exit_codes: str
    examples: tuple[str, ...]


def epilog(page: Page) -> str:
    """The environment, exit codes and example sections, as argparse prints an epilog (raw)."""
    rows = []
    for variable in page.environment:
        if len(variable.names) < _COLUMN - 2:
            rows.append(f"  {variable.names:<{_COLUMN - 2}}{variable.what}")
        else:  # the Infisical alternatives: the name on its own line
            rows.extend((f"  {variable.names}", f"{'':<{_COLUMN}}{variable.what}"))
    environment = "\n".join(rows) or "  none: this command reads no ROTATOR_* variable"
    exit_codes = textwrap.fill(page.exit_codes, _WIDTH, initial_indent="  ", subsequent_indent="  ")
    examples = "\n".join(f"  {line}" for line in page.examples)
    return f"environment:\n{environment}\n\nexit codes:\n{exit_codes}\n\nexample:\n{examples}\n"


TOP = f"""\
environment: every command that acts on targets needs the config, {CONFIG_VARIABLE} or --config;
those that call GitLab and Infisical (run-once, rotate, plan, check, daemon, forget --revoke,
status --live) also need
  {_secret(env.GITLAB_TOKEN)}
  {INFISICAL.names}
and inventory needs the GitLab one alone.
`rotator COMMAND --help` lists what each command reads.

exit codes: 0 fine; 1 a failure found at run time (or stdout's reader left early); {_USAGE}.

example:
  rotator validate --config rotator.yaml
  rotator --config rotator.yaml check
  rotator --config rotator.yaml run-once
"""

_RUN_ONCE = """\
Resume any unfinished rotation, revoke old tokens whose grace has passed, rotate every due target
(every selected target with --force), then exit. A run with nothing to do calls nothing upstream."""
_PLAN = """\
Say what run-once would do for each target, and why, from the journal (read without creating
it); then look upstream, reading only: the manager token (active, api scope, expiry), its role on
each project, each connection as Infisical holds it now (its credentialsHash against the
journal's last verified push: another hash is shown as DRIFT), the current token still active on
GitLab, and each pending revoke's last_used_at (a use after it was retired would hold its revoke);
before a first rotation without adopt_token_id, the owner's active tokens no target tracks, with
the adopt_token_id line to add (a warn). It sends no create, PATCH or DELETE. One line per item
under its target, as check words them: ok, info, warn, PROBLEM, DRIFT, or skip (not asked: an
earlier line says why). `run-once --dry-run` is the same. The secrets must be set, as for
run-once."""
_INVENTORY = """\
List every active token in the configured scopes, managed or not: each target's project, group or
service account, then the groups and projects under watch: (a watched group: its group access
tokens, its service accounts' tokens and its projects' tokens; with watch.include_subgroups, the
default, its subgroups' too). One row per token: scope, holder, kind, id, name, scopes, role,
created, expiry and days left, last use, and its owner: the target that owns it and in which role
(current, pending revoke, possibly held, candidate; adopted when it came from adopt_token_id), or
unmanaged. A token is listed once, under the first scope that lists it. --json prints one stable
document (docs/operations.md, "Inventory").
It needs only the GitLab manager token, reads the journal read-only (none yet: nothing is
managed, and none is created), and sends GitLab reads only, within gitlab.requests_per_minute.
A scope with many projects reports its progress on stderr; a scope that cannot be listed whole
(a 403 on one watched group) is named on stderr, and the others are still listed."""
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
If anything is refused or fails, nothing is forgotten. Without --revoke it reads no secret."""
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
daemon takes no new work and lets rotations in flight finish (at most daemon.shutdown_timeout)."""
_DEMO = """\
Start the fakes on free loopback ports, write a two-target config in a temporary folder, and run
the real engine through a whole cycle: adopt the tokens the connections hold, rotate, verify by
credentialsHash, let the grace pass (on the fakes' clock), revoke, then a forced second rotation
and its revoke. Each step is printed as it is recorded, then the status table, then the proof:
Infisical holds a token GitLab accepts, and every old token answers 401. Nothing leaves loopback;
nothing is left behind. It needs no config and no secret."""
_FAKES = """\
Start a fake GitLab and a fake Infisical on 127.0.0.1, seeded, until interrupted. They are for
trying rotator out and for tests; they hold everything in memory.
GitLab listens on PORT and Infisical on PORT+1 (default 8929 and 8930); --port 0 picks two free
ports. The seed matches config/example.yaml: projects acme/app and acme/api, one Infisical GitLab
connection each, a manager token, and a machine identity. Stop with Ctrl-C.
Each start is a new world (new credentials, tokens numbered from 1 again): delete the journal an
earlier session left (rm -f config/rotator-state.db* for config/example.yaml) and export the new
variables.
The printed ROTATOR_TEST_HOOKS arms the test hooks for these fakes only: with it exported,
ROTATOR_TEST_CLOCK_OFFSET=61m moves rotator's clock past the example's 1h grace."""
_HEALTHCHECK = """\
GET http://HOST:PORT/healthz, HOST:PORT being the config's daemon.listen (0.0.0.0 and :: are probed
on 127.0.0.1 and ::1), with a 3 s timeout. Reads only daemon.listen: no secret, no journal. The
image's HEALTHCHECK runs it, so the probe follows daemon.listen."""
_VALIDATE = """\
Check the config file offline, as CI can before a deploy: the YAML, every key and value, the
cron schedules, and the state.url scheme. It reads no secret, opens no journal (none is created)
and calls nothing upstream. The errors are the ones every other command gives for the same file."""
_STATE_COPY = """\
Copy the journal --from one store --to another (SQLite to PostgreSQL and back), to grow from one
replica to many or to move the state file: stop every rotator using the source first. URLs are
written as state.url is (sqlite:///PATH is relative to the current folder here, sqlite:////PATH
absolute). The source is read, never changed or created; the destination is created if missing
and must hold nothing. Everything is copied: targets with their leases' fencing numbers,
rotations in the order recorded, tokens, tombstones, resolved and unresolved project paths.
The copy is refused while any lease in the source is live (a rotation in flight would fork the
journal). The destination is then read back: its rows and contents must equal the source's, and
the source must not have changed meanwhile. One line per table with its rows; no record, and no
token value (the journal holds none), is printed."""
_STATE_PAGE = (
    (STATE,),
    (
        "0 copied and verified; 1 refused: a rotation in flight in the source, the destination does"
        " not read back as the source, or the source changed meanwhile; 2 --from names no journal,"
        " --to already holds one, or a URL is not sqlite:/// or postgresql://"
    ),
    (
        "rotator state copy --from sqlite:////var/lib/rotator/state.db \\",
        "    --to postgresql://rotator@db.example.com:5432/rotator",
    ),
)
_COMPLETION = """\
Print a shell completion script, generated from this command line (commands, options, choices)."""
_FAILING = "1 a target failed, is frozen by drift, holds a revoke, or is backing off (stdout says which)"

#: Every command's page, in the order ``rotator --help`` lists the commands.
PAGES: Mapping[str, Page] = MappingProxyType(
    {
        "run-once": Page(
            "resume, revoke past grace, rotate what is due, then exit (the CronJob mode)",
            _RUN_ONCE,
            _UPSTREAM,
            f"0 all fine or nothing due; {_FAILING}; {_USAGE}",
            (
                "rotator --config rotator.yaml run-once",
                "rotator run-once --config rotator.yaml --target app-deploy --force",
                "rotator --config rotator.yaml run-once --dry-run",
            ),
        ),
        "rotate": Page(
            "rotate one target now (= run-once --target NAME --force)",
            "Rotate one target now, finishing any unfinished rotation first; the same as"
            "\nrun-once --target NAME --force. NAME is a target's name in the config.",
            _UPSTREAM,
            f"0 rotated; {_FAILING}; {_USAGE} (NAME is not a configured target: the names are listed)",
            ("rotator --config rotator.yaml rotate app-deploy",),
        ),
        "plan": Page(
            "what run-once would do, per target, with reasons, and what upstream shows now (reads only)",
            _PLAN,
            _UPSTREAM,
            f"0 the plan, due work included; {_FAILING}, or the look found a PROBLEM or DRIFT line"
            f" (a refused credential, an unknown connection, drift); {_USAGE}",
            ("rotator --config rotator.yaml plan --target app-deploy",),
        ),
        "status": Page(
            "per target: token, expiry, last rotation, next due, pending revokes, drift (offline)",
            "Per target, from the journal alone: token, expiry, last rotation, next due, pending revokes,"
            "\ndrift; then the entries of removed targets. Offline and read-only: no secret is read."
            "\nWith --live it then reads GitLab and Infisical as plan does (reads only; the secrets must"
            '\nbe set) and prints what they show under the table; --json adds it as "live".',
            (CONFIG, LIVE_GITLAB, LIVE_INFISICAL),
            "0 all fine; 1 a target or removed entry needs attention (--live: or a PROBLEM or DRIFT"
            f" line upstream); {_USAGE}, or no journal yet",
            (
                "rotator --config rotator.yaml status",
                "rotator --config rotator.yaml status --json | jq .",
                "rotator --config rotator.yaml status --live",
            ),
        ),
        "history": Page(
            "the audit trail, one row per rotation, newest first",
            "The audit trail, one row per rotation, newest first, from the journal alone."
            "\nOffline and read-only: no secret is read.",
            (CONFIG,),
            f"0 printed; 1 the reader of stdout left early; {_USAGE}, or no journal yet",
            ("rotator --config rotator.yaml history --target app-deploy --limit 5",),
        ),
        "inventory": Page(
            "every active token in the targets' and watched scopes, and who owns it (reads only)",
            _INVENTORY,
            (CONFIG, INVENTORY_GITLAB, LOGS),
            "0 every scope listed; 1 a scope could not be listed whole (stderr names it, its route"
            f" and status); {_USAGE} (--target names no configured target: the names are listed)",
            (
                "rotator --config rotator.yaml inventory",
                "rotator --config rotator.yaml inventory --target app-deploy",
                "rotator --config rotator.yaml inventory --json \\",
                "    | jq '.tokens[] | select(.owner == \"unmanaged\")'",
            ),
        ),
        "check": Page(
            "preflight without side effects: config, credentials, roles, connections",
            "Preflight without side effects: the config, both credentials, the manager's role on each"
            "\nproject, each connection, and that adopt_token_id is the connection's token and nobody"
            "\nelse's; without adopt_token_id before a first rotation, a warn listing the owner's active"
            "\ntokens no target tracks and the adopt_token_id line to add. One line per check: ok, info,"
            "\nwarn, PROBLEM, or skip (not asked: an earlier line says why). Each request is sent once,"
            "\nwith a connect timeout of at most 5 s.",
            _UPSTREAM,
            f"0 every check passed; 1 any PROBLEM line; {_USAGE}",
            ("rotator --config rotator.yaml check",),
        ),
        "validate": Page(
            "check the config file offline (no secret, no journal, no network), for CI",
            _VALIDATE,
            (CONFIG,),
            f"0 valid (one line: how many targets, and their names); {_USAGE}",
            ("rotator validate --config rotator.yaml",),
        ),
        "forget": Page(
            "stop tracking a removed target's journal entry (--revoke: revoke what it holds first)",
            _FORGET,
            _UPSTREAM,
            "0 forgotten; 1 a revoke or re-check refused or failed, an unfinished rotation, a live"
            " tombstone without --revoke (the entry is kept), or the entry is busy;"
            " 2 KEY names no removed entry (a configured target still maps to it, or it is unknown)",
            (
                "rotator --config rotator.yaml status       # lists removed entries and the command for each",
                "rotator --config rotator.yaml forget --revoke \\",
                "    'https://gitlab.example.com|42|3c90c3cc-0d44-4b50-8888-8dd25736052a'",
            ),
        ),
        "daemon": Page(
            "run until stopped: rotate on schedule, serve /healthz /readyz /metrics and the HTTP trigger",
            _DAEMON,
            (*_UPSTREAM[:-1], API, LOGS),
            "0 stopped by a signal, nothing in flight; 1 cannot listen on daemon.listen, or a rotation"
            f" was still running at daemon.shutdown_timeout (the next start resumes it); {_USAGE}",
            (
                "ROTATOR_API_TOKEN=$(openssl rand -hex 32) rotator --config rotator.yaml daemon",
                'curl -X POST -H "Authorization: Bearer $ROTATOR_API_TOKEN" \\',
                "    localhost:8080/v1/targets/app-deploy/rotate",
            ),
        ),
        "healthcheck": Page(
            "exit 0 if the daemon on daemon.listen answers /healthz (the image's HEALTHCHECK)",
            _HEALTHCHECK,
            (CONFIG,),
            "0 the daemon answered 200; 1 anything else, an unreadable config included (never 2,"
            " which Docker reserves in a health check)",
            ("rotator --config rotator.yaml healthcheck",),
        ),
        "demo": Page(
            "a full rotation cycle against the fakes, narrated and proved; needs no config or secret",
            _DEMO,
            (),
            f"0 the proof holds; 1 a run failed, the proof does not hold, or Ctrl-C; {_BAD_USAGE}",
            ("rotator demo",),
        ),
        "fakes": Page(
            "start a fake GitLab and a fake Infisical on loopback, seeded for config/example.yaml",
            _FAKES,
            (),
            f"0 stopped by Ctrl-C or SIGTERM; 1 cannot listen on the port; {_BAD_USAGE}",
            (
                "rotator fakes                 # then, in another shell, export the printed variables",
                "rotator fakes --port 0 --json # machine-readable, for scripts and tests",
            ),
        ),
        "state": Page(
            "the journal itself: `state copy` moves it between stores (SQLite, PostgreSQL)",
            "Act on the journal itself rather than on targets. `rotator state copy --from URL --to URL`"
            "\ncopies a journal into an empty store and verifies it (see `rotator state copy --help`).",
            *_STATE_PAGE,
        ),
        "completion": Page(
            "print a shell completion script (bash, zsh or tcsh)",
            _COMPLETION,
            (),
            "0 printed; 2 a usage error (an unknown shell)",
            (
                "rotator completion bash > ~/.local/share/bash-completion/completions/rotator",
                'rotator completion zsh > "${fpath[1]}/_rotator"',
            ),
        ),
    }
)

#: The pages of ``rotator state``'s actions.
STATE_PAGES: Mapping[str, Page] = MappingProxyType(
    {"copy": Page("copy the journal into an empty store, verified", _STATE_COPY, *_STATE_PAGE)}
)
