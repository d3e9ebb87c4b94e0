"""Issue 14 item 3: a manager who lost access to the project never records a live token as revoked."""

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.testing import Fakes
from tests.cli_harness import Harness


pytestmark = pytest.mark.slow

MANAGER = "rotator-manager"
MAINTAINER = 40


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """One target against the fakes."""
    harness = Harness(fakes, tmp_path)
    harness.write_config(targets=1)
    return harness


def _lose_access(h: Harness, *, restore: bool = False) -> None:
    h.fakes.gitlab.set_project_role(h.fakes.seed.project_ids[0], MANAGER, MAINTAINER if restore else None)


def test_project_not_found_is_not_revoke_evidence(h: Harness) -> None:
    """Manager removed in grace: the old token stays pending, "no access", exit 1, until access returns."""
    h.write_config(targets=1, grace="10m")  # inside the still-in-use margin: straight to the DELETE
    adopted = h.fakes.seed.adopt_token_ids[0]
    assert h.run("run-once").code == 0
    _lose_access(h)
    h.fakes.clock.advance(timedelta(minutes=11))
    lost = h.run("run-once")
    assert lost.code == 1, lost.stdout + lost.stderr
    assert "no access" in lost.stdout
    assert adopted in h.active_tokens(0)
    status = h.run("status", "--json")
    assert status.code == 1
    row = status.json()["targets"][0]
    assert row["pending_revokes"][0]["token_id"] == adopted
    assert row["pending_revokes"][0]["no_access_since"]
    assert "no access" in row["failing_reason"]
    assert "NO ACCESS" in h.run("status").stdout
    _lose_access(h, restore=True)
    back = h.run("run-once")
    assert back.code == 0, back.stdout + back.stderr
    assert adopted not in h.active_tokens(0)
    retired = h.run("history", "--json").json()[0]["retired"][0]
    assert (retired["token_id"], retired["evidence"]) == (adopted, "DELETE 204")
    assert h.run("status").code == 0


def test_a_token_that_expires_without_access_is_abandoned_not_revoked(h: Harness) -> None:
    """No access until the old token's expiry: recorded expired (abandoned), dropped from pending, exit 0."""
    h.write_config(
        targets=1, token={"scopes": ["api"], "lifetime": "90d"}
    )  # the new token is not due for 60 days
    adopted = h.fakes.seed.adopt_token_ids[0]
    assert h.run("run-once").code == 0
    _lose_access(h)
    h.fakes.clock.advance(timedelta(minutes=61))  # past grace and the still-in-use margin
    assert h.run("run-once").code == 1
    assert adopted in h.active_tokens(0)
    h.fakes.clock.advance(timedelta(days=30))  # the adopted token's expires_at has passed
    expired = h.run("run-once")
    assert expired.code == 0, expired.stdout + expired.stderr
    status = h.run("status", "--json")
    assert status.code == 0
    assert status.json()["targets"][0]["pending_revokes"] == []
    retired = h.run("history", "--json").json()[0]["retired"][0]
    assert retired["token_id"] == adopted
    assert retired["revoked_at"] is None
    assert "expired" in retired["evidence"]
    assert "not revoked" in retired["evidence"]


def test_a_candidate_rolled_back_without_access_is_kept_until_revoked(h: Harness) -> None:
    """A crash at CREATED, then no access: the never-pushed candidate stays tracked and is revoked later."""
    assert h.run("run-once", crash_after="CREATED").code != 0
    candidate = max(h.active_tokens(0))
    _lose_access(h)
    h.fakes.clock.advance(timedelta(minutes=11))  # the crashed run's lease has expired
    lost = h.run("run-once")
    assert lost.code == 1, lost.stdout + lost.stderr
    assert candidate in h.active_tokens(0)
    pending = h.run("status", "--json").json()["targets"][0]["pending_revokes"]
    assert [(p["token_id"], bool(p["no_access_since"])) for p in pending] == [(candidate, True)]
    _lose_access(h, restore=True)
    h.fakes.clock.advance(timedelta(minutes=6))  # past the failed create's backoff (5 minutes)
    back = h.run("run-once")
    assert back.code == 0, back.stdout + back.stderr
    assert candidate not in h.active_tokens(0)


def test_a_404_for_the_token_from_a_readable_project_is_still_evidence(h: Harness) -> None:
    """A token GitLab no longer knows, in a project the manager reads, counts as revoked (kept behaviour)."""
    adopted = h.fakes.seed.adopt_token_ids[0]
    assert h.run("run-once").code == 0
    with h.fakes.gitlab.lock:  # gone with its bot user, as when GitLab deletes the user
        del h.fakes.gitlab.state.tokens[adopted]
    h.fakes.clock.advance(timedelta(minutes=61))
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    retired = h.run("history", "--json").json()[0]["retired"][0]
    assert retired["token_id"] == adopted
    assert retired["evidence"].startswith("DELETE 404, then 404 on read")
