"""The SQLite journal's schema: its versions, created and migrated by rotator itself.

Version 0 is an empty database or a journal of the releases before versioning (no
``schema_version`` table and, in the oldest, no ``unresolved`` table): migration 1 creates every
table that is missing, so it brings either to version 1. ``MIGRATIONS[n - 1]`` brings version
``n - 1`` to ``n``;
:func:`migrate` runs the missing ones inside the caller's write transaction (``BEGIN IMMEDIATE``:
SQLite's write lock is what keeps two processes from migrating at once), so an existing journal
upgrades in place with its records untouched. A schema newer than :data:`VERSION` is refused.

Version 2 adds ``fences``: the last fence of each key ``rotator forget`` dropped, so a key
configured again continues from it instead of restarting at 1 (a lease handed out before the
forget can never match a later one).

Version 3 adds the call ledger (``call_windows``, ``job_claims``); version 4 adds ``requests``: the
HTTP trigger requests (:class:`rotator.core.model.TriggerRequest`),
so any replica sharing the journal answers for one and takes it over when its claim lapses.
"""

import sqlite3

from rotator.journal.versions import too_new


MIGRATIONS: tuple[str, ...] = (
    # 1: every statement IF NOT EXISTS, as the unversioned releases wrote it, so an unversioned
    # journal (which may lack the later `unresolved` table) is brought to version 1 in place.
    """
    CREATE TABLE IF NOT EXISTS targets (
        key TEXT PRIMARY KEY, holder TEXT, fence INTEGER NOT NULL, lease_until TEXT, data TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS rotations (
        id TEXT PRIMARY KEY, key TEXT NOT NULL, planned_at TEXT NOT NULL, outcome TEXT NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS rotations_by_key ON rotations (key, planned_at);
    CREATE TABLE IF NOT EXISTS tokens (
        key TEXT NOT NULL, token_id INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (key, token_id));
    CREATE INDEX IF NOT EXISTS tokens_by_id ON tokens (token_id);
    CREATE TABLE IF NOT EXISTS tombstones (
        key TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (key, name));
    CREATE TABLE IF NOT EXISTS projects (
        gitlab_url TEXT NOT NULL, ref TEXT NOT NULL, project_id INTEGER NOT NULL,
        PRIMARY KEY (gitlab_url, ref));
    CREATE TABLE IF NOT EXISTS unresolved (
        gitlab_url TEXT NOT NULL, ref TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (gitlab_url, ref));
    """,
    # 2: the fences of forgotten keys.
    """
    CREATE TABLE fences (key TEXT PRIMARY KEY, fence INTEGER NOT NULL);
    """,
    # 3: the call ledger the processes sharing this file count together (rotator.core.ports.CallLedger):
    # each bucket's calls of the last minute (a JSON list of [epoch second, calls] pairs, at most
    # 61: rotator.core.ledger) and each periodic job's last claim. Not part of a snapshot: nothing
    # in them outlives a check interval (so a file that somehow has them already, whatever its
    # version says, just keeps them).
    """
    CREATE TABLE IF NOT EXISTS call_windows (bucket TEXT PRIMARY KEY, counts TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS job_claims (job TEXT PRIMARY KEY, claimed_at REAL NOT NULL);
    """,
    # 4: HTTP trigger requests and their claims; the rotations a request planned, found by its id
    # (IF NOT EXISTS, like 3: a file made by an unversioned release's test double may have them).
    """
    CREATE TABLE IF NOT EXISTS requests (
        id TEXT PRIMARY KEY, requested_at TEXT NOT NULL, status TEXT NOT NULL, replica TEXT,
        claim INTEGER NOT NULL, claim_until TEXT, data TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS requests_by_status ON requests (status, requested_at);
    CREATE INDEX IF NOT EXISTS rotations_by_request ON rotations (json_extract(data, '$.request'));
    """,
)
#: The newest schema this rotator knows.
VERSION = len(MIGRATIONS)


def found_version(db: sqlite3.Connection) -> int:
    """The journal's schema version: 0 for an empty database or an unversioned journal."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def refuse_newer(db: sqlite3.Connection) -> None:
    """A ConfigError (exit 2) if the journal's schema is newer than this rotator knows."""
    version = found_version(db)
    if version > VERSION:
        raise too_new(version, VERSION)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to :data:`VERSION`; the caller holds the write transaction."""
    version = found_version(db)
    if version > VERSION:
        raise too_new(version, VERSION)
    if version == VERSION:
        return
    for number in range(version + 1, VERSION + 1):
        for statement in MIGRATIONS[number - 1].split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (VERSION,))


def create_all(db: sqlite3.Connection) -> None:
    """The whole schema on an empty database outside any transaction (an empty read-only journal)."""
    db.execute("BEGIN")
    migrate(db)
    db.execute("COMMIT")
