"""The engine in the test process: real adapters over in-process transports, a journal in memory.

:class:`EngineCase` is the fault campaign's :class:`~tests.faults.campaign.Case` with its runs
made by :class:`rotator.engine.run.Engine` directly, as ``run-once`` makes them (fresh adapters
per run, the reports printed as the command prints them, exit 1 when a target failed), with:

* the real :class:`~rotator.adapters.gitlab.GitLabAPI` and :class:`~rotator.adapters.infisical.InfisicalAPI`
  over :mod:`rotator.testing.transport` (no socket; a fault's hang costs no time);
* :class:`~rotator.journal.memory.MemoryJournal` as the store, scanned for token values after
  every run as the SQLite file is;
* the fakes' clock as rotator's clock, and :class:`Pauses` as every sleep: each wait is recorded
  at full length and moves a monotonic clock on, and nothing really sleeps;
* a crash after a recorded step as a process crash looks from outside: the write lands, then the
  run stops dead (:class:`CrashingJournal`), the lease is left held, nothing more is sent.

Every invariant :class:`Case` checks after a run (no leak, no lockout, no credential sent astray,
no blind create retry, no current token revoked, no token beyond those the journal accounts for)
is checked after each engine run too.
"""

import io
import json
import threading

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import structlog

from rotator.adapters import cron
from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.adapters.logs import configure
from rotator.core.model import Change, Lease, TargetKey
from rotator.core.redact import redact
from rotator.doors import report, wiring
from rotator.doors.config import Config
from rotator.doors.environment import load_secrets
from rotator.engine.context import Context, Settings
from rotator.engine.run import Engine, RunOptions
from rotator.journal.memory import MemoryJournal
from rotator.testing import Fakes
from rotator.testing.transport import FakeTransport, session_for
from tests.cli_harness import Result
from tests.faults import ledger
from tests.faults.campaign import CRASHED, Case


class Crashed(BaseException):
    """The run stopped dead after a recorded step: no handler of the engine's may catch it."""


class CrashingJournal(MemoryJournal):
    """A journal whose write of step ``crash_after`` is the last thing a run does.

    The write lands; then it and every later write, renew and release raise :class:`Crashed`, so
    the lease stays held and nothing else is recorded, until :meth:`restart` (the next process).
    """

    def __init__(self) -> None:
        """Empty, crashing nowhere."""
        super().__init__()
        self.crash_after: str | None = None
        self._dead = threading.Event()

    def restart(self, crash_after: str | None) -> None:
        """A new run: alive again, crashing after ``crash_after`` (a step) if given."""
        self._dead.clear()
        self.crash_after = crash_after

    def _alive(self) -> None:
        if self._dead.is_set():
            raise Crashed

    def write(self, lease: Lease, change: Change) -> None:
        """Record ``change``; if it records the crash step, die right after."""
        self._alive()
        super().write(lease, change)
        if change.rotation is not None and change.rotation.step.value == self.crash_after:
            self._dead.set()
            raise Crashed

    def renew(self, lease: Lease, *args: Any) -> Lease:  # noqa: ANN401 - MemoryJournal's own arguments
        """Renew, unless the run has crashed."""
        self._alive()
        return super().renew(lease, *args)

    def release(self, lease: Lease) -> None:
        """Release, unless the run has crashed (a dead process leaves its lease to expire)."""
        self._alive()
        super().release(lease)

    def acquire(self, key: TargetKey, *args: Any) -> Lease | None:  # noqa: ANN401 - MemoryJournal's own arguments
        """Acquire, unless the run has crashed."""
        self._alive()
        return super().acquire(key, *args)


class Pauses:
    """Every sleep of a run: recorded, never slept; a monotonic clock that moves by what was asked."""

    def __init__(self) -> None:
        """Nothing slept yet."""
        self._lock = threading.Lock()
        self.asked: list[float] = []
        self._now = 0.0

    def __call__(self, seconds: float) -> None:
        """Record ``seconds`` and move the monotonic clock on by them."""
        with self._lock:
            self.asked.append(seconds)
            self._now += max(0.0, seconds)

    def monotonic(self) -> float:
        """Seconds 'slept' so far."""
        with self._lock:
            return self._now


class EngineCase(Case):
    """A :class:`Case` whose runs are the engine in this process; see the module docstring."""

    def __init__(self, fakes: Fakes, folder: Path, **settings: Any) -> None:  # noqa: ANN401 - Case's settings
        """Write the config (as :class:`Case` does) and start with an empty journal in memory."""
        super().__init__(fakes, folder, **settings)
        self.store = CrashingJournal()
        self.pauses = Pauses()

    @property
    def config(self) -> Config:
        """The config file, validated as every command validates it."""
        return wiring.load(str(self.folder / "rotator.yaml"), {})

    def run(self, *args: str, crash_after: str | None = None, env: dict[str, str] | None = None) -> Result:
        """``run-once`` (or ``status``/``history --json``) through the engine; the invariants checked."""
        assert env is None, "an engine run has no environment"
        command = args[0]
        if command in {"status", "history"}:
            result = self._report(command)
        else:
            assert args == ("run-once",), f"the engine case runs run-once only, not {args}"
            result = self._run_once(crash_after)
        ledger.count("engine_runs")
        if crash_after and result.code == CRASHED:
            ledger.count("crashes")
        self.scan(result.stdout + result.stderr)
        self.check()
        return result

    def _run_once(self, crash_after: str | None) -> Result:
        config = self.config
        self.store.restart(crash_after)
        gitlab, infisical = self._adapters(config)
        ctx = Context(
            gitlab=gitlab,
            infisical=infisical,
            journal=self.store,
            clock=self.fakes.clock.now,
            sleep=self.pauses,
            gitlab_url=config.gitlab.url,
            actor="engine-test",
            settings=replace(Settings(), run_interval=config.daemon.check_interval),
            cron=cron.next_fire,
            monotonic=self.pauses.monotonic,
        )
        with _captured_logs() as stderr:
            try:
                reports = Engine(config, ctx).run(RunOptions())
            except Crashed:
                return Result(CRASHED, "", stderr.getvalue(), in_process=True)
            finally:
                gitlab.close()
                infisical.close()
        # As run-once prints them (rotator.doors.commands._print_reports), and its exit code.
        stdout = "".join(f"{r.name}: {r.status}: {redact(r.detail)}\n" for r in reports)
        return Result(1 if any(r.failed for r in reports) else 0, stdout, stderr.getvalue(), in_process=True)

    def _adapters(self, config: Config) -> tuple[GitLabAPI, InfisicalAPI]:
        """Fresh clients per run, as each ``run-once`` process builds them (rotator.doors.wiring.build)."""
        seed, agent = self.fakes.seed, wiring.user_agent()
        servers = (self.fakes.gitlab, self.fakes.infisical)
        gitlab = GitLabAPI(
            config.gitlab.url,
            load_secrets(seed.environment()).gitlab_token,
            timeout=config.gitlab.timeout.total_seconds(),
            user_agent=agent,
            requests_per_minute=config.gitlab.requests_per_minute,
            session=session_for(*servers),
            sleep=self.pauses,
            monotonic=self.pauses.monotonic,
        )
        secrets = load_secrets(seed.environment())
        timeout = config.infisical.timeout.total_seconds()
        infisical = InfisicalAPI(
            config.infisical.url,
            InfisicalAuth.universal(secrets.infisical_client_id or "", secrets.infisical_client_secret),  # type: ignore[arg-type]
            timeout=timeout,
            user_agent=agent,
            reads_per_minute=config.infisical.reads_per_minute,
            writes_per_minute=config.infisical.writes_per_minute,
            client=httpx.Client(transport=FakeTransport(*servers), timeout=timeout),
            clock=self.fakes.clock.now,
            sleep=self.pauses,
            monotonic=self.pauses.monotonic,
        )
        return gitlab, infisical

    def _report(self, command: str) -> Result:
        config = self.config
        if command == "status":
            shown: object = report.status(config, self.store, self.fakes.clock.now)
        else:
            shown = report.history(self.store, config, None, 10_000)
        return Result(0, json.dumps(shown, default=str), "", in_process=True)

    def journal(self) -> dict[str, Any]:
        """``status`` and ``history`` of the journal in memory, and its records scanned for token values."""
        self.scan(repr(self._records()))
        return self.view(self.config, self.store)

    def _records(self) -> list[object]:
        """Everything the journal holds, as a store would persist it."""
        records: list[object] = []
        for state in self.store.targets():
            records += [state, *self.store.tokens(state.key), *self.store.tombstones(state.key)]
        records += self.store.rotations(None, 10_000)
        return records


@contextmanager
def _captured_logs() -> Iterator[io.StringIO]:
    """The run's log lines as JSON, as a ``run-once`` process writes them to a piped stderr."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure(stream=stream, json=True)
    try:
        yield stream
    finally:
        structlog.configure(**saved)
