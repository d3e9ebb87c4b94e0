"""Regressions from recovery work: lost DELETEs and creates, unknown and refused pushes, backoff.

Crashes at every step live in ``tests/faults/``.
"""

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness


pytestmark = pytest.mark.slow
CRASHED = 70
DELETE = "DELETE /api/v4/projects/:id/access_tokens/:token_id"
CREATE = "POST /api/v4/projects/:id/access_tokens"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """One target (app-deploy), grace 1h."""
    return Harness(fakes, tmp_path, targets=1)


def _invariant(h: Harness) -> None:
    """Infisical holds a live token; active ≤ 1 + pending revokes + possibly held, never more than 3."""
    assert h.held_works(0)
    target = h.run("status", "--json").json()["targets"][0]
    allowed = 1 + len(target["pending_revokes"]) + len(target["possibly_held"])
    assert len(h.active_tokens(0)) <= min(allowed, 3)


def _lease_expires(h: Harness) -> None:
    """The crashed run's lease (10 minutes) must lapse before another run may act: the next CronJob run."""
    h.fakes.clock.advance(timedelta(minutes=11))


def _after_grace_exactly_one(h: Harness) -> None:
    h.fakes.clock.advance(timedelta(minutes=61))
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert h.held_works(0)
    assert len(h.active_tokens(0)) == 1


@pytest.mark.parametrize("fault", ["drop_before", "drop_after"])
def test_a_delete_lost_before_or_after_applying_still_converges(h: Harness, fault: str) -> None:
    """A DELETE whose connection drops, before or after GitLab applied it, is retried and proven."""
    assert h.run("run-once").code == 0
    h.fakes.clock.advance(timedelta(minutes=61))
    getattr(h.fakes.gitlab.faults, fault)(DELETE)
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert len(h.active_tokens(0)) == 1
    evidence = h.run("history", "--json").json()[0]["retired"][0]["evidence"]
    assert evidence.startswith("DELETE")


def test_a_create_whose_answer_is_lost_is_found_by_name_and_revoked(h: Harness) -> None:
    """GitLab creates the token but the answer is lost: no retry, the token is found and revoked."""
    h.fakes.gitlab.faults.drop_after(CREATE)
    failed = h.run("run-once")
    assert failed.code == 1
    assert h.fakes.gitlab.call_counts(user_agent="rotator/")[CREATE] == 1
    assert h.active_tokens(0) == [h.fakes.seed.adopt_token_ids[0]]
    assert h.held_works(0)
    forced = h.run("rotate", "app-deploy")
    assert forced.code == 0, forced.stdout + forced.stderr
    _after_grace_exactly_one(h)


def test_an_unknown_push_rolls_forward_in_the_same_run(h: Harness) -> None:
    """Every PATCH attempt of the first push fails with 500: a fresh rotation follows at once and succeeds."""
    h.fakes.infisical.faults.fail(PATCH, 500, times=5)
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    _invariant(h)
    history = h.run("history", "--json").json()
    assert [r["outcome"] for r in history] == ["succeeded", "superseded"]
    _after_grace_exactly_one(h)


def test_a_refused_push_revokes_the_new_token_at_once(h: Harness) -> None:
    """A 400 before storage: the new token is revoked now, the old stays held, the run exits 1."""
    h.fakes.infisical.faults.fail(PATCH, 400)
    result = h.run("run-once")
    assert result.code == 1
    assert h.active_tokens(0) == [h.fakes.seed.adopt_token_ids[0]]
    assert h.held_works(0)
    assert h.run("history", "--json").json()[0]["outcome"] == "failed"


def test_a_possibly_held_token_outlives_a_zero_grace(h: Harness) -> None:
    """With grace 0s, a token whose PATCH outcome was unknown is not revoked in the same run, but later."""
    h.write_config(targets=1, grace="0s")
    h.fakes.infisical.faults.fail(PATCH, 500, times=5)
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    history = h.run("history", "--json").json()
    lost = history[1]["new_token_id"]
    assert lost in h.active_tokens(0)
    assert h.fakes.seed.adopt_token_ids[0] not in h.active_tokens(0)
    assert h.run("run-once").code == 0
    assert lost in h.active_tokens(0)
    h.fakes.clock.advance(timedelta(minutes=16))
    assert h.run("run-once").code == 0
    assert len(h.active_tokens(0)) == 1
    assert h.held_works(0)


def test_a_failed_forced_rotation_keeps_exiting_1_while_backing_off(h: Harness) -> None:
    """After a failure, later runs exit 1 (backing off) even though nothing is due; status agrees."""
    h.write_config(targets=1, grace="0s")
    assert h.run("run-once").code == 0
    h.fakes.infisical.faults.fail(PATCH, 400)
    assert h.run("rotate", "app-deploy").code == 1
    later = h.run("run-once")
    assert later.code == 1
    assert "backing off" in later.stdout
    assert h.run("plan").code == 1
    assert h.run("status").code == 1
    assert h.run("rotate", "app-deploy").code == 0
    assert h.run("run-once").code == 0


def _use_old_token_after_retirement(h: Harness) -> None:
    """Rotate, then let a consumer use the old token 20 minutes later, then let grace pass."""
    assert h.run("run-once").code == 0
    h.fakes.clock.advance(timedelta(minutes=20))
    old = h.fakes.gitlab.test_only_token(h.fakes.seed.adopt_token_ids[0]).value
    assert (
        httpx.get(
            f"{h.fakes.seed.gitlab_url}/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": old}
        ).status_code
        == 200
    )
    h.fakes.clock.advance(timedelta(minutes=41))


def test_an_old_token_used_after_retirement_is_held_until_revoke_anyway(h: Harness) -> None:
    """Rule 2: GitLab saw the old token used after it was retired: no revoke, exit 1, until told."""
    _use_old_token_after_retirement(h)
    held = h.run("run-once")
    assert held.code == 1
    assert "revoke held" in held.stdout
    assert h.fakes.seed.adopt_token_ids[0] in h.active_tokens(0)
    assert h.run("rotate", "app-deploy", "--revoke-anyway").code == 0
    assert h.fakes.seed.adopt_token_ids[0] not in h.active_tokens(0)


def test_a_stray_404_on_the_usage_read_still_holds_a_used_token(h: Harness) -> None:
    """One 404 on the pre-revoke read is checked again in a listing; the used token is held, not revoked."""
    _use_old_token_after_retirement(h)
    h.fakes.gitlab.faults.fail("GET /api/v4/projects/:id/access_tokens/:token_id", 404)
    held = h.run("run-once")
    assert held.code == 1, held.stdout
    assert "revoke held" in held.stdout
    assert h.fakes.seed.adopt_token_ids[0] in h.active_tokens(0)
