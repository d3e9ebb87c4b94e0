"""A worker that loses its lease mid-run sends nothing more upstream and records nothing more.

The lease is lost right after each upstream call a run makes under it (every call of a fresh
rotation, of the revoke after grace, and of the recovery after a crash), in each way it can be:

* ``renew-fails``: a renewal raises (the database blipped); the journal itself still takes writes;
* ``other-fence``: a renewal answers for another fence; the journal itself still takes writes;
* ``taken-over``: another worker took the lapsed lease, so the renewal is refused;
* ``unreachable``: the database is gone: every journal call raises.

Time then passes (a renewal falls due on the run's injected monotonic clock; nothing sleeps). The
run must make no further upstream request, nor write to the journal; and the next runs, with the
database back and past the lease's TTL, converge with the campaign's invariants (no lockout, no
leak, at most 1 + pending + possibly-held active tokens).
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI
from rotator.core.errors import JournalUnavailableError
from rotator.core.model import Change, Lease, TargetKey, TargetRecords
from rotator.core.ports import Journal
from rotator.doors.config import Config
from rotator.engine.run import RunOptions
from rotator.testing import Fakes
from tests.cli_harness import UA, Result
from tests.engine.harness import CrashingJournal, EngineCase
from tests.faults.campaign import CRASHED


MODES = ("renew-fails", "other-fence", "taken-over", "unreachable")
#: Every journal call of the port, refused while the database is unreachable.
_JOURNAL_CALLS = frozenset(name for name in dir(Journal) if not name.startswith("_"))
#: The port calls each phase's run makes under the target's lease, in order (checked below).
PHASES: dict[str, tuple[str, ...]] = {
    "first": ("get_connection", "get_token", "create_token", "token_self", "push_token", "get_connection"),
    "grace": ("get_connection", "get_token", "delete_token"),
    "recovery": (
        "list_tokens",
        "get_connection",
        "create_token",
        "token_self",
        "push_token",
        "get_connection",
    ),
}


class LosingJournal(CrashingJournal):
    """The engine case's journal, which loses the run's lease (as ``mode`` says) when told to."""

    def __init__(self, mode: str) -> None:
        """A working journal until :meth:`lose`."""
        super().__init__()
        self.mode = mode
        self.lost = False
        self.ever_lost = False
        self.leased: Lease | None = None  # the run's lease, as last handed out
        self.written_after_loss: list[str] = []

    def lose(self) -> None:
        """From now on the run's lease cannot be kept."""
        assert self.leased is not None
        self.lost = self.ever_lost = True
        if self.mode == "taken-over":
            lease = self.leased
            stolen = super().acquire(
                lease.key, "other", "another-worker", lease.expires, timedelta(minutes=10)
            )
            assert stolen is not None

    def reconnect(self) -> None:
        """The database is back and nothing is lost any more (the next run's journal)."""
        self.lost = False

    def __getattribute__(self, name: str) -> Any:  # noqa: ANN401 - whatever the attribute is
        """Unreachable: every journal call fails (write and forget record the attempt first)."""
        get = super().__getattribute__
        if name in _JOURNAL_CALLS - {"write", "forget"} and get("mode") == "unreachable" and get("lost"):
            raise JournalUnavailableError("state.url", "cannot reach db.example.com:5432 (test)")
        return get(name)

    def acquire(self, key: TargetKey, *args: Any) -> Lease | None:  # noqa: ANN401 - MemoryJournal's own arguments
        """Acquire, remembering the lease handed out."""
        lease = super().acquire(key, *args)
        self.leased = lease or self.leased
        return lease

    def acquire_reading(self, key: TargetKey, *args: Any) -> tuple[Lease, TargetRecords] | None:  # noqa: ANN401 - MemoryJournal's own arguments
        """Acquire and read, remembering the lease handed out."""
        taken = super().acquire_reading(key, *args)
        self.leased = taken[0] if taken else self.leased
        return taken

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        """Renew; once lost, as ``mode`` says."""
        if self.lost and self.mode == "renew-fails":
            raise JournalUnavailableError("state.url", "the server closed the connection (test)")
        renewed = super().renew(lease, now, ttl)
        self.leased = renewed
        if self.lost and self.mode == "other-fence":
            return replace(renewed, fence=renewed.fence + 1)
        return renewed

    def release(self, lease: Lease) -> None:
        """Release; the run holds no lease any more."""
        super().release(lease)
        self.leased = None

    def write(self, lease: Lease, change: Change) -> Change:
        """Record ``change``; once the lease is lost, note the attempt (refused if unreachable)."""
        self._attempt("write")
        return super().write(lease, change)

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """Record and renew in one call: a write attempt, and a renewal as :meth:`renew` fails it."""
        self._attempt("write")
        if self.lost and self.mode == "renew-fails":
            raise JournalUnavailableError("state.url", "the renewal failed (test)")
        stored, renewed = super().write_renewing(lease, change, now, ttl)
        self.leased = renewed
        if self.lost and self.mode == "other-fence":
            return stored, replace(renewed, fence=renewed.fence + 1)
        return stored, renewed

    def forget(self, lease: Lease, note: str) -> None:
        """Forget; once the lease is lost, note the attempt (refused if unreachable)."""
        self._attempt("forget")
        super().forget(lease, note)

    def _attempt(self, call: str) -> None:
        if self.lost:
            self.written_after_loss.append(call)
            if self.mode == "unreachable":
                raise JournalUnavailableError("state.url", "cannot reach db.example.com:5432 (test)")


class LosingCase(EngineCase):
    """An engine case whose journal loses the lease after the run's ``lose_after``-th call under it."""

    def __init__(self, fakes: Fakes, folder: Path, mode: str) -> None:
        """One target; the journal works until :meth:`lose`."""
        super().__init__(fakes, folder)
        self.losing = LosingJournal(mode)
        self.store = self.losing
        self.under_lease: list[str] = []  # the port calls made under the lease, in order
        self.late: list[str] = []  # port calls begun after the loss (none, if all is well)
        self.lose_after: int | None = None
        self.requests_at_loss: int | None = None

    def _run_once(self, options: RunOptions, crash_after: str | None) -> Result:
        """The run; then the database is back (the invariants are checked, and the next run starts)."""
        try:
            return super()._run_once(options, crash_after)
        finally:
            self.losing.reconnect()

    def _adapters(self, config: Config) -> tuple[GitLabAPI, InfisicalAPI]:
        gitlab, infisical = super()._adapters(config)
        return cast("GitLabAPI", _Watched(gitlab, self)), cast("InfisicalAPI", _Watched(infisical, self))

    def begun(self, call: str) -> None:
        """A port call is about to be made."""
        if self.losing.lost:
            self.late.append(call)

    def ended(self, call: str) -> None:
        """A port call has returned or raised: lose the lease after the chosen one."""
        if self.losing.leased is None or self.losing.lost:
            return
        self.under_lease.append(call)
        if len(self.under_lease) == self.lose_after:
            self.requests_at_loss = self.requests()
            self.losing.lose()
            # Time passes before the run's next call: a renewal falls due (nothing really sleeps).
            self.pauses(self.config.state.lease_ttl.total_seconds() / 3)

    def requests(self) -> int:
        """Requests rotator has sent to the fakes so far."""
        return len(self.fakes.gitlab.calls(user_agent=UA)) + len(self.fakes.infisical.calls(user_agent=UA))


class _Watched:
    """An adapter whose port calls the case hears of, before and after each."""

    _CALLS = frozenset(
        (
            "project_id",
            "manager_access_level",
            "manager_self",
            "list_tokens",
            "get_token",
            "create_token",
            "token_self",
            "delete_token",
            "get_connection",
            "push_token",
        )
    )

    def __init__(self, adapter: object, case: LosingCase) -> None:
        self._adapter, self._case = adapter, case

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the adapter's own attribute
        found = getattr(self._adapter, name)
        if name not in self._CALLS:
            return found
        return self._watch(name, found)

    def _watch(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - the port's own signature
            self._case.begun(name)
            try:
                return call(*args, **kwargs)
            finally:
                self._case.ended(name)

        return watched


def _reach(case: LosingCase, phase: str) -> None:
    """Bring ``case`` to just before the run of ``phase``."""
    if phase == "grace":
        assert case.run("run-once").code == 0
        case.fakes.clock.advance(timedelta(minutes=61))
    elif phase == "recovery":
        assert case.run("run-once", crash_after="PLANNED").code == CRASHED
        case.fakes.clock.advance(timedelta(minutes=11))
    case.under_lease = []


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_phase_makes_the_calls_the_loss_cases_cover(fakes: Fakes, tmp_path: Path, phase: str) -> None:
    """Without a loss, each phase's run makes exactly the port calls listed in PHASES under its lease."""
    case = LosingCase(fakes, tmp_path, "renew-fails")
    _reach(case, phase)
    assert case.run("run-once").code == 0
    assert tuple(case.under_lease) == PHASES[phase], case.under_lease


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("phase", "after"),
    [(phase, n) for phase, calls in PHASES.items() for n in range(1, len(calls) + 1)],
    ids=[f"{phase}-after-{n}-{call}" for phase, calls in PHASES.items() for n, call in enumerate(calls, 1)],
)
def test_a_run_that_loses_its_lease_sends_and_records_nothing_more(
    fakes: Fakes, tmp_path: Path, phase: str, after: int, mode: str
) -> None:
    """The lease is lost after a call: no request and no journal write follow; later runs converge."""
    case = LosingCase(fakes, tmp_path, mode)
    _reach(case, phase)
    case.lose_after = after
    result = case.run("run-once")
    assert case.losing.ever_lost, f"the lease was never lost: {case.under_lease}"
    assert case.late == [], f"port calls after the lease was lost: {case.late}"
    assert case.requests() == case.requests_at_loss, "a request reached a fake after the lease was lost"
    assert case.losing.written_after_loss == [], "the journal was written after the lease was lost"
    assert result.code == 1, result.stdout
    if mode != "unreachable":  # there, a journal read may be what stops the run first
        assert "lease on" in result.stdout
        assert "nothing more is sent or recorded" in result.stdout
    case.lose_after = None
    case.converge(cli=False)
