"""Fleet-wide daemon jobs: two replicas on one journal sweep the removed targets and watch once per interval.

Two :class:`Daemon` objects in this process, each with its own handle on one SQLite journal (as two
processes on one machine, or two replicas on PostgreSQL: the claim is the journal's, whatever the
store), their schedulers not started: the test fires the ``removed`` job itself, on a clock it moves.
"""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from rotator.adapters.metrics import Metrics
from rotator.core.inventory import Inventory, ScopeReport
from rotator.core.ledger import claim_window
from rotator.core.model import Change, Origin, Role, TargetKey, TargetState, TokenRecord
from rotator.core.ports import Journal
from rotator.doors import wiring
from rotator.doors.daemon import Daemon
from rotator.doors.watch import WATCH_JOB, Watching
from rotator.engine.run import Engine
from rotator.journal.memory import MemoryJournal
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import Fakes
from tests.cli_harness import Harness


START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """The journal's clock, moved by the test."""

    def __init__(self) -> None:
        """At :data:`START`."""
        self.at = START

    def __call__(self) -> datetime:
        """The time now."""
        return self.at


def _replica(
    config_path: Path, environ: dict[str, str], journal: Journal, watching: Watching | None = None
) -> Daemon:
    """A daemon built as ``rotator daemon`` builds it, on ``journal`` (not started)."""
    config = wiring.load(str(config_path), environ)
    rt = wiring.build(config, environ, journal="scratch")
    rt.journal.close()
    rt.journal = journal
    rt.engine = Engine(rt.engine.spec, replace(rt.engine.ctx, journal=journal))
    return Daemon(rt, Metrics(), trigger_enabled=False, watching=watching)


@pytest.fixture
def taken() -> list[datetime]:
    """When the replicas' expiry watch took an inventory."""
    return []


@pytest.fixture
def replicas(fakes: Fakes, tmp_path: Path, taken: list[datetime]) -> Iterator[tuple[Daemon, Daemon, Clock]]:
    """Two replicas of the example config (check_interval 1h, no jitter) on one journal, and its clock.

    Both watch, every 6 hours, with an inventory that lists one empty scope (noted in ``taken``).
    """
    Harness(fakes, tmp_path)
    path = tmp_path / "rotator.yaml"
    document = yaml.safe_load(path.read_text())
    document["daemon"] = {"listen": "127.0.0.1:0", "check_interval": "1h", "jitter": "0s"}
    path.write_text(yaml.safe_dump(document))
    clock, environ = Clock(), dict(fakes.seed.environment())
    handles = [SQLiteJournal(tmp_path / "state.db", clock=clock) for _ in range(2)]
    _a_removed_key(handles[0])

    def take() -> Inventory:
        taken.append(clock())
        return Inventory(clock(), (ScopeReport("project:acme/app"),))

    watching = Watching(take, interval=timedelta(hours=6))
    made = [_replica(path, environ, handle, watching) for handle in handles]
    try:
        yield made[0], made[1], clock
    finally:
        for daemon in made:
            daemon.rt.close()


def _a_removed_key(journal: Journal) -> None:
    """A key no configured target maps to, holding its current token (its sweep reports it, sends nothing)."""
    key = TargetKey("https://gitlab.example.com", 99, "11111111-0000-4000-8000-000000000001")
    lease = journal.acquire(key, "old-deploy", "test", START, timedelta(minutes=1))
    assert lease is not None
    token = TokenRecord(key, 41, "t41", Origin.CREATED, Role.CURRENT, date(2027, 1, 1))
    journal.write(lease, Change(tokens=(token,), target=TargetState(key, "old-deploy")))
    journal.release(lease)


def test_two_replicas_sweep_the_removed_targets_once_per_interval(
    replicas: tuple[Daemon, Daemon, Clock],
) -> None:
    """Whichever fires first sweeps; the other does not until the interval has passed; then one does."""
    first, second, clock = replicas
    assert [t.name for t in first.rt.engine.removed_targets()] == ["old-deploy (removed)"]  # work to sweep
    assert [first.sweep_removed(), second.sweep_removed()] == [True, False]
    clock.at = START + timedelta(minutes=30)
    assert [second.sweep_removed(), first.sweep_removed()] == [False, False]
    clock.at = START + timedelta(hours=1)
    assert [second.sweep_removed(), first.sweep_removed()] == [True, False]
    clock.at = START + timedelta(hours=2, seconds=5)
    assert [first.sweep_removed(), second.sweep_removed()] == [True, False]


def test_a_draining_replica_leaves_the_sweep_to_the_others(replicas: tuple[Daemon, Daemon, Clock]) -> None:
    """Stopping takes no turn: the replica still running sweeps."""
    first, second, _ = replicas
    first.draining.set()
    assert [first.sweep_removed(), second.sweep_removed()] == [False, True]


def test_a_claim_holds_about_an_interval_never_so_long_that_a_lone_replica_skips_its_turn() -> None:
    """An early fire (the jitter) finds the claim lapsed: it lasts the interval less the jitter and 1 s."""
    assert claim_window(timedelta(minutes=5), timedelta(seconds=30)) == timedelta(seconds=269)
    assert claim_window(timedelta(hours=1), timedelta(0)) == timedelta(seconds=3599)
    assert claim_window(timedelta(minutes=5), timedelta(hours=1)) == timedelta(seconds=150)


def test_two_replicas_take_the_inventory_once_per_watch_interval(
    replicas: tuple[Daemon, Daemon, Clock], taken: list[datetime]
) -> None:
    """The watch's turn is the fleet's: one replica takes each, none while another's holds."""
    first, second, clock = replicas
    assert [first.run_watch(), second.run_watch()] == [True, False]
    clock.at = START + timedelta(hours=5)
    assert [second.run_watch(), first.run_watch()] == [False, False]
    clock.at = START + timedelta(hours=6)
    assert [second.run_watch(), first.run_watch()] == [True, False]
    assert taken == [START, START + timedelta(hours=6)]


def test_a_draining_replica_leaves_the_watch_to_the_others(
    replicas: tuple[Daemon, Daemon, Clock], taken: list[datetime]
) -> None:
    """Stopping takes no watch turn: the replica still running takes it."""
    first, second, _ = replicas
    first.draining.set()
    assert [first.run_watch(), second.run_watch()] == [False, True]
    assert len(taken) == 1


def test_the_watch_is_a_job_of_its_own_only_when_the_caller_gives_a_provider(
    replicas: tuple[Daemon, Daemon, Clock], tmp_path: Path, fakes: Fakes
) -> None:
    """With a provider: a ``watch`` job at once, every interval, on its own worker; without: no job."""
    first, _, _ = replicas
    first.add_jobs(START)
    job = first.scheduler.get_job(WATCH_JOB)
    assert job is not None
    assert job.executor == "watch"
    assert job.trigger.interval == timedelta(hours=6)
    assert job.next_run_time == START
    bare = _replica(tmp_path / "rotator.yaml", dict(fakes.seed.environment()), MemoryJournal())
    try:
        bare.add_jobs(START)
        assert bare.scheduler.get_job(WATCH_JOB) is None
        assert not bare.run_watch()
    finally:
        bare.rt.close()
