"""Other replicas' releases (:mod:`rotator.doors.releases`): told of one, a replica plans instead of checking.

Two :class:`Daemon` objects in this process on one :class:`MemoryJournal` (its release feed is the
port's, as PostgreSQL's is; ``tests/journal/test_release_feed.py`` runs both), each with an actor of
its own as two processes would have; their schedulers are not started: the test fires the jobs.
"""

import threading
import time

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import structlog
import yaml

from rotator.adapters.metrics import Metrics
from rotator.core.ports import Journal, Released
from rotator.doors import releases, wiring
from rotator.doors.daemon import Daemon
from rotator.engine.run import Engine, RunOptions
from rotator.journal.memory import MemoryJournal
from rotator.testing import Fakes
from tests.cli_harness import MUTATIONS, UA, Harness


def _replica(config_path: Path, environ: dict[str, str], journal: Journal, actor: str) -> Daemon:
    """A daemon built as ``rotator daemon`` builds it, on ``journal``, its runs held as ``actor``."""
    config = wiring.load(str(config_path), environ)
    rt = wiring.build(config, environ, journal="scratch")
    rt.journal.close()
    rt.journal = journal
    rt.engine = Engine(rt.engine.spec, replace(rt.engine.ctx, journal=journal, actor=actor))
    return Daemon(rt, Metrics(), trigger_enabled=False)


@pytest.fixture
def pair(fakes: Fakes, tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    """Two replicas of the example config on one memory journal, as hosts ``a`` and ``b``."""
    Harness(fakes, tmp_path)
    path = tmp_path / "rotator.yaml"
    document = yaml.safe_load(path.read_text())
    document["daemon"] = {"listen": "127.0.0.1:0", "check_interval": "1h", "jitter": "0s"}
    path.write_text(yaml.safe_dump(document))
    journal, environ = MemoryJournal(), dict(fakes.seed.environment())
    made = [_replica(path, environ, journal, actor) for actor in ("a:1", "b:2")]
    try:
        yield made[0], made[1]
    finally:
        for daemon in made:
            daemon.rt.close()


def _forget_calls(fakes: Fakes) -> None:
    fakes.gitlab.reset_calls()
    fakes.infisical.reset_calls()


def _calls(fakes: Fakes) -> list[str]:
    """The routes rotator called on both fakes since they were last forgotten."""
    return [c.route for fake in (fakes.gitlab, fakes.infisical) for c in fake.calls(user_agent=UA)]


def _rotated(daemon: Daemon, fakes: Fakes) -> str:
    """Fire ``daemon``'s check of the first target, which rotates it; its name."""
    name = next(iter(daemon.targets))
    _forget_calls(fakes)
    daemon._scheduled(name)  # noqa: SLF001 - the job the scheduler would fire
    made = [route for route in _calls(fakes) if route in MUTATIONS]
    assert len(made) == 2, "the first check creates and pushes a token"
    return name


def _wake(daemon: Daemon, name: str) -> datetime | None:
    job = daemon.scheduler.get_job(f"wake:{name}")
    return None if job is None else job.trigger.run_date  # a "date" job: one shot at its run_date


def _same_plan(first: datetime | None, second: datetime | None) -> bool:
    """Two plans of one event: each is "now" plus the time left, so they differ by the time between."""
    return first is not None and second is not None and abs(first - second) < timedelta(seconds=1)


def test_told_of_a_release_elsewhere_a_replica_plans_and_skips_its_queued_check(
    pair: tuple[Daemon, Daemon], fakes: Fakes
) -> None:
    """B hears A's release, reads once, plans A's next due time, and its queued check runs nothing."""
    a, b = pair
    feed = b.rt.journal.release_feed()
    assert feed is not None
    name = _rotated(a, fakes)
    told = feed.wait(1.0)
    assert [r.holder.startswith("a:1:") for r in told] == [True]
    assert _wake(b, name) is None
    assert b.releases.heard(told) == [name]
    assert _same_plan(_wake(b, name), _wake(a, name))  # the same records, the same config: the same plan
    with structlog.testing.capture_logs() as logs:
        b._scheduled(name)  # noqa: SLF001 - the check B had queued before it heard
    assert [e["event"] for e in logs] == ["daemon.check_skipped"]
    feed.close()


def test_a_replica_not_told_checks_as_before(pair: tuple[Daemon, Daemon], fakes: Fakes) -> None:
    """Without the feed's word, B's check runs the target (idle: A rotated it), and plans from that."""
    a, b = pair
    name = _rotated(a, fakes)
    _forget_calls(fakes)
    with structlog.testing.capture_logs() as logs:
        b._scheduled(name)  # noqa: SLF001
    assert "daemon.check_skipped" not in [e["event"] for e in logs]
    assert _calls(fakes) == []  # idle: journal only
    assert _same_plan(_wake(b, name), _wake(a, name))


def test_its_own_releases_and_other_keys_are_not_read(pair: tuple[Daemon, Daemon], fakes: Fakes) -> None:
    """A release this replica made, or of a key no configured target has, plans nothing."""
    a, _ = pair
    feed = a.rt.journal.release_feed()
    assert feed is not None
    _rotated(a, fakes)
    told = feed.wait(1.0)
    assert len(told) == 1
    assert a.releases.heard(told) == []
    assert a.releases.heard([Released("https://gitlab.example.com|99|none", "b:2:x")]) == []
    feed.close()


def test_a_reading_goes_stale_and_a_due_time_that_came_since_is_due(
    pair: tuple[Daemon, Daemon], fakes: Fakes
) -> None:
    """A reading stands for ``FRESH_FOR`` only, and never past the next due time it names."""
    a, b = pair
    feed = b.rt.journal.release_feed()
    assert feed is not None
    name = _rotated(a, fakes)
    b.releases.heard(feed.wait(1.0))
    now = b.rt.engine.ctx.clock()
    assert b.releases.quiet(name, now)
    due = _wake(a, name)
    assert due is not None
    assert not b.releases.quiet(name, now + (due - datetime.now(due.tzinfo)) + timedelta(seconds=1))
    clock = [time.monotonic() + releases.FRESH_FOR + 1]
    b.releases._monotonic = lambda: clock[0]  # noqa: SLF001 - time passes without a sleep
    assert not b.releases.quiet(name, now)
    feed.close()


def test_a_run_here_replaces_a_reading_made_on_a_release(pair: tuple[Daemon, Daemon], fakes: Fakes) -> None:
    """Once B runs the target itself (a trigger, a check), what it read then stands, not the release's."""
    a, b = pair
    feed = b.rt.journal.release_feed()
    assert feed is not None
    name = _rotated(a, fakes)
    b.releases.heard(feed.wait(1.0))
    b._execute(b.targets[name], RunOptions(names=(name,), trigger="schedule"))  # noqa: SLF001
    assert not b.releases.quiet(name, b.rt.engine.ctx.clock())
    feed.close()


def test_the_listener_plans_on_its_own_thread_and_ends_with_the_daemon(
    pair: tuple[Daemon, Daemon], fakes: Fakes
) -> None:
    """B's listener hears A's release and plans it; it ends once B drains, closing its feed."""
    a, b = pair
    stopping = threading.Event()
    thread = b.releases.listen(stopping)
    assert thread is not None
    name = _rotated(a, fakes)
    deadline = time.monotonic() + 5
    while _wake(b, name) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _same_plan(_wake(b, name), _wake(a, name))
    stopping.set()
    thread.join(3 * releases.WAIT_S)
    assert not thread.is_alive()
