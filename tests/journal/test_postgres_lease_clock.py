"""PostgreSQL leases on the real database clock (the contract suite drives a test clock instead).

Two handles on one fresh schema stand for two replicas. The ``now`` each passes is ignored: a
lease lapses when the server's ``clock_timestamp()`` passes its end, and only then can another
handle take it; the first handle's writes and renewals under the old fence are then refused.
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest

from rotator.core.errors import LeaseLostError
from rotator.core.model import Change
from rotator.journal.postgres import PostgresJournal
from tests.journal.samples import KEY, NOW, rotation
from tests.postgres import fresh_schema


#: Far from any real clock, both ways: a lease decided by a caller's ``now`` would go wrong.
YEARS = timedelta(days=365 * 50)


@pytest.fixture
def replicas() -> Iterator[tuple[PostgresJournal, PostgresJournal]]:
    """Two handles (own pools) on one freshly created schema, on the database's own clock."""
    with fresh_schema() as url:
        first = PostgresJournal(url)
        second = PostgresJournal(url)
        try:
            yield first, second
        finally:
            second.close()
            first.close()


def test_a_live_lease_is_refused_to_another_replica_whatever_its_clock_says(
    replicas: tuple[PostgresJournal, PostgresJournal],
) -> None:
    """A 10-minute lease holds against a replica whose clock runs 50 years ahead."""
    first, second = replicas
    lease = first.acquire(KEY, "app-deploy", "replica-1", NOW - YEARS, timedelta(minutes=10))
    assert lease is not None
    assert second.acquire(KEY, "app-deploy", "replica-2", NOW + YEARS, timedelta(minutes=10)) is None
    first.write(lease, Change(rotation=rotation("mine")))


def test_a_short_lease_lapses_on_the_database_clock_and_the_old_fence_is_refused(
    replicas: tuple[PostgresJournal, PostgresJournal],
) -> None:
    """A lease whose TTL has passed on the server is taken by another; the first one's writes are refused."""
    first, second = replicas
    # A microsecond: lapsed by the server's clock at its next statement, with no wait in the test.
    old = first.acquire(KEY, "app-deploy", "replica-1", NOW + YEARS, timedelta(microseconds=1))
    assert old is not None
    # The taker's clock is 50 years behind the first's: the server's clock alone says it lapsed.
    new = second.acquire(KEY, "app-deploy", "replica-2", NOW - YEARS, timedelta(minutes=10))
    assert new is not None
    assert new.fence == old.fence + 1
    with pytest.raises(LeaseLostError):
        first.write(old, Change(rotation=rotation("stale")))
    with pytest.raises(LeaseLostError):
        first.renew(old, NOW + YEARS, timedelta(minutes=10))
    second.write(new, Change(rotation=rotation("fresh")))
    assert [r.id for r in first.rotations(KEY)] == ["fresh"]
