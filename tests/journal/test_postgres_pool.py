"""The PostgreSQL journal's connection pool, against the machine's real server."""

import psycopg

from rotator.journal.postgres import PostgresJournal
from tests.postgres import end_sessions, fresh_database


def test_a_connection_the_server_dropped_is_replaced_not_failed() -> None:
    """After the server ends every session of the journal (a restart, a failover), the next call works."""
    with fresh_database() as url:
        journal = PostgresJournal(url)
        try:
            assert journal.targets() == []
            database = url.rsplit("/", 1)[1]
            with psycopg.connect(url, autocommit=True) as admin:
                # Ended means gone, as after a restart: it waits (briefly) until the server says so.
                assert end_sessions(admin, database) >= 1  # the pool's idle connection was there to end
            assert journal.targets() == []
        finally:
            journal.close()
