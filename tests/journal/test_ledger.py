"""The call ledger (:class:`rotator.core.ports.CallLedger`), run against every store in ``stores.STORES``.

Each store's ledger runs on a clock the tests move (``stores``' ``clock``); times are whole
seconds plus multiples of 1/64 s, exact on every store (PostgreSQL's epoch seconds included), so
answers are compared exactly with a plain model: a call is counted iff fewer than ``per_minute``
were counted in the whole seconds overlapping the last 60 s (second ``s`` counts while
``s + 1 > now - 60``), else the wait is until enough of those seconds have left. Every example
uses its own bucket and job names, so one store serves them all.
"""

import math
import shutil
import threading
import uuid

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotator.core.ports import Journal
from rotator.journal import postgres_schema
from rotator.journal.postgres import PostgresJournal
from rotator.journal.sqlite import SQLiteJournal
from tests.journal.stores import STORES, ClockedJournal, Opener, postgres_store
from tests.journal.test_schema import OLD
from tests.postgres import fresh_schema


T = TypeVar("T")
START = datetime(2026, 1, 1, tzinfo=UTC)
TICK = timedelta(seconds=1 / 64)
WINDOW = timedelta(seconds=60)


class Clock:
    """The ledger's clock: set by the test, read by the store."""

    def __init__(self) -> None:
        """At :data:`START`."""
        self.at = START

    def __call__(self) -> datetime:
        """The time now."""
        return self.at


@dataclass
class Store:
    """A store under test: its opener, a first handle on it, and its ledger's clock."""

    opener: Opener
    journal: Journal
    other: Journal
    clock: Clock


@pytest.fixture(params=sorted(STORES), scope="module")
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Each store, with the clock its ledger runs on (one store per module: names are per example)."""
    clock = Clock()
    with STORES[request.param](clock) as opener:
        yield Store(opener, opener(), opener(), clock)


def _unique(what: str) -> str:
    return f"{what}:{uuid.uuid4().hex}"


def _counted(granted: list[datetime], now: datetime) -> list[int]:
    """The epoch seconds of the granted calls whose second overlaps (now - 60, now], oldest first."""
    seconds = (math.floor(at.timestamp()) for at in granted)
    return sorted(s for s in seconds if s + 1 > (now - WINDOW).timestamp())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(1, 4),
    st.lists(
        st.tuples(
            st.one_of(st.integers(0, 2), st.integers(0, 64 * 70), st.just(64 * 60), st.just(64 * 61)),
            st.booleans(),
            st.booleans(),
        ),
        max_size=20,
    ),
)
def test_every_store_counts_calls_per_second_as_the_model_does(
    store: Store, per_minute: int, asks: list[tuple[int, bool, bool]]
) -> None:
    """Two handles, two buckets: each answer is the model's, and no 60 s window exceeds the ceiling."""
    clock = store.clock
    buckets = (_unique("gitlab"), _unique("infisical-read"))
    granted: dict[str, list[datetime]] = {b: [] for b in buckets}
    clock.at = START
    for ticks, second, other in asks:
        clock.at += ticks * TICK
        bucket = buckets[second]
        counted = _counted(granted[bucket], clock.at)
        wait = (store.other if other else store.journal).take(bucket, per_minute)
        if len(counted) < per_minute:
            assert wait == 0.0
            granted[bucket].append(clock.at)
        else:
            leaving = counted[len(counted) - per_minute]
            assert wait == leaving + 1 + WINDOW.total_seconds() - clock.at.timestamp()
            assert 0.0 < wait <= 61.0
    for calls in granted.values():
        for start in calls:
            assert sum(1 for at in calls if start <= at < start + WINDOW) <= per_minute


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(1, 8),
    st.lists(
        st.tuples(st.one_of(st.integers(0, 2), st.integers(0, 64 * 70)), st.integers(1, 5), st.booleans()),
        max_size=15,
    ),
)
def test_every_store_reserves_as_many_calls_as_fit(
    store: Store, per_minute: int, asks: list[tuple[int, int, bool]]
) -> None:
    """A reservation is granted what fits (``min(calls, room)``), for the rest of the clock's second."""
    clock = store.clock
    bucket = _unique("gitlab")
    granted: list[datetime] = []
    clock.at = START
    for ticks, calls, other in asks:
        clock.at += ticks * TICK
        room = per_minute - len(_counted(granted, clock.at))
        taken = (store.other if other else store.journal).reserve(bucket, per_minute, calls)
        assert taken.granted == max(0, min(calls, room))
        if taken.granted:
            assert taken.wait == 0.0
            assert taken.left == math.floor(clock.at.timestamp()) + 1 - clock.at.timestamp()
            granted += [clock.at] * taken.granted
        else:
            assert 0.0 < taken.wait <= 61.0


def test_a_postgres_bucket_row_keeps_at_most_61_seconds() -> None:
    """A row left with 10,000 seconds is trimmed by the next take, and stays at 61 pairs at most."""
    clock = Clock()
    bucket = _unique("gitlab")
    with postgres_store(clock) as opener:
        journal = opener()
        assert journal.take(bucket, 1_000_000) == 0.0  # makes the row
        assert isinstance(journal, ClockedJournal)
        db = journal.clock_connection
        seconds = "SELECT cardinality(seconds), cardinality(counts) FROM call_windows WHERE bucket = %s"
        start = int(START.timestamp())
        db.execute(
            "UPDATE call_windows"
            " SET seconds = (SELECT array_agg(s ORDER BY s) FROM generate_series(%s::int8, %s) s),"
            " counts = array_fill(1, ARRAY[10000]) WHERE bucket = %s",
            (start - 9_999, start, bucket),
        )
        for _ in range(150):
            clock.at += timedelta(seconds=0.5)
            assert journal.take(bucket, 1_000_000) == 0.0
            assert db.execute(seconds, (bucket,)).fetchone() in {(n, n) for n in range(1, 62)}


def test_every_store_claims_a_job_once_per_period(store: Store) -> None:
    """The first claim wins; none until the period has passed, on any handle; then one again."""
    clock = store.clock
    first, second = store.journal, store.opener()
    job, every = _unique("removed"), timedelta(minutes=5)
    clock.at = START
    assert first.claim(job, every)
    assert not second.claim(job, every)
    clock.at = START + every - TICK
    assert not first.claim(job, every)
    assert not second.claim(job, every)
    clock.at = START + every
    assert second.claim(job, every)
    assert not first.claim(job, every)
    assert first.claim(_unique("other-job"), every)  # jobs are claimed apart


def _race(opener: Opener, work: Callable[[Journal], T], workers: int = 4) -> list[T]:
    """``work(handle)`` on ``workers`` handles at once (one handle each, as separate processes)."""
    handles = [opener() for _ in range(workers)]
    results: list[T] = []
    gate = threading.Barrier(workers)
    lock = threading.Lock()

    def one(handle: Journal) -> None:
        gate.wait()
        answer = work(handle)
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=one, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_racing_callers_of_one_bucket_are_counted_once_each(store: Store) -> None:
    """Four callers at once on a bucket allowing two: two are counted; four racing claims: one wins."""
    store.clock.at = START
    bucket, job = _unique("gitlab"), _unique("removed")
    takes = _race(store.opener, lambda h: h.take(bucket, 2))
    assert sum(1 for t in takes if t == 0.0) == 2
    claims = _race(store.opener, lambda h: h.claim(job, timedelta(minutes=5)))
    assert sorted(claims) == [False, False, False, True]


def test_an_older_sqlite_journal_upgraded_in_place_keeps_a_ledger(tmp_path: Path) -> None:
    """The release before versioning's journal opens for writing and counts calls and claims."""
    path = tmp_path / "state.db"
    shutil.copyfile(OLD, path)
    journal = SQLiteJournal(path)
    assert journal.targets()  # its records are still there
    assert [journal.take("gitlab:x", 1), journal.take("gitlab:x", 1) > 0] == [0.0, True]
    assert journal.claim("removed", timedelta(minutes=5))
    journal.close()


def test_a_postgres_journal_of_the_first_schema_version_gets_a_ledger() -> None:
    """A version 1 schema (the first release on PostgreSQL) is migrated, and its ledger works."""
    with fresh_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (1)")
            conn.execute(postgres_schema.MIGRATIONS[0].encode())
        with PostgresJournal(url) as journal:
            assert [journal.take("gitlab:x", 1), journal.take("gitlab:x", 1) > 0] == [0.0, True]
            assert journal.claim("removed", timedelta(minutes=5))
