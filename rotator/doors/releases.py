"""Other replicas' releases: this replica plans its next check of a target from one batched read.

With several replicas on one journal, every replica wakes for every due target (that is how the
work spreads, :mod:`rotator.doors.daemon`); the one that gets the lease rotates it, and each of the
others, once its own wake-up comes, reads the target only to find it rotated: an idle check, a
read per replica per rotation, taking a worker while rotations wait for one. A release is the end
of a run's writes, and the journal tells of it (:meth:`rotator.core.ports.Journal.release_feed`;
PostgreSQL's LISTEN/NOTIFY). Told of another worker's release, this replica reads the records of
every target told of in that batch at once (:meth:`~rotator.core.ports.Journal.records_of`),
plans each one's next wake-up from them with its own config (a rolling update's replicas may
differ), and remembers the reading for :data:`FRESH_FOR`: a check of that target already queued
for a worker, whose run the reading says would be idle, is skipped (:meth:`Releases.quiet`).

Only a plan: the reading is one a check would have made, a moment later; a run that acts reads
afresh under the lease, as always. A release this replica made itself is not read again (its run
planned from what it left); a target this replica is running is left to that run. The feed is best
effort: told nothing (SQLite, a dropped session, a pooler that drops notifications), the checks
run as before, and the ``check`` job's interval still catches whatever a plan missed.
"""

import threading
import time

from collections.abc import Callable, Collection
from datetime import datetime

import structlog

from rotator.core.model import TargetKey, TargetState
from rotator.core.ports import Released, ReleaseFeed
from rotator.core.schedule import Situation, quiet_at
from rotator.core.spec import RotationSpec
from rotator.engine.run import Engine


log = structlog.get_logger("rotator")

Reading = tuple[Situation, TargetState | None]

#: How long a reading made on a release lets a queued check of its target be skipped.
FRESH_FOR = 30.0
#: How often at most the map from journal keys to target names is made again for an unknown key.
REKEY_EVERY = 30.0
#: How long one wait for releases lasts, so a stopping daemon's listener ends soon after.
WAIT_S = 1.0


class Releases:
    """What this replica was told of other workers' releases, and the plans it made from them."""

    def __init__(
        self,
        engine: Engine,
        targets: dict[str, RotationSpec],
        *,
        busy: Callable[[str], bool],
        plan: Callable[[RotationSpec, Reading], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Plan through ``plan``; leave alone a target for which ``busy(name)`` (a run in flight here)."""
        self._engine, self._targets, self._busy, self._plan = engine, targets, busy, plan
        self._monotonic = monotonic
        self._own = f"{engine.ctx.actor}:"  # every holder of this process's runs starts so
        self._lock = threading.Lock()
        self._fresh: dict[str, tuple[float, Situation]] = {}
        self._names: dict[str, list[tuple[str, TargetKey]]] = {}
        self._keyed_at: float | None = None

    def listen(self, stopping: threading.Event) -> threading.Thread | None:
        """Hear releases on a thread of its own until ``stopping``; None if the journal tells none."""
        feed = self._engine.ctx.journal.release_feed()
        if feed is None:
            return None
        thread = threading.Thread(target=self._listen, args=(feed, stopping), name="releases", daemon=True)
        thread.start()
        return thread

    def _listen(self, feed: ReleaseFeed, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                told = feed.wait(WAIT_S)
                if told and not stopping.is_set():
                    try:
                        self.heard(told)
                    except Exception as error:  # noqa: BLE001 - a plan missed is a check run as before
                        log.warning("daemon.releases_unread", error=type(error).__name__)
        finally:
            feed.close()

    def heard(self, told: Collection[Released]) -> list[str]:
        """Read and plan every target of ``told`` released by another worker; the names planned."""
        keys = {r.key for r in told if not r.holder.startswith(self._own)}
        wanted = {name: key for k in keys for name, key in self._named(k) if not self._busy(name)}
        if not wanted:
            return []
        read = self._monotonic()
        records = self._engine.ctx.journal.records_of(set(wanted.values()))
        for name, key in wanted.items():
            target = self._targets[name]
            reading = self._engine.reading(target, key, records[key])
            with self._lock:
                self._fresh[name] = (read, reading[0])
            self._plan(target, reading)
        return list(wanted)

    def quiet(self, name: str, now: datetime) -> bool:
        """Whether a reading made on a release, fresh still, says a check of ``name`` at ``now`` is idle."""
        with self._lock:
            fresh = self._fresh.get(name)
        if fresh is None or self._monotonic() - fresh[0] > FRESH_FOR:
            return False
        return quiet_at(fresh[1], now)

    def forget(self, name: str) -> None:
        """This replica ran ``name`` itself: its run's reading stands, not the one made on a release."""
        with self._lock:
            self._fresh.pop(name, None)

    def _named(self, key: str) -> list[tuple[str, TargetKey]]:
        """The configured targets (name, key) whose journal key is ``key``; none for a key not configured."""
        now = self._monotonic()
        if key not in self._names and (self._keyed_at is None or now - self._keyed_at > REKEY_EVERY):
            # A target whose project path resolved since (its key was unknown) is found on a rekey.
            names: dict[str, list[tuple[str, TargetKey]]] = {}
            for name, target in self._targets.items():
                found = self._engine.key(target, resolve=False)
                if found is not None:
                    names.setdefault(str(found), []).append((name, found))
            self._names, self._keyed_at = names, now
        return self._names.get(key, [])
