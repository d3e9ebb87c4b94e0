"""A journal as data, store-neutral, and the copy of one store into another. Standard library only.

``rotator state copy`` moves a journal between stores (SQLite and PostgreSQL, either way). Each
store reads itself into a :class:`Snapshot` and writes one back into an empty store of its kind;
this module holds what every copy shares: what a snapshot is, what it counts, and the copy itself,
which refuses to run while a rotation is in flight and checks the destination before its write
commits, so a copy that fails its checks leaves the destination as empty as it found it.

A snapshot is everything that decides a read or a later write, not only the records:

* each target's lease columns (holder, fence, expiry): the fence must keep rising past the
  source's, or a lease handed out before the copy could match one handed out after it;
* the fence of every key ``rotator forget`` dropped, where the store keeps them (a key configured
  again continues from it);
* rotations **in the order they were first recorded**, the tie-break of "newest first" among
  rotations planned at the same instant; a store restores them in that order;
* the key column rotations, tokens and tombstones were written under (the lease's key), beside
  each record's own document;
* HTTP trigger requests, with their claims: an open one (queued, or running when its daemon
  stopped) is taken over by a replica of the destination once its claim lapses, and an ended one
  still answers ``GET /v1/rotations/{id}`` there. A claim still live refuses the copy, as a live
  lease does: the daemon holding it runs on the source and would carry the request out there too.

Records travel as the codec's JSON documents (:mod:`rotator.journal.codec`), the form every store
already keeps, so a copy is exact and needs no store to know another's columns. The journal holds
no token value (hashes, ids and names only), and a copy prints counts, never a record.
"""

import hashlib
import json

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rotator.core.errors import RotatorError
from rotator.core.model import (
    OPEN_REQUESTS,
    RotationRecord,
    TargetState,
    TokenRecord,
    Tombstone,
    TriggerRequest,
    UnresolvedProject,
)
from rotator.journal.codec import from_json, to_json


#: A record as :func:`rotator.journal.codec.to_json` writes it.
Document = dict[str, Any]
#: A lease that ended less than this long ago still counts as live: the clock that set a lease (a
#: daemon's, for SQLite) may run behind the one judging it. PostgreSQL's leases are judged by its own.
CLOCK_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class TargetRow:
    """A target: its lease (holder, fence, until when) and its bookkeeping document."""

    key: str
    holder: str | None
    fence: int
    until: datetime | None
    state: Document


@dataclass(frozen=True, slots=True)
class KeyedRow:
    """A rotation, token or tombstone, under the key of the lease it was written with."""

    key: str
    data: Document


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """A project path resolved to its numeric id."""

    gitlab_url: str
    project: str
    project_id: int


@dataclass(frozen=True, slots=True)
class FenceRow:
    """The last fence of a key ``rotator forget`` dropped."""

    key: str
    fence: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A whole journal; each field is one table, named as :data:`TABLES` lists them."""

    targets: tuple[TargetRow, ...] = ()
    rotations: tuple[KeyedRow, ...] = ()  # in the order first recorded
    tokens: tuple[KeyedRow, ...] = ()
    tombstones: tuple[KeyedRow, ...] = ()
    projects: tuple[ProjectRow, ...] = ()
    unresolved: tuple[Document, ...] = ()
    fences: tuple[FenceRow, ...] = ()
    #: Trigger requests, each a :class:`TriggerRequest` document with its claim columns in it.
    requests: tuple[Document, ...] = ()


#: The tables of a snapshot, in the order a copy reports them.
TABLES = tuple(field.name for field in fields(Snapshot))


def accept(_written: Snapshot) -> None:
    """A restore's default check: whatever was written stands."""


class Copyable(Protocol):
    """A store that can be read whole and filled whole: the two methods ``state copy`` needs."""

    def snapshot(self) -> Snapshot:
        """Every table, read in one consistent view (one transaction)."""

    def restore(self, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:
        """Write ``snapshot`` into this store in one transaction; NotEmptyError if it holds anything.

        Before the transaction commits, ``check`` (by default none) is given the store's contents
        as read inside it; whatever it raises undoes the whole write and is raised again.
        """

    def lease_clock(self, now: datetime) -> datetime:
        """The instant leases are judged at: the store's own clock if its leases run on one, else ``now``."""


class NotEmptyError(RotatorError):
    """The destination of a restore already holds a journal: nothing was written."""

    def __init__(self, tables: list[str]) -> None:
        """``tables``: the tables that hold rows."""
        super().__init__(f"it already holds a journal (rows in {', '.join(tables)})")
        self.tables = tables


class CopyRefusedError(RotatorError):
    """A copy that must not go ahead, or whose result cannot be trusted; the message says why."""


def counts(snapshot: Snapshot) -> dict[str, int]:
    """Rows per table."""
    return {table: len(getattr(snapshot, table)) for table in TABLES}


def nonempty(found: Mapping[str, bool]) -> None:
    """NotEmptyError naming the tables ``found`` marks as holding rows, if any (for ``restore``)."""
    tables = [table for table, has_rows in found.items() if has_rows]
    if tables:
        raise NotEmptyError(tables)


# Digests: what the reads would answer, whatever the store's way of keeping it ---------------------

_RECORDS: Mapping[str, type] = {
    "rotations": RotationRecord,
    "tokens": TokenRecord,
    "tombstones": Tombstone,
    "unresolved": UnresolvedProject,
    "requests": TriggerRequest,
}


def _canonical(cls: type, document: Document) -> Document:
    """The document as a read gives it back: decoded and encoded again (an older one gains defaults)."""
    return to_json(from_json(cls, document))


def _instant(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _rows(snapshot: Snapshot, table: str) -> list[object]:
    """A table's rows as JSON-able values, each as a read would see it."""
    rows: tuple[Any, ...] = getattr(snapshot, table)
    if table == "targets":
        return [[r.key, r.holder, r.fence, _instant(r.until), _canonical(TargetState, r.state)] for r in rows]
    if table in {"rotations", "tokens", "tombstones"}:
        return [[r.key, _canonical(_RECORDS[table], r.data)] for r in rows]
    if table in {"unresolved", "requests"}:
        return [_canonical(_RECORDS[table], r) for r in rows]
    if table == "projects":
        return [[r.gitlab_url, r.project, r.project_id] for r in rows]
    return [[r.key, r.fence] for r in rows]


def digests(snapshot: Snapshot) -> dict[str, str]:
    """A SHA-256 of each table's contents; only rotations' order counts (it decides ties)."""
    out = {}
    for table in TABLES:
        encoded = [json.dumps(row, sort_keys=True) for row in _rows(snapshot, table)]
        if table != "rotations":
            encoded.sort()
        out[table] = hashlib.sha256("\n".join(encoded).encode()).hexdigest()
    return out


# The copy ---------------------------------------------------------------------------------------


def live_leases(snapshot: Snapshot, now: datetime) -> list[TargetRow]:
    """The targets whose lease is held (not released, and not ended before ``now`` less the margin)."""
    return [
        row
        for row in snapshot.targets
        if row.holder is not None and row.until is not None and row.until > now - CLOCK_MARGIN
    ]


def live_claims(snapshot: Snapshot, now: datetime) -> list[TriggerRequest]:
    """The open requests whose claim is held (not ended before ``now`` less the margin)."""
    requests = (from_json(TriggerRequest, data) for data in snapshot.requests)
    return [
        r
        for r in requests
        if r.status in OPEN_REQUESTS and r.claim_until is not None and r.claim_until > now - CLOCK_MARGIN
    ]


def copy(
    source: Copyable,
    destination: Copyable,
    now: datetime,
    report: Callable[[str, int], None] = lambda _table, _rows: None,
) -> dict[str, int]:
    """Copy the journal ``source`` holds into the empty ``destination``; the rows per table.

    Refused (CopyRefusedError, nothing written) while any lease in the source is live (by the
    source's own lease clock where it has one, PostgreSQL's; else by ``now``): a rotation
    in flight would go on writing to the source, and the two journals would fork. So is a live
    claim on an open trigger request: its daemon would carry it out on the source, and a replica
    of the destination again once the copied claim lapses. NotEmptyError if
    the destination holds anything. Before the destination's write commits, it is read back (in
    that transaction): its counts and contents must equal the source's, and the source must not
    have changed meanwhile (a process still running on it); otherwise CopyRefusedError, and the
    destination keeps nothing. ``report(table, rows)`` hears each table as
    it is verified.
    """
    at = source.lease_clock(now)  # read first: an earlier instant can only count more leases live
    taken = source.snapshot()
    held = live_leases(taken, at)
    if held:
        names = ", ".join(sorted(str(row.state.get("name", row.key)) for row in held))
        msg = (
            f"a rotation is in flight (lease held: {names}); copying now would fork the journal."
            " Stop every rotator using the source (daemon, run-once CronJob), then copy again"
        )
        raise CopyRefusedError(msg)
    claimed = live_claims(taken, at)
    if claimed:
        who = ", ".join(f"request {r.id} of {r.target} (replica {r.replica})" for r in claimed[:5])
        msg = (
            f"a daemon still holds trigger requests on the source ({who}); copying now would carry"
            " them out twice. Stop every daemon using the source (a stopped one lets its claims go"
            " within a minute), then copy again"
        )
        raise CopyRefusedError(msg)
    expected, wanted = counts(taken), digests(taken)

    def verify(written: Snapshot) -> None:
        # Inside the destination's transaction: a failure here leaves it empty, never holding a
        # complete journal that looks usable but is not the source's (a rotator would act on it).
        found, got = counts(written), digests(written)
        wrong = [table for table in TABLES if (found[table], got[table]) != (expected[table], wanted[table])]
        if wrong:
            detail = ", ".join(f"{t} {found[t]} of {expected[t]}" for t in wrong)
            msg = f"the destination does not read back as the source did ({detail}); nothing was kept in it"
            raise CopyRefusedError(msg)
        if digests(source.snapshot()) != wanted:
            msg = (
                "the source changed while it was being copied (a rotator still running on it);"
                " nothing was kept in the destination. Stop every rotator using the source, then copy again"
            )
            raise CopyRefusedError(msg)

    destination.restore(taken, verify)
    for table in TABLES:
        report(table, expected[table])
    return expected
