"""Builds the real parts for a command: config, clock, journal, adapters, engine. Only the CLI calls it.

Three test hooks live here, each announced on stderr when used: ``ROTATOR_TEST_CLOCK_OFFSET`` (a
duration such as ``20m`` or ``-2d``, added to rotator's clock), ``ROTATOR_TEST_CRASH_AFTER`` (a
step name: the process exits right after recording it) and ``ROTATOR_TEST_SLEEP_SCALE`` (a number
from 0 to 1 that every wait is multiplied by: retries, backoff, rate limits and the polls of the
self-check and verify, whose deadlines are measured on a monotonic clock that still counts each
wait in full, so a test of a failing upstream does not wait out real time; timeouts and the wall
clock are untouched). A variable alone arms nothing: both upstream URLs must be loopback and the
fakes must prove the ``ROTATOR_TEST_HOOKS`` key they handed out (:mod:`rotator.doors.hooks`);
otherwise the hook is ignored, with a line on stderr saying why.
"""

import os
import shlex
import socket
import sys
import threading
import time

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import structlog

from rotator.adapters import cron, retrying
from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.adapters.webhook import Webhook
from rotator.core.durations import format_duration, parse_duration
from rotator.core.errors import ConfigError
from rotator.core.ports import Journal, Observer, Observers
from rotator.doors import hooks, state
from rotator.doors.config import Config, engine_spec, load_config
from rotator.doors.environment import gitlab_token, jwt_reader, load_secrets, webhook_url
from rotator.doors.options import CONFIG_VARIABLE
from rotator.engine.context import Context, Settings, lease_renew_for
from rotator.engine.run import Engine
from rotator.journal.file import loose_files, loose_permissions
from rotator.journal.memory import MemoryJournal
from rotator.journal.sqlite import SQLiteJournal, sqlite_path


CLOCK_OFFSET = "ROTATOR_TEST_CLOCK_OFFSET"
CRASH_AFTER = "ROTATOR_TEST_CRASH_AFTER"
SLEEP_SCALE = "ROTATOR_TEST_SLEEP_SCALE"
#: How long a command waits, at exit, for alerts still being delivered (architecture §5).
WEBHOOK_FLUSH_SECONDS = 30.0
#: ``check``'s bound on each connect: a preflight says "cannot reach" in seconds, not minutes.
PREFLIGHT_CONNECT_TIMEOUT = 5.0
log = structlog.get_logger("rotator")
T = TypeVar("T")


def config_path(option: str | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``ROTATOR_CONFIG``; there is no default path."""
    value = option or environ.get(CONFIG_VARIABLE)
    if not value:
        raise ConfigError("--config", f"no configuration: pass --config PATH or set {CONFIG_VARIABLE}")
    return Path(value)


def user_agent() -> str:
    """``rotator/<version>``, on every request (rule 9)."""
    from rotator import __version__  # noqa: PLC0415 - lazy metadata lookup

    return f"rotator/{__version__}"


def _test_hook(config: Config, environ: Mapping[str, str], name: str, parse: Callable[[str], T]) -> T | None:
    """The hook ``name``'s parsed value if it is set and armed (see the module docstring), else None."""
    value = environ.get(name)
    if not value:
        return None
    urls = (config.gitlab.url, config.infisical.url)
    if not hooks.loopback(*urls):
        print(
            f"rotator: ignoring {name}: gitlab.url and infisical.url are not both loopback", file=sys.stderr
        )
        return None
    parsed = parse(value)  # a malformed value is a usage error (exit 2), armed or not
    refused = hooks.refusal(urls, environ.get(hooks.OPT_IN), user_agent())
    if refused is not None:
        print(f"rotator: ignoring {name}: {refused}", file=sys.stderr)
        return None
    print(f"rotator: warning: test hook {name}={value} is in effect", file=sys.stderr)
    return parsed


def _offset(raw: str) -> timedelta:
    try:
        return -parse_duration(raw[1:]) if raw.startswith("-") else parse_duration(raw)
    except ValueError as error:
        raise ConfigError(CLOCK_OFFSET, str(error)) from None


def clock(config: Config, environ: Mapping[str, str]) -> Callable[[], datetime]:
    """The real clock, shifted by ``ROTATOR_TEST_CLOCK_OFFSET`` where armed."""
    offset = _test_hook(config, environ, CLOCK_OFFSET, _offset) or timedelta(0)
    return lambda: datetime.now(UTC) + offset


def _scale(raw: str) -> float:
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not 0.0 <= scale <= 1.0:  # also refuses nan and inf
        raise ConfigError(SLEEP_SCALE, f"must be a number from 0 to 1, not {raw!r}")
    return scale


@dataclass(frozen=True, slots=True)
class Pace:
    """How rotator waits (``sleep``) and measures waits (``monotonic``); the two always agree."""

    sleep: Callable[[float], None]
    monotonic: Callable[[], float]


class _Scaled:
    """Sleeps shortened by a scale, and a monotonic clock that counts each one at full length.

    A wait is computed and asked for in full (what a test may assert on) and lasts ``scale`` of
    it; the clock then moves on by the whole of it. So a deadline loop (the 10 s self-check, the
    verify window) sees its window pass after the same number of polls as in production, in a
    thousandth of the time. The skipped time is kept per thread: each run's deadlines are its
    own, and two targets polling at once do not shorten each other's windows.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._local = threading.local()

    def _skipped(self) -> float:
        return float(getattr(self._local, "skipped", 0.0))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)
        self._local.skipped = self._skipped() + seconds * (1.0 - self.scale)

    def monotonic(self) -> float:
        return time.monotonic() + self._skipped()


def pace(config: Config, environ: Mapping[str, str]) -> Pace:
    """``time.sleep`` and ``time.monotonic``; :class:`_Scaled` under an armed ``ROTATOR_TEST_SLEEP_SCALE``."""
    scale = _test_hook(config, environ, SLEEP_SCALE, _scale)
    if scale is None:
        return Pace(time.sleep, time.monotonic)
    scaled = _Scaled(scale)
    return Pace(scaled.sleep, scaled.monotonic)


def journal_path(config: Config) -> Path:
    """The journal's file, from an ``sqlite:///`` ``state.url``."""
    return sqlite_path(config.state.url, config.base_dir)


def state_dir(config: Config) -> Path | None:
    """The folder the journal's file is in; ``None`` when the journal is in a database server."""
    return None if state.is_postgres(config) else journal_path(config).parent


def _warn_if_loose(path: Path) -> None:
    if not structlog.is_configured():
        # status and history: no log (their stdout is the table or JSON), so one plain stderr line.
        loose = loose_permissions(path)
        if loose is not None:
            print(f"rotator: warning: {loose}", file=sys.stderr)
        return
    # run-once, plan, check, daemon: stderr carries JSON log lines, so the warning is one of them.
    for file, mode in loose_files(path):
        log.warning(
            "journal.loose_permissions",
            path=str(file),
            mode=f"{mode:04o}",
            fix=f"chmod 600 {shlex.quote(str(file))}",
        )


def open_journal(config: Config, environ: Mapping[str, str] | None = None) -> Journal:
    """The journal the config names, created (or its schema migrated) if need be: for the commands that write.

    ``environ`` (default: the process's) gives a PostgreSQL journal's password.
    """
    if state.is_postgres(config):
        return state.open_postgres(config, os.environ if environ is None else environ)
    path = journal_path(config)
    journal = SQLiteJournal(path)
    _warn_if_loose(path)
    return journal


def _exists(path: Path) -> bool:
    return path.is_symlink() or path.exists()  # a dangling link is there (and refused when opened)


def require_journal(config: Config, environ: Mapping[str, str] | None = None) -> None:
    """A usage error if there is no journal yet: for the commands that only make sense with one."""
    if state.is_postgres(config):
        state.require_postgres(config, os.environ if environ is None else environ)
        return
    path = journal_path(config)
    if not _exists(path):
        problem = f"no journal at {path} (nothing has run yet; `rotator run-once` creates it)"
        raise ConfigError("state.url", problem)


def read_journal(config: Config, *, missing_ok: bool, environ: Mapping[str, str] | None = None) -> Journal:
    """The journal opened read-only: creates no file or folder, changes nothing.

    With no journal yet, ``missing_ok`` (``plan``, ``check``) reads an empty one; otherwise
    (``status``, ``history``) it is a usage error saying how a journal comes to be.
    """
    if state.is_postgres(config):
        return state.read_postgres(config, os.environ if environ is None else environ, missing_ok=missing_ok)
    path = journal_path(config)
    if missing_ok and not _exists(path):
        return SQLiteJournal(Path(":memory:"), read_only=True)
    require_journal(config)
    journal = SQLiteJournal(path, read_only=True)
    _warn_if_loose(path)
    return journal


@dataclass
class Runtime:
    """The parts a command uses; :meth:`close` releases them."""

    config: Config
    engine: Engine
    gitlab: GitLabAPI
    infisical: InfisicalAPI
    journal: Journal
    webhook: Webhook | None = None

    def close(self) -> None:
        """Close clients and the journal; wait up to 30 s for alerts still being delivered."""
        if self.webhook is not None:
            self.webhook.close(timeout=WEBHOOK_FLUSH_SECONDS)
        self.gitlab.close()
        self.infisical.close()
        self.journal.close()


def load(option: str | None, environ: Mapping[str, str]) -> Config:
    """The validated config (exit 2 on any error), cron schedules included."""
    config = load_config(config_path(option, environ))
    # One look ahead per distinct expression (about 4 ms each): a schedule set in `defaults` is
    # shared by every target, and a CronJob's idle run-once pays this on each start.
    gaps: dict[str, timedelta | None] = {}
    for index, target in enumerate(config.targets):
        if target.schedule is None:
            continue
        try:
            if target.schedule not in gaps:
                gaps[target.schedule] = cron.shortest_gap(target.schedule, datetime.now(UTC))
        except ValueError as error:
            raise ConfigError(f"targets[{index}].schedule", str(error)) from None
        gap = gaps[target.schedule]
        if gap is None:
            raise ConfigError(f"targets[{index}].schedule", "never fires (such as February 31)")
        if target.grace >= gap:
            # Each fire is a rotation; a grace as long as the gap between them piles up old tokens.
            raise ConfigError(
                f"targets[{index}].grace",
                f"must be shorter than the schedule's shortest gap ({format_duration(gap)})",
            )
    return config


def engine_settings(config: Config, base: Settings | None = None) -> Settings:
    """The engine's timings from the config: the lease (``state.lease_ttl``) and the run interval."""
    ttl = config.state.lease_ttl
    return replace(
        base or Settings(),
        lease_ttl=ttl,
        lease_renew=lease_renew_for(ttl),
        # Rule 6's "run interval": the daemon's check interval (a CronJob's is not known here).
        run_interval=config.daemon.check_interval,
    )


def build_gitlab(config: Config, environ: Mapping[str, str]) -> GitLabAPI:
    """The GitLab adapter alone, for a command that reads GitLab and nothing else (``inventory``).

    Only the manager token is read (no Infisical secret, no webhook). Its rate ceiling is counted
    in process, as ``plan``'s is: the command's journal is read-only, so it cannot keep the ledger.
    """
    timing = pace(config, environ)
    return GitLabAPI(
        config.gitlab.url,
        gitlab_token(environ),
        timeout=config.gitlab.timeout.total_seconds(),
        user_agent=user_agent(),
        requests_per_minute=config.gitlab.requests_per_minute,
        sleep=timing.sleep,
        monotonic=timing.monotonic,
    )


def build(  # noqa: PLR0913 - each keyword is one command's need
    config: Config,
    environ: Mapping[str, str],
    settings: Settings | None = None,
    *,
    journal: Literal["write", "read", "scratch"] = "write",
    observers: Sequence[Observer] = (),
    on_response: Callable[[str, str, str], None] | None = None,
    preflight: bool = False,
) -> Runtime:
    """Everything an upstream-calling command needs; secrets are read here and nowhere else.

    ``journal``: ``"write"`` opens (creating) the journal; ``"read"`` (``plan``) opens it read-only,
    an empty one if there is none yet; ``"scratch"`` (``check``) is an empty one in memory that the
    preflight may write to. Neither of the last two creates or changes a file.
    ``observers`` hear of finished rotations and alerts; the webhook, if configured, is added
    here. ``on_response(upstream, route, status)`` sees every upstream answer (the metrics).
    ``preflight`` (``check``) sends each request once, with a connect timeout of at most
    :data:`PREFLIGHT_CONNECT_TIMEOUT`: a preflight reports, it does not persevere as a run does.
    """
    secrets = load_secrets(environ)
    hook = webhook_url(environ, config.notify.webhook_url)
    now = clock(config, environ)
    # One pace for every wait: retries, backoff, rate limits, and the rotation's own polls, whose
    # deadlines are measured on the monotonic clock that counts a scaled sleep in full.
    timing = pace(config, environ)
    wait = timing.sleep
    agent = user_agent()
    webhook = Webhook(hook, user_agent=agent, sleep=wait) if hook is not None else None
    # A run tries each request up to five times, its connect bounded by the configured timeout alone.
    attempts, connect = (1, PREFLIGHT_CONNECT_TIMEOUT) if preflight else (retrying.ATTEMPTS, None)
    if journal == "write":
        store = open_journal(config, environ)
    elif journal == "read":
        store = read_journal(config, missing_ok=True, environ=environ)
    else:
        store = MemoryJournal()
    # The rate ceilings hold for every process sharing the journal (replicas, a CronJob beside a
    # daemon), counted in its call ledger. `plan` and `check` count in process: their journal is
    # read-only or a scratch one, and they send no more than a few reads.
    ledger = store if journal == "write" else None
    gitlab = GitLabAPI(
        config.gitlab.url,
        secrets.gitlab_token,
        timeout=config.gitlab.timeout.total_seconds(),
        user_agent=agent,
        requests_per_minute=config.gitlab.requests_per_minute,
        sleep=wait,
        on_response=on_response,
        max_attempts=attempts,
        connect_timeout=connect,
        ledger=ledger,
    )
    if secrets.infisical_token is not None:
        auth = InfisicalAuth.token(secrets.infisical_token)
    elif secrets.infisical_identity_id is not None and secrets.infisical_kubernetes_token_file is not None:
        reader = jwt_reader(environ, secrets.infisical_kubernetes_token_file)
        auth = InfisicalAuth.kubernetes(secrets.infisical_identity_id, reader)
    else:
        auth = InfisicalAuth.universal(secrets.infisical_client_id or "", secrets.infisical_client_secret)  # type: ignore[arg-type]
    infisical = InfisicalAPI(
        config.infisical.url,
        auth,
        timeout=config.infisical.timeout.total_seconds(),
        user_agent=agent,
        reads_per_minute=config.infisical.reads_per_minute,
        writes_per_minute=config.infisical.writes_per_minute,
        clock=now,
        sleep=wait,
        on_response=on_response,
        max_attempts=attempts,
        connect_timeout=connect,
        ledger=ledger,
    )
    ctx = Context(
        gitlab=gitlab,
        infisical=infisical,
        journal=store,
        clock=now,
        sleep=wait,
        monotonic=timing.monotonic,
        gitlab_url=config.gitlab.url,
        actor=f"{socket.gethostname()}:{os.getpid()}",
        settings=engine_settings(config, settings),
        crash_after=_test_hook(config, environ, CRASH_AFTER, str),
        cron=cron.next_fire,
        observer=Observers((*observers, *([webhook] if webhook else []))),
    )
    return Runtime(config, Engine(engine_spec(config), ctx), gitlab, infisical, store, webhook)
