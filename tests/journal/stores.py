"""The stores the journal contract suite runs over: add a store here and every contract test runs on it.

A store factory is a context manager that makes one empty store and yields an *opener*: each call
returns a new handle on that same store (for SQLite, another connection to the one file; for
PostgreSQL, another pool on the one database; for the memory store, the store itself), so
concurrency tests can race separate handles the way separate processes would. Leaving the context
closes every handle and removes whatever the store left behind.

Every factory takes the ``clock`` its store's call ledger runs on (the wall clock unless told), so
the ledger's contract can move time as the lease contract does with ``now``.
"""

import tempfile

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import psycopg

from rotator.core.ledger import Reservation
from rotator.core.model import KEPT_REQUESTS, Change, Lease, TargetKey, TargetRecords, TriggerRequest
from rotator.core.ports import Journal
from rotator.journal.memory import MemoryJournal
from rotator.journal.postgres import Limits, PostgresJournal
from rotator.journal.sqlite import SQLiteJournal
from tests.postgres import fresh_schema


Opener = Callable[[], Journal]
Clock = Callable[[], datetime]


class StoreFactory(Protocol):
    """Makes one empty store, its call ledger on ``clock``, and yields its opener."""

    def __call__(self, clock: Clock | None = None) -> AbstractContextManager[Opener]:
        """The store's context."""


#: The lease clock of the PostgreSQL store under test: a one-row table the tests set (see ClockedJournal).
TEST_CLOCK = "(SELECT at FROM test_clock)"


def _wall() -> datetime:
    return datetime.now(UTC)


@contextmanager
def memory_store(clock: Clock | None = None) -> Iterator[Opener]:
    """The reference store: every handle is the one :class:`MemoryJournal`."""
    store = MemoryJournal(clock=clock or _wall)
    yield lambda: store
    store.close()


@contextmanager
def _handles(open_handle: Callable[[], SQLiteJournal | PostgresJournal]) -> Iterator[Opener]:
    """An opener making a new handle on one store per call; every handle closed at the end."""
    handles: list[SQLiteJournal | PostgresJournal] = []

    def opener() -> Journal:
        handles.append(open_handle())
        return handles[-1]

    try:
        yield opener
    finally:
        for handle in handles:
            handle.close()


@contextmanager
def sqlite_store(clock: Clock | None = None) -> Iterator[Opener]:
    """An SQLite journal in a fresh folder; each handle is its own connection to the file."""
    with (
        tempfile.TemporaryDirectory() as folder,
        _handles(lambda: SQLiteJournal(Path(folder) / "state.db", clock=clock or _wall)) as opener,
    ):
        yield opener


class ClockedJournal(PostgresJournal):
    """The PostgreSQL journal with its lease clock on a test table, set from the ``now`` each call passes.

    Production leases run on the database's ``clock_timestamp()`` and ignore ``now``; here the same
    SQL reads ``test_clock`` instead, which :meth:`acquire` and :meth:`renew` first set to their
    ``now``, so the contract's time-driven cases run unchanged; so do the requests' claim calls. The
    call ledger's :meth:`reserve` (which :meth:`take` calls) and :meth:`claim`, which are passed
    no ``now``, first set it from ``ledger_clock``.
    """

    def __init__(self, url: str, ledger_clock: Clock | None = None) -> None:
        """A handle on the journal at ``url`` (whose ``test_clock`` table exists), and a clock setter."""
        super().__init__(url, clock=TEST_CLOCK, limits=Limits(pool_size=2))
        self._clock_conn = psycopg.connect(url, autocommit=True)
        self._ledger_clock = ledger_clock or _wall

    @property
    def clock_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """The autocommit connection setting the clock (tests read the ledger's rows with it too)."""
        return self._clock_conn

    def _set_clock(self, now: datetime) -> None:
        self._clock_conn.execute("UPDATE test_clock SET at = %s", (now,))

    def acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Acquire with the test clock at ``now``."""
        self._set_clock(now)
        return super().acquire(key, name, holder, now, ttl)

    def acquire_reading(
        self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta
    ) -> tuple[Lease, TargetRecords] | None:
        """Acquire and read with the test clock at ``now``."""
        self._set_clock(now)
        return super().acquire_reading(key, name, holder, now, ttl)

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        """Renew with the test clock at ``now``."""
        self._set_clock(now)
        return super().renew(lease, now, ttl)

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """Write and renew with the test clock at ``now``."""
        self._set_clock(now)
        return super().write_renewing(lease, change, now, ttl)

    def reserve(self, bucket: str, per_minute: int, calls: int) -> Reservation:
        """Reserve with the test clock at the ledger clock's time."""
        self._set_clock(self._ledger_clock())
        return super().reserve(bucket, per_minute, calls)

    def claim(self, job: str, every: timedelta) -> bool:
        """Claim with the test clock at the ledger clock's time."""
        self._set_clock(self._ledger_clock())
        return super().claim(job, every)

    def add_request(
        self, request: TriggerRequest, now: datetime, ttl: timedelta, keep: int = KEPT_REQUESTS
    ) -> TriggerRequest:
        """Add with the test clock at ``now``."""
        self._set_clock(now)
        return super().add_request(request, now, ttl, keep)

    def renew_claims(self, replica: str, now: datetime, ttl: timedelta) -> int:
        """Renew with the test clock at ``now``."""
        self._set_clock(now)
        return super().renew_claims(replica, now, ttl)

    def lapsed_requests(self, now: datetime, limit: int) -> list[TriggerRequest]:
        """Look with the test clock at ``now``."""
        self._set_clock(now)
        return super().lapsed_requests(now, limit)

    def claim_request(
        self, request_id: str, replica: str, now: datetime, ttl: timedelta
    ) -> TriggerRequest | None:
        """Claim with the test clock at ``now``."""
        self._set_clock(now)
        return super().claim_request(request_id, replica, now, ttl)

    def lease_clock(self, now: datetime) -> datetime:
        """The test clock, set to ``now`` first (as acquire and renew do)."""
        self._set_clock(now)
        return super().lease_clock(now)

    def close(self) -> None:
        """Close the pool and the clock's connection."""
        self._clock_conn.close()
        super().close()


def add_test_clock(url: str) -> None:
    """Create the one-row ``test_clock`` table :class:`ClockedJournal` reads."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE test_clock (at timestamptz NOT NULL)")
        conn.execute("INSERT INTO test_clock (at) VALUES ('epoch')")


@contextmanager
def postgres_store(clock: Clock | None = None) -> Iterator[Opener]:
    """A PostgreSQL journal in a freshly created schema (dropped after); each handle is its own pool."""
    with fresh_schema() as url:
        add_test_clock(url)
        with _handles(lambda: ClockedJournal(url, clock)) as opener:
            yield opener


#: Every store, by name (the pytest id).
STORES: dict[str, StoreFactory] = {"memory": memory_store, "sqlite": sqlite_store, "postgres": postgres_store}
