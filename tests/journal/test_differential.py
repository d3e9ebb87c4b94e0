"""The reference store against SQLite and PostgreSQL: any sequence of operations, the same answers.

A Hypothesis state machine drives a :class:`MemoryJournal` and a durable store (SQLite in memory,
so it is quick; PostgreSQL in a fresh schema, its lease clock set from the machine's) with the same
calls: leases taken, renewed, released and lost; fenced writes of
every kind, stale ones included; forget; project paths. Every call must give both stores the same
result or the same error, and after every step every read (each key's state, tokens, tombstones,
history at several limits, unfinished, the four together, last rotation by triggers, owners by
instance and id, history by (key, name) pairs, recorded names, project paths) must agree. Few keys, holders,
ids, names and instants, so ties, collisions and takeovers are common.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import psycopg

from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rotator.core.errors import LeaseLostError
from rotator.core.model import (
    Change,
    Lease,
    Origin,
    Outcome,
    Role,
    RotationRecord,
    Step,
    TargetKey,
    TargetState,
    TokenRecord,
    Tombstone,
    UnresolvedProject,
)
from rotator.core.ports import Journal
from rotator.journal.memory import MemoryJournal
from rotator.journal.postgres import PostgresJournal
from rotator.journal.sqlite import SQLiteJournal
from tests.journal.samples import NOW
from tests.journal.stores import ClockedJournal, add_test_clock
from tests.postgres import fresh_schema


URLS = ("https://gitlab.example.com", "https://GitLab.example.com:443/", "https://gitlab.other.example.com")
KEYS = (
    TargetKey(URLS[0], 1, "c1"),
    TargetKey(URLS[0], 2, "c2"),
    TargetKey(URLS[1], 3, "c3"),
    TargetKey(URLS[2], 1, "c1"),
)
HOLDERS = ("w1", "w2", "w3")
NAMES = ("app", "api", "renamed")
TRIGGERS = ("run-once", "http", "schedule")
INSTANTS = tuple(NOW + timedelta(minutes=m) for m in (0, 0, 1, 5))  # a tie is likely
SECRET_TEXT = ("boom", "401 for glpat-A1b2C3d4E5f6G7h8I9j0", None)
PATHS = ("acme/app", "acme/gone")
TTL = timedelta(minutes=10)

keys = st.sampled_from(KEYS)
#: Where each rotation id is usually planned: r1 and r2 tie, as do r3 and r4.
PLANNED = {"r1": INSTANTS[0], "r2": INSTANTS[0], "r3": INSTANTS[2], "r4": INSTANTS[2]}
any_rotation = st.builds(
    RotationRecord,
    id=st.sampled_from(("r1", "r2", "r3", "r4")),
    key=keys,
    target=st.sampled_from(NAMES),
    trigger=st.sampled_from(TRIGGERS),
    actor=st.just("host:1"),
    step=st.sampled_from(Step),
    outcome=st.sampled_from(Outcome),
    token_name=st.just("app-20261125-abcdef01"),
    requested_expiry=st.just(date(2026, 12, 25)),
    planned_at=st.sampled_from(INSTANTS),
    error=st.sampled_from(SECRET_TEXT),
)
rotations = st.tuples(any_rotation, st.booleans()).map(
    lambda drawn: replace(drawn[0], planned_at=PLANNED[drawn[0].id]) if drawn[1] else drawn[0]
)
tokens = st.builds(
    TokenRecord,
    key=keys,
    token_id=st.integers(1, 3),
    name=st.just("t"),
    origin=st.sampled_from(Origin),
    role=st.sampled_from(Role),
    expires_at=st.none(),
    evidence=st.sampled_from(SECRET_TEXT),
)
states = st.builds(
    TargetState,
    key=keys,
    name=st.sampled_from(NAMES),
    failures=st.integers(0, 3),
    last_error=st.sampled_from(SECRET_TEXT),
)
stones = st.builds(Tombstone, key=keys, name=st.sampled_from(NAMES), until=st.sampled_from(INSTANTS))
changes = st.builds(
    Change,
    rotation=st.none() | rotations,
    tokens=st.lists(tokens, max_size=2).map(tuple),
    target=st.none() | states,
    tombstones=st.lists(stones, max_size=2).map(tuple),
    drop_tombstones=st.lists(st.sampled_from(NAMES), max_size=2).map(tuple),
)
unresolved = st.builds(
    UnresolvedProject,
    gitlab_url=st.sampled_from(URLS),
    project=st.sampled_from(PATHS),
    since=st.sampled_from(INSTANTS),
    at=st.sampled_from(INSTANTS),
    failures=st.integers(1, 3),
    status=st.sampled_from((404, None)),
    error=st.sampled_from(("gone", "401 for glpat-A1b2C3d4E5f6G7h8I9j0")),
)


def _outcome(journal: Journal, call: str, *args: object) -> object:
    """What the call returned, or the type of error it raised (the message may differ)."""
    try:
        return getattr(journal, call)(*args)
    except LeaseLostError:
        return LeaseLostError


class SameAnswers(RuleBasedStateMachine):
    """The memory journal and a durable one, driven in step; any difference in any answer fails."""

    def __init__(self, durable: Callable[[], Journal]) -> None:
        """Two empty stores, a clock at NOW, no lease handed out yet."""
        super().__init__()
        self.memory = MemoryJournal()
        self.sqlite = durable()
        self.now = NOW
        self.leases: list[Lease] = []

    def teardown(self) -> None:
        """Close both stores."""
        self.memory.close()
        self.sqlite.close()

    def _lease(self, data: st.DataObject) -> Lease:
        """One of the leases handed out: as often the newest (likely current) as any (likely stale)."""
        return data.draw(st.sampled_from(self.leases[-1:]) | st.sampled_from(self.leases))

    def _both(self, call: str, *args: object) -> object:
        mine = _outcome(self.memory, call, *args)
        theirs = _outcome(self.sqlite, call, *args)
        assert mine == theirs, (call, args)
        return mine

    @rule(step=st.sampled_from((timedelta(0), timedelta(seconds=1), TTL, TTL * 2)))
    def tick(self, step: timedelta) -> None:
        """The clock moves on (or stands still)."""
        self.now += step

    @rule(key=keys, name=st.sampled_from(NAMES), holder=st.sampled_from(HOLDERS))
    def acquire(self, key: TargetKey, name: str, holder: str) -> None:
        """Both stores hand out (or refuse) the same lease."""
        lease = self._both("acquire", key, name, holder, self.now, TTL)
        if isinstance(lease, Lease):
            self.leases.append(lease)

    @rule(key=keys, name=st.sampled_from(NAMES), holder=st.sampled_from(HOLDERS))
    def acquire_reading(self, key: TargetKey, name: str, holder: str) -> None:
        """Both stores hand out (or refuse) the same lease, with the same records."""
        taken = self._both("acquire_reading", key, name, holder, self.now, TTL)
        if isinstance(taken, tuple):
            self.leases.append(taken[0])

    @precondition(lambda self: self.leases)
    @rule(holder=st.sampled_from(HOLDERS), early=st.sampled_from((timedelta(0), timedelta(microseconds=1))))
    def acquire_at_expiry(self, holder: str, early: timedelta) -> None:
        """Another worker tries the newest lease's key at its expiry instant, or just before."""
        lease = self.leases[-1]
        self.now = max(self.now, lease.expires - early)
        self.acquire(lease.key, NAMES[0], holder)

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        """Renewing any lease handed out, current or stale."""
        lease = self._lease(data)
        renewed = self._both("renew", lease, self.now, TTL)
        if isinstance(renewed, Lease):
            self.leases.append(renewed)

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Releasing any lease handed out."""
        self._both("release", self._lease(data))

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), change=changes)
    def write(self, data: st.DataObject, change: Change) -> None:
        """A write under any lease handed out; its records mostly of the lease's key."""
        lease = self._lease(data)
        if data.draw(st.booleans()):  # the engine's way: every record under the lease's own key
            change = replace(
                change,
                rotation=change.rotation and replace(change.rotation, key=lease.key),
                tokens=tuple(replace(t, key=lease.key) for t in change.tokens),
                target=change.target and replace(change.target, key=lease.key),
                tombstones=tuple(replace(s, key=lease.key) for s in change.tombstones),
            )
        self._both("write", lease, change)

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), change=changes)
    def write_renewing(self, data: st.DataObject, change: Change) -> None:
        """A write carrying its lease's renewal, under any lease handed out: both stores, or neither."""
        lease = self._lease(data)
        change = replace(
            change,
            rotation=change.rotation and replace(change.rotation, key=lease.key),
            tokens=tuple(replace(t, key=lease.key) for t in change.tokens),
        )
        answer = self._both("write_renewing", lease, change, self.now, TTL)
        if isinstance(answer, tuple):
            self.leases.append(answer[1])

    @precondition(lambda self: self.leases)
    @rule(
        rotation_id=st.sampled_from(sorted(PLANNED)),
        outcome=st.sampled_from((Outcome.IN_PROGRESS, Outcome.SUCCEEDED)),
        trigger=st.sampled_from(TRIGGERS),
    )
    def step_rotation(self, rotation_id: str, outcome: Outcome, trigger: str) -> None:
        """The engine's commonest write: a rotation of the newest lease's key, at its planned time."""
        lease = self.leases[-1]
        record = RotationRecord(
            id=rotation_id,
            key=lease.key,
            target=NAMES[0],
            trigger=trigger,
            actor="host:1",
            step=Step.PLANNED,
            outcome=outcome,
            token_name="app-20261125-abcdef01",
            requested_expiry=date(2026, 12, 25),
            planned_at=PLANNED[rotation_id],
        )
        self._both("write", lease, Change(rotation=record))

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), note=st.sampled_from(SECRET_TEXT[:2]))
    def forget(self, data: st.DataObject, note: str) -> None:
        """Forgetting a key under any lease handed out."""
        self._both("forget", self._lease(data), note)

    @rule(url=st.sampled_from(URLS), path=st.sampled_from(PATHS), project_id=st.integers(1, 3))
    def remember_project(self, url: str, path: str, project_id: int) -> None:
        """A path resolves."""
        self._both("remember_project", url, path, project_id)

    @rule(record=unresolved)
    def record_unresolved(self, record: UnresolvedProject) -> None:
        """A path fails to resolve."""
        self._both("record_unresolved", record)

    @invariant()
    def every_read_agrees(self) -> None:
        """Every read gives both stores' answers equal."""
        both = self._both
        both("targets")
        both("rotations", None, 20)
        both("rotations", None, 2)
        for key in KEYS:
            for call in ("target", "tokens", "tombstones", "unfinished", "records"):
                both(call, key)
            for limit in (0, 1, 20):
                both("rotations", key, limit)
            for triggers in ((), TRIGGERS[:1], TRIGGERS[1:], TRIGGERS):
                both("last_rotation", key, set(triggers))
        for url in URLS:
            both("project_ids", url)
            for token_id in (1, 2, 3):
                both("owners", url, token_id)
            for path in PATHS:
                both("project_id", url, path)
                both("unresolved", url, path)
        pairs = [(key, name) for key in KEYS for name in NAMES]
        for limit in (1, 5):
            both("rotations_of", pairs, limit)
            both("rotations_of", pairs[::3], limit)
        mine, theirs = self.memory.recorded_names(), self.sqlite.recorded_names()
        assert len(mine) == len(set(mine))
        assert len(theirs) == len(set(theirs))
        assert set(mine) == set(theirs)  # in no particular order


# No shrinking: the reads after every step make each run costly, and Hypothesis would shrink for up
# to five minutes. A failure prints its steps as run (at most 30); add Phase.shrink to shrink one.
def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )


def _machine(durable: Callable[[], Journal]) -> type[SameAnswers]:
    """SameAnswers against ``durable`` (Hypothesis builds the machine from a class that takes no argument)."""

    class Machine(SameAnswers):
        def __init__(self) -> None:
            super().__init__(durable)

    return Machine


def test_sqlite_gives_the_reference_answers() -> None:
    """Memory and SQLite agree on every answer, whatever the sequence of operations."""
    run_state_machine_as_test(_machine(lambda: SQLiteJournal(Path(":memory:"))), settings=_settings(100))


def emptied(url: str) -> Journal:
    """A handle on the PostgreSQL schema at ``url``, emptied first (a fresh schema per example costs more)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE leases, targets, rotations, tokens, tombstones, projects, unresolved")
    return ClockedJournal(url)


def test_postgres_gives_the_reference_answers() -> None:
    """Memory and PostgreSQL agree on every answer (fewer examples: each read is a round trip)."""
    with fresh_schema() as url:
        add_test_clock(url)
        PostgresJournal(url).close()  # the schema, so that each example can empty it
        run_state_machine_as_test(_machine(lambda: emptied(url)), settings=_settings(15))
