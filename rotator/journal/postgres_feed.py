"""The releases of every worker on a PostgreSQL journal, told by LISTEN/NOTIFY.

:meth:`rotator.journal.postgres.PostgresJournal.release` notifies :data:`CHANNEL` in the statement
that frees the lease (so only a release that took effect is told of, and only once committed),
with the key and the holder as a JSON pair. :class:`PostgresReleaseFeed` listens on a connection of
its own, outside the pool: a listening session must stay the same one, and must not be handed to
a journal call in between.

Best effort, as the port says: a session that drops (a restart, a failover, a pooler between
rotator and the server that does not carry notifications, as PgBouncer's transaction mode does
not) loses what was sent meanwhile, and the feed connects again on a later call, no sooner than
:data:`RETRY_S` after a failure. A daemon that is told nothing checks its targets as before.
"""

import json
import time

from collections.abc import Callable
from typing import Any

import psycopg

from psycopg.rows import TupleRow

from rotator.core.ports import Released


Conn = psycopg.Connection[TupleRow]

#: The channel every release is told on (one per database, as every rotator table is).
CHANNEL = "rotator_released"
#: After a first release arrives, how long to gather the ones right behind it into one answer.
GATHER_S = 0.1
#: At most this many releases in one answer.
MOST = 500
#: After a failed connect or a dropped session, how long before connecting again.
RETRY_S = 5.0


class PostgresReleaseFeed:
    """A :class:`rotator.core.ports.ReleaseFeed` on its own session; one thread calls :meth:`wait`."""

    def __init__(self, url: str, kwargs: dict[str, Any], configure: Callable[[Conn], None]) -> None:
        """Listen on the database at ``url`` (connected with ``kwargs``, then ``configure``), lazily."""
        self._url, self._kwargs, self._configure = url, kwargs, configure
        self._conn: Conn | None = None
        self._retry_at = 0.0
        self._closed = False

    def wait(self, timeout: float) -> list[Released]:
        """The releases told of since the last call, waiting up to ``timeout`` s for a first one."""
        conn = self._listening(timeout)
        if conn is None:
            return []
        try:
            told = list(conn.notifies(timeout=timeout, stop_after=1))
            if told:
                told += conn.notifies(timeout=GATHER_S, stop_after=MOST - 1)
        except psycopg.Error:
            self._drop()
            return []
        return [released for notify in told if (released := _released(notify.payload)) is not None]

    def close(self) -> None:
        """Stop listening: close the session."""
        self._closed = True
        self._drop()

    def _listening(self, timeout: float) -> Conn | None:
        """The listening session, connected now if need be; ``None`` (after waiting) while it cannot be."""
        if self._conn is not None or self._closed:
            return self._conn
        pause = self._retry_at - time.monotonic()
        if pause > 0:
            time.sleep(min(timeout, pause))
            return None
        try:
            conn = psycopg.connect(self._url, **self._kwargs)
        except psycopg.Error:
            self._retry_at = time.monotonic() + RETRY_S
            return None
        try:
            self._configure(conn)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            conn.close()
            self._retry_at = time.monotonic() + RETRY_S
            return None
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._retry_at = time.monotonic() + RETRY_S
        if conn is not None:
            conn.close()


def payload(key: str, holder: str) -> str:
    """What a release notifies: the key and the holder, as a JSON pair."""
    return json.dumps([key, holder])


def _released(text: str) -> Released | None:
    """A notification's release; ``None`` for a payload that is not one (another writer on the channel)."""
    try:
        key, holder = json.loads(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, str) or not isinstance(holder, str):
        return None
    return Released(key, holder)
