"""The embedded journal: one SQLite file (mode 0600), WAL, ``synchronous=FULL``, fenced writes.

Durability is the point: the engine records each step *before* the side effect that follows, so
a write must be on disk when :meth:`SQLiteJournal.write` returns (``synchronous=FULL``). Every
write runs in one ``BEGIN IMMEDIATE`` transaction that first checks the caller's lease is still the
target's current one (holder and fencing number), so a worker that lost its lease to another
process cannot record anything more; a renewal and a release are one conditional ``UPDATE``
each, whose ``WHERE`` is that check. Records are stored as JSON documents beside a few key
columns (see :mod:`rotator.journal.codec`).

The call ledger (:class:`rotator.core.ports.CallLedger`) lives in the same file, so the processes of
one machine sharing it (a daemon and a CronJob's ``run-once``) count their calls together: each
take or claim is one ``BEGIN IMMEDIATE`` transaction on the machine's wall clock (``clock``),
decided by :mod:`rotator.core.ledger`. Those transactions are not synced to disk one by one
(``synchronous=NORMAL`` for them alone, still atomic under WAL): a power cut may forget the last
calls counted, which costs nothing, while every record keeps its ``synchronous=FULL`` write.
"""

import json
import os
import sqlite3
import threading

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rotator.core import ledger
from rotator.core.errors import ConfigError, JournalDamagedError, LeaseLostError
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
    claim_lapsed,
    same_instance,
)
from rotator.journal import sqlite_schema
from rotator.journal.codec import as_stored, from_json, to_json
from rotator.journal.file import create, refuse_unfit
from rotator.journal.snapshot import (
    TABLES,
    FenceRow,
    KeyedRow,
    ProjectRow,
    Snapshot,
    TargetRow,
    accept,
    nonempty,
)


#: Tables a journal written by an older version may lack: read as empty when opened read-only.
_LATER_TABLES = frozenset({"unresolved", "requests"})

#: The tables (and columns) every journal has had since the first version: what tells a rotator
#: journal from another application's SQLite file. Later versions may add tables, never drop these.
_SIGNATURE = {
    "targets": {"key", "holder", "fence", "lease_until", "data"},
    "rotations": {"id", "key", "planned_at", "outcome", "data"},
    "tokens": {"key", "token_id", "data"},
    "tombstones": {"key", "name", "data"},
    "projects": {"gitlab_url", "ref", "project_id"},
}

#: SQLite's primary result codes for a file it cannot make sense of: SQLITE_CORRUPT, SQLITE_NOTADB.
#: (Python raises both as a bare DatabaseError; a locked, full or unreadable file is an
#: OperationalError instead, which is not damage: the file may be fine once the lock or disk is.)
_DAMAGED = frozenset({11, 26})


def damaged(path: Path, error: sqlite3.DatabaseError) -> JournalDamagedError | None:
    """The state.url error for SQLite's "this file is damaged", or ``None`` for any other failure."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _DAMAGED:  # extended codes (SQLITE_CORRUPT_INDEX, ...) too
        return None
    problem = f"the journal at {path} is damaged (SQLite: {error}); restore it from a backup"
    return JournalDamagedError("state.url", problem)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sqlite_path(url: str, base_dir: Path) -> Path:
    """``sqlite:///rel`` is relative to the config's folder; ``sqlite:////abs`` is absolute."""
    rest = url.removeprefix("sqlite:///")
    if not rest:
        raise ConfigError("state.url", "names no file; use sqlite:///rotator-state.db")
    path = Path(rest)
    return path if path.is_absolute() else base_dir / path


class SQLiteJournal:
    """The :class:`rotator.core.ports.Journal` on one SQLite file; safe to share between threads."""

    def __init__(
        self, path: Path, *, read_only: bool = False, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        """Open (creating with mode 0600, in a folder made 0700, if needed) the journal at ``path``.

        ``clock`` is the call ledger's (leases are judged by the ``now`` each caller passes).

        ``read_only`` opens an existing file for reading only, creating and changing nothing
        (``status``, ``history``, ``plan``, ``check``); a write then fails. Read-only, an empty
        database and ``:memory:`` read as an empty journal. A path that is a symlink, not a
        regular file, or not a rotator journal is a :class:`ConfigError` on ``state.url``; a file
        SQLite finds damaged, here or at any later read, a :class:`JournalDamagedError`.
        """
        self._lock = threading.RLock()
        self._path = path
        self._clock = clock
        self._damage: JournalDamagedError | None = None
        memory = str(path) == ":memory:"
        if not memory:
            refuse_unfit(path)
        if read_only and not memory:
            try:
                self._db = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=30
                )
            except sqlite3.Error as error:  # no file there (read-only creates none), or unreadable
                raise ConfigError("state.url", f"cannot read the journal {path}: {error}") from None
        else:
            if not memory:
                create(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        empty = memory or self._is_new(path)
        if read_only:
            if empty:
                # Nothing to read: the schema in memory, so every read answers "nothing yet".
                self._db.close()
                self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                sqlite_schema.create_all(self._db)
            else:
                try:
                    with self._using():
                        sqlite_schema.refuse_newer(self._db)
                except ConfigError:
                    self._db.close()
                    raise
            self._db.execute("PRAGMA query_only=ON")
            return
        try:
            with self._using():
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            # In the write lock: two processes opening an older journal at once migrate it once.
            with self._transaction() as db:
                sqlite_schema.migrate(db)
        except ConfigError:
            self._db.close()
            raise

    def _is_new(self, path: Path) -> bool:
        """Whether the database has no table yet; a ConfigError if it holds something not a journal.

        Read before any PRAGMA or schema write, so another application's file is left as it was.
        """
        try:
            tables = {
                name: {
                    column for (column,) in self._db.execute("SELECT name FROM pragma_table_info(?)", (name,))
                }
                for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as error:
            self._db.close()
            # refuse_unfit let through only an empty file or one opening with SQLite's header: one
            # SQLite cannot read is a damaged database, to restore, not a wrong path to correct.
            broken = damaged(path, error)
            if broken is not None:
                raise broken from None
            # Locked, unreadable, no room for the WAL index: the file may well be a journal.
            raise ConfigError("state.url", f"cannot read the journal {path}: {error}") from None
        if not tables:
            return True
        if any(not columns <= tables.get(name, set()) for name, columns in _SIGNATURE.items()):
            self._db.close()
            found = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")  # noqa: PLR2004
            problem = (
                f"{path} is not a rotator journal (an SQLite database of something else, tables: {found});"
                " point state.url at rotator's journal or at a new file"
            )
            raise ConfigError("state.url", problem)
        return False

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def writable(self) -> bool:
        """False when opened read-only (``query_only``) or when the file's filesystem is mounted read-only.

        File permissions are not asked: this process opened the file for writing already, and
        SQLite keeps writing through that descriptor whatever its mode becomes.
        """
        with self._using() as db:
            (query_only,) = db.execute("PRAGMA query_only").fetchone()
        if query_only or str(self._path) == ":memory:":
            return not query_only
        return not os.statvfs(self._path).f_flag & os.ST_RDONLY

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite's "damaged" becomes a :class:`JournalDamagedError`.

        Damage shows only when a read reaches the bad page, so every use is guarded, not the open.
        Once seen it is kept: every later use fails the same way, without touching the file (so
        the daemon's /readyz, whose read may miss the bad page, says so until a restart).
        """
        with self._lock:
            if self._damage is not None:
                raise JournalDamagedError(self._damage.key, self._damage.problem)
            try:
                yield self._db
            except sqlite3.DatabaseError as error:
                broken = damaged(self._path, error)
                if broken is None:
                    raise
                self._damage = broken
                raise broken from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._using():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # SQLite may have rolled back already (it does on some errors, damage among them):
                # a second ROLLBACK would fail and hide the error that matters.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Take the lease if free, expired or already ours; every acquisition bumps the fence."""
        with self._transaction():
            return self._acquire(key, name, holder, now, ttl)

    def acquire_reading(
        self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta
    ) -> tuple[Lease, TargetRecords] | None:
        """:meth:`acquire`, then :meth:`records`, in the acquisition's own transaction."""
        with self._transaction():
            lease = self._acquire(key, name, holder, now, ttl)
            if lease is None:
                return None
            return lease, TargetRecords(
                self.target(key), tuple(self.tokens(key)), self.unfinished(key), tuple(self.tombstones(key))
            )

    def _acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """:meth:`acquire`, in the transaction the caller has begun."""
        db, until = self._db, now + ttl
        row = db.execute(
            "SELECT holder, fence, lease_until FROM targets WHERE key = ?", (str(key),)
        ).fetchone()
        if row is None:
            # A forgotten key continues from its last fence (see sqlite_schema, version 2).
            last = db.execute("SELECT fence FROM fences WHERE key = ?", (str(key),)).fetchone()
            fence = (last[0] if last else 0) + 1
            state = to_json(TargetState(key=key, name=name))
            db.execute(
                "INSERT INTO targets (key, holder, fence, lease_until, data) VALUES (?, ?, ?, ?, ?)",
                (str(key), holder, fence, until.isoformat(), json.dumps(state)),
            )
            return Lease(key, holder, fence, until)
        current, fence, lease_until = row
        if current not in (None, holder) and lease_until and datetime.fromisoformat(lease_until) > now:
            return None
        db.execute(
            "UPDATE targets SET holder = ?, fence = ?, lease_until = ? WHERE key = ?",
            (holder, fence + 1, until.isoformat(), str(key)),
        )
        return Lease(key, holder, fence + 1, until)

    def _check(self, db: sqlite3.Connection, lease: Lease) -> None:
        row = db.execute("SELECT holder, fence FROM targets WHERE key = ?", (str(lease.key),)).fetchone()
        if row is None or tuple(row) != (lease.holder, lease.fence):
            msg = f"lease on {lease.key} lost (fence {lease.fence})"
            raise LeaseLostError(msg)

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        """Extend the lease; raise LeaseLostError if another worker took it.

        One conditional UPDATE, its own transaction: the check (holder and fence) is its WHERE.
        """
        until = now + ttl
        with self._using() as db:
            renewed = db.execute(
                "UPDATE targets SET lease_until = ? WHERE key = ? AND holder = ? AND fence = ?",
                (until.isoformat(), str(lease.key), lease.holder, lease.fence),
            ).rowcount
        if renewed != 1:
            msg = f"lease on {lease.key} lost (fence {lease.fence})"
            raise LeaseLostError(msg)
        return replace(lease, expires=until)

    def release(self, lease: Lease) -> None:
        """Free the lease if it is still ours: one conditional UPDATE, its own transaction."""
        with self._using() as db:
            db.execute(
                "UPDATE targets SET holder = NULL, lease_until = NULL"
                " WHERE key = ? AND holder = ? AND fence = ?",
                (str(lease.key), lease.holder, lease.fence),
            )

    def write(self, lease: Lease, change: Change) -> Change:
        """Record ``change`` in one transaction, after checking the lease; answer it as stored."""
        with self._transaction() as db:
            self._check(db, lease)
            self._write(db, lease, change)
        return as_stored(change)

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """:meth:`write` and :meth:`renew` in one transaction: both, or (LeaseLostError) neither."""
        until = now + ttl
        with self._transaction() as db:
            self._check(db, lease)
            db.execute(
                "UPDATE targets SET lease_until = ? WHERE key = ?", (until.isoformat(), str(lease.key))
            )
            self._write(db, lease, change)
        return as_stored(change), replace(lease, expires=until)

    def _write(self, db: sqlite3.Connection, lease: Lease, change: Change) -> None:
        """The change's statements (the lease checked by the caller, in the same transaction)."""
        key = str(lease.key)
        if change.rotation is not None:
            r = change.rotation
            # An upsert, not INSERT OR REPLACE: a replaced row would get a new rowid, and the
            # rowid is the tie-break of "newest first" (the order a rotation was first recorded).
            db.execute(
                "INSERT INTO rotations (id, key, planned_at, outcome, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET key = excluded.key, planned_at = excluded.planned_at,"
                " outcome = excluded.outcome, data = excluded.data",
                (r.id, key, r.planned_at.isoformat(), r.outcome.value, _dump(r)),
            )
        for token in change.tokens:
            db.execute(
                "INSERT OR REPLACE INTO tokens (key, token_id, data) VALUES (?, ?, ?)",
                (key, token.token_id, _dump(token)),
            )
        if change.target is not None:
            db.execute("UPDATE targets SET data = ? WHERE key = ?", (_dump(change.target), key))
        for stone in change.tombstones:
            db.execute(
                "INSERT OR REPLACE INTO tombstones (key, name, data) VALUES (?, ?, ?)",
                (key, stone.name, _dump(stone)),
            )
        for name in change.drop_tombstones:
            db.execute("DELETE FROM tombstones WHERE key = ? AND name = ?", (key, name))

    def forget(self, lease: Lease, note: str) -> None:
        """Drop the key's target row, tokens and tombstones in one fenced transaction; keep its rotations."""
        with self._transaction() as db:
            self._check(db, lease)
            key = str(lease.key)
            rows = db.execute(
                "SELECT data FROM rotations WHERE key = ? AND outcome = 'in_progress'", (key,)
            ).fetchall()
            for (data,) in rows:
                record = from_json(RotationRecord, json.loads(data))
                closed = replace(record, outcome=Outcome.FAILED, error=note)
                db.execute(
                    "UPDATE rotations SET outcome = ?, data = ? WHERE id = ?",
                    (closed.outcome.value, _dump(closed), closed.id),
                )
            db.execute(
                "INSERT OR REPLACE INTO fences (key, fence) SELECT key, fence FROM targets WHERE key = ?",
                (key,),
            )
            for table in ("tokens", "tombstones", "targets"):
                db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))  # noqa: S608 - fixed names

    # The call ledger ----------------------------------------------------------------------------

    @contextmanager
    def _unsynced(self) -> Iterator[sqlite3.Connection]:
        """A write transaction not synced on its own (module docstring); FULL again for every other."""
        with self._using():
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._transaction() as db:
                    yield db
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def take(self, bucket: str, per_minute: int) -> float:
        """Count one call in ``bucket`` if it fits (0.0), else the seconds to wait."""
        return self.reserve(bucket, per_minute, 1).wait

    def reserve(self, bucket: str, per_minute: int, calls: int) -> ledger.Reservation:
        """Count up to ``calls`` calls in ``bucket``, as many as fit."""
        with self._unsynced() as db:
            row = db.execute("SELECT counts FROM call_windows WHERE bucket = ?", (bucket,)).fetchone()
            counts, taken = ledger.reserve(
                json.loads(row[0]) if row else [], self._clock().timestamp(), per_minute, calls
            )
            if taken.granted:
                db.execute(
                    "INSERT OR REPLACE INTO call_windows (bucket, counts) VALUES (?, ?)",
                    (bucket, json.dumps(counts)),
                )
            return taken

    def claim(self, job: str, every: timedelta) -> bool:
        """Claim ``job``'s turn if no process claimed it within ``every``."""
        with self._unsynced() as db:
            row = db.execute("SELECT claimed_at FROM job_claims WHERE job = ?", (job,)).fetchone()
            now = self._clock().timestamp()
            if not ledger.claims(row[0] if row else None, now, every.total_seconds()):
                return False
            db.execute("INSERT OR REPLACE INTO job_claims (job, claimed_at) VALUES (?, ?)", (job, now))
            return True

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._using():
            return [json.loads(row[0]) for row in self._db.execute(sql, args).fetchall()]

    def target(self, key: TargetKey) -> TargetState | None:
        """The target's bookkeeping, or None."""
        rows = self._rows("SELECT data FROM targets WHERE key = ?", (str(key),))
        return from_json(TargetState, rows[0]) if rows else None

    def targets(self) -> list[TargetState]:
        """Every target the journal knows."""
        return [
            from_json(TargetState, row) for row in self._rows("SELECT data FROM targets ORDER BY key", ())
        ]

    def tokens(self, key: TargetKey) -> list[TokenRecord]:
        """The target's tracked tokens, oldest (lowest id) first."""
        rows = self._rows("SELECT data FROM tokens WHERE key = ? ORDER BY token_id", (str(key),))
        return [from_json(TokenRecord, row) for row in rows]

    def owners(self, gitlab_url: str, token_id: int) -> list[TokenOwner]:
        """Every target on ``gitlab_url`` that tracks ``token_id`` (the index on token_id finds them)."""
        with self._using():
            rows = self._db.execute(
                "SELECT tokens.data, targets.data FROM tokens LEFT JOIN targets ON targets.key = tokens.key"
                " WHERE tokens.token_id = ? ORDER BY tokens.key",
                (token_id,),
            ).fetchall()
        owners = []
        for token_data, target_data in rows:
            token = from_json(TokenRecord, json.loads(token_data))
            if not same_instance(token.key.gitlab_url, gitlab_url):
                continue
            name = json.loads(target_data)["name"] if target_data else str(token.key)
            owners.append(TokenOwner(token.key, name, token.role))
        return owners

    def rotations(self, key: TargetKey | None = None, limit: int = 20) -> list[RotationRecord]:
        """Rotations newest first."""
        if key is None:
            rows = self._rows(
                "SELECT data FROM rotations ORDER BY planned_at DESC, rowid DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._rows(
                "SELECT data FROM rotations WHERE key = ? ORDER BY planned_at DESC, rowid DESC LIMIT ?",
                (str(key), limit),
            )
        return [from_json(RotationRecord, row) for row in rows]

    def rotations_of(self, recorded: Collection[tuple[TargetKey, str]], limit: int) -> list[RotationRecord]:
        """Rotations recorded under any of the (key, target name) pairs, newest first, at most ``limit``.

        Filtered here, before the LIMIT: filtering the newest ``limit`` rows of every target would
        lose a quiet target's older rotations behind a busy one's.
        """
        pairs = json.dumps([[str(key), name] for key, name in recorded])
        rows = self._rows(
            "SELECT r.data FROM rotations AS r JOIN"
            " (SELECT json_extract(value, '$[0]') AS key, json_extract(value, '$[1]') AS name"
            " FROM json_each(?)) AS wanted"
            " ON r.key = wanted.key AND json_extract(r.data, '$.target') = wanted.name"
            " ORDER BY r.planned_at DESC, r.rowid DESC LIMIT ?",
            (pairs, limit),
        )
        return [from_json(RotationRecord, row) for row in rows]

    def recorded_names(self) -> list[tuple[TargetKey, str]]:
        """Every (key, target name) pair a rotation was recorded under, once each."""
        with self._using():
            rows = self._db.execute(
                "SELECT DISTINCT json_extract(data, '$.key'), json_extract(data, '$.target') FROM rotations"
            ).fetchall()
        return [(TargetKey(**json.loads(key)), name) for key, name in rows]

    def unfinished(self, key: TargetKey) -> RotationRecord | None:
        """The rotation still in progress, if any."""
        rows = self._rows(
            "SELECT data FROM rotations WHERE key = ? AND outcome = 'in_progress'"
            " ORDER BY planned_at DESC, rowid DESC LIMIT 1",
            (str(key),),
        )
        return from_json(RotationRecord, rows[0]) if rows else None

    def last_rotation(self, key: TargetKey, triggers: Collection[str]) -> RotationRecord | None:
        """The newest rotation of ``key`` started by one of ``triggers``.

        The trigger lives in the JSON document only: the index walks the key's rotations newest
        first and the first match ends the scan, so this is one row in the common case.
        """
        rows = self._rows(
            "SELECT data FROM rotations WHERE key = ?"
            " AND json_extract(data, '$.trigger') IN (SELECT value FROM json_each(?))"
            " ORDER BY planned_at DESC, rowid DESC LIMIT 1",
            (str(key), json.dumps(sorted(triggers))),
        )
        return from_json(RotationRecord, rows[0]) if rows else None

    def tombstones(self, key: TargetKey) -> list[Tombstone]:
        """Names still to re-check."""
        rows = self._rows("SELECT data FROM tombstones WHERE key = ? ORDER BY name", (str(key),))
        return [from_json(Tombstone, row) for row in rows]

    def records(self, key: TargetKey) -> TargetRecords:
        """The target's four reads in one read transaction: one snapshot of the file."""
        with self._using() as db:
            db.execute("BEGIN")
            try:
                return TargetRecords(
                    self.target(key),
                    tuple(self.tokens(key)),
                    self.unfinished(key),
                    tuple(self.tombstones(key)),
                )
            finally:
                if db.in_transaction:  # SQLite may have ended it already (on damage, among others)
                    db.execute("COMMIT")

    def project_id(self, gitlab_url: str, project: str) -> int | None:
        """A project path resolved before."""
        with self._using():
            row = self._db.execute(
                "SELECT project_id FROM projects WHERE gitlab_url = ? AND ref = ?", (gitlab_url, project)
            ).fetchone()
        return int(row[0]) if row else None

    def project_ids(self, gitlab_url: str) -> dict[str, int]:
        """Every path of that GitLab resolved before."""
        with self._using():
            rows = self._db.execute(
                "SELECT ref, project_id FROM projects WHERE gitlab_url = ?", (gitlab_url,)
            ).fetchall()
        return {str(ref): int(pid) for ref, pid in rows}

    def remember_project(self, gitlab_url: str, project: str, project_id: int) -> None:
        """Record a resolved project path, and drop the failure to resolve it, if one was recorded."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO projects (gitlab_url, ref, project_id) VALUES (?, ?, ?)",
                (gitlab_url, project, project_id),
            )
            db.execute("DELETE FROM unresolved WHERE gitlab_url = ? AND ref = ?", (gitlab_url, project))

    def unresolved(self, gitlab_url: str, project: str) -> UnresolvedProject | None:
        """The failure to resolve a project path, recorded since it last resolved; else ``None``."""
        try:
            rows = self._rows(
                "SELECT data FROM unresolved WHERE gitlab_url = ? AND ref = ?", (gitlab_url, project)
            )
        except sqlite3.OperationalError:
            if self._missing(_LATER_TABLES):
                # An older journal opened read-only, so its schema was not brought up to date:
                # it has recorded no such failure.
                return None
            raise
        return from_json(UnresolvedProject, rows[0]) if rows else None

    def record_unresolved(self, record: UnresolvedProject) -> None:
        """Record (replace) the failure to resolve ``record.project``; unfenced: no key, no lease."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO unresolved (gitlab_url, ref, data) VALUES (?, ?, ?)",
                (record.gitlab_url, record.project, _dump(record)),
            )

    def _missing(self, tables: frozenset[str]) -> bool:
        """Whether any of ``tables`` is absent from this file."""
        with self._using():
            rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return not tables <= {name for (name,) in rows}

    # Trigger requests (claimed, not fenced: see rotator.core.ports.Requests) ------------------------
    # Claim times are compared here, in Python, as the leases' are: the caller's clock judges them.

    def add_request(
        self, request: TriggerRequest, now: datetime, ttl: timedelta, keep: int = KEPT_REQUESTS
    ) -> TriggerRequest:
        """Record a new request (claimed until ``now + ttl`` if open) and prune old ended ones."""
        opened = request.status in OPEN_REQUESTS
        stored = replace(
            request,
            replica=request.replica if opened else None,
            claim=1 if opened else 0,
            claim_until=now + ttl if opened else None,
        )
        with self._transaction() as db:
            known = self._request_row(db, request.id)
            if known is not None:
                return known
            db.execute(
                "INSERT INTO requests (id, requested_at, status, replica, claim, claim_until, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    stored.id,
                    stored.requested_at.isoformat(),
                    stored.status.value,
                    stored.replica,
                    stored.claim,
                    _stamp(stored.claim_until),
                    _dump(stored),
                ),
            )
            db.execute(
                "DELETE FROM requests WHERE status NOT IN ('queued', 'running') AND rowid NOT IN"
                " (SELECT rowid FROM requests WHERE status NOT IN ('queued', 'running')"
                " ORDER BY requested_at DESC, rowid DESC LIMIT ?)",
                (keep,),
            )
            found = self._request_row(db, request.id)
        # None only for an ended request older than the newest ``keep``: recorded, and pruned at once.
        return found or stored

    def _request_row(self, db: sqlite3.Connection, request_id: str) -> TriggerRequest | None:
        row = db.execute(
            "SELECT data, status, replica, claim, claim_until FROM requests WHERE id = ?", (request_id,)
        ).fetchone()
        return _request(*row) if row else None

    def request(self, request_id: str) -> TriggerRequest | None:
        """A request by id, or None."""
        with self._using() as db:
            return self._request_row(db, request_id)

    def update_request(self, request: TriggerRequest) -> bool:
        """Record progress under the current claim of an open request; False (nothing changed) otherwise."""
        with self._transaction() as db:
            stored = self._request_row(db, request.id)
            if stored is None or stored.status not in OPEN_REQUESTS:
                return False
            if (stored.replica, stored.claim) != (request.replica, request.claim):
                return False
            db.execute(
                "UPDATE requests SET status = ?, data = ? WHERE id = ?",
                (request.status.value, _dump(replace(request, claim_until=stored.claim_until)), request.id),
            )
            return True

    def renew_claims(self, replica: str, now: datetime, ttl: timedelta) -> int:
        """Extend ``replica``'s open claims to ``now + ttl``."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE requests SET claim_until = ? WHERE replica = ? AND status IN ('queued', 'running')",
                (_stamp(now + ttl), replica),
            ).rowcount

    def lapsed_requests(self, now: datetime, limit: int) -> list[TriggerRequest]:
        """Open requests whose claim has lapsed by ``now``, oldest first."""
        with self._using() as db:
            rows = db.execute(
                "SELECT data, status, replica, claim, claim_until FROM requests"
                " WHERE status IN ('queued', 'running') ORDER BY requested_at, rowid"
            ).fetchall()
        lapsed = [r for r in (_request(*row) for row in rows) if claim_lapsed(r, now)]
        return lapsed[:limit]

    def claim_request(
        self, request_id: str, replica: str, now: datetime, ttl: timedelta
    ) -> TriggerRequest | None:
        """Claim an open request whose claim has lapsed, in one write transaction (one racer wins)."""
        with self._transaction() as db:
            stored = self._request_row(db, request_id)
            if stored is None or stored.status not in OPEN_REQUESTS or not claim_lapsed(stored, now):
                return None
            claimed = replace(stored, replica=replica, claim=stored.claim + 1, claim_until=now + ttl)
            db.execute(
                "UPDATE requests SET replica = ?, claim = ?, claim_until = ? WHERE id = ?",
                (replica, claimed.claim, _stamp(claimed.claim_until), request_id),
            )
            return claimed

    def request_rotations(self, request_id: str) -> list[RotationRecord]:
        """The rotations the request planned, oldest first (by the index on the document's request)."""
        rows = self._rows(
            "SELECT data FROM rotations WHERE json_extract(data, '$.request') = ? ORDER BY planned_at, rowid",
            (request_id,),
        )
        return [from_json(RotationRecord, row) for row in rows]

    # The whole journal, for `rotator state copy` (rotator.journal.snapshot) ------------------------

    def snapshot(self) -> Snapshot:
        """Every table in one read transaction; rotations in the order first recorded (rowid)."""
        with self._using() as db:
            db.execute("BEGIN")
            try:
                return self._read(db)
            finally:
                db.execute("COMMIT")

    def _read(self, db: sqlite3.Connection) -> Snapshot:
        """Every table, inside the caller's transaction."""
        present = self._tables(db)
        targets = db.execute("SELECT key, holder, fence, lease_until, data FROM targets ORDER BY key")
        keyed = {
            table: tuple(KeyedRow(key, json.loads(data)) for key, data in db.execute(sql))
            for table, sql in _KEYED_READS.items()
        }
        return Snapshot(
            targets=tuple(
                TargetRow(key, holder, fence, _instant(until), json.loads(data))
                for key, holder, fence, until, data in targets.fetchall()
            ),
            projects=tuple(
                ProjectRow(*row)
                for row in db.execute("SELECT gitlab_url, ref, project_id FROM projects ORDER BY 1, 2")
            ),
            # Tables a journal written by an older version may lack, opened read-only.
            unresolved=tuple(
                json.loads(data)
                for (data,) in (
                    db.execute("SELECT data FROM unresolved ORDER BY gitlab_url, ref")
                    if "unresolved" in present
                    else ()
                )
            ),
            fences=tuple(
                FenceRow(*row)
                for row in (
                    # Only forgotten keys not configured again: a target's fence is past its
                    # old one (and PostgreSQL keeps one fence per key).
                    db.execute(
                        "SELECT key, fence FROM fences"
                        " WHERE key NOT IN (SELECT key FROM targets) ORDER BY key"
                    )
                    if "fences" in present
                    else ()
                )
            ),
            requests=tuple(
                to_json(_request(*row))  # the claim columns, which a renewal alone changes, in the document
                for row in (
                    db.execute(
                        "SELECT data, status, replica, claim, claim_until FROM requests"
                        " ORDER BY requested_at, rowid"
                    )
                    if "requests" in present
                    else ()
                )
            ),
            **keyed,
        )

    def lease_clock(self, now: datetime) -> datetime:
        """``now``: this store's leases are judged by the clock each caller passes."""
        return now

    def restore(self, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:
        """Write ``snapshot`` into this empty journal in one transaction; NotEmptyError if it holds anything.

        Rotations are inserted in the snapshot's order, so their rowids (the tie-break of "newest
        first") keep it; each key column is the one the source wrote the row under. ``check`` sees
        the journal as read inside the transaction before it commits; if it raises, nothing is.
        """
        with self._transaction() as db:
            present = self._tables(db) & set(TABLES)
            nonempty(
                {
                    table: db.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]  # noqa: S608 - fixed names
                    for table in sorted(present)
                }
            )
            db.executemany(
                "INSERT INTO targets (key, holder, fence, lease_until, data) VALUES (?, ?, ?, ?, ?)",
                [
                    (t.key, t.holder, t.fence, t.until.isoformat() if t.until else None, _text(t.state))
                    for t in snapshot.targets
                ],
            )
            db.executemany(
                "INSERT INTO rotations (id, key, planned_at, outcome, data) VALUES (?, ?, ?, ?, ?)",
                [
                    (r.data["id"], r.key, r.data["planned_at"], r.data["outcome"], _text(r.data))
                    for r in snapshot.rotations
                ],
            )
            db.executemany(
                "INSERT INTO tokens (key, token_id, data) VALUES (?, ?, ?)",
                [(r.key, r.data["token_id"], _text(r.data)) for r in snapshot.tokens],
            )
            db.executemany(
                "INSERT INTO tombstones (key, name, data) VALUES (?, ?, ?)",
                [(r.key, r.data["name"], _text(r.data)) for r in snapshot.tombstones],
            )
            db.executemany(
                "INSERT INTO projects (gitlab_url, ref, project_id) VALUES (?, ?, ?)",
                [(p.gitlab_url, p.project, p.project_id) for p in snapshot.projects],
            )
            db.executemany(
                "INSERT INTO unresolved (gitlab_url, ref, data) VALUES (?, ?, ?)",
                [(u["gitlab_url"], u["project"], _text(u)) for u in snapshot.unresolved],
            )
            if snapshot.fences:  # a journal with forgotten keys' fences has the table that keeps them
                db.executemany(
                    "INSERT INTO fences (key, fence) VALUES (?, ?)",
                    [(f.key, f.fence) for f in snapshot.fences],
                )
            db.executemany(
                "INSERT INTO requests (id, requested_at, status, replica, claim, claim_until, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_request_columns(from_json(TriggerRequest, data)) for data in snapshot.requests],
            )
            check(self._read(db))

    @staticmethod
    def _tables(db: sqlite3.Connection) -> set[str]:
        """The tables this file has."""
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _dump(record: object) -> str:
    return json.dumps(to_json(record), sort_keys=True)


def _text(document: dict[str, Any]) -> str:
    """A document as the data column keeps it (as :func:`_dump` writes a record)."""
    return json.dumps(document, sort_keys=True)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _request_columns(r: TriggerRequest) -> tuple[Any, ...]:
    """A request's row, as :meth:`SQLiteJournal.add_request` writes one."""
    return (
        r.id,
        r.requested_at.isoformat(),
        r.status.value,
        r.replica,
        r.claim,
        _stamp(r.claim_until),
        _dump(r),
    )


def _request(data: str, status: str, replica: str | None, claim: int, until: str | None) -> TriggerRequest:
    """A request row: its document, with the claim columns (which a renewal alone changes) over it."""
    request = from_json(TriggerRequest, json.loads(data))
    return replace(
        request, status=RequestStatus(status), replica=replica, claim=claim, claim_until=_instant(until)
    )


#: The rows of the tables kept as (key column, document), each in its snapshot's order.
_KEYED_READS = {
    "rotations": "SELECT key, data FROM rotations ORDER BY rowid",
    "tokens": "SELECT key, data FROM tokens ORDER BY key, token_id",
    "tombstones": "SELECT key, data FROM tombstones ORDER BY key, name",
}
