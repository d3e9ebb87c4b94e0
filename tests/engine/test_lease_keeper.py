"""The lease's timings come from ``state.lease_ttl``; a renewal failing in the background stops the run."""

import threading

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotator.core.errors import LeaseLostError
from rotator.core.model import Change, Lease, TargetKey, TargetState, TokenInfo
from rotator.doors.config import parse_config
from rotator.doors.wiring import engine_settings
from rotator.engine.context import Settings
from rotator.engine.lease import LeaseKeeper
from rotator.journal.memory import MemoryJournal
from tests.engine.lease_context import lease_context


CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
KEY = TargetKey("https://gitlab.example.com", 42, CONN)
NOW = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "ttl", "renew"),
    [
        (None, timedelta(minutes=10), timedelta(seconds=30)),
        ("6s", timedelta(seconds=6), timedelta(seconds=2)),
        ("90s", timedelta(seconds=90), timedelta(seconds=30)),
        ("1d", timedelta(days=1), timedelta(seconds=30)),
    ],
)
def test_state_lease_ttl_sets_the_lease_and_its_renewal(
    written: str | None, ttl: timedelta, renew: timedelta
) -> None:
    """The engine's lease lasts ``state.lease_ttl`` and is renewed every 30 s, or a third of it if shorter."""
    state = {"lease_ttl": written} if written else {}
    config = parse_config(
        {
            "gitlab": {"url": "https://gitlab.example.com"},
            "state": state,
            "targets": [
                {"name": "app-deploy", "project": 42, "connection_id": CONN, "token": {"scopes": ["api"]}}
            ],
        }
    )
    settings = engine_settings(config)
    assert (settings.lease_ttl, settings.lease_renew) == (ttl, renew)


class _Failing(MemoryJournal):
    """A journal whose renewals fail once ``broken`` is set (the database went away)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = threading.Event()

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        if self.broken.is_set():
            raise ConnectionError
        return super().renew(lease, now, ttl)


class _GitLab:
    """A GitLab port whose listing stays in flight until the lease is lost; it counts what it is asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.lost: threading.Event | None = None

    def list_tokens(self, _project_id: int) -> list[TokenInfo]:
        self.asked += 1
        assert self.lost is not None
        assert self.lost.wait(timeout=30), "the background renewal never marked the lease lost"
        return []


def test_a_renewal_failing_in_the_background_stops_the_call_after_the_one_in_flight() -> None:
    """The background thread's failed renewal lets the call in flight finish and refuses the next."""
    journal = _Failing()
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    gitlab = _GitLab()
    # The run's clock stands still (only the background thread renews), and the renewal interval is
    # real time, but a thousandth of a second: the thread renews at once (an Event wait, no sleep).
    ctx = lease_context(
        journal, KEY, NOW, gitlab=gitlab, settings=Settings(lease_renew=timedelta(milliseconds=1))
    )
    with LeaseKeeper(ctx, lease) as keeper:
        gitlab.lost = keeper.lost
        journal.broken.set()
        assert keeper.ctx.gitlab.list_tokens(42) == []  # in flight when the lease was lost: it finishes
        with pytest.raises(LeaseLostError, match=r"lease on .* lost \(renewal failed: ConnectionError\)"):
            keeper.ctx.gitlab.list_tokens(42)
    assert gitlab.asked == 1


class _Counting(MemoryJournal):
    """A journal that counts the renewals sent from the test's own thread and hears the background's."""

    def __init__(self) -> None:
        super().__init__()
        self.from_run = 0
        self.background = threading.Event()

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        if threading.current_thread() is threading.main_thread():
            self.from_run += 1
        else:
            self.background.set()
        return super().renew(lease, now, ttl)


def test_a_background_renewal_does_not_make_the_run_renew_before_every_call() -> None:
    """Each thread its own monotonic clock (as under the sleep scale): the run renews by its clock alone."""
    journal = _Counting()
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    clocks = threading.local()
    clocks.now = 1000.0  # the run's thread: far ahead of the background thread's, which reads 0
    ctx = lease_context(
        journal,
        KEY,
        NOW,
        monotonic=lambda: float(getattr(clocks, "now", 0.0)),
        settings=Settings(lease_renew=timedelta(milliseconds=1)),
    )
    with LeaseKeeper(ctx, lease) as keeper:
        assert journal.background.wait(timeout=10)
        for _ in range(5):
            keeper.check()  # the run's clock stands still: no renewal is due by it
    assert journal.from_run == 0


class _Renewing(MemoryJournal):
    """A journal counting renewals and writes, answering renewals on its own clock (as a database's)."""

    def __init__(self, clock_ahead: timedelta) -> None:
        super().__init__()
        self.ahead = clock_ahead
        self.calls: list[str] = []

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        self.calls.append("renew")
        return super().renew(lease, now + self.ahead, ttl)

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        self.calls.append("write_renewing")
        return super().write_renewing(lease, change, now + self.ahead, ttl)


def test_a_write_carrying_the_renewal_keeps_the_expiry_the_journal_answered() -> None:
    """One call records and renews; the lease expires when the journal said; it counts as a renewal."""
    journal = _Renewing(timedelta(seconds=7))
    lease = journal.acquire(KEY, "app", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    clock = [0.0]
    keeper = LeaseKeeper(lease_context(journal, KEY, NOW, monotonic=lambda: clock[0]), lease)
    clock[0] = 29.0  # a renewal is not due yet (every 30 s)
    keeper.write_renewing(Change(target=TargetState(KEY, "app", failures=1)))
    assert journal.calls == ["write_renewing"]
    assert keeper.lease == replace(lease, expires=NOW + timedelta(seconds=7) + timedelta(minutes=10))
    state = journal.target(KEY)
    assert state is not None
    assert state.failures == 1
    clock[0] = 58.0  # 29 s after the write's renewal: still not due
    keeper.check()
    assert journal.calls == ["write_renewing"]


def test_a_write_carrying_the_renewal_renews_first_when_one_is_overdue() -> None:
    """An overdue renewal is made before the write is sent, as before any write."""
    journal = _Renewing(timedelta(0))
    lease = journal.acquire(KEY, "app", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    clock = [0.0]
    keeper = LeaseKeeper(lease_context(journal, KEY, NOW, monotonic=lambda: clock[0]), lease)
    clock[0] = 31.0
    keeper.write_renewing(Change(target=TargetState(KEY, "app")))
    assert journal.calls == ["renew", "write_renewing"]


def test_a_write_carrying_the_renewal_refused_marks_the_lease_lost() -> None:
    """The lease taken over: nothing recorded, the lease lost for good, and nothing more is sent."""
    journal = MemoryJournal()
    lease = journal.acquire(KEY, "app", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    keeper = LeaseKeeper(lease_context(journal, KEY, NOW), lease)
    theirs = journal.acquire(KEY, "app", "w2", NOW + timedelta(minutes=11), timedelta(minutes=10))
    assert theirs is not None
    with pytest.raises(LeaseLostError):
        keeper.write_renewing(Change(target=TargetState(KEY, "app", failures=5)))
    assert keeper.lost.is_set()
    state = journal.target(KEY)
    assert state is not None
    assert state.failures == 0
    with pytest.raises(LeaseLostError):
        keeper.check()


class _Asking:
    """A GitLab port answering one read, for the requests a run sends."""

    def list_tokens(self, _owner: object) -> list[TokenInfo]:
        return []


def test_a_renewal_stands_as_the_proof_before_a_mutation_until_a_request_is_sent() -> None:
    """After a write carrying the renewal, the mutation's proof needs no other; after a request, it does."""
    journal = _Renewing(timedelta(0))
    lease = journal.acquire(KEY, "app", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    clock = [0.0]
    ctx = lease_context(journal, KEY, NOW, monotonic=lambda: clock[0], gitlab=_Asking())
    keeper = LeaseKeeper(ctx, lease)
    keeper.prove()  # the acquisition is no renewal by the run: one is made
    keeper.write_renewing(Change(target=TargetState(KEY, "app")))
    keeper.prove()  # the write's renewal stands: nothing sent since
    assert journal.calls == ["renew", "write_renewing"]
    keeper.ctx.gitlab.list_tokens(42)
    assert keeper.requests == 1
    keeper.prove()  # a request came between: renewed again
    assert journal.calls == ["renew", "write_renewing", "renew"]
    clock[0] = 31.0  # due by the run's clock: renewed although nothing was sent
    keeper.prove()
    assert journal.calls == ["renew", "write_renewing", "renew", "renew"]


def test_a_lost_lease_is_refused_even_with_a_standing_renewal() -> None:
    """The proof stands only while the lease is held: once lost, every mutation's proof is refused."""
    journal = MemoryJournal()
    lease = journal.acquire(KEY, "app", "w1", NOW, timedelta(minutes=10))
    assert lease is not None
    keeper = LeaseKeeper(lease_context(journal, KEY, NOW), lease)
    keeper.write_renewing(Change(target=TargetState(KEY, "app")))
    theirs = journal.acquire(KEY, "app", "w2", NOW + timedelta(minutes=11), timedelta(minutes=10))
    assert theirs is not None
    with pytest.raises(LeaseLostError):
        keeper.renew()  # as the background thread would, finding it taken over
    with pytest.raises(LeaseLostError):
        keeper.prove()
