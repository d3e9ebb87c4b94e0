"""The read-through view applies its own writes: what it serves equals a fresh read, on every store.

:class:`rotator.engine.readthrough.ReadThrough` keeps a leased key's four records and, on a write
through it, applies the change as the store answers it stored it instead of reading again. A
Hypothesis state machine drives a view over each store with writes of every kind (under the key's
lease; under another key's, which forgets everything; ones whose answer is lost, landed or not),
reads of any of the four at any time (so any part may be kept when a write comes) and drops; every
answer the view gives, and every full set it keeps, must equal what the store gives afresh.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from rotator.core.errors import JournalUnavailableError
from rotator.core.model import Change, Lease, TargetKey
from rotator.core.ports import Journal
from rotator.engine.readthrough import ReadThrough
from rotator.journal.memory import MemoryJournal
from rotator.journal.postgres import PostgresJournal
from rotator.journal.sqlite import SQLiteJournal
from tests.journal.samples import NOW
from tests.journal.stores import add_test_clock
from tests.journal.test_differential import KEYS, TTL, changes, emptied
from tests.postgres import fresh_schema


KEY, OTHER = KEYS[0], KEYS[1]
READS = ("target", "tokens", "unfinished", "tombstones", "records")


def _keyed(change: Change, key: TargetKey) -> Change:
    """``change`` with every record under ``key`` (the engine's way)."""
    return replace(
        change,
        rotation=change.rotation and replace(change.rotation, key=key),
        tokens=tuple(replace(t, key=key) for t in change.tokens),
        target=change.target and replace(change.target, key=key),
        tombstones=tuple(replace(s, key=key) for s in change.tombstones),
    )


class _LostAnswers:
    """A journal whose next write's answer is lost: it raises after the write landed, or before."""

    def __init__(self, store: Journal) -> None:
        self.store = store
        self.lose: bool | None = None  # None: answer; True: land, then raise; False: raise only

    def write(self, lease: Lease, change: Change) -> Change:
        lose, self.lose = self.lose, None
        if lose is False:
            raise JournalUnavailableError("state.url", "the connection dropped before the write (test)")
        stored = self.store.write(lease, change)
        if lose:
            raise JournalUnavailableError("state.url", "the connection dropped after the commit (test)")
        return stored

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


class ViewEqualsStore(RuleBasedStateMachine):
    """A view on ``KEY`` over a store, its lease held; whatever it serves must be the store's answer."""

    def __init__(self, open_store: Callable[[], Journal]) -> None:
        """An empty store with ``KEY`` and ``OTHER`` leased; a view on ``KEY`` that has read nothing."""
        super().__init__()
        self.store = open_store()
        self.lossy = _LostAnswers(self.store)
        lease, other = (self.store.acquire(key, "app", "w1", NOW, TTL) for key in (KEY, OTHER))
        assert lease is not None
        assert other is not None
        self.lease, self.other = lease, other
        self.view = ReadThrough(self.lossy, KEY)  # type: ignore[arg-type]  # a journal by delegation

    def teardown(self) -> None:
        """Close the store."""
        self.store.close()

    @rule(change=changes, own_keys=st.booleans())
    def write(self, change: Change, own_keys: bool) -> None:
        """A write under the key's lease (its records mostly under the key, as the engine writes them)."""
        self.view.write(self.lease, _keyed(change, KEY) if own_keys else change)

    @rule(change=changes)
    def write_renewing(self, change: Change) -> None:
        """A write carrying the lease's renewal (before a mutation): applied as a write is."""
        _, renewed = self.view.write_renewing(self.lease, _keyed(change, KEY), NOW, TTL)
        assert (renewed.holder, renewed.fence) == (self.lease.holder, self.lease.fence)

    @rule(change=changes, landed=st.booleans())
    def write_answer_lost(self, change: Change, landed: bool) -> None:
        """A write whose answer never comes back: it may have landed or not."""
        self.lossy.lose = landed
        with pytest.raises(JournalUnavailableError):
            self.view.write(self.lease, _keyed(change, KEY))

    @rule(change=changes, through_view=st.booleans())
    def write_other_key(self, change: Change, through_view: bool) -> None:
        """Another key's write: through the view (which then forgets all), or another run's.

        Its rotation's id is its own: ids are drawn at random (a uuid4), and a rotation written
        under another lease moves to that key, which only a reused id could do to this key's.
        """
        other = _keyed(change, OTHER)
        if other.rotation is not None:
            other = replace(other, rotation=replace(other.rotation, id=f"other-{other.rotation.id}"))
        writer: Journal = self.view if through_view else self.store  # type: ignore[assignment]
        writer.write(self.other, other)

    @rule(what=st.sampled_from(READS))
    def read(self, what: str) -> None:
        """One read through the view: the store's answer, whether kept or fetched now."""
        assert getattr(self.view, what)(KEY) == getattr(self.store, what)(KEY), what

    @rule()
    def drop(self) -> None:
        """The view forgets everything (as when the lease is lost)."""
        self.view.drop()

    @invariant()
    def kept_is_the_store(self) -> None:
        """A full set kept (read nothing to tell) is what the store holds now."""
        kept = self.view.kept()
        assert kept is None or kept == self.store.records(KEY)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    )


def _machine(open_store: Callable[[], Journal]) -> type[ViewEqualsStore]:
    class Machine(ViewEqualsStore):
        def __init__(self) -> None:
            super().__init__(open_store)

    return Machine


def test_the_view_equals_a_fresh_read_on_the_memory_store() -> None:
    """The reference store: after any sequence of writes, the view serves what a read gives."""
    run_state_machine_as_test(_machine(MemoryJournal), settings=_settings(200))


def test_the_view_equals_a_fresh_read_on_sqlite() -> None:
    """SQLite: what the view keeps after its writes is what the file gives back (redaction, times)."""
    run_state_machine_as_test(_machine(lambda: SQLiteJournal(Path(":memory:"))), settings=_settings(100))


def test_the_view_equals_a_fresh_read_on_postgres() -> None:
    """PostgreSQL: the same (fewer examples: each read is a round trip)."""
    with fresh_schema() as url:
        add_test_clock(url)
        PostgresJournal(url).close()  # the schema, so that each example can empty it
        run_state_machine_as_test(_machine(lambda: emptied(url)), settings=_settings(25))
