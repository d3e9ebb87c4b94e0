"""The PostgreSQL journal's connection pool, against the machine's real server."""

import time

import psycopg

from rotator.journal.postgres import PostgresJournal
from tests.postgres import fresh_database


def test_a_connection_the_server_dropped_is_replaced_not_failed() -> None:
    """After the server ends every session of the journal (a restart, a failover), the next call works."""
    with fresh_database() as url:
        journal = PostgresJournal(url)
        try:
            assert journal.targets() == []
            database = url.rsplit("/", 1)[1]
            with psycopg.connect(url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                ).fetchone()
                assert ended is not None
                assert ended[0] >= 1  # the pool's idle connection was there to end
                # Ended means gone, as after a restart: wait (briefly) until the server says so.
                for _ in range(100):
                    left = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (database,),
                    ).fetchone()
                    if left == (0,):
                        break
                    time.sleep(0.01)
            assert journal.targets() == []
        finally:
            journal.close()
