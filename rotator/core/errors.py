"""rotator's exception tree. Core module: standard library only.

::

    RotatorError                 (abstract; never raised directly)
    ├── ConfigError              the config file or the environment is wrong; exit 2
    │   ├── JournalDamagedError  the journal's file is a damaged SQLite database; exit 2
    │   └── SignInRefusedError   the journal's database refused to sign rotator in; exit 2
    ├── JournalUnavailableError  the journal's database cannot be reached; exit 1
    │   └── JournalReadOnlyError the journal's database answers but refuses writes; exit 1
    ├── LeaseLostError           another worker holds the target; stop acting on it
    ├── ProtocolViolation        a transition the protocol's tables do not hold (a bug, never retried)
    ├── TargetFailedError        this target cannot proceed in this run; carries an alert reason
    └── UpstreamError            GitLab or Infisical refused or failed; exit 1
        ├── GitLabError          mapped from python-gitlab/requests in the GitLab adapter only
        └── InfisicalError       mapped from httpx in the Infisical adapter only
            └── ConnectionNotFoundError   Infisical's own 404 for that connection id: it is gone

Every error names where it happened (``target``, ``step``); upstream errors also carry the HTTP
``status`` (``None`` for a network failure) and whether the request was definitely **not applied**,
which is what decides between "nothing happened, safe to undo" and "outcome unknown, roll forward".
Messages never contain a token value: adapters pass upstream messages through redaction first.
Each message is one line whatever it quotes: control characters are shown escaped
(:func:`rotator.core.redact.printable`), so a newline or an ANSI escape in a bad value or in an
upstream's answer cannot forge a second line or recolour a terminal.
"""

import re

from dataclasses import dataclass, replace

from rotator.core.redact import printable


#: Why Infisical refuses ``accessTokenType: "group"`` with a 422 (``reference/infisical-2.md`` §5: GitLab
#: group tokens came with PR #4761, October 2025; ``infisical-real-server.md`` D6 has the real body).
OLDER_INFISICAL = (
    "this Infisical server is older than GitLab group access token support (October 2025) and"
    " knows only 'project' and 'personal': upgrade Infisical to rotate a group target"
)


class RotatorError(Exception):
    """Base of every error rotator raises on purpose."""


@dataclass(eq=False)
class ConfigError(RotatorError):
    """A bad config file or environment; ``key`` is the dotted path or variable name at fault."""

    key: str
    problem: str

    def __str__(self) -> str:
        """``key: problem``, the one line the CLI prints before exiting 2 (control characters escaped)."""
        return printable(f"{self.key}: {self.problem}")


@dataclass(eq=False)
class UpstreamError(RotatorError):
    """An upstream call failed; see the module docstring for the fields."""

    upstream: str
    route: str
    status: int | None
    message: str
    not_applied: bool
    target: str | None = None
    step: str | None = None

    def located(self, target: str | None = None, step: str | None = None) -> "UpstreamError":
        """A copy naming ``target`` and ``step`` (each only when given), of the same class."""
        return replace(self, target=target or self.target, step=step or self.step)

    def __str__(self) -> str:
        """One line naming target, step, upstream, route and status (control characters escaped)."""
        where = " ".join(f"{k}={v}" for k, v in (("target", self.target), ("step", self.step)) if v)
        status = self.status if self.status is not None else "no response"
        prefix = f"{where} " if where else ""
        # The adapters escape what they quote; this holds for a message built anywhere else too.
        return printable(f"{prefix}{self.upstream} {self.route} -> {status}: {self.message}")


class GitLabError(UpstreamError):
    """A GitLab call failed."""


class InfisicalError(UpstreamError):
    """An Infisical call failed."""


class ConnectionNotFoundError(InfisicalError):
    """Infisical's definite "not found" for that connection id (404 ``NotFound`` naming the id).

    Only Infisical's own answer counts: a proxy's or Fastify's route 404, a 401, 403 or 5xx do not.
    A removed target's tokens may then be revoked: a deleted connection holds nothing.
    """


class JournalDamagedError(ConfigError):
    """SQLite found the journal's file damaged (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``): no target can run.

    Not one target's failure: every read may meet the damage, and nothing in the file can be
    trusted until it is restored. The commands exit 2; the daemon reports it per run and on /readyz.
    """


@dataclass(eq=False)
class JournalUnavailableError(RotatorError):
    """The journal's database server cannot be reached or did not answer in time; exit 1.

    Not a config mistake (the same config may work in a minute), so not a :class:`ConfigError`.
    ``problem`` names the server (``host:port``), never a password.
    """

    key: str
    problem: str

    def __str__(self) -> str:
        """``state.url: problem``, one line (control characters escaped)."""
        return printable(f"{self.key}: {self.problem}")


class JournalReadOnlyError(JournalUnavailableError):
    """The journal's database answers reads but refuses every write: a standby, or read-only by setting.

    A kind of unavailable (exit 1, the run stops before its lease, so nothing is sent): the same
    config works again once ``state.url`` reaches a primary that accepts writes.
    """


class LeaseLostError(RotatorError):
    """Another worker took the target's lease; this one must send nothing more upstream."""


class ProtocolViolation(RotatorError):  # noqa: N818 - it names the broken rule, not an error condition
    """A rotation or token was asked to change state by evidence its table has no entry for.

    Raised by :func:`rotator.core.machine.advance`: a bug in the engine (or a journal written by
    hand), never an upstream's doing, so nothing retries it and nothing is recorded.
    """

    def __init__(self, state: str, evidence: str) -> None:
        """Name the state and the evidence that have no transition."""
        super().__init__(f"no transition from {state} on {evidence}")
        self.state, self.evidence = state, evidence


class TargetFailedError(RotatorError):
    """This target cannot proceed in this run; ``reason`` is one of the alert reasons.

    The alert reasons are listed in :data:`rotator.engine.context.ALERT_REASONS`.
    """

    def __init__(self, reason: str, message: str) -> None:
        """Fail with an alert reason and a message naming what went wrong."""
        super().__init__(message)
        self.reason, self.message = reason, message


def said_of(target: str, line: str, step: str | None = None) -> str:
    """``line`` for a reader who already sees ``target`` (and ``step``): without repeating them.

    Engine messages start ``NAME: ...`` and upstream errors name ``target=NAME step=STEP`` (see
    :meth:`UpstreamError.__str__`), which is right in a log line or the journal; a result line,
    a table row or a chat message that leads with the target would say it twice.
    """
    if line.startswith(f"{target}: "):
        line = line[len(target) + 2 :]
    named = [f"target={re.escape(target)}"] + ([f"step={re.escape(step)}"] if step else [])
    return re.sub(rf"(?:^|(?<=\s))(?:{'|'.join(named)}) ", "", line)


@dataclass(eq=False)
class SignInRefusedError(ConfigError):
    """The journal's database refused to sign in (SQLSTATE class 28): a credential to fix, not an outage.

    ``password`` is true when it refused the password sent, or asked for one none was given for;
    false when it refused the account itself (no ``pg_hba.conf`` entry, no such role). The door
    that knows where the password came from names that (``ROTATOR_STATE_PASSWORD``, its
    ``_FILE``, a passfile) as the key. ``problem`` quotes the server, never a password.
    """

    password: bool = False
