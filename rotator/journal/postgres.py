"""The shared journal: PostgreSQL over psycopg 3 and a connection pool, fenced writes, the database's clock.

Same contract as :mod:`rotator.journal.sqlite` (the contract suite runs both): every write is one
transaction that first locks the key's lease row (``FOR UPDATE``) and checks the caller's lease is
still the current one (holder and fence), so a worker that lost its lease records nothing more.
A rotation's lease calls and fenced writes are each one statement, check included
(:mod:`rotator.journal.postgres_writes`): one round trip each, not a BEGIN, a check, the writes
and a COMMIT. Records are ``jsonb`` documents beside a few key columns
(:mod:`rotator.journal.codec`).

**Leases run on the database's clock**, and so do trigger requests' claims. Several replicas
share this journal, and their clocks may disagree; a lease decided by each caller's ``now`` would
let a replica whose clock runs ahead take a lease another still holds. So
:meth:`PostgresJournal.acquire` and :meth:`PostgresJournal.renew` ignore the ``now`` they are
passed: whether a lease has lapsed, and until when a new one lasts, are computed in SQL from
``clock`` (an SQL expression, ``clock_timestamp()`` unless told otherwise), and the
:class:`Lease` handed back carries the database's expiry. The only other ``clock`` is the journal
contract suite's: a one-row table its tests set from the ``now`` they pass, so the suite can drive
time on PostgreSQL exactly as on the other stores, through the same
SQL. Times *inside* records (``planned_at`` and the like) are the engine's facts and stay as given.

The call ledger (:class:`rotator.core.ports.CallLedger`) runs on the same ``clock``, so the
replicas' ceilings are counted on one clock whatever theirs say. A take (a reservation of one
or more calls) or a claim is one transaction that row-locks the bucket's (or job's) row, made on
its first use, so callers of one bucket queue there while other buckets go on; then the clock,
read once the lock is held (so the seconds recorded in a row only grow); then
:mod:`rotator.core.ledger` decides. A take is one query message (:data:`_RESERVE`).

Every statement has a time limit: ``connect_timeout`` when connecting, and ``statement_timeout``
and ``lock_timeout`` set on each pooled connection, so a stuck database makes a call fail (as
:class:`JournalUnavailableError`) instead of hanging a worker. The password never comes from the
URL (the config refuses one there); it is passed beside it and watched by the log scrubber.
"""

import dataclasses
import re
import select

from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any, Self
from urllib.parse import urlsplit

import psycopg
import psycopg_pool

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.errors import ReadOnlySqlTransaction
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from rotator.core import ledger
from rotator.core.errors import (
    ConfigError,
    JournalReadOnlyError,
    JournalUnavailableError,
    LeaseLostError,
    SignInRefusedError,
)
from rotator.core.model import (
    KEPT_REQUESTS,
    OPEN_REQUESTS,
    Change,
    Lease,
    Outcome,
    RequestStatus,
    RotationRecord,
    TargetKey,
    TargetRecords,
    TargetState,
    TokenOwner,
    TokenRecord,
    Tombstone,
    TriggerRequest,
    UnresolvedProject,
    same_instance,
)
from rotator.core.redact import watch
from rotator.core.secret import Secret
from rotator.journal import postgres_writes as writes
from rotator.journal.codec import as_stored, from_json, to_json
from rotator.journal.postgres_schema import found_version, migrate, refuse_newer
from rotator.journal.snapshot import FenceRow, KeyedRow, ProjectRow, Snapshot, TargetRow, accept, nonempty


Conn = psycopg.Connection[TupleRow]
#: The production clock: the database server's, read afresh at each statement.
DATABASE_CLOCK = "clock_timestamp()"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Every wait on the database has an end (seconds)."""

    connect: float = 10
    statement: float = 30
    lock: float = 10
    pool_size: int = 8


def server(url: str) -> str:
    """``host:port`` of a postgresql:// URL, for messages (never the user or password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{host}:{port}"


def _reason(error: psycopg.Error, password: Secret | None) -> str:
    """The error's text on one line, the password (should libpq ever quote it) redacted."""
    reason = " ".join(str(error).split()) or type(error).__name__
    if password is not None and password.reveal():
        reason = reason.replace(password.reveal(), "[REDACTED]")
    return reason


def unavailable(url: str, error: psycopg.Error, password: Secret | None) -> JournalUnavailableError:
    """The one-line error for a database that cannot be reached or did not answer in time."""
    return JournalUnavailableError(
        "state.url", f"the journal's database at {server(url)}: {_reason(error, password)}"
    )


#: How libpq words a refusal to sign in. A connection's error carries no SQLSTATE (libpq keeps
#: only the text), so the server's words for class 28 are matched, in PostgreSQL's English:
#: 28P01 (the password), and 28000 (the account: pg_hba.conf, the role, another method's check).
_PASSWORD_REFUSED = re.compile(r"password authentication failed for user|no password supplied")
_ACCOUNT_REFUSED = re.compile(
    r"no pg_hba\.conf entry|pg_hba\.conf rejects connection|role \".*\" does not exist"
    r"|is not permitted to log in|\w+ authentication failed for user"
)
_SIGN_IN_STATES = {"28P01": True, "28000": False}


def refused(url: str, error: psycopg.Error, password: Secret | None) -> SignInRefusedError | None:
    """A :class:`SignInRefusedError` if ``error`` is the server refusing to sign in, else ``None``.

    The SQLSTATE decides where psycopg has one; on connecting it has none, and the text does.
    """
    text = str(error)
    state = getattr(error, "sqlstate", None)
    if state in _SIGN_IN_STATES:
        wants_password = _SIGN_IN_STATES[state]
    elif _PASSWORD_REFUSED.search(text):
        wants_password = True
    elif _ACCOUNT_REFUSED.search(text):
        wants_password = False
    else:
        return None
    problem = f"the journal's database at {server(url)} refused to sign in: {_reason(error, password)}"
    return SignInRefusedError("state.url", problem, password=wants_password)


def refuses_writes(url: str, error: psycopg.Error) -> JournalReadOnlyError:
    """The one-line error for a database that refused a write because it is read-only."""
    reason = " ".join(str(error).split()) or type(error).__name__
    return JournalReadOnlyError(
        "state.url",
        f"the journal's database at {server(url)} refuses writes ({reason}): it is a standby or"
        " default_transaction_read_only is on; point state.url at the primary",
    )


class PostgresJournal:
    """The :class:`rotator.core.ports.Journal` on PostgreSQL; safe to share between threads (the pool)."""

    def __init__(
        self,
        url: str,
        *,
        password: Secret | None = None,
        read_only: bool = False,
        clock: str = DATABASE_CLOCK,
        limits: Limits = Limits(),
    ) -> None:
        """Connect, create or migrate the schema (unless ``read_only``), and start the pool.

        An unreachable server is a :class:`JournalUnavailableError` naming ``host:port`` (a
        :class:`JournalReadOnlyError` if the schema must be created or migrated on a read-only
        one; a current schema opens, and the first write fails so instead); a schema
        newer than this rotator knows, or a database holding something else, a :class:`ConfigError`.
        ``read_only`` (``status``, ``history``) changes nothing: every connection is read-only.
        """
        self._url, self._password, self._clock = url, password, clock
        self._stack = ExitStack()
        if password is not None:
            self._stack.enter_context(watch(password))  # the scrubber removes it from any log line
        kwargs = _connect_kwargs(url, password, limits)

        def configure(conn: Conn) -> None:
            _configure(conn, limits, read_only=read_only)

        try:
            with psycopg.connect(url, **kwargs) as conn:
                configure(conn)
                if read_only:
                    refuse_newer(found_version(conn))
                else:
                    migrate(conn)
            self._pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
                url,
                kwargs=kwargs,
                min_size=1,
                max_size=limits.pool_size,
                configure=configure,
                # A connection the server dropped (a restart, a failover, pg_terminate_backend) is
                # found on checkout and replaced, instead of failing the next journal call.
                check=_check_idle,
                timeout=limits.connect + limits.statement,
                open=True,
            )
        except ReadOnlySqlTransaction as error:  # a schema to create or migrate on a standby
            self._stack.close()
            raise refuses_writes(url, error) from None
        except psycopg.OperationalError as error:
            self._stack.close()
            raise refused(url, error, password) or unavailable(url, error, password) from None
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        """Close the pool and stop watching the password."""
        self._pool.close()
        self._stack.close()

    def __enter__(self) -> Self:
        """The journal itself."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close it."""
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        """A pooled connection; a lost or too slow database becomes a :class:`JournalUnavailableError`.

        A write the database refuses as read-only becomes a :class:`JournalReadOnlyError`, which
        the engine reports as one line naming the database (the first write of a run is its
        lease, so nothing was sent upstream).
        """
        try:
            with self._pool.connection() as conn:
                yield conn
        except ReadOnlySqlTransaction as error:
            raise refuses_writes(self._url, error) from None
        except psycopg.OperationalError as error:
            raise unavailable(self._url, error, self._password) from None

    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """The first column of every row ``sql`` selects."""
        with self._connection() as conn:
            return [row[0] for row in conn.execute(sql.encode(), args).fetchall()]

    # Leases ---------------------------------------------------------------------------------

    def acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Take the lease if free, lapsed by the database's clock, or ``holder``'s; the fence always rises.

        One statement (:func:`rotator.journal.postgres_writes.acquire`); ``now`` is not used: see
        the module docstring.
        """
        del now
        with self._connection() as conn:
            taken = conn.execute(*writes.acquire(self._clock, key, name, holder, ttl)).fetchone()
        return Lease(key, holder, int(taken[0]), taken[1]) if taken is not None else None

    def acquire_reading(
        self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta
    ) -> tuple[Lease, TargetRecords] | None:
        """:meth:`acquire` and :meth:`records` as two statements in one pipeline: one round trip.

        Two statements, not one: a statement reads one snapshot, taken when it starts, so a read
        inside the acquisition's statement would not see a write that committed while the
        acquisition waited for the lease row's lock (the last write of a holder whose lease had
        just lapsed). The read is the second statement, so its snapshot is taken once the
        acquisition has the row. Both run in the pipeline's one implicit transaction: a read that
        fails undoes the acquisition too, and the caller holds no lease.
        """
        del now
        with self._connection() as conn:
            with conn.pipeline():
                acquiring = conn.execute(*writes.acquire(self._clock, key, name, holder, ttl))
                reading = conn.execute(_RECORDS, {"key": str(key)})
            taken, row = acquiring.fetchone(), reading.fetchone()
        if taken is None:
            return None
        assert row is not None  # noqa: S101 - a SELECT of scalar subqueries has one row
        return Lease(key, holder, int(taken[0]), taken[1]), _records(row)

    @staticmethod
    def _check(conn: Conn, lease: Lease) -> None:
        """Lock the key's lease row; LeaseLostError unless ``lease`` is still its current one."""
        row = conn.execute(
            "SELECT holder, fence FROM leases WHERE key = %s FOR UPDATE", (str(lease.key),)
        ).fetchone()
        if row is None or (row[0], row[1]) != (lease.holder, lease.fence):
            raise _lost(lease)

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        """Extend the lease to the database's clock plus ``ttl``; LeaseLostError if no longer current.

        One conditional UPDATE: it locks the row and checks holder and fence on its newest version.
        """
        del now
        with self._connection() as conn:
            row = conn.execute(*writes.renew(self._clock, lease, ttl)).fetchone()
        if row is None:
            raise _lost(lease)
        return dataclasses.replace(lease, expires=row[0])

    def release(self, lease: Lease) -> None:
        """Free the lease if it is still the current one (the fence stays): one conditional UPDATE."""
        with self._connection() as conn:
            conn.execute(
                "UPDATE leases SET holder = NULL, lease_until = NULL"
                " WHERE key = %s AND holder = %s AND fence = %s",
                (str(lease.key), lease.holder, lease.fence),
            )

    # Fenced writes ----------------------------------------------------------------------------

    def write(self, lease: Lease, change: Change) -> Change:
        """Record ``change`` after checking the lease, in one statement (:func:`~.postgres_writes.write`)."""
        with self._connection() as conn:
            row = conn.execute(*writes.write(lease, change)).fetchone()
        if row is None or row[0] != 1:
            raise _lost(lease)
        return as_stored(change)

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """:meth:`write` and :meth:`renew` as one statement, on the database's clock (``now`` unused)."""
        del now
        with self._connection() as conn:
            row = conn.execute(*writes.write(lease, change, (self._clock, ttl))).fetchone()
        if row is None or row[0] != 1:
            raise _lost(lease)
        return as_stored(change), dataclasses.replace(lease, expires=row[1])

    def forget(self, lease: Lease, note: str) -> None:
        """Drop the key's target, tokens and tombstones; keep its rotations (open ones failed) and fence."""
        with self._transaction() as conn:
            self._check(conn, lease)
            key = str(lease.key)
            rows = conn.execute(
                "SELECT data FROM rotations WHERE key = %s AND outcome = 'in_progress'", (key,)
            ).fetchall()
            for (data,) in rows:
                closed = dataclasses.replace(
                    from_json(RotationRecord, data), outcome=Outcome.FAILED, error=note
                )
                conn.execute(
                    "UPDATE rotations SET outcome = %s, data = %s WHERE id = %s",
                    (closed.outcome.value, _doc(closed), closed.id),
                )
            conn.execute("DELETE FROM tokens WHERE key = %s", (key,))
            conn.execute("DELETE FROM tombstones WHERE key = %s", (key,))
            conn.execute("DELETE FROM targets WHERE key = %s", (key,))
            conn.execute("UPDATE leases SET holder = NULL, lease_until = NULL WHERE key = %s", (key,))

    # The call ledger ----------------------------------------------------------------------------

    def _now(self, conn: Conn) -> float:
        """The clock, in epoch seconds (read after the row lock: see the module docstring)."""
        row = conn.execute(f"SELECT extract(epoch FROM {self._clock})::float8".encode()).fetchone()  # noqa: S608 - the clock is this store's own SQL
        assert row is not None  # noqa: S101 - a SELECT without FROM has one row
        return float(row[0])

    @contextmanager
    def _ledger_row(self, table: str, key: str, columns: str, name: str) -> Iterator[tuple[Conn, Any]]:
        """A transaction locking ``table``'s row ``key = name`` (made if need be); yields its ``columns``."""
        select = f"SELECT {columns} FROM {table} WHERE {key} = %s FOR UPDATE".encode()  # noqa: S608 - fixed names
        with self._transaction() as conn:
            # Not waited for on disk: losing the last calls counted to a crash costs nothing, and
            # the commit's flush would cost more than the rest of the transaction.
            conn.execute("SET LOCAL synchronous_commit = off")
            row = conn.execute(select, (name,)).fetchone()
            if row is None:
                # The row's first use: racing makers meet on the primary key, then on the lock.
                insert = f"INSERT INTO {table} ({key}) VALUES (%s) ON CONFLICT ({key}) DO NOTHING"  # noqa: S608 - fixed names
                conn.execute(insert.encode(), (name,))
                row = conn.execute(select, (name,)).fetchone()
            assert row is not None  # noqa: S101 - made above, and ledger rows are never deleted
            yield conn, row

    def take(self, bucket: str, per_minute: int) -> float:
        """Count one call in ``bucket`` if it fits (0.0), else the seconds to wait."""
        return self.reserve(bucket, per_minute, 1).wait

    def reserve(self, bucket: str, per_minute: int, calls: int) -> ledger.Reservation:
        """Count up to ``calls`` calls in ``bucket``, as many as fit.

        One round trip (:data:`_RESERVE`): every upstream call of the fleet takes part of one, so
        it is a single query message, run by the server as one transaction. A bucket's first use
        makes its row the general way (:meth:`_reserve_first`).
        """
        if per_minute < 1:
            ledger.admit((), 0.0, per_minute)  # raises the ValueError naming the bad ceiling
        query = _RESERVE.format(
            bucket=sql.Literal(bucket),
            per_minute=sql.Literal(per_minute),
            calls=sql.Literal(max(1, calls)),
            window=sql.Literal(ledger.WINDOW),
            clock=sql.SQL(self._clock),  # this store's own SQL, never input
        )
        with self._connection() as conn:
            cursor = conn.execute(query)
            row = cursor.fetchone() if cursor.nextset() else None
        if row is None:
            return self._reserve_first(bucket, per_minute, calls)
        granted, wait, left = row
        return ledger.Reservation(int(granted), float(wait), float(left) if granted else 0.0)

    def _reserve_first(self, bucket: str, per_minute: int, calls: int) -> ledger.Reservation:
        """:meth:`reserve` when the bucket has no row yet: make it, lock it, then decide in Python."""
        with self._ledger_row("call_windows", "bucket", "seconds, counts", bucket) as (conn, row):
            counts, taken = ledger.reserve(list(zip(*row, strict=True)), self._now(conn), per_minute, calls)
            if taken.granted:
                conn.execute(
                    "UPDATE call_windows SET seconds = %s, counts = %s WHERE bucket = %s",
                    ([s for s, _ in counts], [n for _, n in counts], bucket),
                )
            return taken

    def claim(self, job: str, every: timedelta) -> bool:
        """Claim ``job``'s turn if no replica claimed it within ``every``."""
        with self._ledger_row("job_claims", "job", "claimed_at", job) as (conn, row):
            now = self._now(conn)
            if not ledger.claims(row[0], now, every.total_seconds()):
                return False
            conn.execute("UPDATE job_claims SET claimed_at = %s WHERE job = %s", (now, job))
            return True

    # Reads ------------------------------------------------------------------------------------

    def target(self, key: TargetKey) -> TargetState | None:
        """The target's bookkeeping, or None."""
        rows = self._rows("SELECT data FROM targets WHERE key = %s", (str(key),))
        return from_json(TargetState, rows[0]) if rows else None

    def targets(self) -> list[TargetState]:
        """Every target the journal knows, by key."""
        return [from_json(TargetState, row) for row in self._rows("SELECT data FROM targets ORDER BY key")]

    def tokens(self, key: TargetKey) -> list[TokenRecord]:
        """The target's tracked tokens, oldest (lowest id) first."""
        rows = self._rows("SELECT data FROM tokens WHERE key = %s ORDER BY token_id", (str(key),))
        return [from_json(TokenRecord, row) for row in rows]

    def owners(self, gitlab_url: str, token_id: int) -> list[TokenOwner]:
        """Every target on ``gitlab_url`` that tracks ``token_id``, by key."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT tokens.data, targets.data FROM tokens LEFT JOIN targets ON targets.key = tokens.key"
                " WHERE tokens.token_id = %s ORDER BY tokens.key",
                (token_id,),
            ).fetchall()
        owners = []
        for token_data, target_data in rows:
            token = from_json(TokenRecord, token_data)
            if same_instance(token.key.gitlab_url, gitlab_url):
                name = target_data["name"] if target_data else str(token.key)
                owners.append(TokenOwner(token.key, name, token.role))
        return owners

    def rotations(self, key: TargetKey | None = None, limit: int = 20) -> list[RotationRecord]:
        """Rotations newest first, of one target or all."""
        if key is None:
            rows = self._rows(
                "SELECT data FROM rotations ORDER BY planned_at DESC, seq DESC LIMIT %s", (limit,)
            )
        else:
            rows = self._rows(
                "SELECT data FROM rotations WHERE key = %s ORDER BY planned_at DESC, seq DESC LIMIT %s",
                (str(key), limit),
            )
        return [from_json(RotationRecord, row) for row in rows]

    def rotations_of(self, recorded: Collection[tuple[TargetKey, str]], limit: int) -> list[RotationRecord]:
        """Rotations recorded under any of the (key, name) pairs, newest first (filtered before LIMIT)."""
        keys, names = [str(key) for key, _ in recorded], [name for _, name in recorded]
        rows = self._rows(
            "SELECT r.data FROM rotations AS r JOIN unnest(%s::text[], %s::text[]) AS wanted (key, name)"
            " ON r.key = wanted.key AND r.data->>'target' = wanted.name"
            " ORDER BY r.planned_at DESC, r.seq DESC LIMIT %s",
            (keys, names, limit),
        )
        return [from_json(RotationRecord, row) for row in rows]

    def recorded_names(self) -> list[tuple[TargetKey, str]]:
        """Every (key, target name) pair a rotation was recorded under, once each."""
        with self._connection() as conn:
            rows = conn.execute("SELECT DISTINCT data->'key', data->>'target' FROM rotations").fetchall()
        return [(TargetKey(**key), name) for key, name in rows]

    def unfinished(self, key: TargetKey) -> RotationRecord | None:
        """The newest rotation of ``key`` still in progress, if any."""
        rows = self._rows(
            "SELECT data FROM rotations WHERE key = %s AND outcome = 'in_progress'"
            " ORDER BY planned_at DESC, seq DESC LIMIT 1",
            (str(key),),
        )
        return from_json(RotationRecord, rows[0]) if rows else None

    def last_rotation(self, key: TargetKey, triggers: Collection[str]) -> RotationRecord | None:
        """The newest rotation of ``key`` started by one of ``triggers``."""
        rows = self._rows(
            "SELECT data FROM rotations WHERE key = %s AND data->>'trigger' = ANY(%s)"
            " ORDER BY planned_at DESC, seq DESC LIMIT 1",
            (str(key), sorted(triggers)),
        )
        return from_json(RotationRecord, rows[0]) if rows else None

    def tombstones(self, key: TargetKey) -> list[Tombstone]:
        """Names still to re-check, by name."""
        rows = self._rows("SELECT data FROM tombstones WHERE key = %s ORDER BY name", (str(key),))
        return [from_json(Tombstone, row) for row in rows]

    def records(self, key: TargetKey) -> TargetRecords:
        """The target's four reads as one statement (one round trip, one snapshot), each in its order."""
        with self._connection() as conn:
            row = conn.execute(_RECORDS, {"key": str(key)}).fetchone()
        assert row is not None  # noqa: S101 - a SELECT of scalar subqueries has one row
        return _records(row)

    # Project paths (not fenced: a target whose path does not resolve has no key, so no lease) ------

    def project_id(self, gitlab_url: str, project: str) -> int | None:
        """A project path resolved before."""
        rows = self._rows(
            "SELECT project_id FROM projects WHERE gitlab_url = %s AND ref = %s", (gitlab_url, project)
        )
        return int(rows[0]) if rows else None

    def project_ids(self, gitlab_url: str) -> dict[str, int]:
        """Every path of that GitLab resolved before."""
        with self._connection() as conn:
            rows = conn.execute(
                b"SELECT ref, project_id FROM projects WHERE gitlab_url = %s", (gitlab_url,)
            ).fetchall()
        return {str(ref): int(pid) for ref, pid in rows}

    def remember_project(self, gitlab_url: str, project: str, project_id: int) -> None:
        """Record a resolved project path, and drop the failure to resolve it, if one was recorded."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO projects (gitlab_url, ref, project_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (gitlab_url, ref) DO UPDATE SET project_id = excluded.project_id",
                (gitlab_url, project, project_id),
            )
            conn.execute("DELETE FROM unresolved WHERE gitlab_url = %s AND ref = %s", (gitlab_url, project))

    def unresolved(self, gitlab_url: str, project: str) -> UnresolvedProject | None:
        """The failure to resolve a project path, recorded since it last resolved; else ``None``."""
        rows = self._rows(
            "SELECT data FROM unresolved WHERE gitlab_url = %s AND ref = %s", (gitlab_url, project)
        )
        return from_json(UnresolvedProject, rows[0]) if rows else None

    def record_unresolved(self, record: UnresolvedProject) -> None:
        """Record (replace) the failure to resolve ``record.project``; unfenced: no key, no lease."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO unresolved (gitlab_url, ref, data) VALUES (%s, %s, %s)"
                " ON CONFLICT (gitlab_url, ref) DO UPDATE SET data = excluded.data",
                (record.gitlab_url, record.project, _doc(record)),
            )

    # Trigger requests (claimed on the database's clock, not fenced: rotator.core.ports.Requests) ----

    def add_request(
        self, request: TriggerRequest, now: datetime, ttl: timedelta, keep: int = KEPT_REQUESTS
    ) -> TriggerRequest:
        """Record a new request (claimed until the database's clock plus ``ttl`` if open); prune too."""
        del now
        opened = request.status in OPEN_REQUESTS
        stored = dataclasses.replace(
            request, replica=request.replica if opened else None, claim=1 if opened else 0, claim_until=None
        )
        with self._transaction() as conn:
            conn.execute(
                # The clock is this store's own SQL (see __init__), never input: safe to splice.
                "INSERT INTO requests (id, requested_at, status, replica, claim, claim_until, data)"  # noqa: S608
                f" VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN {self._clock} + %s END, %s)"
                " ON CONFLICT (id) DO NOTHING".encode(),
                (
                    stored.id,
                    stored.requested_at,
                    stored.status.value,
                    stored.replica,
                    stored.claim,
                    opened,
                    ttl,
                    _doc(stored),
                ),
            )
            conn.execute(
                "DELETE FROM requests WHERE status NOT IN ('queued', 'running') AND seq NOT IN"
                " (SELECT seq FROM requests WHERE status NOT IN ('queued', 'running')"
                " ORDER BY requested_at DESC, seq DESC LIMIT %s)",
                (keep,),
            )
            row = conn.execute(f"{_REQUEST} WHERE id = %s".encode(), (request.id,)).fetchone()
        # None only for an ended request older than the newest ``keep``: recorded, and pruned at once.
        return _request(*row) if row else stored

    def request(self, request_id: str) -> TriggerRequest | None:
        """A request by id, or None."""
        with self._connection() as conn:
            row = conn.execute(f"{_REQUEST} WHERE id = %s".encode(), (request_id,)).fetchone()
        return _request(*row) if row else None

    def update_request(self, request: TriggerRequest) -> bool:
        """Record progress under the current claim of an open request; False (nothing changed) otherwise."""
        with self._connection() as conn:
            done = conn.execute(
                # The stored claim_until is kept: the document's copy is overwritten on every read.
                "UPDATE requests SET status = %s, data = %s WHERE id = %s AND replica = %s AND claim = %s"
                " AND status IN ('queued', 'running')",
                (request.status.value, _doc(request), request.id, request.replica, request.claim),
            )
            return done.rowcount == 1

    def renew_claims(self, replica: str, now: datetime, ttl: timedelta) -> int:
        """Extend ``replica``'s open claims to the database's clock plus ``ttl``."""
        del now
        with self._connection() as conn:
            return conn.execute(
                f"UPDATE requests SET claim_until = {self._clock} + %s"  # noqa: S608 - the store's clock
                " WHERE replica = %s AND status IN ('queued', 'running')".encode(),
                (ttl, replica),
            ).rowcount

    def lapsed_requests(self, now: datetime, limit: int) -> list[TriggerRequest]:
        """Open requests whose claim has lapsed by the database's clock, oldest first."""
        del now
        with self._connection() as conn:
            rows = conn.execute(
                f"{_REQUEST} WHERE status IN ('queued', 'running')"
                f" AND (claim_until IS NULL OR claim_until <= {self._clock})"
                " ORDER BY requested_at, seq LIMIT %s".encode(),
                (limit,),
            ).fetchall()
        return [_request(*row) for row in rows]

    def claim_request(
        self, request_id: str, replica: str, now: datetime, ttl: timedelta
    ) -> TriggerRequest | None:
        """Claim an open request whose claim has lapsed by the database's clock: one conditional UPDATE."""
        del now
        with self._connection() as conn:
            # Racers serialise on the row lock; the loser re-checks the WHERE on the new row and misses.
            row = conn.execute(
                f"UPDATE requests SET replica = %s, claim = claim + 1, claim_until = {self._clock} + %s"  # noqa: S608
                " WHERE id = %s AND status IN ('queued', 'running')"
                f" AND (claim_until IS NULL OR claim_until <= {self._clock})"
                " RETURNING data, status, replica, claim, claim_until".encode(),
                (replica, ttl, request_id),
            ).fetchone()
        return _request(*row) if row else None

    def request_rotations(self, request_id: str) -> list[RotationRecord]:
        """The rotations the request planned, oldest first (by the index on the document's request)."""
        rows = self._rows(
            "SELECT data FROM rotations WHERE data->>'request' = %s ORDER BY planned_at, seq", (request_id,)
        )
        return [from_json(RotationRecord, row) for row in rows]

    # The whole journal, for `rotator state copy` (rotator.journal.snapshot) ------------------------

    def snapshot(self) -> Snapshot:
        """Every table in one repeatable-read transaction; rotations in the order first recorded (seq)."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return _read(conn)

    def writable(self) -> bool:
        """False on a standby (in recovery) or while ``default_transaction_read_only`` is on; one statement.

        Each autocommit statement is its own transaction, so ``transaction_read_only`` is what the
        next write would meet: the server's default, or on during recovery.
        """
        with self._connection() as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool"
            ).fetchone()
        return row is not None and not row[0]

    def lease_clock(self, now: datetime) -> datetime:
        """The database's clock, which every lease here runs on; ``now`` is not used (module docstring)."""
        del now
        at: datetime = self._rows(f"SELECT {self._clock}")[0]  # the clock: this store's own SQL
        return at

    def restore(self, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:
        """Write ``snapshot`` into this empty journal in one transaction; NotEmptyError if it holds rows.

        ``check`` sees the journal as read inside the transaction before it commits; if it
        raises, nothing is.
        """
        with self._transaction() as conn:
            tables = (
                "leases",
                "targets",
                "rotations",
                "tokens",
                "tombstones",
                "projects",
                "unresolved",
                "requests",
            )
            conn.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE".encode())
            found = {
                table: bool(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})".encode()).fetchone()[0])  # type: ignore[index]  # noqa: S608 - fixed names
                for table in tables
            }
            nonempty(found)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO leases (key, holder, fence, lease_until) VALUES (%s, %s, %s, %s)",
                    [(t.key, t.holder, t.fence, t.until) for t in snapshot.targets]
                    + [(f.key, None, f.fence, None) for f in snapshot.fences],
                )
                cur.executemany(
                    "INSERT INTO targets (key, data) VALUES (%s, %s)",
                    [(t.key, Jsonb(t.state)) for t in snapshot.targets],
                )
                # One by one, in order: each takes the next seq, the tie-break of "newest first".
                for r in snapshot.rotations:
                    cur.execute(
                        "INSERT INTO rotations (id, key, planned_at, outcome, data)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        (
                            r.data["id"],
                            r.key,
                            datetime.fromisoformat(r.data["planned_at"]),
                            r.data["outcome"],
                            Jsonb(r.data),
                        ),
                    )
                cur.executemany(
                    "INSERT INTO tokens (key, token_id, data) VALUES (%s, %s, %s)",
                    [(r.key, r.data["token_id"], Jsonb(r.data)) for r in snapshot.tokens],
                )
                cur.executemany(
                    "INSERT INTO tombstones (key, name, data) VALUES (%s, %s, %s)",
                    [(r.key, r.data["name"], Jsonb(r.data)) for r in snapshot.tombstones],
                )
                cur.executemany(
                    "INSERT INTO projects (gitlab_url, ref, project_id) VALUES (%s, %s, %s)",
                    [(p.gitlab_url, p.project, p.project_id) for p in snapshot.projects],
                )
                cur.executemany(
                    "INSERT INTO unresolved (gitlab_url, ref, data) VALUES (%s, %s, %s)",
                    [(u["gitlab_url"], u["project"], Jsonb(u)) for u in snapshot.unresolved],
                )
                # In the snapshot's order: each takes the next seq, the tie-break among equal times.
                cur.executemany(
                    "INSERT INTO requests (id, requested_at, status, replica, claim, claim_until, data)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (r.id, r.requested_at, r.status.value, r.replica, r.claim, r.claim_until, _doc(r))
                        for r in (from_json(TriggerRequest, data) for data in snapshot.requests)
                    ],
                )
            check(_read(conn))


def _read(conn: Conn) -> Snapshot:
    """Every table, in the caller's transaction; a lease row without a target is a forgotten key's fence."""
    leases = conn.execute(
        "SELECT l.key, l.holder, l.fence, l.lease_until, t.data"
        " FROM leases AS l LEFT JOIN targets AS t ON t.key = l.key ORDER BY l.key"
    ).fetchall()
    keyed = {
        table: tuple(KeyedRow(key, data) for key, data in conn.execute(sql))
        for table, sql in _KEYED_READS.items()
    }
    projects = conn.execute("SELECT gitlab_url, ref, project_id FROM projects ORDER BY 1, 2").fetchall()
    unresolved = conn.execute("SELECT data FROM unresolved ORDER BY gitlab_url, ref").fetchall()
    requests = conn.execute(f"{_REQUEST} ORDER BY requested_at, seq".encode()).fetchall()
    return Snapshot(
        targets=tuple(TargetRow(k, h, f, u, d) for k, h, f, u, d in leases if d is not None),
        fences=tuple(FenceRow(k, f) for k, _, f, _, d in leases if d is None),
        projects=tuple(ProjectRow(url, ref, int(pid)) for url, ref, pid in projects),
        unresolved=tuple(data for (data,) in unresolved),
        # The claim columns, which a renewal alone changes, put in each document.
        requests=tuple(to_json(_request(*row)) for row in requests),
        **keyed,
    )


def has_journal(url: str, *, password: Secret | None = None, limits: Limits = Limits()) -> bool:
    """Whether the database at ``url`` holds a journal (a schema_version table); nothing is created."""
    try:
        with psycopg.connect(url, **_connect_kwargs(url, password, limits)) as conn:
            _configure(conn, limits, read_only=True)  # a database that does not answer is not waited for
            return found_version(conn) is not None
    except psycopg.OperationalError as error:
        raise refused(url, error, password) or unavailable(url, error, password) from None


def _check_idle(conn: Conn) -> None:
    """Raise if a pooled connection is closed or the server has sent it something while idle.

    A server that ends a session (a restart, a failover, ``pg_terminate_backend``) sends its last
    message and closes the socket: the socket turns readable, and only then is the connection
    asked a round trip (``check_connection``), which fails and lets the pool replace it. A healthy
    idle connection has nothing to read, so a checkout costs no round trip: a rotation makes about
    sixty journal calls, and a round trip each was half of its journal statements.
    """
    if conn.closed:
        msg = "the connection is closed"
        raise psycopg.OperationalError(msg)
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        psycopg_pool.ConnectionPool.check_connection(conn)


def _configure(conn: Conn, limits: Limits, *, read_only: bool) -> None:
    """Autocommit, and the session's time limits, time zone and read-only flag: on every connection.

    A writing handle leaves ``default_transaction_read_only`` as the server sets it: a database
    made read-only on purpose (``ALTER DATABASE ... SET default_transaction_read_only = on`` to
    freeze writes before a move) must refuse rotator's writes too, not be overridden by them.
    """
    conn.autocommit = True
    settings = {
        "statement_timeout": f"{round(limits.statement * 1000)}ms",
        "lock_timeout": f"{round(limits.lock * 1000)}ms",
        "TimeZone": "UTC",
    }
    if read_only:
        settings["default_transaction_read_only"] = "on"
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def _connect_kwargs(url: str, password: Secret | None, limits: Limits) -> dict[str, Any]:
    """What is passed beside the URL: the password, and a connect timeout unless the URL sets its own."""
    kwargs: dict[str, Any] = {}
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:  # an unknown option, a bad %-escape: libpq's words
        raise ConfigError("state.url", f"libpq cannot read it: {' '.join(str(error).split())}") from None
    if "connect_timeout" not in given:  # a keyword would override the URL's
        kwargs["connect_timeout"] = max(1, round(limits.connect))
    if password is not None:
        kwargs["password"] = password.reveal()
    return kwargs


#: :meth:`PostgresJournal.reserve` in one query message (no parameters: the simple protocol runs
#: both statements as one transaction): :func:`rotator.core.ledger.reserve` in SQL. The row is
#: locked first (``locked``) and the clock read from it, so the clock is read once the lock is held
#: and a row's seconds only grow, as in the general path. ``kept`` is the seconds overlapping the
#: window (one ahead of the clock folded into its second); ``after`` each one's count of newer
#: calls, so ``leaving`` is the newest second that must leave for one more call to fit. The row is
#: rewritten trimmed (at most 61 pairs) and with the calls granted (as many as fit, up to
#: ``calls``) counted in the clock's second. Answers the calls granted, the wait (0 when some
#: were), and the seconds left in the clock's second. Not waited for on disk, like the general
#: path: losing the last calls counted to a crash costs nothing. No row (a bucket's first use)
#: returns nothing.
_RESERVE = sql.SQL(
    "SET LOCAL synchronous_commit = off;"
    " WITH locked AS (SELECT seconds, counts FROM call_windows WHERE bucket = {bucket} FOR UPDATE),"
    " clock AS (SELECT extract(epoch FROM {clock})::float8 AS now, seconds, counts FROM locked),"
    " kept AS (SELECT least(b.s, floor(clock.now)::int8) AS s, sum(b.n)::int8 AS n"
    " FROM clock, unnest(clock.seconds, clock.counts) AS b(s, n)"
    " WHERE b.s + 1 > clock.now - {window} GROUP BY 1),"
    " after AS (SELECT s, coalesce(sum(n) OVER (ORDER BY s DESC ROWS BETWEEN UNBOUNDED PRECEDING"
    " AND 1 PRECEDING), 0) AS newer FROM kept),"
    " plan AS (SELECT clock.now, floor(clock.now)::int8 AS second,"
    " greatest(0, least({calls}, {per_minute} - coalesce((SELECT sum(n) FROM kept), 0)))::int4 AS granted,"
    " (SELECT min(s) FROM after WHERE newer < {per_minute}) AS leaving FROM clock),"
    " counted AS (SELECT s, sum(n)::int4 AS n FROM (SELECT s, n FROM kept"
    " UNION ALL SELECT second, granted FROM plan WHERE granted > 0) AS calls GROUP BY s)"
    " UPDATE call_windows SET seconds = coalesce((SELECT array_agg(s ORDER BY s) FROM counted), '{{}}'),"
    " counts = coalesce((SELECT array_agg(n ORDER BY s) FROM counted), '{{}}')"
    " FROM plan WHERE bucket = {bucket}"
    " RETURNING plan.granted, CASE WHEN plan.granted > 0 THEN 0.0::float8"
    " ELSE (plan.leaving + 1)::float8 + {window} - plan.now END, (plan.second + 1)::float8 - plan.now"
)


def _doc(record: object) -> Jsonb:
    return Jsonb(to_json(record))


def _lost(lease: Lease) -> LeaseLostError:
    return LeaseLostError(f"lease on {lease.key} lost (fence {lease.fence})")


#: :meth:`PostgresJournal.records`: the four reads of one key, each as its own method orders it.
_RECORDS = (
    b"SELECT (SELECT data FROM targets WHERE key = %(key)s),"
    b" (SELECT coalesce(jsonb_agg(data ORDER BY token_id), '[]') FROM tokens WHERE key = %(key)s),"
    b" (SELECT data FROM rotations WHERE key = %(key)s AND outcome = 'in_progress'"
    b" ORDER BY planned_at DESC, seq DESC LIMIT 1),"
    b" (SELECT coalesce(jsonb_agg(data ORDER BY name), '[]') FROM tombstones WHERE key = %(key)s)"
)


def _records(row: tuple[Any, ...]) -> TargetRecords:
    """The records a :data:`_RECORDS` row holds."""
    target, tokens, unfinished, stones = row
    return TargetRecords(
        from_json(TargetState, target) if target is not None else None,
        tuple(from_json(TokenRecord, t) for t in tokens),
        from_json(RotationRecord, unfinished) if unfinished is not None else None,
        tuple(from_json(Tombstone, s) for s in stones),
    )


#: A request row: its document and the claim columns, read by :func:`_request`.
_REQUEST = "SELECT data, status, replica, claim, claim_until FROM requests"


def _request(
    data: dict[str, Any], status: str, replica: str | None, claim: int, until: datetime | None
) -> TriggerRequest:
    """A request row: its document, with the claim columns (which a renewal alone changes) over it."""
    request = from_json(TriggerRequest, data)
    return dataclasses.replace(
        request, status=RequestStatus(status), replica=replica, claim=int(claim), claim_until=until
    )


#: The rows of the tables kept as (key column, document), each in its snapshot's order.
_KEYED_READS = {
    "rotations": "SELECT key, data FROM rotations ORDER BY seq",
    "tokens": "SELECT key, data FROM tokens ORDER BY key, token_id",
    "tombstones": "SELECT key, data FROM tombstones ORDER BY key, name",
}
