"""The PostgreSQL journal's lease calls and fenced writes, each one statement: one round trip.

A fenced write was a transaction of its own statements: ``BEGIN``, the lease check (``SELECT ...
FOR UPDATE``), one statement per table, ``COMMIT``, five round trips or more for a rotation's
step. Here the check and the writes are one statement, which autocommit runs as one transaction:
the lease row is locked and checked in a ``MATERIALIZED`` CTE (``lease``), and every write reads
its key from that CTE, so it writes nothing unless the row was locked with the caller's holder
and fence. Under READ COMMITTED a row locked ``FOR UPDATE`` after waiting for another writer is
checked again on its newest version, so a lease taken over meanwhile (a new fence) leaves
``lease`` empty: nothing is written and the statement answers 0, which the caller turns into
:class:`rotator.core.errors.LeaseLostError`, exactly as the separate check did.

One statement sees one snapshot, so what the old sequence of statements did in order is resolved
here first: a token written twice keeps its last record, and a tombstone both written and dropped
is dropped (its insert is left out; the delete still removes a stored one).

The clock (:data:`rotator.journal.postgres.DATABASE_CLOCK` or the tests') is the store's own SQL,
spliced in; every value is a parameter.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from rotator.core.model import Change, Lease, TargetKey, TargetState
from rotator.journal.codec import to_json


#: A statement and its named parameters.
Statement = tuple[bytes, dict[str, Any]]


def _doc(record: object) -> Jsonb:
    return Jsonb(to_json(record))


def _docs(records: Iterable[object]) -> Jsonb:
    """Several records as one ``jsonb`` array (each row's key columns are read from its document).

    One JSON text: a ``jsonb[]`` parameter is an array literal whose every quote psycopg escapes
    through a regular expression, a good part of a write's client CPU.
    """
    return Jsonb([to_json(record) for record in records])


def acquire(clock: str, key: TargetKey, name: str, holder: str, ttl: timedelta) -> Statement:
    """Take ``key``'s lease if free, lapsed on ``clock`` or ``holder``'s, and make its target row.

    An upsert: a new key's row is made with fence 1 (lease rows are never deleted, so a key
    forgotten and configured again continues from its last fence); an existing row is locked and
    taken, its fence raised, only if the condition holds on its newest version. The target row
    is made (if missing) only when the lease was taken. Answers (fence, lease_until), or no row.
    """
    # The clock is the store's own SQL, never input: safe to splice.
    query = (
        "WITH taken AS (INSERT INTO leases (key, holder, fence, lease_until)"  # noqa: S608
        f" VALUES (%(key)s, %(holder)s, 1, {clock} + %(ttl)s)"
        " ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, fence = leases.fence + 1,"
        f" lease_until = {clock} + %(ttl)s"
        " WHERE leases.holder IS NULL OR leases.holder = excluded.holder"
        f" OR NOT coalesce(leases.lease_until > {clock}, false)"
        " RETURNING fence, lease_until),"
        " made AS (INSERT INTO targets (key, data) SELECT %(key)s, %(target)s FROM taken"
        " ON CONFLICT (key) DO NOTHING)"
        " SELECT fence, lease_until FROM taken"
    )
    target = _doc(TargetState(key=key, name=name))
    return query.encode(), {"key": str(key), "holder": holder, "ttl": ttl, "target": target}


def renew(clock: str, lease: Lease, ttl: timedelta) -> Statement:
    """Extend ``lease`` to ``clock`` plus ``ttl`` if it is still the current one: no row otherwise."""
    query = (
        f"UPDATE leases SET lease_until = {clock} + %(ttl)s"  # noqa: S608 - the store's own clock
        " WHERE key = %(key)s AND holder = %(holder)s AND fence = %(fence)s RETURNING lease_until"
    )
    return query.encode(), {"ttl": ttl, **_lease(lease)}


def _lease(lease: Lease) -> dict[str, Any]:
    return {"key": str(lease.key), "holder": lease.holder, "fence": lease.fence}


def write(lease: Lease, change: Change, renew: tuple[str, timedelta] | None = None) -> Statement:
    """``change`` under ``lease``, one statement answering 1 if written, 0 if the lease is not current.

    With ``renew`` (the clock's SQL and a TTL), the lease row is locked by the renewal itself: its
    ``UPDATE`` takes the row lock and checks holder and fence on the newest version, as the ``FOR
    UPDATE`` does, and extends ``lease_until`` on the database's clock; the statement then answers
    (1, the new lease_until), or (0, NULL). Written and renewed together, or neither.
    """
    args = _lease(lease)
    if renew is None:
        lock = (
            "WITH lease AS MATERIALIZED (SELECT key FROM leases"
            " WHERE key = %(key)s AND holder = %(holder)s AND fence = %(fence)s FOR UPDATE)"
        )
        answer = " SELECT count(*) FROM lease"
    else:
        clock, args["ttl"] = renew
        lock = (
            f"WITH lease AS MATERIALIZED (UPDATE leases SET lease_until = {clock} + %(ttl)s"  # noqa: S608 - the store's own clock
            " WHERE key = %(key)s AND holder = %(holder)s AND fence = %(fence)s RETURNING key, lease_until)"
        )
        answer = " SELECT count(*), max(lease_until) FROM lease"
    parts = [lock]
    if (r := change.rotation) is not None:
        # An upsert keeps the row's seq: the tie-break of "newest first" is first recorded.
        parts.append(
            "rotation AS (INSERT INTO rotations (id, key, planned_at, outcome, data)"
            " SELECT %(id)s, key, %(planned_at)s, %(outcome)s, %(rotation)s FROM lease"
            " ON CONFLICT (id) DO UPDATE SET key = excluded.key, planned_at = excluded.planned_at,"
            " outcome = excluded.outcome, data = excluded.data)"
        )
        args |= {"id": r.id, "planned_at": r.planned_at, "outcome": r.outcome.value, "rotation": _doc(r)}
    if change.tokens:
        tokens = {token.token_id: token for token in change.tokens}  # the last record of each, as in order
        parts.append(
            "token AS (INSERT INTO tokens (key, token_id, data)"
            " SELECT lease.key, (t.data->>'token_id')::int8, t.data"
            " FROM lease, jsonb_array_elements(%(tokens)s) AS t (data)"
            " ON CONFLICT (key, token_id) DO UPDATE SET data = excluded.data)"
        )
        args["tokens"] = _docs(tokens.values())
    if change.target is not None:
        parts.append(
            "target AS (UPDATE targets SET data = %(target)s FROM lease WHERE targets.key = lease.key)"
        )
        args["target"] = _doc(change.target)
    dropped = set(change.drop_tombstones)
    if stones := {s.name: s for s in change.tombstones if s.name not in dropped}:
        parts.append(
            "stone AS (INSERT INTO tombstones (key, name, data)"
            " SELECT lease.key, s.data->>'name', s.data"
            " FROM lease, jsonb_array_elements(%(stones)s) AS s (data)"
            " ON CONFLICT (key, name) DO UPDATE SET data = excluded.data)"
        )
        args["stones"] = _docs(stones.values())
    if dropped:
        parts.append(
            "unstone AS (DELETE FROM tombstones USING lease"
            " WHERE tombstones.key = lease.key AND tombstones.name = ANY(%(dropped)s))"
        )
        args["dropped"] = sorted(dropped)
    query = ", ".join(parts) + answer  # fixed pieces; values are parameters
    return query.encode(), args
