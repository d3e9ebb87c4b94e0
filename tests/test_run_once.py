"""The real CLI as a subprocess against the fakes: rotation, grace, force, dry runs, drift, config errors."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rotator.core.model import Change, Tombstone
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness, patch_by_hand


pytestmark = pytest.mark.slow


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A config for both example targets against the fakes, grace 1h."""
    return Harness(fakes, tmp_path)


def test_first_rotation_adopts_then_revokes_after_grace(h: Harness) -> None:
    """Rotation 1 adopts the held token, keeps it through grace, and revokes it in the first run after."""
    adopted = h.fakes.seed.adopt_token_ids[0]
    first = h.run("run-once")
    assert first.code == 0, first.stderr
    assert h.held_works(0)
    assert h.held_works(1)
    assert adopted in h.active_tokens(0)
    assert len(h.active_tokens(0)) == 2
    status = h.run("status", "--json").json()
    assert status["targets"][0]["pending_revokes"][0]["token_id"] == adopted
    h.fakes.clock.advance(timedelta(minutes=61))
    second = h.run("run-once")
    assert second.code == 0, second.stderr
    assert adopted not in h.active_tokens(0)
    assert len(h.active_tokens(0)) == 1
    assert h.held_works(0)
    history = h.run("history", "--target", "app-deploy", "--json").json()
    assert history[0]["retired"][0]["token_id"] == adopted
    assert history[0]["retired"][0]["evidence"] == "DELETE 204"


def test_grace_zero_rotates_and_revokes_in_one_run_with_six_calls(h: Harness) -> None:
    """With grace 0s one run both rotates and revokes, in exactly the 6 calls of the call budget."""
    h.write_config(targets=1, grace="0s")
    result = h.run("run-once")
    assert result.code == 0, result.stderr
    assert len(h.active_tokens(0)) == 1
    assert h.held_works(0)
    ours = [
        c.route
        for server in (h.fakes.gitlab, h.fakes.infisical)
        for c in server.calls(user_agent="rotator/")
        if "/auth/" not in c.route
    ]
    # The first run also resolves the project path and checks the adopted token: 6 + 2.
    assert len(ours) == 8, ours
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()
    h.fakes.clock.advance(timedelta(days=21))
    again = h.run("run-once")
    assert again.code == 0, again.stderr
    steady = [c.route for s in (h.fakes.gitlab, h.fakes.infisical) for c in s.calls(user_agent="rotator/")]
    assert len([r for r in steady if "/auth/" not in r]) == 6, steady


def test_second_rotation_after_rotate_every(h: Harness) -> None:
    """With rotate_every 7d, a run 7 days later rotates again; a run the day before does not."""
    h.write_config(targets=1, grace="0s", rotate_every="7d")
    assert h.run("run-once").code == 0
    first = set(h.active_tokens(0))
    h.fakes.clock.advance(timedelta(days=6))
    assert "nothing due" in h.run("plan").stdout
    assert h.run("run-once").code == 0
    assert set(h.active_tokens(0)) == first
    h.fakes.clock.advance(timedelta(days=1))
    assert "rotate (rotate-every)" in h.run("plan").stdout
    assert h.run("run-once").code == 0
    assert set(h.active_tokens(0)) != first
    assert len(h.active_tokens(0)) == 1
    assert h.held_works(0)


def test_force_and_rotate_rotate_a_target_that_is_not_due(h: Harness) -> None:
    """--force and `rotate NAME` each mint one new token for that target only."""
    h.write_config(grace="0s")
    assert h.run("run-once").code == 0
    before = (h.active_tokens(0), h.active_tokens(1))
    assert h.run("run-once", "--target", "app-deploy", "--force").code == 0
    assert h.active_tokens(0) != before[0]
    assert h.active_tokens(1) == before[1]
    middle = h.active_tokens(0)
    assert h.run("rotate", "app-deploy").code == 0
    assert h.active_tokens(0) != middle
    assert h.held_works(0)


def test_dry_run_and_plan_send_no_mutation(h: Harness) -> None:
    """`plan` and `run-once --dry-run` describe due work, exit 0, and send no POST, PATCH or DELETE."""
    for args in (("plan",), ("run-once", "--dry-run"), ("run-once", "--dry-run", "--force")):
        result = h.run(*args)
        assert result.code == 0, result.stderr
        assert "rotate" in result.stdout
    assert h.mutations() == 0


def test_an_idle_run_calls_nothing_upstream(h: Harness) -> None:
    """After a rotation with grace 0, the next run makes no request at all, not even a login."""
    h.write_config(grace="0s")
    assert h.run("run-once").code == 0
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()
    result = h.run("run-once")
    assert result.code == 0
    assert h.calls() == 0
    assert "nothing due" in result.stdout


def test_bad_config_exits_2_naming_the_key(h: Harness) -> None:
    """A bad duration is exit 2 with the key path on stderr and no traceback."""
    h.write_config(grace="soon")
    result = h.run("run-once")
    assert result.code == 2
    assert "targets[0].grace" in result.stderr
    assert "Traceback" not in result.stderr
    assert h.calls() == 0


def test_unknown_target_is_a_usage_error(h: Harness) -> None:
    """`rotate` of a name that is not configured exits 2 naming it."""
    result = h.run("rotate", "nope")
    assert result.code == 2
    assert "nope" in result.stderr


def test_drift_freezes_the_target_and_revokes_nothing(h: Harness, infisical: httpx.Client) -> None:
    """Someone else's PATCH is drift: exit 1, nothing revoked, status shows it, --take-over recovers."""
    assert h.run("run-once").code == 0
    before = h.active_tokens(0)
    other = h.fakes.gitlab.test_only_token(h.active_tokens(0)[-1])
    answer = patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value)
    assert answer.status_code == 200
    h.fakes.clock.advance(timedelta(minutes=61))
    result = h.run("run-once")
    assert result.code == 1
    assert "drift" in result.stdout
    assert h.active_tokens(0) == before
    status = h.run("status", "--json")
    assert status.code == 1
    assert status.json()["targets"][0]["drift"]["since"]
    assert h.run("run-once", "--target", "app-deploy", "--force").code == 1
    assert h.active_tokens(0) == before
    taken = h.run("rotate", "app-deploy", "--take-over")
    assert taken.code == 0, taken.stdout + taken.stderr
    assert h.held_works(0)
    assert h.run("status").code == 0


def test_check_passes_against_the_fakes(h: Harness) -> None:
    """`check` reports every item ok for the example setup and sends no mutation."""
    result = h.run("check")
    assert result.code == 0, result.stdout + result.stderr
    assert "PROBLEM" not in result.stdout
    assert h.mutations() == 0


def test_no_token_value_reaches_any_output(h: Harness) -> None:
    """Across a rotation, status and history, no glpat- value is printed or logged."""
    outputs = [h.run("run-once"), h.run("status"), h.run("history", "--json"), h.run("check")]
    h.fakes.clock.advance(timedelta(minutes=61))
    outputs.append(h.run("run-once"))
    for value in h.fakes.gitlab.test_only_minted_values():
        for out in outputs:
            assert value not in out.stdout
            assert value not in out.stderr
    assert all("glpat-" not in o.stdout + o.stderr for o in outputs)
    journal = (h.folder / "state.db").read_bytes()
    assert b"glpat-" not in journal


def test_test_hooks_are_ignored_without_the_fakes_proof(h: Harness) -> None:
    """CRASH_AFTER on loopback without the key the fakes hand out does nothing: exit 0, a note on stderr."""
    wrong = {"ROTATOR_TEST_HOOKS": "not-the-key-these-fakes-made"}
    result = h.run("run-once", crash_after="PLANNED", extra_env=wrong)
    assert result.code == 0, result.stderr
    assert "ignoring ROTATOR_TEST_CRASH_AFTER: no upstream proved ROTATOR_TEST_HOOKS" in result.stderr
    assert "is in effect" not in result.stderr
    assert h.held_works(0)
    assert h.held_works(1)


def test_a_removed_target_still_gets_its_pending_revoke(h: Harness) -> None:
    """Drop api-deploy from the config during grace: the run after grace still revokes its old token."""
    assert h.run("run-once").code == 0
    assert len(h.active_tokens(1)) == 2
    h.write_config(targets=1)
    h.fakes.clock.advance(timedelta(minutes=61))
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert "api-deploy (removed)" in result.stdout
    assert len(h.active_tokens(1)) == 1
    assert h.held_works(1)
    h.fakes.clock.advance(timedelta(days=25))
    later = h.run("run-once")
    assert later.code == 0
    # Its current token is never forgotten: reported until `rotator forget` or its expiry (the
    # connection is read once a day, in case it was deleted).
    line = next(x for x in later.stdout.splitlines() if x.startswith("api-deploy (removed): "))
    assert "left alone: token" in line
    assert "rotator forget '" in later.stdout


def test_a_frozen_target_revokes_nothing_even_when_other_work_runs(h: Harness) -> None:
    """Frozen (drift recorded) but with a tombstone to re-check: the run does that, never the revoke."""
    assert h.run("run-once").code == 0
    adopted = h.fakes.seed.adopt_token_ids[0]
    journal = SQLiteJournal(h.folder / "state.db")
    state = next(s for s in journal.targets() if s.name == "app-deploy")
    now = datetime.now(UTC) + h.fakes.clock.offset
    lease = journal.acquire(state.key, state.name, "test", now, timedelta(seconds=1))
    assert lease is not None
    journal.write(
        lease,
        Change(
            target=replace(state, drift_since=now),
            tombstones=(Tombstone(state.key, "app-deploy-20260101-00000000", now + timedelta(days=3)),),
        ),
    )
    journal.release(lease)
    journal.close()
    h.fakes.clock.advance(timedelta(minutes=61))
    result = h.run("run-once")
    assert result.code == 1
    assert "drift" in result.stdout
    assert adopted in h.active_tokens(0)
