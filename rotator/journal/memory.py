"""The reference journal: every record in a few dicts, under one lock. Core: standard library only.

:class:`MemoryJournal` is the :class:`rotator.core.ports.Journal` contract written as plainly as it can
be, so it can be read as the contract's definition: the journal contract suite
(``tests/journal/test_contract.py``) runs it and every durable store side by side, and a
differential test checks that random sequences of operations give the same answers here and on
SQLite. It is product code, for tests of the engine in process and for users' own tests; it keeps
nothing across processes, so it is never a store for a real run.

The rules every store follows, spelled out here once:

* **Leases.** A target's lease is held while ``now < expires``; a lease that is free, released or
  expired (judged by the ``now`` the caller passes, the store's clock) may be taken, and so may one
  its holder already holds. Every acquisition makes a new fencing number, one more than the last,
  a forget notwithstanding (a key configured again continues from its last fence).
* **Fencing.** :meth:`~MemoryJournal.write`, :meth:`~MemoryJournal.renew` and
  :meth:`~MemoryJournal.forget` first check that the lease (holder and fence) is still the key's
  current one, and otherwise raise :class:`rotator.core.errors.LeaseLostError` having changed nothing.
  Expiry alone does not make a lease stale: until another worker takes it, it stays usable.
* **Order.** Rotations newest first by ``planned_at``; among rotations planned at the same instant,
  the one first recorded later comes first (rewriting a rotation never moves it). Targets by key,
  tokens by id, tombstones by name, owners by key.
* **Requests.** A trigger request's claim is held while ``now < claim_until`` (the caller's clock,
  as for leases); an open request (queued or running) whose claim has lapsed may be claimed, which
  makes a new claim number. Progress is recorded only under the current claim, and never once
  the request has ended. The newest :data:`~rotator.core.model.KEPT_REQUESTS` ended requests are
  kept (by request time, then by when first recorded); open ones always.
* **What is kept.** Records as written, except that free text which may quote an upstream
  (:data:`rotator.journal.codec.FREE_TEXT`) is redacted on its way in, as every store's codec does.
  Records are frozen, so a stored value can be handed out as it is.

Keys are compared as their string form (``url|project|connection``), the journal's primary key in
every store.

The call ledger (:class:`rotator.core.ports.CallLedger`) is this process's alone: a bucket's calls
and a job's last claim, on the ``clock`` given (the wall clock unless told), decided by
:mod:`rotator.core.ledger` as every store decides them.
"""

import dataclasses
import threading

from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from rotator.core import ledger
from rotator.core.errors import LeaseLostError
from rotator.core.model import (
    KEPT_REQUESTS,
    OPEN_REQUESTS,
    Change,
    Lease,
    Outcome,
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
from rotator.core.redact import redact
from rotator.journal.codec import FREE_TEXT, from_json, to_json
from rotator.journal.snapshot import FenceRow, KeyedRow, ProjectRow, Snapshot, TargetRow, accept, nonempty


R = TypeVar("R")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def kept(record: R) -> R:
    """``record`` as a store gives it back: its free-text fields redacted, the rest untouched."""
    changes = {
        field.name: redact(value)
        for field in dataclasses.fields(record)  # type: ignore[arg-type]
        if field.name in FREE_TEXT and isinstance(value := getattr(record, field.name), str)
    }
    return dataclasses.replace(record, **changes) if changes else record  # type: ignore[type-var]


@dataclasses.dataclass(slots=True)
class _Target:
    """A target's row: who holds its lease (fence, until when) and its bookkeeping."""

    state: TargetState
    fence: int
    holder: str | None
    until: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Rotation:
    """A rotation as stored: under its lease's key, numbered by when it was first recorded."""

    key: str
    record: RotationRecord
    seq: int


class MemoryJournal:
    """The :class:`rotator.core.ports.Journal` in memory, safe to share between threads (one lock)."""

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        """An empty journal; ``clock`` is its call ledger's (leases are judged by the ``now`` passed)."""
        self._lock = threading.Lock()
        self._clock = clock
        self._calls: dict[str, ledger.Counts] = {}  # by bucket: (second, calls), oldest first
        self._claims: dict[str, float] = {}  # by job: when it was last claimed
        self._targets: dict[str, _Target] = {}
        self._fences: dict[str, int] = {}  # the last fence of each forgotten key
        self._rotations: dict[str, _Rotation] = {}  # by rotation id
        self._tokens: dict[tuple[str, int], TokenRecord] = {}  # by (key, token id)
        self._tombstones: dict[tuple[str, str], Tombstone] = {}  # by (key, name)
        self._projects: dict[tuple[str, str], int] = {}  # by (gitlab url, path)
        self._unresolved: dict[tuple[str, str], UnresolvedProject] = {}  # by (gitlab url, path)
        self._requests: dict[str, tuple[int, TriggerRequest]] = {}  # by id: (seq, request)
        self._seq = 0

    def close(self) -> None:
        """Nothing to release; the records stay readable (a test may look after the engine closed it)."""

    def writable(self) -> bool:
        """Always: memory refuses no write."""
        return True

    # Leases ---------------------------------------------------------------------------------

    def acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Take the lease if free, expired or already ``holder``'s; every acquisition bumps the fence.

        The first acquisition of a key creates its target state, named ``name``; later ones
        leave the state (and its name) as it is.
        """
        with self._lock:
            return self._acquire(key, name, holder, now, ttl)

    def acquire_reading(
        self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta
    ) -> tuple[Lease, TargetRecords] | None:
        """:meth:`acquire`, then :meth:`records`, under one hold of the lock."""
        with self._lock:
            lease = self._acquire(key, name, holder, now, ttl)
            return (lease, self._records(str(key))) if lease is not None else None

    def _acquire(self, key: TargetKey, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """:meth:`acquire`, the lock held."""
        until = now + ttl
        row = self._targets.get(str(key))
        if row is None:
            fence = self._fences.get(str(key), 0) + 1
            self._targets[str(key)] = _Target(TargetState(key=key, name=name), fence, holder, until)
            return Lease(key, holder, fence, until)
        held = row.holder is not None and row.until is not None and row.until > now
        if held and row.holder != holder:
            return None
        row.fence, row.holder, row.until = row.fence + 1, holder, until
        return Lease(key, holder, row.fence, until)

    def _current(self, lease: Lease) -> _Target:
        """The lease's target row, if ``lease`` is still its current one; else LeaseLostError."""
        row = self._targets.get(str(lease.key))
        if row is None or (row.holder, row.fence) != (lease.holder, lease.fence):
            msg = f"lease on {lease.key} lost (fence {lease.fence})"
            raise LeaseLostError(msg)
        return row

    def renew(self, lease: Lease, now: datetime, ttl: timedelta) -> Lease:
        """Extend the lease to ``now + ttl``; LeaseLostError if it is no longer the current one."""
        with self._lock:
            row = self._current(lease)
            row.until = now + ttl
            return dataclasses.replace(lease, expires=row.until)

    def release(self, lease: Lease) -> None:
        """Free the lease if it is still the current one (the fence stays, so the next is higher)."""
        with self._lock:
            row = self._targets.get(str(lease.key))
            if row is not None and (row.holder, row.fence) == (lease.holder, lease.fence):
                row.holder, row.until = None, None

    # Fenced writes ----------------------------------------------------------------------------

    def write(self, lease: Lease, change: Change) -> Change:
        """Record ``change`` under the lease's key, all of it or (LeaseLostError) none of it.

        Answers it as kept (:func:`kept`: free text redacted), as a later read gives it back.
        """
        with self._lock:
            return self._write(self._current(lease), lease, change)

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """:meth:`write` and :meth:`renew` under one hold of the lock: both, or (LeaseLostError) neither."""
        with self._lock:
            row = self._current(lease)
            stored = self._write(row, lease, change)
            row.until = now + ttl
            return stored, dataclasses.replace(lease, expires=row.until)

    def _write(self, row: _Target, lease: Lease, change: Change) -> Change:
        """Apply ``change`` (the lock held, the lease checked); answer it as kept."""
        stored = dataclasses.replace(
            change,
            rotation=kept(change.rotation) if change.rotation is not None else None,
            tokens=tuple(kept(t) for t in change.tokens),
            target=kept(change.target) if change.target is not None else None,
        )
        key = str(lease.key)
        if stored.rotation is not None:
            self._put_rotation(key, stored.rotation)
        for token in stored.tokens:
            self._tokens[key, token.token_id] = token
        if stored.target is not None:
            row.state = stored.target
        for stone in stored.tombstones:
            self._tombstones[key, stone.name] = stone
        for name in stored.drop_tombstones:  # after the additions: dropping a name wins
            self._tombstones.pop((key, name), None)
        return stored

    def _put_rotation(self, key: str, record: RotationRecord) -> None:
        """Insert or replace a rotation; a replaced one keeps its place among equal ``planned_at``."""
        old = self._rotations.get(record.id)
        if old is None:
            self._seq += 1
        self._rotations[record.id] = _Rotation(key, record, old.seq if old else self._seq)

    def forget(self, lease: Lease, note: str) -> None:
        """Drop the key's state, tokens and tombstones; keep its rotations, an unfinished one failed."""
        with self._lock:
            self._fences[str(lease.key)] = self._current(lease).fence
            key = str(lease.key)
            for stored in list(self._rotations.values()):
                if stored.key == key and stored.record.outcome is Outcome.IN_PROGRESS:
                    closed = dataclasses.replace(stored.record, outcome=Outcome.FAILED, error=note)
                    self._put_rotation(key, kept(closed))
            self._tokens = {k: v for k, v in self._tokens.items() if k[0] != key}
            self._tombstones = {k: v for k, v in self._tombstones.items() if k[0] != key}
            del self._targets[key]

    # The call ledger ----------------------------------------------------------------------------

    def take(self, bucket: str, per_minute: int) -> float:
        """Count one call in ``bucket`` if it fits (0.0), else the seconds to wait."""
        return self.reserve(bucket, per_minute, 1).wait

    def reserve(self, bucket: str, per_minute: int, calls: int) -> ledger.Reservation:
        """Count up to ``calls`` calls in ``bucket``, as many as fit."""
        with self._lock:
            self._calls[bucket], taken = ledger.reserve(
                self._calls.get(bucket, ()), self._clock().timestamp(), per_minute, calls
            )
            return taken

    def claim(self, job: str, every: timedelta) -> bool:
        """Claim ``job``'s turn if it was not claimed within ``every``."""
        with self._lock:
            now = self._clock().timestamp()
            if not ledger.claims(self._claims.get(job), now, every.total_seconds()):
                return False
            self._claims[job] = now
            return True

    # Reads ------------------------------------------------------------------------------------

    def target(self, key: TargetKey) -> TargetState | None:
        """The target's bookkeeping, or None."""
        with self._lock:
            row = self._targets.get(str(key))
            return row.state if row else None

    def targets(self) -> list[TargetState]:
        """Every target the journal knows, by key."""
        with self._lock:
            return [self._targets[key].state for key in sorted(self._targets)]

    def tokens(self, key: TargetKey) -> list[TokenRecord]:
        """The target's tracked tokens, oldest (lowest id) first."""
        with self._lock:
            return [t for (k, _), t in sorted(self._tokens.items()) if k == str(key)]

    def owners(self, gitlab_url: str, token_id: int) -> list[TokenOwner]:
        """Every key on the instance ``gitlab_url`` names that tracks ``token_id``, by key."""
        with self._lock:
            owners = []
            for (key, number), token in sorted(self._tokens.items()):
                if number != token_id or not same_instance(token.key.gitlab_url, gitlab_url):
                    continue
                row = self._targets.get(key)
                owners.append(TokenOwner(token.key, row.state.name if row else str(token.key), token.role))
            return owners

    def _newest_first(self, wanted: Callable[[_Rotation], bool], limit: int) -> list[RotationRecord]:
        """The rotations ``wanted`` keeps, newest first, at most ``limit`` (a negative limit: all)."""
        with self._lock:
            found = sorted(
                (r for r in self._rotations.values() if wanted(r)),
                key=lambda r: (r.record.planned_at, r.seq),
                reverse=True,
            )
        return [r.record for r in (found if limit < 0 else found[:limit])]

    def rotations(self, key: TargetKey | None = None, limit: int = 20) -> list[RotationRecord]:
        """Rotations newest first, of one target or all."""
        return self._newest_first(lambda r: key is None or r.key == str(key), limit)

    def rotations_of(self, recorded: Collection[tuple[TargetKey, str]], limit: int) -> list[RotationRecord]:
        """Rotations recorded under any of the (key, target name) pairs, newest first, at most ``limit``."""
        pairs = {(str(key), name) for key, name in recorded}
        return self._newest_first(lambda r: (r.key, r.record.target) in pairs, limit)

    def recorded_names(self) -> list[tuple[TargetKey, str]]:
        """Every (key, target name) pair a rotation was recorded under, once each."""
        with self._lock:
            pairs = (
                (r.record.key, r.record.target) for r in sorted(self._rotations.values(), key=lambda r: r.seq)
            )
            return list(dict.fromkeys(pairs))

    def unfinished(self, key: TargetKey) -> RotationRecord | None:
        """The newest rotation of ``key`` still in progress, if any."""
        found = self._newest_first(
            lambda r: r.key == str(key) and r.record.outcome is Outcome.IN_PROGRESS, limit=1
        )
        return found[0] if found else None

    def last_rotation(self, key: TargetKey, triggers: Collection[str]) -> RotationRecord | None:
        """The newest rotation of ``key`` started by one of ``triggers``."""
        found = self._newest_first(lambda r: r.key == str(key) and r.record.trigger in triggers, limit=1)
        return found[0] if found else None

    def tombstones(self, key: TargetKey) -> list[Tombstone]:
        """Names still to re-check, by name."""
        with self._lock:
            return [s for (k, _), s in sorted(self._tombstones.items()) if k == str(key)]

    def records(self, key: TargetKey) -> TargetRecords:
        """The target's four reads together, under one hold of the lock."""
        with self._lock:
            return self._records(str(key))

    def _records(self, k: str) -> TargetRecords:
        """:meth:`records` of the key ``k``, the lock held."""
        row = self._targets.get(k)
        open_ = [
            r for r in self._rotations.values() if r.key == k and r.record.outcome is Outcome.IN_PROGRESS
        ]
        newest = max(open_, key=lambda r: (r.record.planned_at, r.seq), default=None)
        return TargetRecords(
            row.state if row else None,
            tuple(t for (kk, _), t in sorted(self._tokens.items()) if kk == k),
            newest.record if newest else None,
            tuple(s for (kk, _), s in sorted(self._tombstones.items()) if kk == k),
        )

    # Project paths (not fenced: a target whose path does not resolve has no key, so no lease) ------

    def project_id(self, gitlab_url: str, project: str) -> int | None:
        """A project path resolved before."""
        with self._lock:
            return self._projects.get((gitlab_url, project))

    def project_ids(self, gitlab_url: str) -> dict[str, int]:
        """Every path of that GitLab resolved before."""
        with self._lock:
            return {ref: pid for (url, ref), pid in self._projects.items() if url == gitlab_url}

    def remember_project(self, gitlab_url: str, project: str, project_id: int) -> None:
        """Record a resolved project path, and drop the failure to resolve it, if one was recorded."""
        with self._lock:
            self._projects[gitlab_url, project] = project_id
            self._unresolved.pop((gitlab_url, project), None)

    def unresolved(self, gitlab_url: str, project: str) -> UnresolvedProject | None:
        """The failure to resolve a project path, recorded since it last resolved; else ``None``."""
        with self._lock:
            return self._unresolved.get((gitlab_url, project))

    def record_unresolved(self, record: UnresolvedProject) -> None:
        """Record (replace) the failure to resolve ``record.project``."""
        with self._lock:
            self._unresolved[record.gitlab_url, record.project] = kept(record)

    # Trigger requests (claimed, not fenced: see rotator.core.ports.Requests) ------------------------

    def add_request(
        self, request: TriggerRequest, now: datetime, ttl: timedelta, keep: int = KEPT_REQUESTS
    ) -> TriggerRequest:
        """Record a new request (claimed until ``now + ttl`` if open); an id already kept stays as it is."""
        with self._lock:
            if request.id in self._requests:
                return self._requests[request.id][1]
            opened = request.status in OPEN_REQUESTS
            stored = kept(
                dataclasses.replace(
                    request,
                    claim=1 if opened else 0,
                    claim_until=now + ttl if opened else None,
                    replica=request.replica if opened else None,
                )
            )
            self._seq += 1
            self._requests[request.id] = (self._seq, stored)
            ended = sorted(
                (
                    (r.requested_at, seq, r.id)
                    for seq, r in self._requests.values()
                    if r.status not in OPEN_REQUESTS
                ),
                reverse=True,
            )
            for _, _, old in ended[keep:]:
                del self._requests[old]
            return stored

    def request(self, request_id: str) -> TriggerRequest | None:
        """A request by id, or None."""
        with self._lock:
            found = self._requests.get(request_id)
            return found[1] if found else None

    def update_request(self, request: TriggerRequest) -> bool:
        """Record progress under the current claim of an open request; False (nothing changed) otherwise."""
        with self._lock:
            found = self._requests.get(request.id)
            if found is None:
                return False
            seq, stored = found
            if stored.status not in OPEN_REQUESTS or (stored.replica, stored.claim) != (
                request.replica,
                request.claim,
            ):
                return False
            self._requests[request.id] = (
                seq,
                kept(dataclasses.replace(request, claim_until=stored.claim_until)),
            )
            return True

    def renew_claims(self, replica: str, now: datetime, ttl: timedelta) -> int:
        """Extend ``replica``'s open claims to ``now + ttl``."""
        with self._lock:
            mine = [
                (seq, r)
                for seq, r in self._requests.values()
                if r.replica == replica and r.status in OPEN_REQUESTS
            ]
            for seq, r in mine:
                self._requests[r.id] = (seq, dataclasses.replace(r, claim_until=now + ttl))
            return len(mine)

    def lapsed_requests(self, now: datetime, limit: int) -> list[TriggerRequest]:
        """Open requests whose claim has lapsed by ``now``, oldest first."""
        with self._lock:
            found = sorted(
                (r.requested_at, seq, r)
                for seq, r in self._requests.values()
                if r.status in OPEN_REQUESTS and claim_lapsed(r, now)
            )
            return [r for _, _, r in found[:limit]]

    def claim_request(
        self, request_id: str, replica: str, now: datetime, ttl: timedelta
    ) -> TriggerRequest | None:
        """Claim an open request whose claim has lapsed; the claim number rises."""
        with self._lock:
            found = self._requests.get(request_id)
            if found is None or found[1].status not in OPEN_REQUESTS or not claim_lapsed(found[1], now):
                return None
            seq, stored = found
            claimed = dataclasses.replace(
                stored, replica=replica, claim=stored.claim + 1, claim_until=now + ttl
            )
            self._requests[request_id] = (seq, claimed)
            return claimed

    def request_rotations(self, request_id: str) -> list[RotationRecord]:
        """The rotations the request planned, oldest first."""
        return list(reversed(self._newest_first(lambda r: r.record.request == request_id, limit=-1)))

    # The whole journal, for `rotator state copy` (rotator.journal.snapshot) ------------------------

    def snapshot(self) -> Snapshot:
        """Every table, rotations in the order first recorded."""
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        """:meth:`snapshot`, the lock held."""
        return Snapshot(
            targets=tuple(
                TargetRow(key, row.holder, row.fence, row.until, to_json(row.state))
                for key, row in sorted(self._targets.items())
            ),
            rotations=tuple(
                KeyedRow(r.key, to_json(r.record))
                for r in sorted(self._rotations.values(), key=lambda r: r.seq)
            ),
            tokens=tuple(KeyedRow(k, to_json(t)) for (k, _), t in sorted(self._tokens.items())),
            tombstones=tuple(KeyedRow(k, to_json(s)) for (k, _), s in sorted(self._tombstones.items())),
            projects=tuple(ProjectRow(url, path, pid) for (url, path), pid in sorted(self._projects.items())),
            unresolved=tuple(to_json(u) for _, u in sorted(self._unresolved.items())),
            # A key configured again has a target whose fence is past its forgotten one: that
            # fence is spent, and a store keeping fences beside its leases holds one per key.
            fences=tuple(
                FenceRow(key, fence)
                for key, fence in sorted(self._fences.items())
                if key not in self._targets
            ),
            requests=tuple(to_json(r) for _, r in sorted(self._requests.values(), key=lambda sr: sr[0])),
        )

    def lease_clock(self, now: datetime) -> datetime:
        """``now``: this store's leases are judged by the clock each caller passes."""
        return now

    def restore(self, snapshot: Snapshot, check: Callable[[Snapshot], None] = accept) -> None:
        """Fill this empty journal with ``snapshot``; NotEmptyError (nothing changed) if it holds anything.

        ``check`` then sees what it holds; if it raises, the journal is emptied again (a rollback).
        """
        with self._lock:
            nonempty({table: bool(rows) for table, rows in self._tables().items()})
            try:
                self._fill(snapshot)
                check(self._snapshot())
            except BaseException:
                for rows in self._tables().values():
                    rows.clear()
                self._seq = 0
                raise

    def _fill(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` into the empty tables (the lock held)."""
        for t in snapshot.targets:
            self._targets[t.key] = _Target(from_json(TargetState, t.state), t.fence, t.holder, t.until)
        for seq, r in enumerate(snapshot.rotations, start=1):
            self._rotations[r.data["id"]] = _Rotation(r.key, from_json(RotationRecord, r.data), seq)
        self._seq = len(snapshot.rotations)
        for r in snapshot.tokens:
            token = from_json(TokenRecord, r.data)
            self._tokens[r.key, token.token_id] = token
        for r in snapshot.tombstones:
            stone = from_json(Tombstone, r.data)
            self._tombstones[r.key, stone.name] = stone
        for p in snapshot.projects:
            self._projects[p.gitlab_url, p.project] = p.project_id
        self._fences.update((f.key, f.fence) for f in snapshot.fences)
        for data in snapshot.unresolved:
            record = from_json(UnresolvedProject, data)
            self._unresolved[record.gitlab_url, record.project] = record
        for data in snapshot.requests:  # numbered after the rotations, in the snapshot's order
            self._seq += 1
            request = from_json(TriggerRequest, data)
            self._requests[request.id] = (self._seq, request)

    def _tables(self) -> dict[str, dict[Any, Any]]:
        """Each table's rows, by the snapshot's table names (for the emptiness check)."""
        return {
            "targets": self._targets,
            "rotations": self._rotations,
            "tokens": self._tokens,
            "tombstones": self._tombstones,
            "projects": self._projects,
            "unresolved": self._unresolved,
            "fences": self._fences,
            "requests": self._requests,
        }
