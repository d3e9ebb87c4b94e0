"""Copying a journal between stores (``rotator state copy``): every pair in ``stores.STORES``, both ways.

A journal with every kind of record (rotations in every outcome and step, ties among them, tokens
in every role, tombstones, resolved and unresolved paths, a forgotten key, released and expired
leases) is copied; the destination must then answer every read of the port as the source does,
and go on like it: the next lease gets the same fence on both, the next rotation sorts the same.
"""

import contextlib

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.core.errors import LeaseLostError
from rotator.core.model import (
    Change,
    Lease,
    Origin,
    Outcome,
    RequestStatus,
    Role,
    Step,
    TargetKey,
    TargetState,
    TokenRecord,
    Tombstone,
    TriggerRequest,
)
from rotator.core.ports import Journal
from rotator.journal.memory import MemoryJournal
from rotator.journal.postgres import PostgresJournal
from rotator.journal.snapshot import (
    TABLES,
    Copyable,
    CopyRefusedError,
    NotEmptyError,
    Snapshot,
    accept,
    copy,
    counts,
)
from rotator.journal.sqlite import SQLiteJournal
from tests.journal import test_differential as ops
from tests.journal.samples import KEY, NOW, OTHER_KEY, TTL, UNRESOLVED, rotation
from tests.journal.stores import STORES, Opener
from tests.postgres import fresh_schema


PAIRS = [(a, b) for a in sorted(STORES) for b in sorted(STORES)]
GONE_KEY = replace(KEY, project_id=7, connection_id="0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
KEYS = (KEY, OTHER_KEY, GONE_KEY)
#: Long after every lease the journal hands out has lapsed.
LATER = NOW + timedelta(days=1)


def _c(journal: Journal) -> Copyable:
    """A store of STORES, as the copy sees it (every store there has snapshot and restore)."""
    return cast("Copyable", journal)


@pytest.fixture(params=PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Opener, Opener]]:
    """An empty source store and an empty destination store, of the two kinds named."""
    source, destination = request.param
    with STORES[source]() as src, STORES[destination]() as dst:
        yield src, dst


def _take(journal: Journal, key: TargetKey, holder: str, at: datetime) -> Lease:
    lease = journal.acquire(key, f"name-{key.project_id}", holder, at, TTL)
    assert lease is not None
    return lease


def _fill(journal: Journal) -> None:
    """Every kind of record and lease state the journal keeps; every lease over by ``LATER``."""
    lease = _take(journal, KEY, "w1", NOW)
    # Every outcome, each at its own step; r1 and r2 tie on planned_at (recorded order decides).
    for number, (outcome, step) in enumerate(zip(Outcome, [*Step, Step.PLANNED], strict=True), start=1):
        at = NOW if number <= 2 else NOW + timedelta(minutes=number)
        record = replace(rotation(f"r{number}", at=at, outcome=outcome), step=step, error="boom")
        journal.write(lease, Change(rotation=record))
    tokens = tuple(
        TokenRecord(KEY, number, f"t{number}", origin, role, date(2026, 12, 25), f"r{number}")
        for number, (role, origin) in enumerate(zip(Role, [*Origin, *Origin, *Origin], strict=True), start=1)
    )
    state = TargetState(KEY, "name-42", verified_hash="ab" * 32, verified_at=NOW, untracked=((9, "x", None),))
    stones = (Tombstone(KEY, "t9", NOW + timedelta(days=3)), Tombstone(KEY, "t8", NOW))
    journal.write(lease, Change(tokens=tokens, target=state, tombstones=stones))
    journal.write(
        lease, Change(rotation=replace(rotation("r1"), step=Step.CREATED))
    )  # rewritten: keeps its place
    journal.release(lease)
    _take(journal, KEY, "w2", NOW + timedelta(minutes=1))  # then released above, held again: expires
    other = _take(journal, OTHER_KEY, "w1", NOW)
    shared = TokenRecord(OTHER_KEY, 3, "t3", Origin.ADOPTED, Role.PENDING_REVOKE, None)  # id 3 on both keys
    journal.write(
        other, Change(rotation=replace(rotation("o1"), key=OTHER_KEY, trigger="http"), tokens=(shared,))
    )
    journal.release(other)
    gone = _take(journal, GONE_KEY, "w1", NOW)
    journal.write(
        gone, Change(rotation=replace(rotation("g1"), key=GONE_KEY, target="gone"), tokens=(shared,))
    )
    journal.forget(gone, "forgotten")
    journal.remember_project(KEY.gitlab_url, "acme/app", 42)
    journal.record_unresolved(UNRESOLVED)
    journal.record_unresolved(replace(UNRESOLVED, project="acme/back"))
    journal.remember_project(KEY.gitlab_url, "acme/back", 43)  # resolved again: drops its failure
    # Trigger requests: one ended (its rotation names it), one still open whose replica is gone.
    other = _take(journal, OTHER_KEY, "w4", NOW + TTL)
    journal.write(
        other, Change(rotation=replace(rotation("o2"), key=OTHER_KEY, trigger="http", request="q-done"))
    )
    journal.release(other)
    served = (("o2", "in_progress", "PLANNED", None),)
    ended = TriggerRequest("q-done", "name-42", NOW, RequestStatus.FINISHED, outcome="done", rotations=served)
    journal.add_request(ended, NOW, TTL)
    journal.add_request(TriggerRequest("q-open", "name-42", NOW, replica="gone:1"), NOW, TTL)


def _reads(journal: Journal) -> tuple[object, ...]:
    """Every read of the port, for every key, instance, token id and path the journal was given."""
    per_key = tuple(
        (
            journal.target(k),
            journal.tokens(k),
            journal.tombstones(k),
            journal.rotations(k, 1000),
            journal.rotations(k, 1),
            journal.unfinished(k),
            journal.last_rotation(k, {"run-once"}),
            journal.last_rotation(k, {"http", "schedule"}),
        )
        for k in KEYS
    )
    owners = tuple(journal.owners(KEY.gitlab_url, token_id) for token_id in range(10))
    paths = tuple(
        (journal.project_id(KEY.gitlab_url, p), journal.unresolved(KEY.gitlab_url, p))
        for p in ("acme/app", "acme/back", "acme/gone", "acme/none")
    )
    recorded = journal.recorded_names()
    pairs = [(k, n) for k in KEYS for n in ("app-deploy", "gone", "name-42")]
    requests = tuple(
        (journal.request(r), journal.request_rotations(r)) for r in ("q-done", "q-open", "q-none")
    )
    return (
        requests,
        journal.lapsed_requests(LATER, 10),
        journal.targets(),
        journal.rotations(None, 1000),
        journal.rotations_of(pairs, 3),
        sorted(recorded, key=str),
        len(recorded),
        per_key,
        owners,
        paths,
    )


def test_a_copy_answers_every_read_as_the_source_does(pair: tuple[Opener, Opener]) -> None:
    """After a copy, every read of the destination equals the same read of the source."""
    src, dst = pair[0](), pair[1]()
    _fill(src)
    copied = copy(_c(src), _c(dst), LATER)
    assert _reads(dst) == _reads(src)
    assert copied == {
        "targets": 2,
        "rotations": 9,
        "tokens": 7,
        "tombstones": 2,
        "projects": 2,
        "unresolved": 1,
        "fences": copied["fences"],  # forgotten keys' fences: kept by the stores that keep them
        "requests": 2,
    }
    assert copied["fences"] in {0, 1}


def test_a_copy_goes_on_as_the_source_would(pair: tuple[Opener, Opener]) -> None:
    """The next leases get the same fences on both (above all earlier); the next rotation sorts alike."""
    src, dst = pair[0](), pair[1]()
    _fill(src)
    copy(_c(src), _c(dst), LATER)
    for key in KEYS:
        mine, theirs = _take(src, key, "w9", LATER), _take(dst, key, "w9", LATER)
        assert mine.fence == theirs.fence
        tie = replace(rotation(f"n{key.project_id}"), key=key)  # planned at NOW: ties with r1 and r2
        src.write(mine, Change(rotation=tie))
        dst.write(theirs, Change(rotation=tie))
    assert _take(dst, KEY, "w8", LATER + TTL).fence > 3  # KEY was acquired three times before
    assert _reads(dst) == _reads(src)


def test_a_lease_from_before_the_copy_is_stale_on_the_destination(pair: tuple[Opener, Opener]) -> None:
    """A worker holding an old lease of the source cannot write to the destination once a new one is out."""
    src, dst = pair[0](), pair[1]()
    old = _take(src, KEY, "w1", NOW)
    src.release(old)
    copy(_c(src), _c(dst), LATER)
    _take(dst, KEY, "w2", LATER)
    with pytest.raises(LeaseLostError):
        dst.write(old, Change(rotation=rotation()))


def test_an_empty_journal_copies_as_empty(pair: tuple[Opener, Opener]) -> None:
    """Copying an empty journal writes nothing and counts zero rows in every table."""
    src, dst = pair[0](), pair[1]()
    assert copy(_c(src), _c(dst), NOW) == dict.fromkeys(TABLES, 0)
    assert _reads(dst) == _reads(src)


def test_a_live_lease_refuses_the_copy(pair: tuple[Opener, Opener]) -> None:
    """A rotation in flight (a lease not yet lapsed) refuses the copy, naming the target; nothing written."""
    src, dst = pair[0](), pair[1]()
    _fill(src)
    _take(src, OTHER_KEY, "w3", LATER)
    with pytest.raises(CopyRefusedError, match=r"in flight.*name-42"):
        copy(_c(src), _c(dst), LATER + TTL - timedelta(seconds=1))
    assert counts(_c(dst).snapshot()) == dict.fromkeys(TABLES, 0)


def test_a_request_claimed_by_a_running_daemon_refuses_the_copy() -> None:
    """An open request still claimed (its daemon runs on the source) refuses the copy; lapsed, it copies."""
    src, dst = MemoryJournal(), MemoryJournal()
    src.add_request(TriggerRequest("q1", "app-deploy", NOW, replica="r1"), NOW, TTL)
    with pytest.raises(CopyRefusedError, match=r"request q1 .*app-deploy.*r1"):
        copy(src, dst, NOW + TTL - timedelta(seconds=1))
    assert counts(dst.snapshot()) == dict.fromkeys(TABLES, 0)
    copy(src, dst, NOW + TTL + timedelta(minutes=1))
    assert [r.id for r in dst.lapsed_requests(LATER, 10)] == ["q1"]  # a replica of the destination takes it


def test_a_lease_just_lapsed_still_refuses(pair: tuple[Opener, Opener]) -> None:
    """A lease that ended less than a minute ago counts as live (the store's clock may lag this one's)."""
    src, dst = pair[0](), pair[1]()
    _take(src, KEY, "w1", NOW)
    with pytest.raises(CopyRefusedError):
        copy(_c(src), _c(dst), NOW + TTL + timedelta(seconds=59))
    copy(_c(src), _c(dst), NOW + TTL + timedelta(minutes=1))
    assert dst.targets() == src.targets()


def test_a_destination_holding_anything_is_refused_and_left_as_it_was(pair: tuple[Opener, Opener]) -> None:
    """A destination with even one row (a resolved path) is refused; its contents stay as they were."""
    src, dst = pair[0](), pair[1]()
    _fill(src)
    dst.remember_project(KEY.gitlab_url, "acme/other", 5)
    before = _reads(dst)
    with pytest.raises(NotEmptyError, match="projects"):
        copy(_c(src), _c(dst), LATER)
    assert _reads(dst) == before


def test_a_source_written_during_the_copy_is_reported_and_nothing_kept() -> None:
    """A rotator writing to the source while it is copied fails the copy; the destination stays empty."""
    src = MemoryJournal()
    _take(src, KEY, "w1", NOW)

    class Meddling(MemoryJournal):
        def restore(self, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:
            src.remember_project(KEY.gitlab_url, "acme/late", 9)  # a daemon still running on the source
            super().restore(snapshot, check)

    dst = Meddling()
    with pytest.raises(CopyRefusedError, match=r"source changed.*nothing was kept"):
        copy(src, dst, LATER)
    assert counts(dst.snapshot()) == dict.fromkeys(TABLES, 0)


def test_a_destination_that_reads_back_differently_is_reported() -> None:
    """A destination whose contents differ from what was copied fails the copy, naming the table."""

    class Lossy(MemoryJournal):
        def restore(self, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:
            super().restore(replace(snapshot, tokens=snapshot.tokens[1:]), check)

    src = MemoryJournal()
    _fill(src)
    dst = Lossy()
    with pytest.raises(CopyRefusedError, match="tokens 6 of 7"):
        copy(src, dst, LATER)
    assert counts(dst.snapshot()) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize("store", sorted(STORES))
def test_a_restore_whose_check_fails_keeps_nothing_and_can_be_done_again(store: str) -> None:
    """The check runs before the write commits, on what was written; its failure leaves the store empty."""
    src = MemoryJournal()
    _fill(src)
    taken = src.snapshot()
    seen: list[Snapshot] = []

    def refuse(written: Snapshot) -> None:
        seen.append(written)
        raise CopyRefusedError("no")

    with STORES[store]() as opener:
        dst = _c(opener())
        with pytest.raises(CopyRefusedError):
            dst.restore(taken, refuse)
        assert counts(seen[0]) == counts(taken)  # the check saw the whole write
        assert counts(_c(opener()).snapshot()) == dict.fromkeys(TABLES, 0)  # another handle: nothing
        assert copy(src, dst, LATER) == counts(taken)


# Any sequence of operations, copied both ways between the reference store and SQLite -------------


def _drive(journal: Journal, data: st.DataObject, steps: list[str]) -> datetime:
    """Apply ``steps`` with drawn arguments (stale leases included); the clock's time at the end."""
    leases: list[Lease] = []
    now = NOW
    for step in steps:
        now += data.draw(st.sampled_from((timedelta(0), TTL)))
        if step == "acquire":
            who = data.draw(st.tuples(ops.keys, st.sampled_from(ops.NAMES), st.sampled_from(ops.HOLDERS)))
            lease = journal.acquire(*who, now, TTL)
            leases.extend([lease] if lease else [])
        elif step == "path":
            journal.remember_project(
                *data.draw(st.tuples(st.sampled_from(ops.URLS), st.sampled_from(ops.PATHS))), 1
            )
        elif step == "unresolved":
            journal.record_unresolved(data.draw(ops.unresolved))
        elif leases:
            lease = data.draw(st.sampled_from(leases))
            args = (data.draw(ops.changes),) if step == "write" else () if step == "release" else ("gone",)
            with contextlib.suppress(LeaseLostError):
                getattr(journal, step)(lease, *args)
    return now


def _every_read(journal: Journal) -> tuple[object, ...]:
    """Every read of the port over the differential test's keys, instances, ids and paths."""
    per_key = tuple(
        (
            journal.target(key),
            journal.tokens(key),
            journal.tombstones(key),
            journal.unfinished(key),
            journal.rotations(key, 100),
            [journal.last_rotation(key, {t}) for t in ops.TRIGGERS],
        )
        for key in ops.KEYS
    )
    per_url = tuple(
        (
            [journal.owners(url, n) for n in (1, 2, 3)],
            [(journal.project_id(url, path), journal.unresolved(url, path)) for path in ops.PATHS],
        )
        for url in ops.URLS
    )
    names = journal.recorded_names()
    return journal.targets(), journal.rotations(None, 100), set(names), len(names), per_key, per_url


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    to_sqlite=st.booleans(),
    steps=st.lists(
        st.sampled_from(("acquire", "write", "release", "forget", "path", "unresolved")), max_size=25
    ),
)
def test_any_journal_copies_exactly(data: st.DataObject, steps: list[str], *, to_sqlite: bool) -> None:
    """Random operations on one store, copied to the other: every read agrees, and so do the next leases."""
    memory, sqlite = MemoryJournal(), SQLiteJournal(Path(":memory:"))
    src, dst = (memory, sqlite) if to_sqlite else (sqlite, memory)
    now = _drive(src, data, steps)
    copy(src, dst, now + TTL * 2)
    assert _every_read(dst) == _every_read(src)
    later = now + TTL * 3
    for key in ops.KEYS:
        assert src.acquire(key, "app", "w9", later, TTL) == dst.acquire(key, "app", "w9", later, TTL)
    sqlite.close()


def test_a_key_forgotten_then_configured_again_copies(pair: tuple[Opener, Opener]) -> None:
    """A key forgotten and leased again copies to any store; its next fence is the same on both."""
    src, dst = pair[0](), pair[1]()
    src.forget(_take(src, GONE_KEY, "w1", NOW), "forgotten")
    src.release(_take(src, GONE_KEY, "w1", NOW))  # configured again: a new target row
    copy(_c(src), _c(dst), LATER)
    assert _reads(dst) == _reads(src)
    assert _take(dst, GONE_KEY, "w2", LATER).fence == _take(src, GONE_KEY, "w2", LATER).fence == 3


def test_a_postgresql_sources_leases_are_judged_by_its_own_clock() -> None:
    """A machine whose clock runs an hour ahead still sees the database's live lease and is refused."""
    with fresh_schema() as url, PostgresJournal(url) as src:
        assert (
            src.acquire(KEY, "name-42", "w1", NOW, TTL) is not None
        )  # live for ten minutes, by the database
        with pytest.raises(CopyRefusedError, match=r"in flight.*name-42"):
            copy(src, MemoryJournal(), datetime.now(UTC) + timedelta(hours=1))
