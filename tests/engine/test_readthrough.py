"""The read-through view of a target's own records under its lease (:mod:`rotator.engine.readthrough`)."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotator.core.errors import LeaseLostError
from rotator.core.model import (
    Change,
    Origin,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TargetKey,
    TargetRecords,
    TargetState,
    TokenRecord,
    Tombstone,
)
from rotator.engine.lease import LeaseKeeper
from rotator.engine.readthrough import ReadThrough
from rotator.journal.memory import MemoryJournal
from tests.engine.lease_context import lease_context


CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
KEY = TargetKey("https://gitlab.example.com", 42, CONN)
OTHER = TargetKey("https://gitlab.example.com", 43, CONN)
NOW = datetime(2026, 1, 5, tzinfo=UTC)
TTL = timedelta(minutes=10)


class _Counting(MemoryJournal):
    """A memory journal counting the reads that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    def target(self, key: TargetKey) -> TargetState | None:
        self.reads["target"] += 1
        return super().target(key)

    def tokens(self, key: TargetKey) -> list[TokenRecord]:
        self.reads["tokens"] += 1
        return super().tokens(key)

    def records(self, key: TargetKey) -> TargetRecords:
        self.reads["records"] += 1
        return super().records(key)


def _token(key: TargetKey, token_id: int, evidence: str | None = None) -> TokenRecord:
    return TokenRecord(key, token_id, "rotator-app", Origin.CREATED, Role.CURRENT, None, evidence=evidence)


def test_own_records_are_read_once_and_a_write_applied_not_read_again() -> None:
    """A second read comes from memory; a write's records are kept as the store answered it kept them."""
    journal = _Counting()
    lease = journal.acquire(KEY, "app", "w1", NOW, TTL)
    assert lease is not None
    view = ReadThrough(journal, KEY).as_journal()
    assert view.tokens(KEY) == view.tokens(KEY) == []
    state = view.target(KEY)
    assert view.target(KEY) == state
    assert view.unfinished(KEY) is None
    assert view.tombstones(KEY) == []
    assert journal.reads == Counter(records=1)  # the four, fetched together once
    view.write(lease, Change(tokens=(_token(KEY, 7, evidence="listed"),)))
    view.write(lease, Change(tokens=(_token(KEY, 3),)))
    view.target(KEY)
    kept = view.tokens(KEY)
    assert [t.token_id for t in kept] == [3, 7]
    assert journal.reads == Counter(records=1)  # applied, not read again
    assert kept == journal.tokens(KEY)  # what the store gives back
    assert view.records(KEY) == journal.records(KEY)
    assert journal.reads == Counter(records=2, tokens=1)  # the two checks only


def test_a_keeper_serves_the_records_read_with_its_lease_without_reading() -> None:
    """The records ``acquire_reading`` answered are the view's: no read until a write makes one needed."""
    journal = _Counting()
    first = journal.acquire(KEY, "app", "w0", NOW, TTL)
    assert first is not None
    journal.write(first, Change(tokens=(_token(KEY, 7),), rotation=None))
    journal.release(first)
    taken = journal.acquire_reading(KEY, "app", "w1", NOW, TTL)
    assert taken is not None
    lease, records = taken
    keeper = LeaseKeeper(lease_context(journal, KEY, NOW), lease, records)  # not entered: no thread
    view = keeper.ctx.journal
    assert view.records(KEY) == records == journal.records(KEY)
    assert [t.token_id for t in view.tokens(KEY)] == [7]
    assert journal.reads == Counter(records=1)  # the check above, not the view
    keeper.view.drop()
    view.target(KEY)
    assert journal.reads == Counter(records=2)  # dropped: the store is asked again


def test_a_write_keeps_what_the_store_kept_not_what_was_sent() -> None:
    """Free text the store redacts is kept redacted: the view serves the store's answer, not the engine's."""
    journal = _Counting()
    lease = journal.acquire(KEY, "app", "w1", NOW, TTL)
    assert lease is not None
    view = ReadThrough(journal, KEY).as_journal()
    state = view.target(KEY)
    assert state is not None
    secret = "401 for glpat-A1b2C3d4E5f6G7h8I9j0"
    view.write(lease, Change(target=replace(state, last_error=secret), tokens=(_token(KEY, 7, secret),)))
    kept = view.target(KEY)
    assert kept is not None
    assert kept.last_error is not None
    assert "glpat-A1b2" not in kept.last_error
    assert kept == journal.target(KEY)
    assert view.tokens(KEY) == journal.tokens(KEY)
    assert journal.reads == Counter(records=1, target=1, tokens=1)  # the view read once; the rest are checks


def _planned(rotation_id: str, at: datetime = NOW) -> RotationRecord:
    return RotationRecord(
        id=rotation_id,
        key=KEY,
        target="app",
        trigger="schedule",
        actor="test",
        step=Step.PLANNED,
        outcome=Outcome.IN_PROGRESS,
        token_name=f"app-20260105-{rotation_id}",
        requested_expiry=at.date(),
        planned_at=at,
    )


def test_the_only_open_rotation_ending_leaves_none_open_without_a_read() -> None:
    """A rotation the view saw opened when none was open is the only one: its close needs no read."""
    journal = _Counting()
    lease = journal.acquire(KEY, "app", "w1", NOW, TTL)
    assert lease is not None
    view = ReadThrough(journal, KEY).as_journal()
    assert view.unfinished(KEY) is None
    planned = _planned("r1")
    view.write(lease, Change(rotation=planned))
    assert view.unfinished(KEY) == planned
    created = replace(planned, step=Step.CREATED)
    view.write(lease, Change(rotation=created))
    assert view.unfinished(KEY) == created
    view.write(lease, Change(rotation=replace(created, outcome=Outcome.SUCCEEDED)))
    assert view.unfinished(KEY) is None
    assert journal.reads == Counter(records=1)
    assert journal.unfinished(KEY) is None


def test_an_open_rotation_found_by_a_read_ending_is_read_again() -> None:
    """The store names only the newest open rotation: once the one a read found ends, the next read asks."""
    journal = _Counting()
    lease = journal.acquire(KEY, "app", "w1", NOW, TTL)
    assert lease is not None
    older, newer = _planned("r0", NOW - timedelta(hours=1)), _planned("r1")
    journal.write(lease, Change(rotation=older))
    journal.write(lease, Change(rotation=newer))
    view = ReadThrough(journal, KEY).as_journal()
    assert view.unfinished(KEY) == newer
    view.write(lease, Change(rotation=replace(newer, outcome=Outcome.SUCCEEDED)))
    assert view.unfinished(KEY) == older  # still open: the read found it
    assert journal.reads == Counter(records=2)


def test_reads_of_other_keys_always_go_to_the_store() -> None:
    """Only the leased key's records are kept: another key's are read from the store every time."""
    journal = _Counting()
    view = ReadThrough(journal, KEY).as_journal()
    view.tokens(OTHER)
    view.tokens(OTHER)
    view.target(OTHER)
    view.records(OTHER)
    assert journal.reads == Counter(tokens=2, target=1, records=1)


def test_a_lost_lease_drops_what_was_kept_and_every_further_write_fails() -> None:
    """Another writer exists only once the lease is lost: the view then reads afresh, and no write lands."""
    journal = MemoryJournal()
    lease = journal.acquire(KEY, "app", "w1", NOW, TTL)
    assert lease is not None
    ctx = lease_context(journal, KEY, NOW)
    keeper = LeaseKeeper(ctx, lease)  # not entered: no background thread, the test renews
    before = keeper.ctx.journal.target(KEY)
    assert before is not None
    # The lease lapses and another worker takes the target and writes it.
    theirs = journal.acquire(KEY, "app", "w2", NOW + 2 * TTL, TTL)
    assert theirs is not None
    journal.write(theirs, Change(target=replace(before, failures=3)))
    assert keeper.ctx.journal.target(KEY) == before  # kept: but nothing can act on it, as below
    with pytest.raises(LeaseLostError):
        keeper.renew()
    after = keeper.ctx.journal.target(KEY)
    assert after is not None
    assert after.failures == 3  # dropped on the loss: read afresh
    with pytest.raises(LeaseLostError):
        keeper.ctx.journal.write(lease, Change(target=before))  # fenced by the store
    with pytest.raises(LeaseLostError):
        keeper.check()  # and no upstream request either


def test_records_given_up_front_are_served_and_kept_hands_back_only_a_full_set() -> None:
    """A view made with records serves them without a read; ``kept`` is None once any was forgotten."""
    journal = _Counting()
    lease = journal.acquire(KEY, "app", "w1", NOW, TTL)
    assert lease is not None
    view = ReadThrough(journal, KEY, journal.records(KEY))
    assert view.kept() == journal.records(KEY)
    journal.reads.clear()
    assert view.target(KEY) == journal.target(KEY)
    assert view.tokens(KEY) == []
    assert journal.reads == Counter(target=1)  # the check's own read: the view read nothing
    view.write(lease, Change(tokens=(_token(KEY, 7),)))
    assert view.kept() == journal.records(KEY)  # the write applied to what was kept
    view.write(lease, Change(tombstones=(Tombstone(KEY, "app-20260105-x", NOW),)))
    assert view.kept() is None  # the tombstones were forgotten; kept() reads nothing to fill them
    assert journal.reads == Counter(target=1, records=1)  # the checks' own reads
