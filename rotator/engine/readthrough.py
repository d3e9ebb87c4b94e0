"""Reads of one target's own records served from memory: while its lease is held, or for one decision.

A rotation reads its target's state, tokens, unfinished rotation and tombstones again at every
step (about 40 reads, each decoding every token the target ever had), though under the lease only
the run itself writes them: every write is fenced by the lease, so another writer could only
exist once this run's lease is lost, and from then on every write and upstream request of this
run raises :class:`rotator.core.errors.LeaseLostError` before it is sent (the
:class:`rotator.engine.lease.LeaseKeeper` checks). A run can therefore never act on a stale read.

:class:`ReadThrough` wraps the journal for one key. The four reads are fetched from the store
together, in one read (:meth:`rotator.core.ports.Journal.records`: one round trip on a database),
and kept; a write through it applies the change to what is kept, from the records as the store
answers it kept them (:meth:`rotator.core.ports.Journal.write`: redaction and all, so what is
served is what a read would give), and :meth:`ReadThrough.drop` forgets everything (the keeper
calls it when the lease is lost). Where the change's effect cannot be worked out from what is
kept, what it touched is forgotten and read again on demand: the unfinished rotation once it
ends, unless the view saw it opened when none was open (else an older one may still be open),
tombstones (the store's own collation orders them), a write that raised (it may or may not have
landed). Every
other read (other keys, ``owners`` across keys, rotations by id or trigger) and every lease call
goes straight to the store.

Without a lease (a check deciding whether there is work), one :class:`ReadThrough` lives for one
decision only: the reads it shares were a few milliseconds apart anyway, and acting on the
decision takes the lease, under which the run reads afresh.
"""

import threading

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from rotator.core.model import (
    Change,
    Lease,
    Outcome,
    RotationRecord,
    TargetKey,
    TargetRecords,
    TargetState,
    TokenRecord,
    Tombstone,
)


if TYPE_CHECKING:
    from rotator.core.ports import Journal


#: Marks a read not yet made (``None`` is a valid answer of ``target`` and ``unfinished``).
_UNREAD = object()


class ReadThrough:
    """The journal, with ``key``'s target, tokens, unfinished rotation and tombstones kept in memory."""

    def __init__(self, journal: "Journal", key: TargetKey, kept: TargetRecords | None = None) -> None:
        """Serve ``key``'s own records from memory (``kept``: as just read); the rest from ``journal``."""
        self._journal, self._key = journal, key
        self._lock = threading.Lock()  # drop() may come from the keeper's renewal thread
        self._kept: dict[str, object] = {name: getattr(kept, name) for name in _RECORDS} if kept else {}
        self._generation = 0  # bumped by drop(): a read begun before it is not kept after it

    @property
    def store(self) -> "Journal":
        """The journal underneath (for reads that must see other writers)."""
        return self._journal

    def as_journal(self) -> "Journal":
        """This view, typed as the port it stands in for (the rest is delegated by ``__getattr__``)."""
        return cast("Journal", self)

    def __getattr__(self, name: str) -> object:
        """Any other journal method: the store's own."""
        return getattr(self._journal, name)

    def drop(self) -> None:
        """Forget everything kept (the lease is lost or released: another writer may exist)."""
        with self._lock:
            self._kept.clear()
            self._generation += 1

    def write(self, lease: Lease, change: Change) -> Change:
        """Write through to the store; then apply the change as stored to what is kept."""
        return self._through(lease, change, lambda: self._journal.write(lease, change))

    def write_renewing(
        self, lease: Lease, change: Change, now: datetime, ttl: timedelta
    ) -> tuple[Change, Lease]:
        """:meth:`write`, the lease renewed in the same call (:meth:`Journal.write_renewing`)."""
        renewed: list[Lease] = []

        def send() -> Change:
            stored, lease_now = self._journal.write_renewing(lease, change, now, ttl)
            renewed.append(lease_now)
            return stored

        return self._through(lease, change, send), renewed[0]

    def _through(self, lease: Lease, change: Change, send: Callable[[], Change]) -> Change:
        """Send ``change`` to the store (``send``); then apply it, as stored, to what is kept."""
        with self._lock:
            # Forgotten before the write is sent: if it raises (it may have landed or not), the
            # next read asks the store. Put back, changed, only once the store has answered.
            self._generation += 1
            if lease.key != self._key:
                self._kept.clear()
                before: dict[str, object] = {}
            else:
                before = self._take(change)
            generation = self._generation
        stored = send()
        if before:
            with self._lock:
                if generation == self._generation:  # not dropped meanwhile (the lease lost)
                    self._kept.update(_applied(before, stored))
        return stored

    def _take(self, change: Change) -> dict[str, object]:
        """Forget what ``change`` touches; answer what was kept of it (``_UNREAD``: nothing was)."""
        touched = []
        if change.target is not None:
            touched.append("target")
        if change.tokens:
            touched.append("tokens")
        if change.rotation is not None:
            touched += ["unfinished", _SOLE]
        if change.tombstones or change.drop_tombstones:
            touched.append("tombstones")
        return {name: self._kept.pop(name, _UNREAD) for name in touched}

    def forget(self, lease: Lease, note: str) -> None:
        """Drop the key's records in the store, and everything kept."""
        self.drop()
        self._journal.forget(lease, note)

    def target(self, key: TargetKey) -> TargetState | None:
        """The target's bookkeeping (kept for ``key``)."""
        if key != self._key:
            return self._journal.target(key)
        return cast("TargetState | None", self._read("target"))

    def tokens(self, key: TargetKey) -> list[TokenRecord]:
        """The target's tracked tokens (kept for ``key``; a fresh list each call)."""
        if key != self._key:
            return self._journal.tokens(key)
        return list(cast("tuple[TokenRecord, ...]", self._read("tokens")))

    def unfinished(self, key: TargetKey) -> RotationRecord | None:
        """The newest rotation of ``key`` still in progress (kept for ``key``)."""
        if key != self._key:
            return self._journal.unfinished(key)
        return cast("RotationRecord | None", self._read("unfinished"))

    def tombstones(self, key: TargetKey) -> list[Tombstone]:
        """Names still to re-check (kept for ``key``; a fresh list each call)."""
        if key != self._key:
            return self._journal.tombstones(key)
        return list(cast("tuple[Tombstone, ...]", self._read("tombstones")))

    def records(self, key: TargetKey) -> TargetRecords:
        """The four together (kept for ``key``)."""
        if key != self._key:
            return self._journal.records(key)
        return TargetRecords(
            self.target(key), tuple(self.tokens(key)), self.unfinished(key), tuple(self.tombstones(key))
        )

    def kept(self) -> TargetRecords | None:
        """The four records if all are kept (nothing is read), else ``None``."""
        with self._lock:
            if any(name not in self._kept for name in _RECORDS):
                return None
            kept = dict(self._kept)  # drop() may clear it once the lock is let go
        return TargetRecords(
            cast("TargetState | None", kept["target"]),
            cast("tuple[TokenRecord, ...]", kept["tokens"]),
            cast("RotationRecord | None", kept["unfinished"]),
            cast("tuple[Tombstone, ...]", kept["tombstones"]),
        )

    def _read(self, what: str) -> object:
        """One of the key's records: kept, or fetched with the other three in one read and all kept.

        Whatever was forgotten is fetched together (:meth:`Journal.records`, one round trip on a
        database), so reading the four after a write touched two costs one read, not two.
        """
        with self._lock:
            if (found := self._kept.get(what, _UNREAD)) is not _UNREAD:
                return found
            generation = self._generation
        fresh = self._journal.records(self._key)
        values = dict(zip(_RECORDS, (getattr(fresh, name) for name in _RECORDS), strict=True))
        with self._lock:
            if generation == self._generation:
                if fresh.unfinished is None or fresh.unfinished.id != self._kept.get(_SOLE):
                    # The store names the newest open rotation only: whether it is alone, it cannot say.
                    self._kept.pop(_SOLE, None)
                self._kept.update(values)
        return values[what]


def _applied(before: dict[str, object], stored: Change) -> dict[str, object]:
    """The records ``stored`` changed, as a read would now give them, where that follows from ``before``.

    ``before``: what was kept of each record the change touched (``_UNREAD``: nothing). A record
    left out of the answer stays forgotten, to be read again. Each rule is what every store does
    with a write (:mod:`rotator.journal.memory` is the reference):

    - the target: replaced whole; kept only if the target was known to exist (under a current
      lease it does: the acquisition made it, and ``forget`` released the lease);
    - tokens: each replaces the key's token of its id (the last of a change wins); ordered by id;
    - the unfinished rotation (the key's newest in progress by planned time, then first record):
      a rotation in progress written when none was open is the one, and the only one open (kept
      as :data:`_SOLE`); the open one rewritten in progress with the same planned time stays it;
      another rotation ending leaves the open one as it was; nothing open stays nothing open; the
      only open one ending leaves none open (this run alone writes the key, so none opened since).
      Any other case (the open one ending when an older one may still be open, as after a read
      that found it; a second one opened) is read again.
    - tombstones: always read again (the store orders them by its own collation).
    """
    applied: dict[str, object] = {}
    target = before.get("target", _UNREAD)
    if target is not _UNREAD and target is not None and stored.target is not None:
        applied["target"] = stored.target
    tokens = before.get("tokens", _UNREAD)
    if tokens is not _UNREAD:
        by_id = {t.token_id: t for t in cast("tuple[TokenRecord, ...]", tokens)}
        by_id.update((t.token_id, t) for t in stored.tokens)
        applied["tokens"] = tuple(by_id[i] for i in sorted(by_id))
    unfinished = before.get("unfinished", _UNREAD)
    if unfinished is not _UNREAD and stored.rotation is not None:
        open_ = cast("RotationRecord | None", unfinished)
        applied |= _unfinished_after(open_, before.get(_SOLE), stored.rotation)
    return applied


def _unfinished_after(
    open_: RotationRecord | None, sole: object, rotation: RotationRecord
) -> dict[str, object]:
    """The unfinished rotation (and :data:`_SOLE`) once ``rotation`` is written; nothing if a read must say.

    ``open_``: the unfinished rotation kept before; ``sole``: what was kept as :data:`_SOLE`.
    """
    if rotation.outcome is Outcome.IN_PROGRESS:
        if open_ is None:
            return {"unfinished": rotation, _SOLE: rotation.id}
        if open_.id == rotation.id and open_.planned_at == rotation.planned_at:
            return {"unfinished": rotation, **({_SOLE: sole} if sole == rotation.id else {})}
        return {}  # a second one opened
    if open_ is None or open_.id != rotation.id:
        return {"unfinished": open_, **({_SOLE: sole} if open_ is not None and sole == open_.id else {})}
    return {"unfinished": None} if sole == rotation.id else {}


#: The records kept, by their field name in :class:`TargetRecords` (and their read's method name).
_RECORDS = ("target", "tokens", "unfinished", "tombstones")
#: Kept beside them: the id of the open rotation when it is known to be the only one open (this
#: view saw it opened when none was). Its close then leaves none open, without a read.
_SOLE = "sole"
