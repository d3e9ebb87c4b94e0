"""Two rotator processes on one state file: one rotation per target, no double revoke, nothing lost."""

import time

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import UA
from tests.faults import ledger
from tests.faults.calls import CREATE, DELETE, PATCH
from tests.faults.campaign import Case


pytestmark = pytest.mark.slow


def _wait_for(predicate: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _creates(fakes: Fakes) -> Counter[str | None]:
    return Counter(c.name for c in fakes.gitlab.calls(CREATE, user_agent=UA))


def _deletes(fakes: Fakes) -> Counter[str]:
    return Counter(c.path for c in fakes.gitlab.calls(DELETE, user_agent=UA) if c.status == 204)


def _journal_matches_creates(case: Case) -> None:
    """Every create GitLab saw has exactly one rotation in the journal, none left unfinished."""
    history = case.journal()["history"]
    assert len(history) == sum(_creates(case.fakes).values())
    assert all(r["outcome"] != "in_progress" for r in history)


def test_two_run_once_at_the_same_time_rotate_each_target_once(fakes: Fakes, tmp_path: Path) -> None:
    """Two simultaneous run-once processes: one create per target, one DELETE per old token, both exit 0."""
    case = Case(fakes, tmp_path, targets=2)
    fakes.gitlab.faults.set_latency(CREATE, 0.5)
    first, second = case.start("run-once"), case.start("run-once")
    results = [case.finish(first), case.finish(second)]
    assert [r.code for r in results] == [0, 0], results
    assert len(_creates(fakes)) == 2
    assert all(n == 1 for n in _creates(fakes).values())
    _journal_matches_creates(case)
    fakes.clock.advance(timedelta(minutes=61))
    fakes.gitlab.faults.set_latency(DELETE, 0.5)
    first, second = case.start("run-once"), case.start("run-once")
    assert [case.finish(first).code, case.finish(second).code] == [0, 0]
    assert sorted(_deletes(fakes).values()) == [1, 1], _deletes(fakes)
    ledger.count("runs", 2)
    case.converge()
    _journal_matches_creates(case)


def test_a_rotate_while_a_scheduled_rotation_runs_is_refused_as_busy(fakes: Fakes, tmp_path: Path) -> None:
    """`rotate` during run-once's rotation of the same target does not start a second one."""
    case = Case(fakes, tmp_path)
    # Long enough that the second process surely starts while the first still holds the target.
    slow_patch = fakes.infisical.faults.delay(PATCH, 8.0)
    scheduled = case.start("run-once")
    _wait_for(slow_patch.reached.is_set)
    forced = case.run("rotate", "app-deploy")
    done = case.finish(scheduled)
    assert done.code == 0, done.stdout + done.stderr
    assert "busy" in forced.stdout, forced.stdout
    assert sum(_creates(fakes).values()) == 1
    _journal_matches_creates(case)
    case.converge()


def test_many_processes_racing_for_one_target_make_one_rotation(fakes: Fakes, tmp_path: Path) -> None:
    """Four processes forcing the same target at once: exactly one rotation, every other run is busy."""
    case = Case(fakes, tmp_path, grace="0s")
    assert case.run("run-once").code == 0
    before = sum(_creates(fakes).values())
    fakes.gitlab.faults.delay(CREATE, 8.0)  # the winner's create: every other racer starts meanwhile
    racers = [case.start("rotate", "app-deploy") for _ in range(4)]
    results = [case.finish(p) for p in racers]
    assert sum(_creates(fakes).values()) == before + 1
    assert sum("busy" in r.stdout for r in results) == 3, [r.stdout for r in results]
    _journal_matches_creates(case)
    case.converge()
