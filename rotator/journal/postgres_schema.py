"""The PostgreSQL journal's schema: its versions, created and migrated by rotator itself.

``MIGRATIONS[n - 1]`` brings a version ``n - 1`` schema to version ``n`` (version 0: an empty
database). :func:`migrate` runs the missing ones in one transaction under a transaction-level
advisory lock, so replicas starting together wait for one another and the second finds the work
done; a schema newer than :data:`VERSION` is refused (:func:`rotator.journal.versions.too_new`).

Leases live in their own table, never deleted: ``rotator forget`` drops a key's target row but its
lease row keeps the fence, so a key configured again continues from the last fence instead of
restarting at 1 (a lease handed out before the forget can never match a later one).
"""

import psycopg

from psycopg.rows import TupleRow

from rotator.core.errors import ConfigError
from rotator.journal.versions import too_new


#: The advisory lock key every rotator takes while it creates or migrates the schema ("rotator" in ASCII).
LOCK_KEY = 0x726F7461746F72

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE leases (
        key text PRIMARY KEY, holder text, fence bigint NOT NULL, lease_until timestamptz);
    CREATE TABLE targets (key text PRIMARY KEY, data jsonb NOT NULL);
    CREATE TABLE rotations (
        seq bigserial UNIQUE, id text PRIMARY KEY, key text NOT NULL,
        planned_at timestamptz NOT NULL, outcome text NOT NULL, data jsonb NOT NULL);
    CREATE INDEX rotations_by_key ON rotations (key, planned_at DESC, seq DESC);
    CREATE INDEX rotations_newest ON rotations (planned_at DESC, seq DESC);
    CREATE TABLE tokens (key text NOT NULL, token_id bigint NOT NULL, data jsonb NOT NULL,
        PRIMARY KEY (key, token_id));
    CREATE INDEX tokens_by_id ON tokens (token_id);
    CREATE TABLE tombstones (key text NOT NULL, name text NOT NULL, data jsonb NOT NULL,
        PRIMARY KEY (key, name));
    CREATE TABLE projects (gitlab_url text NOT NULL, ref text NOT NULL, project_id bigint NOT NULL,
        PRIMARY KEY (gitlab_url, ref));
    CREATE TABLE unresolved (gitlab_url text NOT NULL, ref text NOT NULL, data jsonb NOT NULL,
        PRIMARY KEY (gitlab_url, ref));
    """,
    # 2: the call ledger the replicas count together (rotator.core.ports.CallLedger): each bucket's
    # calls of the last minute, counted per epoch second on the database's clock (seconds[i] holds
    # counts[i] calls; at most 61 pairs: rotator.core.ledger), and each periodic job's last claim.
    # Not part of a snapshot: nothing in them outlives a check interval.
    """
    CREATE TABLE call_windows (bucket text PRIMARY KEY,
        seconds int8[] NOT NULL DEFAULT '{}', counts int4[] NOT NULL DEFAULT '{}');
    CREATE TABLE job_claims (job text PRIMARY KEY, claimed_at float8);
    """,
    # 3: HTTP trigger requests and their claims (claim_until on the database's clock); the
    # rotations a request planned, found by its id.
    """
    CREATE TABLE requests (
        seq bigserial UNIQUE, id text PRIMARY KEY, requested_at timestamptz NOT NULL,
        status text NOT NULL, replica text, claim bigint NOT NULL, claim_until timestamptz,
        data jsonb NOT NULL);
    CREATE INDEX requests_by_status ON requests (status, requested_at);
    CREATE INDEX rotations_by_request ON rotations ((data->>'request'));
    """,
)
#: The newest schema this rotator knows.
VERSION = len(MIGRATIONS)
#: The journal's tables: one of them without ``schema_version`` is another application's (and creating
#: the journal beside it would fail half way, on a name already taken).
_OURS = ("leases", "targets", "rotations", "tokens", "tombstones", "projects", "unresolved")


def found_version(conn: psycopg.Connection[TupleRow]) -> int | None:
    """The schema's version; ``None`` for no journal; a ConfigError for another application's tables."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        taken = [
            name
            for name in _OURS
            if (found := conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()) and found[0]
        ]
        if taken:
            problem = (
                f"the database holds tables ({', '.join(taken)}) but no rotator journal;"
                " point state.url at rotator's database or at a new one"
            )
            raise ConfigError("state.url", problem)
        return None
    version = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(version[0]) if version and version[0] is not None else 0


def refuse_newer(version: int | None) -> None:
    """A ConfigError (exit 2) if ``version`` is newer than this rotator knows."""
    if version is not None and version > VERSION:
        raise too_new(version, VERSION)


def migrate(conn: psycopg.Connection[TupleRow]) -> None:
    """Create or bring the schema up to :data:`VERSION`, in one transaction under the advisory lock."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        version = found_version(conn)
        refuse_newer(version)
        if version is None:
            conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0
        for number in range(version + 1, VERSION + 1):
            conn.execute(MIGRATIONS[number - 1].encode())
            conn.execute("UPDATE schema_version SET version = %s", (number,))
