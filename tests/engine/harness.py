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
* a crash as a process crash looks from outside: at the crash hook's point (after a recorded
  step, as ``ROTATOR_TEST_CRASH_AFTER``), or the moment a request reaches a fault (as a SIGKILL
  during a call), the run stops dead (:class:`Crashed`); the journal takes no further write
  (:class:`CrashingJournal`), the lease is left held, nothing more is sent.

Every invariant :class:`Case` checks after a run (no leak, no lockout, no credential sent astray,
no blind create retry, no current token revoked, no token beyond those the journal accounts for)
is checked after each engine run too.
"""

import io
import json
import threading

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import structlog

from rotator.adapters import cron
from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.adapters.logs import configure
from rotator.core.model import Change, Lease, TargetKey, TargetRecords
from rotator.core.redact import redact
from rotator.doors import report, wiring
from rotator.doors.config import Config, engine_spec
from rotator.doors.environment import load_secrets
from rotator.engine.context import Context
from rotator.engine.run import Engine, RunOptions
from rotator.journal.memory import MemoryJournal
from rotator.testing import Fakes, Fault
from rotator.testing.transport import FakeTransport, session_for
from tests.cli_harness import Result
from tests.faults import ledger
from tests.faults.campaign import CRASHED, Case


if TYPE_CHECKING:
    from rotator.core.ports import CallLedger


class Crashed(BaseException):
    """The run stopped dead after a recorded step: no handler of the engine's may catch it."""


class CrashingJournal(MemoryJournal):
    """A journal a crashed run can no longer touch, as a killed process cannot.

    After :meth:`die`, every write, renew, acquire and release raises :class:`Crashed`, so the
    lease stays held and nothing more is recorded, until :meth:`restart` (the next process).
    """

    def __init__(self) -> None:
        """Empty and alive."""
        super().__init__()
        self._dead = threading.Event()

    def die(self) -> None:
        """The run is dead from here on."""
        self._dead.set()

    def restart(self) -> None:
        """A new run: alive again."""
        self._dead.clear()

    def _alive(self) -> None:
        if self._dead.is_set():
            raise Crashed

    def write(self, lease: Lease, change: Change) -> Change:
        """Record ``change``, unless the run has crashed."""
        self._alive()
        return super().write(lease, change)

    def write_renewing(self, lease: Lease, change: Change, *args: Any) -> tuple[Change, Lease]:  # noqa: ANN401 - MemoryJournal's own arguments
        """Record and renew, unless the run has crashed."""
        self._alive()
        return super().write_renewing(lease, change, *args)

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

    def acquire_reading(self, key: TargetKey, *args: Any) -> tuple[Lease, TargetRecords] | None:  # noqa: ANN401 - MemoryJournal's own arguments
        """Acquire and read, unless the run has crashed."""
        self._alive()
        return super().acquire_reading(key, *args)


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
        #: The shared call ledger the adapters count their calls in (a shared journal's); None: in process.
        self.call_ledger: CallLedger | None = None
        #: The fault whose request kills the run when it reaches the fake (see :meth:`kill_at`).
        self._kill: Fault | None = None

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
            result = self._run_once(_options(args), crash_after)
        ledger.count("engine_runs")
        if crash_after and result.code == CRASHED:
            ledger.count("crashes")
        self.scan(result.stdout + result.stderr)
        self.check()
        return result

    def kill_at(self, fault: Fault, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``rotator ARGS`` and stop it dead once a request reaches ``fault`` (if one does)."""
        self._kill = fault
        try:
            return self.run(*args, env=env)
        finally:
            self._kill = None

    def _crash(self) -> NoReturn:
        self.store.die()
        raise Crashed

    def _after_call(self) -> None:
        if self._kill is not None and self._kill.reached.is_set():
            ledger.count("crashes")
            self._crash()

    def _run_once(self, options: RunOptions, crash_after: str | None) -> Result:
        config = self.config
        self.store.restart()
        gitlab, infisical = self._adapters(config)
        ctx = Context(
            gitlab=gitlab,
            infisical=infisical,
            journal=self.store,
            clock=self.fakes.clock.now,
            sleep=self.pauses,
            gitlab_url=config.gitlab.url,
            actor="engine-test",
            settings=wiring.engine_settings(config),
            crash_after=crash_after,
            cron=cron.next_fire,
            monotonic=self.pauses.monotonic,
            crash=self._crash,
        )
        with _captured_logs() as stderr:
            try:
                reports = Engine(engine_spec(config), ctx).run(options)
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
        # A foreign host a case points GitLab at is reachable too: were a client to follow the
        # pointer, the request would land there and Case.check would see it.
        servers = (self.fakes.gitlab, self.fakes.infisical, *([self.elsewhere] if self.elsewhere else []))
        gitlab = GitLabAPI(
            config.gitlab.url,
            load_secrets(seed.environment()).gitlab_token,
            timeout=config.gitlab.timeout.total_seconds(),
            user_agent=agent,
            requests_per_minute=config.gitlab.requests_per_minute,
            session=session_for(*servers, after=self._after_call),
            sleep=self.pauses,
            monotonic=self.pauses.monotonic,
            ledger=self.call_ledger,
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
            client=httpx.Client(transport=FakeTransport(*servers, after=self._after_call), timeout=timeout),
            clock=self.fakes.clock.now,
            sleep=self.pauses,
            monotonic=self.pauses.monotonic,
            ledger=self.call_ledger,
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


def _options(args: tuple[str, ...]) -> RunOptions:
    """``run-once`` or ``rotate NAME [--take-over]`` as the command line turns them into options."""
    if args == ("run-once",):
        return RunOptions()
    command, name, *flags = args
    assert command == "rotate", f"the engine case runs run-once and rotate only, not {args}"
    assert set(flags) <= {"--take-over"}, flags
    return RunOptions(names=(name,), force=True, take_over="--take-over" in flags, trigger="rotate")


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
