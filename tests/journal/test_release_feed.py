"""The release feed and ``records_of`` (:class:`rotator.core.ports.Journal`), on every store that has them.

A replica told that another worker released a target reads that target's records once, for a
batch of targets at a time, and plans its own next check from them (``rotator.doors.daemon``).
"""

import json
import time

from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from rotator.core.model import Change, Origin, Outcome, Role, TargetRecords, TargetState, TokenRecord
from rotator.core.ports import Journal, Released, ReleaseFeed
from rotator.journal.postgres import PostgresJournal
from rotator.journal.postgres_feed import CHANNEL, PostgresReleaseFeed
from tests.journal.samples import KEY, NOW, OTHER_KEY, TTL, rotation
from tests.journal.stores import STORES, Opener


@pytest.fixture(params=["memory", "postgres"])
def feeding(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Each store with a release feed, empty: a function returning a new handle on it."""
    with STORES[request.param]() as handles:
        yield handles


@pytest.fixture
def postgres() -> Iterator[PostgresJournal]:
    """A handle on an empty PostgreSQL journal (a fresh database, dropped afterwards)."""
    with STORES["postgres"]() as handles:
        journal = handles()
        assert isinstance(journal, PostgresJournal)
        yield journal


def _feed(journal: Journal) -> ReleaseFeed:
    feed = journal.release_feed()
    assert feed is not None
    if isinstance(feed, PostgresReleaseFeed):
        feed.wait(0.01)  # listening from here on: a release before the LISTEN is not told of
    return feed


def _all(feed: ReleaseFeed, count: int) -> list[Released]:
    """What ``feed`` tells, until ``count`` releases or 5 s."""
    told: list[Released] = []
    deadline = time.monotonic() + 5
    while len(told) < count and time.monotonic() < deadline:
        told += feed.wait(0.5)
    return told


def test_records_of_answers_records_for_each_key_given(journal: Journal) -> None:
    """``records_of`` is ``records`` of each key; a key never written has empty records."""
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    token = TokenRecord(KEY, 7, "t7", Origin.CREATED, Role.CURRENT, None)
    journal.write(lease, Change(rotation=rotation("r1"), tokens=(token,), target=TargetState(KEY, "app")))
    unknown = replace(OTHER_KEY, project_id=4242)
    found = journal.records_of([KEY, OTHER_KEY, unknown])
    assert found == {
        KEY: journal.records(KEY),
        OTHER_KEY: TargetRecords(None, (), None, ()),
        unknown: TargetRecords(None, (), None, ()),
    }
    assert found[KEY].tokens == (token,)
    assert found[KEY].unfinished == rotation("r1")
    assert journal.records_of([]) == {}


def test_a_file_journal_has_no_feed(opener: Opener) -> None:
    """Only SQLite answers no feed (one machine's file); memory and PostgreSQL open one per call."""
    journal = opener()
    feed = journal.release_feed()
    try:
        assert (feed is None) == (type(journal).__name__ == "SQLiteJournal")
    finally:
        if feed is not None:
            feed.close()


def test_a_release_is_told_to_every_feed_with_its_key_and_holder(feeding: Opener) -> None:
    """Two feeds on two handles each hear a release made through a third, once, naming key and holder."""
    feeds = [_feed(feeding()), _feed(feeding())]
    worker = feeding()
    lease = worker.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    worker.write(lease, Change(rotation=replace(rotation("r1"), outcome=Outcome.SUCCEEDED)))
    worker.release(lease)
    try:
        for feed in feeds:
            assert _all(feed, 1) == [Released(str(KEY), "w1")]
            assert feed.wait(0.05) == []
    finally:
        for feed in feeds:
            feed.close()


def test_releasing_a_lease_no_longer_held_tells_nothing(feeding: Opener) -> None:
    """A stale holder's release frees nothing, so nothing is told; the new holder's release is."""
    journal = feeding()
    feed = _feed(journal)
    try:
        old = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
        assert old is not None
        new = journal.acquire(KEY, "app-deploy", "w2", old.expires, TTL)
        assert new is not None
        journal.release(old)
        journal.release(new)
        assert _all(feed, 2) == [Released(str(KEY), "w2")]
    finally:
        feed.close()


def test_a_closed_feed_answers_nothing_and_the_journal_keeps_working(feeding: Opener) -> None:
    """After ``close`` a feed tells nothing more, and releases go on as before."""
    journal = feeding()
    feed = _feed(journal)
    feed.close()
    lease = journal.acquire(KEY, "app-deploy", "w1", NOW, TTL)
    assert lease is not None
    journal.release(lease)
    assert feed.wait(0.05) == []
    assert journal.acquire(KEY, "app-deploy", "w2", NOW, TTL) is not None


def test_a_postgres_feed_survives_its_session_ending(postgres: PostgresJournal) -> None:
    """A feed whose session the server ended tells nothing meanwhile, then listens again and tells."""
    feed = postgres.release_feed()
    assert isinstance(feed, PostgresReleaseFeed)
    feed.wait(0.01)
    url = postgres._url  # noqa: SLF001 - the test's own database
    with psycopg.connect(url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = %s",
            (f"LISTEN {CHANNEL}",),
        ).fetchall()
    assert ended == [(True,)]
    try:
        deadline = time.monotonic() + 5
        while feed._conn is not None and time.monotonic() < deadline:  # noqa: SLF001 - found dropped
            assert feed.wait(0.2) == []
        assert feed._conn is None  # noqa: SLF001
        feed._retry_at = 0.0  # noqa: SLF001 - not the 5 s pause a real outage waits
        feed.wait(0.01)
        lease = postgres.acquire(KEY, "app-deploy", "w9", NOW, TTL)
        assert lease is not None
        postgres.release(lease)
        assert _all(feed, 1) == [Released(str(KEY), "w9")]
    finally:
        feed.close()


def test_a_payload_that_is_not_a_release_is_ignored(postgres: PostgresJournal) -> None:
    """Anything else notified on the channel (another writer, a stray NOTIFY) is not a release."""
    feed = postgres.release_feed()
    feed.wait(0.01)
    try:
        with psycopg.connect(postgres._url, autocommit=True) as admin:  # noqa: SLF001 - the test's database
            for text in ("not json", json.dumps({"key": 1}), json.dumps([1, 2]), json.dumps(["k", "h"])):
                admin.execute("SELECT pg_notify(%s, %s)", (CHANNEL, text))
        assert _all(feed, 1) == [Released("k", "h")]
    finally:
        feed.close()
