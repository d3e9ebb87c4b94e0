"""The daemon's view of its journal: read-only, unreachable, and what /readyz and /metrics then say."""

import threading
import time

from pathlib import Path

import psycopg
import pytest

from prometheus_client import generate_latest

from rotator.adapters.metrics import Metrics, TargetGauges
from rotator.core.model import TargetState
from rotator.doors import wiring
from rotator.doors.daemon import Daemon
from rotator.doors.journal_health import JournalHealth, bounded_gauges
from rotator.engine.run import RunOptions
from rotator.journal.memory import MemoryJournal
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import Fakes
from tests.cli_harness import Harness
from tests.postgres import end_sessions, fresh_database


def _scrape(metrics: Metrics) -> dict[str, float]:
    """Every sample of the registry, keyed ``name{label values}``."""
    return {
        f"{s.name}{{{','.join(s.labels.values())}}}": s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }


def test_a_read_only_postgresql_journal_is_not_ready_and_a_run_says_so_sending_nothing(
    fakes: Fakes, tmp_path: Path
) -> None:
    """A read-only database: not ready (read-only), journal_up 0, a forced run fails in one line, no call."""
    with fresh_database() as url:
        harness = Harness(fakes, tmp_path)
        harness.state_url = url
        harness.write_config()
        config = wiring.load(str(tmp_path / "rotator.yaml"), fakes.seed.environment())
        metrics = Metrics()
        rt = wiring.build(config, fakes.seed.environment(), observers=(metrics,))
        try:
            # The project paths resolved while writable, as any earlier run would have done.
            for target in rt.engine.spec.targets:
                rt.engine.key(target, resolve=True)
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on".encode())
                # As after a failover: the pool replaces its dropped connections, which now start
                # read-only (once they are gone: ending a session only signals it).
                end_sessions(admin, name)
            daemon = Daemon(rt, metrics, trigger_enabled=False)
            ready, body = daemon.readiness()
            assert (ready, body["journal"]) == (False, "read-only")
            samples = _scrape(metrics)
            assert samples["rotator_journal_up{}"] == 0
            assert samples["rotator_journal_unavailable{read_only}"] == 1
            assert samples["rotator_journal_unavailable{unreachable}"] == 0
            assert "rotator_failing{app-deploy}" in samples  # reads still work: the gauges stay
            calls = harness.calls()
            target = rt.engine.spec.targets[0]
            report = rt.engine.run_target(target, RunOptions(names=(target.name,), force=True, trigger="cli"))
            assert report.status == "failed"
            assert report.detail.startswith(
                "app-deploy: state.url: the journal's database at 127.0.0.1:5432 refuses writes ("
            )
            assert report.detail.endswith("point state.url at the primary")
            assert harness.calls() == calls
        finally:
            rt.close()


class _Stuck(MemoryJournal):
    """A journal whose reads wait until released, as on a database that stopped answering."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.reads = 0

    def targets(self) -> list[TargetState]:
        """Wait for :attr:`released`, then read."""
        self.reads += 1
        self.released.wait(30)
        return super().targets()


def test_a_journal_that_does_not_answer_is_unreachable_within_the_deadline_once_per_scrape() -> None:
    """A hung read: the scrape answers at the deadline, journal_up 0, no per-target gauge, one read only."""
    now = [0.0]
    journal = _Stuck()
    health = JournalHealth(journal, deadline=0.2, fresh=2, clock=lambda: now[0])
    metrics = Metrics()
    metrics.watch_journal(health.reason)
    row = TargetGauges("t", None, None, None, drift=False, failing=False)
    metrics.watch_targets(bounded_gauges(health, lambda: [row]))
    started = time.monotonic()
    text = generate_latest(metrics.registry).decode()
    assert time.monotonic() - started < 1  # one deadline, not one per family
    assert "rotator_journal_up 0.0" in text
    assert 'rotator_journal_unavailable{reason="unreachable"} 1.0' in text
    assert "rotator_failing{" not in text
    assert health.state() == "unreachable (no answer within 0.2 s)"
    now[0] += 3
    assert health.state().startswith("unreachable")  # still the read in flight: no second one
    assert journal.reads == 1
    journal.released.set()
    now[0] += 3
    assert health.state() == "ok"
    assert _scrape(metrics)["rotator_failing{t}"] == 0


@pytest.mark.parametrize("read_only", [False, True])
def test_sqlite_is_writable_unless_opened_read_only(tmp_path: Path, *, read_only: bool) -> None:
    """Journal.writable: SQLite opened to write is, opened read-only is not; memory always is."""
    SQLiteJournal(tmp_path / "state.db").close()
    journal = SQLiteJournal(tmp_path / "state.db", read_only=read_only)
    try:
        assert journal.writable() is not read_only
    finally:
        journal.close()
    assert MemoryJournal().writable()
