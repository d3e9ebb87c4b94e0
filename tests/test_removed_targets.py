"""Removed targets (issue 14, items 5 and 7): re-pointed, gitlab.url changed, deleted connection, forget."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rotator.core.model import Change, Origin, Role, TargetKey, TargetState, TokenRecord, Tombstone
from rotator.doors.web import Status
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness


pytestmark = pytest.mark.slow
CRASHED = 70
MANAGER = "rotator-manager"
MAINTAINER = 40


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A config for both example targets against the fakes, grace 1h."""
    return Harness(fakes, tmp_path)


def _edit_target(h: Harness, **fields: Any) -> None:  # noqa: ANN401 - any target field
    """Change the first target's fields in rotator.yaml (a value None drops the field)."""
    path = h.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    target = config["targets"][0]
    target.update(fields)
    config["targets"][0] = {k: v for k, v in target.items() if v is not None}
    path.write_text(yaml.safe_dump(config))


def _key(h: Harness, index: int) -> str:
    """The journal key of the example target ``index`` as first configured."""
    seed = h.fakes.seed
    return f"{seed.gitlab_url}|{seed.project_ids[index]}|{CONNECTIONS[index]}"


def test_a_repointed_target_retires_its_old_key_after_the_new_push_and_grace(h: Harness) -> None:
    """Re-point app-deploy's project: its old key waits (reported) until grace, then is revoked."""
    h.write_config(targets=1)
    assert h.run("run-once").code == 0
    old = h.active_tokens(0)
    assert len(old) == 2  # the adopted token (pending) and the current one
    _edit_target(h, project=h.fakes.seed.project_paths[1], adopt_token_id=None)
    moved = h.run("run-once")
    assert moved.code == 0, moved.stdout + moved.stderr
    assert "app-deploy (removed): idle: left alone" in moved.stdout
    assert h.active_tokens(0) == old
    [removed] = h.run("status", "--json").json()["removed"]
    assert removed["key"] == _key(h, 0)
    assert removed["connection_used_by"] == "app-deploy"
    assert removed["forget"] == f"rotator forget '{_key(h, 0)}' --revoke"
    assert {removed["token_id"], removed["pending_revokes"][0]["token_id"]} == set(old)
    h.fakes.clock.advance(timedelta(minutes=61))
    after = h.run("run-once")
    assert after.code == 0, after.stdout + after.stderr
    assert h.active_tokens(0) == []
    assert h.held_works(0)
    assert h.run("status", "--json").json()["removed"] == []


def test_a_gitlab_url_change_on_the_same_instance_revokes_through_the_configured_gitlab(h: Harness) -> None:
    """An entry recorded under url + "/" (an older journal) is the same instance: its token is revoked."""
    h.write_config(targets=1, grace="0s")
    assert h.run("run-once").code == 0
    [held] = h.active_tokens(0)
    journal = SQLiteJournal(h.folder / "state.db")
    [state] = journal.targets()
    moved = TargetKey(state.key.gitlab_url + "/", state.key.project_id, state.key.connection_id)
    now = datetime.now(UTC) + h.fakes.clock.offset
    lease = journal.acquire(moved, state.name, "test", now, timedelta(minutes=1))
    old = journal.acquire(state.key, state.name, "test", now, timedelta(minutes=1))
    assert lease is not None
    assert old is not None
    tokens = tuple(replace(t, key=moved) for t in journal.tokens(state.key))
    journal.write(lease, Change(tokens=tokens, target=replace(state, key=moved)))
    journal.forget(old, "moved by the test")
    journal.release(lease)
    journal.close()
    _edit_target(h, adopt_token_id=None)
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert held not in h.active_tokens(0)
    assert len(h.active_tokens(0)) == 1
    assert h.held_works(0)


def test_a_removed_target_whose_connection_was_deleted_is_revoked_and_stops_failing(h: Harness) -> None:
    """api-deploy removed, its connection deleted: after grace all it held is revoked, exit 0, then idle."""
    assert h.run("run-once").code == 0
    h.write_config(targets=1)
    h.fakes.infisical.test_only_delete_connection(CONNECTIONS[1])
    h.fakes.clock.advance(timedelta(minutes=61))
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert h.active_tokens(1) == []
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()
    again = h.run("run-once")
    assert again.code == 0
    assert "api-deploy" not in again.stdout
    assert h.calls() == 0


def test_forget_revokes_what_is_safe_then_drops_the_entry(h: Harness) -> None:
    """`forget --revoke` refuses what a live connection holds, revokes the rest; drops the entry at last."""
    assert h.run("run-once").code == 0
    h.write_config(targets=1)
    key = _key(h, 1)
    status = h.run("status")
    assert status.code == 0
    assert f"rotator forget '{key}' --revoke" in status.stdout
    assert h.run("forget", _key(h, 0)).code == 2
    unknown = h.run("forget", "nope")
    assert unknown.code == 2
    assert key in unknown.stderr
    h.fakes.clock.advance(timedelta(minutes=16))
    refused = h.run("forget", key, "--revoke")
    assert refused.code == 1, refused.stdout + refused.stderr
    assert "may still hold it" in refused.stdout
    assert len(h.active_tokens(1)) == 1  # the pending revoke went; the held token stays
    assert h.held_works(1)
    h.fakes.infisical.test_only_delete_connection(CONNECTIONS[1])
    done = h.run("forget", key, "--revoke")
    assert done.code == 0, done.stdout + done.stderr
    assert h.active_tokens(1) == []
    assert h.run("status", "--json").json()["removed"] == []
    assert any(row["target"] == "api-deploy" for row in h.run("history", "--json").json())


def test_an_entry_on_another_gitlab_instance_is_reported_and_nothing_is_sent(h: Harness) -> None:
    """A key recorded for another GitLab: reported with the forget command; no revoke is sent anywhere."""
    h.write_config(targets=1, grace="0s")
    assert h.run("run-once").code == 0
    foreign = TargetKey("https://gitlab.other.example", 7, CONNECTIONS[1])
    now = datetime.now(UTC) + h.fakes.clock.offset
    journal = SQLiteJournal(h.folder / "state.db")
    lease = journal.acquire(foreign, "old-deploy", "test", now, timedelta(minutes=1))
    assert lease is not None
    token = TokenRecord(
        foreign, 998, "old-deploy-x", Origin.CREATED, Role.PENDING_REVOKE, None, revoke_after=now
    )
    journal.write(lease, Change(tokens=(token,), target=TargetState(foreign, "old-deploy", verified_at=now)))
    journal.release(lease)
    journal.close()
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert "old-deploy (removed): idle: left alone: token 998" in result.stdout
    assert "nothing is sent there" in result.stdout
    assert f"rotator forget '{foreign}' --revoke" in result.stdout
    refused = h.run("forget", str(foreign), "--revoke")
    assert refused.code == 1
    assert "another GitLab instance" in refused.stdout
    assert h.calls() == 0  # not even a login: nothing to send anywhere
    assert h.run("forget", str(foreign)).code == 0
    assert h.run("status", "--json").json()["removed"] == []


def test_a_removed_key_without_access_fails_until_its_token_expires(h: Harness) -> None:
    """Removed with a pending revoke, manager removed from P: exit 1 and NO ACCESS until expiry, then 0."""
    h.write_config(token={"scopes": ["api"], "lifetime": "90d"})
    assert h.run("run-once").code == 0
    adopted = h.fakes.seed.adopt_token_ids[1]
    h.write_config(targets=1, token={"scopes": ["api"], "lifetime": "90d"})
    h.fakes.gitlab.set_project_role(h.fakes.seed.project_ids[1], "rotator-manager", None)
    h.fakes.clock.advance(timedelta(minutes=61))  # past grace and the still-in-use margin
    lost = h.run("run-once")
    assert lost.code == 1, lost.stdout + lost.stderr
    assert "api-deploy (removed): done:" in lost.stdout
    assert "no access" in lost.stdout
    assert adopted in h.active_tokens(1)
    status = h.run("status", "--json")
    assert status.code == 1
    [row] = status.json()["removed"]
    assert row["pending_revokes"][0]["token_id"] == adopted
    assert row["pending_revokes"][0]["no_access_since"]
    assert row["failing"]
    assert "NO ACCESS" in h.run("status").stdout
    h.fakes.clock.advance(timedelta(days=30))  # the adopted token's own expires_at has passed
    expired = h.run("run-once")
    assert expired.code == 0, expired.stdout + expired.stderr
    status = h.run("status", "--json")
    assert status.code == 0
    assert status.json()["removed"][0]["pending_revokes"] == []
    retired = [t for row in h.run("history", "--json").json() for t in row["retired"]]
    assert any(t["token_id"] == adopted and "expired" in t["evidence"] for t in retired)


def test_a_deleted_connection_of_an_idle_removed_key_is_found_by_a_daily_read(h: Harness) -> None:
    """Steady state, removed, connection deleted: one read a day finds it gone; its token is revoked."""
    h.write_config(grace="0s")
    assert h.run("run-once").code == 0
    [current] = h.active_tokens(1)
    h.write_config(targets=1, grace="0s")
    h.fakes.clock.advance(timedelta(days=1))
    probed = h.run("run-once")
    assert probed.code == 0, probed.stdout + probed.stderr
    assert "still exists" in probed.stdout
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()
    assert h.run("run-once").code == 0
    assert h.calls() == 0  # read at most once a day
    h.fakes.infisical.test_only_delete_connection(CONNECTIONS[1])
    h.fakes.clock.advance(timedelta(days=1))
    gone = h.run("run-once")
    assert gone.code == 0, gone.stdout + gone.stderr
    assert current not in h.active_tokens(1)
    assert h.run("status", "--json").json()["removed"] == []


def test_an_in_use_hold_on_a_removed_key_points_at_forget(h: Harness) -> None:
    """A removed key's retired token used after retirement: the hold names `forget --revoke`, which works."""
    assert h.run("run-once").code == 0
    h.fakes.clock.advance(timedelta(minutes=20))
    adopted = h.fakes.seed.adopt_token_ids[1]
    old = h.fakes.gitlab.test_only_token(adopted).value
    used = httpx.get(
        f"{h.fakes.seed.gitlab_url}/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": old}
    )
    assert used.status_code == 200
    h.fakes.clock.advance(timedelta(minutes=41))
    h.write_config(targets=1)
    key = _key(h, 1)
    held = h.run("run-once")
    assert held.code == 1, held.stdout + held.stderr
    assert f"revoke held (`rotator forget '{key}' --revoke` revokes it anyway)" in held.stdout
    assert "--revoke-anyway" not in held.stdout
    assert h.run("status").code == 1
    forgot = h.run("forget", key, "--revoke")
    assert forgot.code == 1  # the current token stays: the connection may still hold it
    assert adopted not in h.active_tokens(1)
    assert h.run("status").code == 0


def _late_create(h: Harness, index: int, name: str) -> int:
    """A create that completes after rotator stopped waiting: a live token named ``name`` (its id)."""
    project = h.fakes.gitlab.state.resources[("project", h.fakes.seed.project_ids[index])]
    return h.fakes.gitlab.seed_resource_token(project, name, ["api"]).id


def _stone(h: Harness, key: TargetKey, name: str, until: timedelta) -> None:
    """Record a tombstone for ``name`` on ``key``, ending ``until`` from now (the fakes' clock)."""
    now = datetime.now(UTC) + h.fakes.clock.offset
    journal = SQLiteJournal(h.folder / "state.db")
    lease = journal.acquire(key, "api-deploy", "test", now, timedelta(minutes=1))
    assert lease is not None
    journal.write(lease, Change(tombstones=(Tombstone(key, name, now + until),)))
    journal.release(lease)
    journal.close()


@pytest.mark.parametrize("step", ["PLANNED", "CREATED"])
def test_a_removed_keys_rotation_stopped_before_its_push_is_resumed_not_forgotten(
    h: Harness, step: str
) -> None:
    """Crash at STEP, re-point: forget refuses; run-once revokes what the crash left, rolls it back."""
    h.write_config(targets=1)
    assert h.run("run-once", crash_after=step).code == CRASHED
    journal = SQLiteJournal(h.folder / "state.db")
    rotation = journal.unfinished(journal.targets()[0].key)
    journal.close()
    assert rotation is not None
    late = _late_create(h, 0, rotation.token_name) if step == "PLANNED" else rotation.new_token_id
    assert late in h.active_tokens(0)
    _edit_target(h, project=h.fakes.seed.project_ids[1], adopt_token_id=None)
    h.fakes.clock.advance(timedelta(minutes=11))  # the crashed run's lease lapses
    for args in ((), ("--revoke",)):
        refused = h.run("forget", _key(h, 0), *args)
        assert refused.code == 1, refused.stdout + refused.stderr
        assert "run `rotator run-once` first" in refused.stdout
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    assert late not in h.active_tokens(0)
    [row] = [r for r in h.run("history", "--json").json() if r["rotation"] == rotation.id]
    assert row["outcome"] == "rolled_back"


def test_forget_rechecks_a_tombstone_before_dropping_it(h: Harness) -> None:
    """A removed key holding only a tombstone: plain forget refuses; --revoke re-checks (no access: kept)."""
    h.write_config(targets=1)
    assert h.run("run-once").code == 0
    key = TargetKey(h.fakes.seed.gitlab_url, h.fakes.seed.project_ids[1], CONNECTIONS[1])
    _stone(h, key, "api-deploy-20261203-0badf00d", timedelta(days=3))
    late = _late_create(h, 1, "api-deploy-20261203-0badf00d")
    plain = h.run("forget", str(key))
    assert plain.code == 1, plain.stdout + plain.stderr
    assert "api-deploy-20261203-0badf00d" in plain.stdout
    h.fakes.gitlab.set_project_role(h.fakes.seed.project_ids[1], MANAGER, None)
    blind = h.run("forget", str(key), "--revoke")
    assert blind.code == 1, blind.stdout + blind.stderr
    assert "tombstoned name api-deploy-20261203-0badf00d: not re-checked" in blind.stdout
    status = h.run("status", "--json").json()
    [kept] = status["removed"]
    assert [t["name"] for t in kept["tombstones"]] == ["api-deploy-20261203-0badf00d"]
    Status.model_validate(status)  # /v1/targets serves the same rows through its strict model
    h.fakes.gitlab.set_project_role(h.fakes.seed.project_ids[1], MANAGER, MAINTAINER)
    done = h.run("forget", str(key), "--revoke")
    assert done.code == 0, done.stdout + done.stderr
    assert late not in h.active_tokens(1)
    assert "dropped tombstoned name api-deploy-20261203-0badf00d (re-checked just now" in done.stdout


def test_an_expired_tombstone_gets_a_final_recheck_before_it_is_dropped(h: Harness) -> None:
    """Past its window a stone is re-checked once more (no access: kept, exit 1 naming it), then dropped."""
    h.write_config(targets=1)
    assert h.run("run-once").code == 0
    key = TargetKey(h.fakes.seed.gitlab_url, h.fakes.seed.project_ids[0], CONNECTIONS[0])
    _stone(h, key, "app-deploy-20261203-0badf00d", timedelta(minutes=-1))
    late = _late_create(h, 0, "app-deploy-20261203-0badf00d")
    h.fakes.gitlab.set_project_role(h.fakes.seed.project_ids[0], MANAGER, None)
    blind = h.run("run-once")
    assert blind.code == 1, blind.stdout + blind.stderr
    assert "app-deploy-20261203-0badf00d" in blind.stdout
    h.fakes.gitlab.set_project_role(h.fakes.seed.project_ids[0], MANAGER, MAINTAINER)
    done = h.run("run-once")
    assert done.code == 0, done.stdout + done.stderr
    assert late not in h.active_tokens(0)
    journal = SQLiteJournal(h.folder / "state.db")
    assert journal.tombstones(key) == []
    journal.close()
